"""Progress lines for long work whose stderr is not a terminal (a log file, CI, nohup).

A live progress bar draws nothing there, so a run of an hour would be silent until it
ends. :class:`ProgressLines` writes one plain line at every twentieth of the work (and at
the end) with the count, the elapsed time and an estimate of what is left;
:class:`StageLines` a line at each stage of work of unknown size. :func:`live_bar` makes
the live bar, on stderr: the stream both kinds of line test.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def live_bar(*columns: Any, **kwargs: Any) -> Any:
    """A ``rich.progress.Progress`` drawing on stderr (``columns`` and ``kwargs`` as its own).

    Results go to stdout; the bar goes where the plain lines go, so that exactly one of
    the two shows: the bar on a terminal, the lines elsewhere.
    """
    from rich.console import Console
    from rich.progress import Progress

    return Progress(*columns, console=Console(stderr=True), **kwargs)


class _Lines:
    """What both kinds of plain line share: the stream, whether to write, the clock."""

    def __init__(self, stream: TextIO | None, enabled: bool, clock: Callable[[], float]) -> None:
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        # on a terminal the live bar shows: lines would double it
        self.enabled = enabled and not (callable(isatty) and isatty())
        self.clock = clock
        self.start = clock()
        self.done = 0

    def _write(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()


class ProgressLines(_Lines):
    """Plain progress lines on a stream that is not a terminal.

    Args:
        total: Units of work expected.
        label: What is counted, e.g. ``"bench: episodes"`` (the line starts with it).
        stream: Where to write (default ``sys.stderr``); nothing is written when it is a
            terminal (a live bar shows there) or when ``enabled`` is false.
        steps: Lines over the whole run (one every ``total / steps`` units).
        enabled: Write at all (e.g. false under ``--json``).
        clock: Seconds, monotonic (for tests).

    """

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO | None = None,
        steps: int = 20,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream, enabled, clock)
        self.total = max(0, int(total))
        self.label = label
        self.every = max(1, self.total // max(1, steps))

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units; write a line when a step (or the end) is reached."""
        before = self.done
        self.done += n
        if not self.enabled:
            return
        crossed = self.done // self.every > before // self.every
        if crossed or (self.total and before < self.total <= self.done):
            self._write(self.line())

    def update(self, done: int) -> None:
        """Raise the count to ``done`` (for work that reports a running total).

        A lower ``done`` than the count so far is ignored; a jump across several steps
        writes one line.
        """
        if done > self.done:
            self.advance(done - self.done)

    def line(self) -> str:
        """``LABEL DONE/TOTAL (P%), M min elapsed, about L min left``."""
        elapsed = self.clock() - self.start
        share = self.done / self.total if self.total else 1.0
        left = elapsed / self.done * max(0, self.total - self.done) if self.done else 0.0
        return (
            f"{self.label} {self.done}/{self.total} ({100 * share:.0f}%), "
            f"{elapsed / 60:.1f} min elapsed, about {left / 60:.1f} min left"
        )


class StageLines(_Lines):
    """Plain lines at each stage of work whose total is not known in advance.

    Args:
        label: What runs, e.g. ``"reproduce"`` (each line starts with it).
        unit: What :meth:`tick` counts, e.g. ``"simulations"``.
        stream: Where to write (default ``sys.stderr``); nothing is written on a
            terminal (a live bar shows there) or when ``enabled`` is false.
        enabled: Write at all (e.g. false under ``--json``).
        clock: Seconds, monotonic (for tests).

    """

    def __init__(
        self,
        label: str,
        unit: str,
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(stream, enabled, clock)
        self.label = label
        self.unit = unit

    def tick(self) -> None:
        """Count one more unit (no line)."""
        self.done += 1

    def stage(self, description: str) -> None:
        """Write ``LABEL: DESCRIPTION (N UNIT so far, M min elapsed)``."""
        self._write(f"{self.label}: {description} ({self._count(' so far')})")

    def finish(self) -> None:
        """Write ``LABEL: done (N UNIT, M min elapsed)``."""
        self._write(f"{self.label}: done ({self._count('')})")

    def _count(self, when: str) -> str:
        minutes = (self.clock() - self.start) / 60
        return f"{self.done} {self.unit}{when}, {minutes:.1f} min elapsed"
