"""Parsing helpers shared by the command modules."""

from __future__ import annotations

import argparse
import math
from typing import Any

from lokirl.errors import ConfigError


def parse_range(
    text: str, option: str, example: str, allow_equal: bool = False
) -> tuple[float, float]:
    """Parse ``A:B`` with ``0 <= A < B`` (or ``A <= B`` when ``allow_equal``).

    Raises:
        ConfigError: naming the option, the text and an example of the fix.

    """
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(option, text, "expected A:B", f"write e.g. {option} {example}") from None
    bad_order = b < a if allow_equal else b <= a
    if not (math.isfinite(a) and math.isfinite(b)) or bad_order or a < 0:
        need = "0 <= A <= B" if allow_equal else "0 <= A < B"
        raise ConfigError(option, text, f"need {need}", f"write e.g. {option} {example}")
    return a, b


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of controller specs, keeping keyword specs whole.

    Commas inside parentheses belong to the spec: ``loki,periodic(period_s=5,headroom=1.3)``
    is two specs.

    Raises:
        ConfigError: unbalanced parentheses.

    """
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                break
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise ConfigError(
            "--controllers", text, "unbalanced parentheses", "write e.g. periodic(period_s=5)"
        )
    out.append("".join(cur).strip())
    return [s for s in out if s]


def check_workers(
    pipeline: Any, workers: int, option: str = "--workers", example: str | None = None
) -> None:
    """Refuse a cluster too small to place one worker on every task of ``pipeline``.

    Args:
        pipeline: The pipeline (anything with ``name`` and ``tasks``).
        workers: Workers the command would run.
        option: The option that set ``workers`` (named in the error).
        example: How the fix writes the least cluster that serves (``{n}`` for its
            workers); default ``OPTION {n}``.

    Raises:
        ConfigError: ``workers`` is below 1 or below the pipeline's task count (such a
            cluster serves nothing: every plan would drop every frame).

    """
    need = max(1, len(pipeline.tasks))
    if workers < need:
        raise ConfigError(
            option,
            str(workers),
            f"pipeline {pipeline.name!r} has {len(pipeline.tasks)} tasks and each needs at "
            "least one worker; a smaller cluster serves nothing",
            f"pass {(example or option + ' {n}').format(n=need)} or more",
        )


def check_dilation(dilation: float, emulate: bool) -> None:
    """Refuse a time dilation that is not a number > 0, or one without emulated workers.

    Raises:
        ConfigError: naming ``--dilation`` and the fix.

    """
    if not (math.isfinite(dilation) and dilation > 0):
        raise ConfigError(
            "--dilation", str(dilation), "must be a number > 0", "pass 1 (real time) or 4"
        )
    if dilation != 1.0 and not emulate:
        raise ConfigError(
            "--dilation",
            str(dilation),
            "only emulated workers can be slowed down (real models take their own time)",
            "add --emulate, or drop --dilation",
        )


def check_distinct(items: list[str], option: str) -> None:
    """Refuse an item of a list option given twice.

    A controller given twice was played twice (two identical rows); a trace given
    twice counted as two traces, narrowing every interval.

    Raises:
        ConfigError: naming the option and the item.

    """
    twice = sorted({c for c in items if items.count(c) > 1})
    if twice:
        raise ConfigError(option, ", ".join(twice), "listed more than once", "list each once")


def check_simulated(controllers: list[str], seed: int) -> None:
    """Refuse what ``lokirl simulate`` cannot play: a negative seed, the hindsight reference.

    Raises:
        ConfigError: naming the option and the fix.

    """
    if seed < 0:
        raise ConfigError("--seed", str(seed), "must be >= 0", "pass e.g. --seed 0")
    check_distinct(controllers, "--controller")
    for n in controllers:
        if n.strip().startswith("hindsight"):
            raise ConfigError(
                "--controller",
                n,
                "the hindsight reference plans from the episode's whole future, which "
                "simulate does not hand to controllers",
                "compare with it in lokirl evaluate or lokirl bench",
            )


def add_trace_format_options(parser: Any) -> None:
    """Add ``--format`` and ``--column``: how to read a trace file nobody has seen before.

    Args:
        parser: An ``argparse`` parser or argument group; the options land in
            ``trace_format`` and ``column``.

    """
    parser.add_argument(
        "--format",
        dest="trace_format",
        default="auto",
        choices=("auto", "arrivals", "rates", "timestamps"),
        help="trace file format (default: auto-detect)",
    )
    parser.add_argument("--column", help="timestamp column of a timestamp CSV with several columns")


def parse_solver_time(text: str, measured: bool = False) -> str | float:
    """``--solver-time``: ``"model"``, seconds >= 0, or (``measured``) ``"measured"``."""
    if text == "model" or (measured and text == "measured"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        if measured:
            raise ConfigError(
                "--solver-time",
                text,
                "not 'model', 'measured' nor a number of seconds >= 0",
                "pass measured, model or e.g. 0.02",
            )
        raise ConfigError(
            "--solver-time",
            text,
            "not 'model' nor a number of seconds >= 0 (a measured solve time would make "
            "the table unrepeatable)",
            "pass model (the default) or e.g. 0.02",
        )
    return value


def auto_load(pipeline: Any, cluster: Any) -> tuple[float, float, str]:
    """The suites' load range on this cluster, in frames/s, and its unit.

    :func:`lokirl.core.load_range.auto_load_range`: 0.3..2.0 x the capacity at full
    accuracy, or 0.05..0.4 x the capacity at any accuracy when the most accurate variants
    cannot meet the SLO on the cluster (two deterministic solves).

    Returns:
        ``(lo, hi, unit)``, unit ``"full_accuracy"`` or ``"max"``.

    """
    from lokirl.core.load_range import auto_load_range
    from lokirl.experiments.suites import capacities

    return auto_load_range(capacities(pipeline, cluster))


def auto_rescale(pipeline: Any, cluster: Any) -> tuple[str, str]:
    """``--rescale auto``: :func:`auto_load` as the text of ``--rescale LO:HI``.

    Returns:
        ``("LO:HI", unit)``: the range in frames/s and ``"full_accuracy"`` or ``"max"``.

    """
    lo, hi, unit = auto_load(pipeline, cluster)
    return f"{lo:.6g}:{hi:.6g}", unit


def resolve_rescale(text: str | None, pipeline: Any, workers: int) -> str | None:
    """``text`` unless it is ``"auto"``: then the suites' range on ``workers`` workers.

    The cluster is ``pipeline``'s homogeneous one (:func:`auto_rescale`).
    """
    if text != "auto":
        return text
    from lokirl.core.pipeline import Cluster

    return auto_rescale(pipeline, Cluster.homogeneous(pipeline, workers))[0]


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """A comma-separated list of integer seeds (``"0,1,2"``).

    Raises:
        ConfigError: not integers, a negative one, or none given.

    """
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(option, text, "not a list of integers", "pass 0,1,2") from None
    if not seeds:
        raise ConfigError(option, text, "no seeds", "pass 0,1,2")
    if min(seeds) < 0:  # numpy's generators take no negative seed
        raise ConfigError(option, text, "seeds must be >= 0", "pass e.g. 0,1,2")
    return seeds


def seed(text: str) -> int:
    """An argparse ``type`` for a seed: an integer ``>= 0`` (numpy refuses the others).

    Raises:
        argparse.ArgumentTypeError: not an integer, or negative; argparse names the
            option and stops before any work.

    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number. Fix: pass e.g. 0"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0. Fix: pass e.g. 0")
    return value
