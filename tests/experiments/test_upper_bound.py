"""The hindsight controller bounds every other controller from above on the dev suite."""

import statistics

import lokirl.agents  # noqa: F401 - registers the learned and heuristic controllers
from lokirl.experiments.runner import run_suite
from lokirl.experiments.suites import load_suite
from lokirl.experiments.tuning import tuned_names

#: Every non-learned controller a report compares (the tuned baselines as committed).
OTHERS = ["loki", "loki-5s", "trigger", "oracle", "inferline", "proteus", "static"]


def test_hindsight_beats_every_other_controller_on_each_dev_case():
    others = OTHERS + [f"{name}-tuned" for name in tuned_names()]
    results = run_suite(load_suite("dev"), [*others, "hindsight"], reference="hindsight")
    assert not results.failed, results.failed
    by: dict[tuple[str, str], list[float]] = {}
    for row in results.rows:
        by.setdefault((row["case"], row["controller"]), []).append(row["reward"])
    for case in results.meta["cases"]:
        bound = statistics.fmean(by[(case, "hindsight")])
        for c in others:
            assert bound >= statistics.fmean(by[(case, c)]), (case, c, by)
