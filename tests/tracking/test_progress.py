"""Plain progress lines where a live bar cannot draw."""

import io

from lokirl.tracking.progress import ProgressLines


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_line_at_every_step_and_at_the_end_with_an_estimate():
    out, clock = io.StringIO(), _Clock()
    p = ProgressLines(45, "bench x: episodes", stream=out, steps=4, clock=clock)
    for _ in range(45):
        clock.t += 6.0  # 6 s an episode
        p.advance()
    lines = out.getvalue().splitlines()
    # every 11 episodes (45 // 4), then the 45th
    assert [ln.split()[3] for ln in lines] == ["11/45", "22/45", "33/45", "44/45", "45/45"]
    assert lines[0] == "bench x: episodes 11/45 (24%), 1.1 min elapsed, about 3.4 min left"
    assert lines[-1].endswith("(100%), 4.5 min elapsed, about 0.0 min left")


def test_silent_on_a_terminal_when_disabled_and_with_nothing_to_do():
    term = _Terminal()
    p = ProgressLines(10, "x", stream=term)
    for _ in range(10):
        p.advance()
    assert term.getvalue() == ""
    off = io.StringIO()
    q = ProgressLines(10, "x", stream=off, enabled=False)
    q.advance(10)
    assert off.getvalue() == ""
    none = io.StringIO()
    ProgressLines(0, "x", stream=none).advance(0)
    assert none.getvalue() == ""


def test_update_takes_a_running_total():
    out, clock = io.StringIO(), _Clock()
    p = ProgressLines(100, "train: steps", stream=out, steps=4, clock=clock)
    for done in (10, 30, 30, 64, 100):
        clock.t += 60.0
        p.update(done)
    counts = [ln.split()[2] for ln in out.getvalue().splitlines()]
    assert counts == ["30/100", "64/100", "100/100"]


def test_stage_lines_name_each_stage_with_the_count_so_far():
    from lokirl.tracking.progress import StageLines

    out, clock = io.StringIO(), _Clock()
    s = StageLines("reproduce", "simulations", stream=out, clock=clock)
    s.stage("low load")
    for _ in range(7):
        s.tick()
    clock.t += 90.0
    s.stage("peak-load traces")
    s.finish()
    assert out.getvalue().splitlines() == [
        "reproduce: low load (0 simulations so far, 0.0 min elapsed)",
        "reproduce: peak-load traces (7 simulations so far, 1.5 min elapsed)",
        "reproduce: done (7 simulations, 1.5 min elapsed)",
    ]
    term = _Terminal()
    quiet = StageLines("reproduce", "simulations", stream=term)
    quiet.stage("x")
    quiet.finish()
    assert term.getvalue() == ""


def test_reproduce_writes_a_line_per_experiment_off_a_terminal(capsys, tmp_path, monkeypatch):
    import lokirl.experiments.reproduction as reproduction
    import lokirl.experiments.reproduction_report as report
    from lokirl.cli import main

    def fake_run(settings, img, tick, on_stage):
        for stage in ("effective capacity (bisection)", "low load"):
            on_stage(stage)
            tick()
            tick()
        return {}

    monkeypatch.setattr(reproduction, "run_reproduction", fake_run)
    monkeypatch.setattr(report, "write_reproduction", lambda results, out: "tables")
    assert main(["reproduce", "--quick", "--out", str(tmp_path / "r")]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("reproduce:")]
    assert [ln.rsplit(" (", 1)[0] for ln in lines] == [
        "reproduce: effective capacity (bisection)",
        "reproduce: low load",
        "reproduce: done",
    ]
    assert lines[-1].startswith("reproduce: done (4 simulations, ")
    # --json: the results alone on stdout, no progress lines
    assert main(["reproduce", "--quick", "--json", "--out", str(tmp_path / "j")]) == 0
    assert "reproduce:" not in capsys.readouterr().err
