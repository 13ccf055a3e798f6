"""``scripts/forced_decision.py``: simvslive's simulated side with one decision forced."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "forced_decision.py"
_SPEC = importlib.util.spec_from_file_location("forced_decision", _PATH)
fd = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fd)

ARGS = ["--pipeline", "traffic_analysis", "--workers", "20", "--trace", "diurnal_600s"]
ARGS += ["--speedup", "10", "--scale", "50:250", "--duration", "12", "--controller", "ppo"]


def test_the_decision_at_the_moment_asked_is_a_forced_warm_re_solve(tmp_path, capsys):
    log = tmp_path / "log.json"
    assert fd.main(["--force-at", "5", "--headroom", "1.3", "--log", str(log), "--", *ARGS]) == 0
    out = capsys.readouterr().out
    assert "after 5 s:" in out
    data = json.loads(log.read_text())
    solves = data["result"]["solve_log"]
    assert [5.0, "policy: warm re-solve x1.3 (forced)"] in solves
    decisions = data["decisions"]
    assert [d["t"] for d in decisions if d["forced"]] == [5.0]
    assert len(decisions) >= 12 and all(d["fallback"] is not None for d in decisions)
    # unforced, the same run does not take that decision
    assert fd.main(["--log", str(log), "--", *ARGS]) == 0
    assert "(forced)" not in json.dumps(json.loads(log.read_text())["result"]["solve_log"])


def test_kept_through_violations_counts_only_kept_plans_at_five_percent_or_more():
    def entry(t, resolve, viol, proposed):
        return {"t": t, "resolve": resolve, "violations": viol,
                "fallback": {"resolve": proposed, "reason": "x"}}  # fmt: skip

    log = [entry(1, False, 0.5, True), entry(3, False, 0.05, True), entry(4, True, 0.2, True)]
    log += [entry(5, False, 0.049, True), entry(6, False, 0.1, False)]
    assert fd.kept_through_violations(log, 2) == {
        "decisions": 4,
        "kept_violating": 2,
        "fallback_proposed": 1,
    }
