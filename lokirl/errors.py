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

    def within(self, source: str, field: str) -> ConfigError:
        """Restate the error as met reading ``field`` of ``source`` (a file naming this one).

        A pipeline YAML named by a suite or a training file keeps its own path and
        field in the problem, so the message points at the file to edit.
        """
        inner = (
            self.problem
            if self.field == field.rsplit(".", 1)[-1]
            else (f"{self.source}: {self.field}: {self.problem}")
        )
        return ConfigError(source, field, inner, self.fix)

    def __reduce__(self) -> tuple:
        """Pickle with all four fields, so an error raised in a worker process reaches the parent."""
        return (type(self), (self.source, self.field, self.problem, self.fix))


class TraceError(LokiError):
    """A trace file is missing, empty or not in one of the documented formats."""


def problem_and_fix(exc: Exception, default_fix: str) -> tuple[str, str]:
    """An error's problem and its own fix (a ``... Fix: ...`` message), else ``default_fix``.

    For re-raising an inner error as a :class:`ConfigError` of the file that led to it
    without a second "Fix:" after the inner one.
    """
    if isinstance(exc, ConfigError):
        return exc.problem, exc.fix or default_fix
    problem, sep, fix = str(exc).partition(" Fix: ")
    return (problem.rstrip(". "), fix) if sep else (str(exc), default_fix)


def yaml_problem(exc: Exception) -> str:
    """``not valid YAML at line L, column C (what the parser expected)`` for a YAML error.

    Reads the parser's ``problem_mark`` and ``problem`` where it gives them (PyYAML's
    marked errors), so a config error names the place to fix, not the parser's dump.
    """
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = getattr(exc, "problem", None)
    return f"not valid YAML{where}" + (f" ({what})" if what else "")
