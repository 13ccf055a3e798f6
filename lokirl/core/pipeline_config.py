"""Pipelines from YAML files, validated with errors that name the file, field and fix.

The format (see ``configs/pipelines/example.yaml``)::

    name: my_pipeline
    slo_ms: 250
    tasks:
      - name: detect
        children: [classify]
        variants:
          - name: det-large
            accuracy: 100            # normalised, the best variant of a task is 100
            load_time_s: 2.0         # load from disk (what a swap costs)
            load_time_host_s: 0.8    # optional: load with the weights in host memory
            memory_mb: 950           # optional: accelerator memory the variant takes
            load_source: "measured: gpu, 2026-12-03"   # optional: where they come from
            branching: {classify: 3.5}   # mean sub-requests per request
            latency_ms:
              gpu: {1: 20.0, 2: 35.0, 4: 60.0}
      - name: classify
        variants: [...]
    e2e_accuracy:                    # optional measured end-to-end accuracy
      - {path: [det-large, cls-large], accuracy: 100}
    accelerator_memory_mb: {gpu: 11264}   # optional: memory of one worker per type

A variant may also carry ``latency_p95_ms`` / ``latency_p99_ms`` (the tail, same
shape as ``latency_ms``, written by ``lokirl profile``), and the file a ``runtime``
section (model sources, checked by :func:`lokirl.runtime.models.model_sources`).
Any other key is refused, so that a misspelt optional key is not silently
replaced by its default.

Built-in pipelines are shipped as such files inside the package.
"""

from __future__ import annotations

import difflib
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lokirl.core.pipeline import Pipeline, Task, Variant
from lokirl.errors import ConfigError

_BUILTIN_PACKAGE = "lokirl.data.pipelines"

# The keys each level of a pipeline file accepts, and those that must be there.
_TOP_KEYS = (
    "name",
    "slo_ms",
    "tasks",
    "description",
    "e2e_accuracy",
    "accelerator_memory_mb",
    "runtime",
)
_TASK_KEYS = ("name", "variants", "children")
_VARIANT_KEYS = (
    "name",
    "accuracy",
    "latency_ms",
    "load_time_s",
    "load_time_host_s",
    "memory_mb",
    "load_source",
    "branching",
    "latency_p95_ms",
    "latency_p99_ms",
)
_E2E_KEYS = ("path", "accuracy")
_REQUIRED = frozenset({"name", "slo_ms", "tasks", "variants", "accuracy", "latency_ms", "path"})


def builtin_pipelines() -> list[str]:
    """Names of the pipelines shipped with lokirl."""
    root = resources.files(_BUILTIN_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_pipeline(spec: str | Path) -> Pipeline:
    """Load a pipeline by built-in name or YAML path.

    Looks for, in order: an existing file ``spec``; ``configs/pipelines/<spec>.yaml``
    under the current directory; a built-in pipeline called ``spec``.

    Raises:
        ConfigError: the pipeline cannot be found or its file is invalid.

    """
    path = Path(spec)
    if path.is_file():
        return pipeline_from_file(path)
    local = Path("configs") / "pipelines" / f"{spec}.yaml"
    if local.is_file():
        return pipeline_from_file(local)
    if str(spec) in builtin_pipelines():
        res = resources.files(_BUILTIN_PACKAGE).joinpath(f"{spec}.yaml")
        return pipeline_from_dict(yaml.safe_load(res.read_text()), source=f"<built-in {spec}>")
    if path.is_dir():
        _folder_error(path)
    raise ConfigError(
        str(spec),
        "pipeline",
        "no such pipeline file or built-in pipeline",
        f"use one of {', '.join(builtin_pipelines())} or a path to a pipeline YAML file",
    )


def _folder_error(path: Path) -> None:
    """Raise the ConfigError for a folder given where a pipeline file is expected."""
    found = sorted(str(p) for p in path.glob("*.yaml"))[:3]
    raise ConfigError(
        str(path),
        "pipeline",
        "the path is a folder, not a pipeline file",
        f"pass one of the YAML files in it ({', '.join(found)})"
        if found
        else "pass the path of a pipeline YAML file, not of a folder",
    )


def pipeline_from_file(path: str | Path) -> Pipeline:
    """Parse and validate one pipeline YAML file.

    Raises:
        ConfigError: the path is a folder or unreadable, the file is empty, not
            YAML, or not a valid pipeline.

    """
    path = Path(path)
    if path.is_dir():
        _folder_error(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(
            str(path), "-", f"cannot read the file ({exc.strerror})", "check the path"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "-"
        raise ConfigError(str(path), where, "not valid YAML", "fix the YAML syntax there") from None
    if data is None:
        raise ConfigError(
            str(path),
            "-",
            "the file is empty (no YAML document, only blanks or comments)",
            "write a pipeline mapping with name, slo_ms and tasks "
            "(see configs/pipelines/example.yaml)",
        )
    return pipeline_from_dict(data, source=str(path))


class _Checker:
    """Small helper that raises ConfigError with the file name filled in."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, problem: str, fix: str) -> None:
        raise ConfigError(self.source, field, problem, fix)

    def mapping(self, value: Any, field: str, fix: str) -> dict:
        if not isinstance(value, dict):
            self.fail(field, f"expected a mapping, got {type(value).__name__}", fix)
        return value

    def known_keys(self, value: dict, field: str, allowed: tuple[str, ...]) -> None:
        """Refuse a key of the mapping ``value`` (at ``field``) that is not in ``allowed``."""
        for key in value:
            if key in allowed:
                continue
            where = f"{field}.{key}" if field else str(key)
            close = difflib.get_close_matches(str(key), allowed, n=1)
            if not close:
                self.fail(
                    where, "unknown key", f"remove it; the keys here are {', '.join(allowed)}"
                )
            problem = "unknown key"
            if close[0] in value:
                fix = f"remove it ({close[0]!r} is already set)"
            else:
                if close[0] in _REQUIRED:
                    problem += f", and the required {close[0]!r} is missing"
                fix = f"rename it to {close[0]!r} (a misspelling?)"
            self.fail(where, problem, fix)

    def number(self, value: Any, field: str, lo: float, hi: float = math.inf) -> float:
        if isinstance(value, str) and _YAML_EXP.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e9 (no dot) as a string
        wanted = f"a number in [{lo}, {hi}]" if hi < math.inf else f"a finite number >= {lo}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(field, f"expected a number, got {value!r}", f"write {wanted}")
        if not math.isfinite(value):
            self.fail(field, f"{value} is not a finite number", f"write {wanted}")
        if not lo <= value <= hi:
            self.fail(field, f"{value} is out of range", f"use {wanted}")
        return float(value)


_YAML_EXP = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def pipeline_from_dict(data: Any, source: str = "<dict>") -> Pipeline:  # noqa: C901
    """Validate a pipeline description (as parsed from YAML) and build it.

    Args:
        data: The parsed YAML document.
        source: File name used in error messages.

    Raises:
        ConfigError: naming ``source``, the offending field and the fix.

    """
    ck = _Checker(source)
    ck.mapping(data, "-", "the file must be a mapping with name, slo_ms and tasks")
    ck.known_keys(data, "", _TOP_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        ck.fail("name", "missing or empty", "add `name: my_pipeline`")
    if "slo_ms" not in data:
        ck.fail("slo_ms", "missing", "add the end-to-end latency SLO, e.g. `slo_ms: 250`")
    slo = ck.number(data["slo_ms"], "slo_ms", 1e-3)
    raw_tasks = data.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        ck.fail("tasks", "missing or empty", "list at least one task with its variants")

    task_names: list[str] = []
    for i, rt in enumerate(raw_tasks):
        ck.mapping(rt, f"tasks[{i}]", "each task is a mapping with name, variants, children")
        ck.known_keys(rt, f"tasks[{i}]", _TASK_KEYS)
        tn = rt.get("name")
        if not isinstance(tn, str) or not tn:
            ck.fail(f"tasks[{i}].name", "missing or empty", "give every task a name")
        if tn in task_names:
            ck.fail(f"tasks[{i}].name", f"duplicate task {tn!r}", "task names must be unique")
        task_names.append(tn)

    children_of: dict[str, list[str]] = {}
    parent_of: dict[str, str] = {}
    for i, rt in enumerate(raw_tasks):
        kids = rt.get("children", []) or []
        if not isinstance(kids, list):
            ck.fail(f"tasks[{i}].children", "expected a list", "write `children: [task_a, task_b]`")
        for j, k in enumerate(kids):
            if k not in task_names:
                ck.fail(
                    f"tasks[{i}].children[{j}]",
                    f"unknown task {k!r}",
                    f"use one of {', '.join(task_names)} or define the task",
                )
            if k in parent_of:
                ck.fail(
                    f"tasks[{i}].children[{j}]",
                    f"task {k!r} already has parent {parent_of[k]!r}",
                    "each task may have one parent (pipelines are trees); duplicate the task instead",
                )
            parent_of[k] = rt["name"]
        children_of[rt["name"]] = list(kids)

    # Cycle check: every task must be reachable from a root by following children.
    roots = [t for t in task_names if t not in parent_of]
    reached: set[str] = set()
    stack = list(roots)
    while stack:
        t = stack.pop()
        if t in reached:
            continue
        reached.add(t)
        stack.extend(children_of[t])
    if not roots or len(reached) != len(task_names):
        cyc = sorted(set(task_names) - reached) or task_names
        ck.fail(
            "tasks[].children",
            f"the tasks {', '.join(cyc)} form a cycle",
            "remove a child link so that the pipeline is a tree",
        )

    # Topological order (parents first).
    order: list[str] = []
    stack = list(reversed(roots))
    while stack:
        t = stack.pop()
        order.append(t)
        stack.extend(reversed(children_of[t]))

    variant_names: set[str] = set()
    tasks: dict[str, Task] = {}
    for i, rt in enumerate(raw_tasks):
        tn = rt["name"]
        raw_vars = rt.get("variants")
        if not isinstance(raw_vars, list) or not raw_vars:
            ck.fail(f"tasks[{i}].variants", "missing or empty", "list at least one variant")
        variants = []
        for j, rv in enumerate(raw_vars):
            f = f"tasks[{i}].variants[{j}]"
            variants.append(_variant(ck, rv, f, tn, children_of[tn], variant_names))
        tasks[tn] = Task(name=tn, variants=tuple(variants), children=tuple(children_of[tn]))

    e2e: dict[tuple[str, ...], float] = {}
    for k, row in enumerate(data.get("e2e_accuracy", []) or []):
        f = f"e2e_accuracy[{k}]"
        ck.mapping(row, f, "write `{path: [variant, ...], accuracy: 95.0}`")
        ck.known_keys(row, f, _E2E_KEYS)
        path = row.get("path")
        if not isinstance(path, list) or not path:
            ck.fail(f + ".path", "missing", "list the variant names from a root to a leaf")
        for m, vn in enumerate(path):
            if vn not in variant_names:
                ck.fail(
                    f"{f}.path[{m}]", f"unknown variant {vn!r}", "use a variant defined in tasks"
                )
        e2e[tuple(path)] = ck.number(row.get("accuracy"), f + ".accuracy", 0.0, 100.0)

    memory = _accelerator_memory(ck, data.get("accelerator_memory_mb"), tasks)

    pipeline = Pipeline(
        name=name,
        tasks=tuple(tasks[t] for t in order),
        slo_ms=slo,
        e2e_accuracy=e2e,
        description=str(data.get("description", "")),
        accelerator_memory_mb=memory,
    )
    for chain in pipeline.root_to_leaf_tasks():
        fastest = sum(min(v.min_latency() for v in pipeline.task(t).variants) for t in chain)
        if 2.0 * fastest > slo:
            ck.fail(
                "slo_ms",
                f"{slo:g} ms is shorter than twice the fastest path {' -> '.join(chain)} "
                f"({fastest:g} ms of batch latency; a request may wait one batch per stage)",
                f"raise slo_ms to at least {2.0 * fastest:g} or add faster variants",
            )
    return pipeline


def _accelerator_memory(ck: _Checker, raw: Any, tasks: dict[str, Task]) -> dict[str, float]:
    """The top-level ``accelerator_memory_mb`` mapping, checked against the profiles."""
    if raw is None:
        return {}
    fix = "map accelerator type to MiB of memory per worker, e.g. `{gpu: 11264}`"
    ck.mapping(raw, "accelerator_memory_mb", fix)
    profiled = {a for t in tasks.values() for v in t.variants for a in v.accelerators}
    memory: dict[str, float] = {}
    for accel, mb in raw.items():
        f = f"accelerator_memory_mb.{accel}"
        if str(accel) not in profiled:
            ck.fail(
                f,
                f"no variant is profiled on accelerator {accel!r}",
                f"use one of {', '.join(sorted(profiled))} or remove the entry",
            )
        memory[str(accel)] = ck.number(mb, f, 1e-9)
    for task in tasks.values():
        for v in task.variants:
            for accel in v.accelerators:
                cap = memory.get(accel)
                if v.memory_mb is not None and cap is not None and v.memory_mb > cap:
                    ck.fail(
                        f"accelerator_memory_mb.{accel}",
                        f"variant {v.name!r} takes {v.memory_mb:g} MiB but a {accel!r} worker "
                        f"has {cap:g} MiB, so it could never be loaded there",
                        "check the units (MiB, not GB or bytes), or remove the variant's "
                        f"latency_ms.{accel} row",
                    )
    return memory


def _optional_number(ck: _Checker, rv: dict, key: str, f: str, lo: float) -> float | None:
    """``rv[key]`` checked as a number >= ``lo``, or ``None`` when absent or null."""
    value = rv.get(key)
    return None if value is None else ck.number(value, f"{f}.{key}", lo)


def _variant(
    ck: _Checker, rv: Any, f: str, task: str, children: list[str], seen: set[str]
) -> Variant:
    ck.mapping(rv, f, "each variant is a mapping with name, accuracy, latency_ms")
    ck.known_keys(rv, f, _VARIANT_KEYS)
    vn = rv.get("name")
    if not isinstance(vn, str) or not vn:
        ck.fail(f + ".name", "missing or empty", "give every variant a name")
    if vn in seen:
        ck.fail(
            f + ".name", f"duplicate variant {vn!r}", "variant names must be unique in a pipeline"
        )
    seen.add(vn)
    if "accuracy" not in rv:
        ck.fail(
            f + ".accuracy",
            "missing",
            "add the normalised accuracy (best variant of the task = 100)",
        )
    acc = ck.number(rv["accuracy"], f + ".accuracy", 1e-9, 100.0)
    load = ck.number(rv.get("load_time_s", 1.0), f + ".load_time_s", 0.0)
    # Not checked against load_time_s: for a tiny model the two measured medians
    # differ by noise, and a host load may come out a few ms slower.
    load_host = _optional_number(ck, rv, "load_time_host_s", f, 0.0)
    memory = _optional_number(ck, rv, "memory_mb", f, 1e-9)
    source = rv.get("load_source", "")
    if source is None:
        source = ""
    if not isinstance(source, str):
        ck.fail(
            f + ".load_source",
            f"expected text, got {type(source).__name__}",
            'write where the numbers come from, e.g. `load_source: "measured: gpu, 2026-12-03"`',
        )
    lat_raw = rv.get("latency_ms")
    if not isinstance(lat_raw, dict) or not lat_raw:
        ck.fail(
            f + ".latency_ms",
            "missing or empty",
            "profile the variant: `latency_ms: {gpu: {1: 5.0, 2: 8.0}}` (ms per batch size)",
        )
    latency: dict[str, dict[int, float]] = {}
    for accel, table in lat_raw.items():
        fa = f"{f}.latency_ms.{accel}"
        ck.mapping(table, fa, "map batch size to milliseconds, e.g. `{1: 5.0, 2: 8.0}`")
        if not table:
            ck.fail(fa, "no batch sizes", "add at least batch size 1")
        row: dict[int, float] = {}
        for b, ms in table.items():
            try:
                bi = int(b)
            except (TypeError, ValueError, OverflowError):  # int(inf) overflows
                bi = -1
            if bi < 1 or str(b).strip() != str(bi):
                ck.fail(
                    f"{fa}.{b}", f"batch size {b!r} is not a positive integer", "use 1, 2, 4, ..."
                )
            row[bi] = ck.number(ms, f"{fa}.{b}", 0.0)
            if row[bi] <= 0:
                ck.fail(
                    f"{fa}.{b}",
                    "a batch cannot take 0 ms (its throughput would be infinite)",
                    "write the profiled latency in ms (lokirl profile measures it)",
                )
        if 1 not in row:
            ck.fail(
                fa, "missing batch size 1", "profile batch size 1 (a lone request must be servable)"
            )
        latency[str(accel)] = row
    br_raw = rv.get("branching", {}) or {}
    ck.mapping(br_raw, f + ".branching", "map child task to mean sub-requests per request")
    branching: dict[str, float] = {}
    for child, m in br_raw.items():
        if child not in children:
            ck.fail(
                f"{f}.branching.{child}",
                f"{child!r} is not a child of task {task!r}",
                f"use one of {children} or add it to the task's children",
            )
        branching[child] = ck.number(m, f"{f}.branching.{child}", 0.0)
    for child in children:
        branching.setdefault(child, 1.0)
    return Variant(
        name=vn,
        task=task,
        accuracy=acc,
        latency_ms=latency,
        load_time_s=load,
        branching=branching,
        memory_mb=memory,
        load_time_host_s=load_host,
        load_source=source,
    )
