"""Plain progress lines where a live bar cannot draw."""

import io

from lokirl.commands.progress import ProgressLines


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
