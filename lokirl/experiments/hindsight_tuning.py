"""Tuning the hindsight upper bound's knobs on a suite (never on ``test``).

Each knob set's DP schedule (not replayed) plays every (case, seed) of the suite
with the suite runner's environment; the best knob sets become
:data:`lokirl.agents.hindsight.DEFAULT_CANDIDATES` (see docs/results.md,
"Hindsight upper bound").
"""

from __future__ import annotations

from collections.abc import Sequence

from lokirl.agents.hindsight import HindsightKnobs, hindsight_actor


def tune_hindsight(
    cases: Sequence[str] | None = None,
    candidates: Sequence[HindsightKnobs] | None = None,
    seeds: Sequence[int] = (0,),
    suite: str = "validation",
) -> list[tuple[HindsightKnobs, float]]:
    """Mean episode reward of each knob set's DP schedule (not replayed) on a suite.

    Tuning happens on ``validation`` (never on ``test``): every case of ``cases``
    (all of the suite's when ``None``) and seed is played by one hindsight per knob
    set, with the suite runner's environment (deterministic solves, modelled solver
    time) and the plan library cached across knob sets.

    Args:
        cases: Case ids of the suite.
        candidates: Knob sets (default: a grid over derating and burst allowance).
        seeds: Simulator seeds.
        suite: Suite name or file.

    Returns:
        ``(knobs, mean reward)`` pairs, best first. A (case, seed) where any episode
        raised is left out for all knob sets.

    """
    from lokirl.agents.rollout import rollout
    from lokirl.experiments.runner import make_env
    from lokirl.experiments.suites import capacities, case_trace, load_suite, load_unit

    loaded = load_suite(suite)
    chosen = [c for c in loaded.spec.cases if cases is None or c.id in cases]
    cands = (
        list(candidates)
        if candidates
        else [HindsightKnobs(burst_s=b, derate=d) for b in (0.1, 0.2) for d in (1.0, 0.9, 0.8)]
    )
    totals = [0.0] * len(cands)
    n = 0
    for case in chosen:
        env = make_env(case)
        trace = case_trace(
            case, load_unit(case, capacities(env.pipeline, env.cluster)), loaded.base_dir
        )
        cache: dict = {}
        for seed in seeds:
            try:
                rewards = [
                    rollout(env, hindsight_actor(trace, cache, kn), seed, trace=trace).reward
                    for kn in cands
                ]
            except Exception:  # noqa: BLE001 - a failed episode drops its (case, seed)
                continue
            n += 1
            totals = [t + r for t, r in zip(totals, rewards, strict=True)]
    out = [(kn, t / max(1, n)) for kn, t in zip(cands, totals, strict=True)]
    return sorted(out, key=lambda x: -x[1])
