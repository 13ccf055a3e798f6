"""Errors that lokirl reports to users as one clear line, never a traceback."""

from __future__ import annotations


class LokiError(Exception):
    """Base class of the errors the command line prints as a one-line message."""


class ConfigError(LokiError):
    """A configuration file or option is wrong.

    Args:
        source: The file (or option) that holds the error.
        field: The field inside it, dotted (``tasks[1].variants[0].latency_ms``).
        problem: What is wrong.
        fix: How to fix it.

    """

    def __init__(self, source: str, field: str, problem: str, fix: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{source}: {field}: {problem}. Fix: {fix}")

    def __reduce__(self) -> tuple:
        """Pickle with all four fields, so an error raised in a worker process reaches the parent."""
        return (type(self), (self.source, self.field, self.problem, self.fix))


class TraceError(LokiError):
    """A trace file is missing, empty or not in one of the documented formats."""
