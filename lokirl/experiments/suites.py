"""Evaluation suites as data: cases x seeds, validated with pydantic, frozen by hash.

A suite is a YAML file (``lokirl/data/suites/{dev,validation,test}.yaml`` or a
user file) listing *cases*; each case is played by every controller on every
seed (:mod:`lokirl.experiments.runner`). A case fixes what a controller is judged
on: the pipeline, the cluster, the traffic (a bundled trace, a trace file in any
format lokirl reads, or a generator family with its seed), the load range it is
rescaled onto (relative to the cluster's capacity at full accuracy), the length,
the swap mode, and the *family* that groups cases for the statistics (cases are
resampled within their family: :mod:`lokirl.experiments.stats`).

Example::

    name: mine
    seeds: [0, 1, 2]
    defaults: {pipeline: traffic_analysis, cluster: {workers: 20}, duration_s: 120}
    cases:
      - id: bursts-a
        family: bursts
        traffic: {generator: bursts, seed: 20001}
        load: [0.3, 2.0]
      - id: my-trace
        family: production
        traffic: traces/monday.csv      # bundled name or path (relative to this file)

A *frozen* suite (``frozen: true``; the bundled ``test`` suite) must match the
hash stored beside it (``test.sha256``): a changed test suite refuses to run.
The hash covers the suite's resolved content (not comments or layout) and the
bytes of every trace file it plays.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lokirl.core.load_range import AUTO_LOAD, auto_load_range  # noqa: F401 (re-exported)
from lokirl.errors import ConfigError, LokiError, problem_and_fix, yaml_problem
from lokirl.traces.types import RateSeries

#: Bundled suites (``lokirl/data/suites/NAME.yaml``).
BUILTIN_SUITES: tuple[str, ...] = ("dev", "validation", "test")

#: Controllers a suite plays when neither it nor the command names any.
DEFAULT_CONTROLLERS: tuple[str, ...] = ("loki", "loki-5s", "trigger", "oracle", "inferline")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class TrafficSpec(BaseModel):
    """What arrives: a trace (bundled name or file) or a generated family.

    Attributes:
        trace: A bundled trace name or a trace file (arrivals, rate series or
            timestamp CSV); a relative path is looked up beside the suite file
            first, then in the working directory.
        generator: A generator family (:data:`lokirl.traces.FAMILIES`).
        seed: The generator's seed (required with ``generator``).
        params: The family's own parameters (e.g. ``{peak: 900}``).
        start_s: Seconds of the trace skipped before the case's window starts.
        format: Trace file format (``auto``, ``arrivals``, ``rates``, ``timestamps``).
        column: Timestamp column (timestamp format only).

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace: str | None = Field(None, description="bundled trace name or trace file")
    generator: str | None = Field(None, description="generator family")
    seed: int | None = Field(None, ge=0, description="generator seed")
    params: dict[str, Any] = Field(default_factory=dict, description="generator parameters")
    start_s: float = Field(0.0, ge=0, description="seconds skipped at the start of the trace")
    format: Literal["auto", "arrivals", "rates", "timestamps"] = "auto"
    column: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"trace": data}
        return data

    @field_validator("generator")
    @classmethod
    def _family(cls, v: str | None) -> str | None:
        from lokirl.traces import FAMILIES

        if v is not None and v not in FAMILIES:
            raise ValueError(f"unknown generator {v!r}; use one of {sorted(FAMILIES)}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> TrafficSpec:
        if (self.trace is None) == (self.generator is None):
            raise ValueError("give exactly one of 'trace' and 'generator'")
        if self.generator is not None:
            if self.seed is None:
                raise ValueError("a generator needs a 'seed'")
        elif self.params or self.seed is not None:
            raise ValueError("'seed' and 'params' go with 'generator', not with 'trace'")
        return self

    def label(self) -> str:
        """A short description (``bursts#20001`` or the trace's name)."""
        if self.generator is not None:
            return f"{self.generator}#{self.seed}"
        return str(self.trace)


class CaseSpec(BaseModel):
    """One case: a pipeline on a cluster under some traffic, for ``duration_s`` seconds.

    Attributes:
        id: Unique name in the suite (letters, digits, ``.``, ``_``, ``-``).
        family: Group of cases resampled together by the statistics.
        pipeline: Built-in pipeline name or pipeline YAML path.
        cluster: ``{workers: N}`` (N of the pipeline's first accelerator type) or a
            mix ``{type: n, ...}``.
        traffic: See :class:`TrafficSpec`; a plain string is a trace name or file.
        load: ``[lo, hi]``: the trace's minimum..maximum rate is mapped onto
            ``lo..hi`` x the cluster's capacity (``load_unit``); ``null`` plays
            the trace's rates as they are.
        load_unit: ``full_accuracy`` (default): the demand the most accurate
            variants carry on the whole cluster within the SLO (hardware scaling
            alone); ``max``: the largest demand served at any accuracy. A pipeline
            whose most accurate variants cannot meet the SLO at all has no
            full-accuracy capacity: use ``max``.
        duration_s: Seconds of traffic played.
        swap: How a worker changes variant (``overlap``, ``stop``, ``free``).
        epoch_s: Seconds between controller decisions.
        seeds: Simulator seeds of this case (default: the suite's).

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    family: str
    pipeline: str = "traffic_analysis"
    cluster: dict[str, int] = Field(default_factory=lambda: {"workers": 20})
    traffic: TrafficSpec
    load: tuple[float, float] | None = (0.3, 2.0)
    load_unit: Literal["full_accuracy", "max"] = "full_accuracy"
    duration_s: float = Field(120.0, gt=0, le=86400)
    swap: Literal["overlap", "stop", "free"] = "overlap"
    epoch_s: float = Field(1.0, gt=0)
    seeds: tuple[int, ...] | None = None

    @field_validator("id", "family")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("use letters, digits, '.', '_' and '-' only")
        return v

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, v: dict[str, int]) -> dict[str, int]:
        if not v:
            raise ValueError("empty cluster")
        if any(n < 0 for n in v.values()) or sum(v.values()) < 1:
            raise ValueError("worker counts must be >= 0 with at least one worker")
        if "workers" in v and len(v) > 1:
            raise ValueError("'workers' (homogeneous) cannot be mixed with accelerator types")
        return dict(sorted(v.items()))

    @field_validator("load")
    @classmethod
    def _load(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not (0 <= v[0] <= v[1] and math.isfinite(v[1])):
            raise ValueError("need 0 <= lo <= hi")
        return v

    @property
    def workers(self) -> int:
        """Total workers of the cluster."""
        return sum(self.cluster.values())


class SuiteSpec(BaseModel):
    """A suite: cases x seeds (see the module docstring).

    Attributes:
        name: The suite's name.
        description: What it is for.
        frozen: The suite must match its stored hash (``NAME.sha256`` beside it).
        seeds: Simulator seeds every case plays (unless the case lists its own).
        controllers: Controllers played when the command names none.
        reference: Controller the others are compared with.
        cases: The cases (``defaults`` are merged into each before validation).

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    frozen: bool = False
    seeds: tuple[int, ...] = Field(min_length=1)
    controllers: tuple[str, ...] = DEFAULT_CONTROLLERS
    reference: str = "trigger"
    cases: tuple[CaseSpec, ...] = Field(min_length=1)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v) or any(s < 0 for s in v):
            raise ValueError("seeds must be distinct integers >= 0")
        return v

    @model_validator(mode="after")
    def _unique_ids(self) -> SuiteSpec:
        seen: set[str] = set()
        for c in self.cases:
            if c.id in seen:
                raise ValueError(f"case id {c.id!r} appears twice")
            seen.add(c.id)
        return self

    def seeds_of(self, case: CaseSpec) -> tuple[int, ...]:
        """Seeds ``case`` is played on."""
        return case.seeds if case.seeds is not None else self.seeds


class Suite(BaseModel):
    """A loaded suite: its spec, where it came from and its content hash.

    Attributes:
        spec: The validated suite.
        source: The file it was read from (``<built-in NAME>`` for bundled ones).
        base_dir: Folder relative trace paths are resolved against.
        hash: :func:`suite_hash` of the spec and its trace files.

    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: SuiteSpec
    source: str
    base_dir: Path | None = None
    hash: str

    @property
    def name(self) -> str:
        """The suite's name."""
        return self.spec.name


# ---------------------------------------------------------------------------- errors

#: How to fix a field, by its last name in the error's location.
_FIXES: dict[str, str] = {
    "id": "give each case a unique id such as 'ta20-bursts'",
    "family": "name the group the case belongs to, e.g. 'bursts' or 'twitter'",
    "pipeline": "use a built-in pipeline name (traffic_analysis, social_media...) or a YAML path",
    "cluster": "write {workers: 20} or an accelerator mix such as {pascal: 4, ampere: 2}",
    "traffic": "write a trace name/file, or {generator: bursts, seed: 20001}",
    "trace": "use a bundled trace name (lokirl.traces.list_bundled()) or a trace file path",
    "generator": "use a family of lokirl.traces.FAMILIES with a seed",
    "seed": "give the generator's seed, an integer >= 0",
    "load_unit": "use full_accuracy or max",
    "load": "write [lo, hi] multiples of the capacity at full accuracy, e.g. [0.3, 2.0], or null",
    "duration_s": "give the seconds played, e.g. 120",
    "swap": "use overlap, stop or free",
    "seeds": "give a non-empty list of distinct integers >= 0, e.g. [0, 1, 2]",
    "cases": "give a non-empty list of cases",
    "name": "give the suite a name",
    "epoch_s": "give a positive number of seconds, e.g. 1",
    "start_s": "give seconds >= 0",
}


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "tuple", "list"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def _config_error(
    source: str,
    exc: ValidationError,
    raw: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
    own: Sequence[set[str]] = (),
) -> ConfigError:
    """The first validation error as one line.

    ``defaults`` and each case's ``own`` keys name a field merged from ``defaults``
    where it is written (``defaults.KEY``).
    """
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    field = _loc(loc)
    # Name the case by its id where there is one.
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
        cases = raw.get("cases") or []
        if loc[1] < len(cases) and isinstance(cases[loc[1]], Mapping) and "id" in cases[loc[1]]:
            field += f" (case {cases[loc[1]]['id']!r})"
    names = [p for p in loc if isinstance(p, str)]
    fix = "see the suite format in lokirl/experiments/suites.py"
    for name in reversed(names):
        if name in _FIXES:
            fix = _FIXES[name]
            break
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
        fix = "remove it or check its spelling (see lokirl/experiments/suites.py)"
        if len(loc) == 3 and loc[0] == "cases" and loc[2] in (defaults or {}):
            # merged into every case from defaults: name where it is written
            if loc[2] not in (own[loc[1]] if loc[1] < len(own) else set()):
                field = f"defaults.{loc[2]}"
    elif err["type"] == "missing":
        msg = "required field missing"
    return ConfigError(source, field, msg, fix)


# ---------------------------------------------------------------------------- loading


def _suites_dir() -> Path:
    return Path(str(resources.files("lokirl") / "data" / "suites"))


def suite_path(name_or_file: str | Path) -> Path:
    """The file of a bundled suite name, or the given file.

    Raises:
        ConfigError: neither an existing file nor a bundled suite.

    """
    path = Path(name_or_file)
    if path.is_file():
        return path
    if str(name_or_file) in BUILTIN_SUITES:
        return _suites_dir() / f"{name_or_file}.yaml"
    raise ConfigError(
        str(name_or_file),
        "--suite",
        "neither a suite file nor a bundled suite",
        f"use one of {', '.join(BUILTIN_SUITES)} or a path to a suite YAML file",
    )


def parse_suite(
    raw: Mapping[str, Any], source: str = "<suite>", base_dir: Path | None = None
) -> Suite:
    """Validate a suite mapping (``defaults`` merged into each case) and hash it.

    Args:
        raw: The YAML content.
        source: Named in errors.
        base_dir: Folder relative trace files are resolved against.

    Raises:
        ConfigError: a field is wrong (names the source, the field and the fix).

    """
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "<top level>", "not a mapping", "start the file with 'name:'")
    data = dict(raw)
    defaults = data.pop("defaults", None) or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(source, "defaults", "not a mapping", "write defaults: {duration_s: 60}")
    cases = data.get("cases")
    own: list[set[str]] = []
    if isinstance(cases, list):
        own = [set(c) if isinstance(c, Mapping) else set() for c in cases]
        data["cases"] = [{**defaults, **c} if isinstance(c, Mapping) else c for c in cases]
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:  # where a field is written: the case, or defaults
        raise _config_error(source, exc, data, defaults, own) from None
    if "reference" in data and spec.reference not in spec.controllers:
        # the default reference may be missing from the file's controllers (the first is
        # then the reference); one the file names was silently replaced the same way
        raise ConfigError(
            source,
            "reference",
            f"{spec.reference!r} is not among the suite's controllers {list(spec.controllers)}",
            "add it to controllers, or name one of them",
        )
    _check_references(spec, source, base_dir)
    return Suite(spec=spec, source=source, base_dir=base_dir, hash=suite_hash(spec, base_dir))


def load_suite(name_or_file: str | Path, check_frozen: bool = True) -> Suite:
    """Load a bundled suite by name or a suite YAML file.

    Args:
        name_or_file: ``dev``, ``validation``, ``test`` or a path.
        check_frozen: Refuse a frozen suite whose hash differs from the stored one.

    Raises:
        ConfigError: the file is missing or invalid, or a frozen suite changed.

    """
    path = suite_path(name_or_file)
    builtin = str(name_or_file) in BUILTIN_SUITES and not Path(name_or_file).is_file()
    source = f"lokirl/data/suites/{path.name}" if builtin else str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(source, "<yaml>", yaml_problem(exc), "fix the syntax there") from None
    suite = parse_suite(raw, source, path.parent)
    if check_frozen and suite.spec.frozen:
        check_frozen_hash(suite, path.with_suffix(".sha256"))
    return suite


class FrozenSuiteChanged(ConfigError):
    """A frozen suite's content no longer matches its stored hash."""


def check_frozen_hash(suite: Suite, hash_file: Path) -> None:
    """Compare a frozen suite's hash with the one stored in ``hash_file``.

    Raises:
        FrozenSuiteChanged: no stored hash, or a different one.

    """
    if not hash_file.is_file():
        raise FrozenSuiteChanged(
            suite.source,
            "frozen",
            f"no stored hash ({hash_file.name} is missing)",
            f"store the hash {suite.hash} in {hash_file.name}, deliberately, in its own commit",
        )
    stored = hash_file.read_text(encoding="utf-8").split()[0].strip()
    if stored != suite.hash:
        raise FrozenSuiteChanged(
            suite.source,
            "frozen",
            f"the frozen suite changed (hash {suite.hash[:12]}..., stored {stored[:12]}...); "
            "results on it would not be comparable with earlier ones",
            "restore the suite (git checkout of its YAML and traces), or, if the change is "
            f"deliberate, write the new hash {suite.hash} into {hash_file.name} in its own "
            "commit saying why",
        )


def _check_references(spec: SuiteSpec, source: str, base_dir: Path | None) -> None:
    """Pipelines, accelerator types and trace files exist (before any episode runs)."""
    from lokirl.core.pipeline_config import load_pipeline

    pipelines: dict[str, Any] = {}
    for i, case in enumerate(spec.cases):
        where = f"cases[{i}] (case {case.id!r})"
        if case.pipeline not in pipelines:
            try:
                pipelines[case.pipeline] = load_pipeline(case.pipeline)
            except ConfigError as exc:
                beside = base_dir / case.pipeline if base_dir is not None else None
                if exc.field == "pipeline" and beside is not None and beside.is_file():
                    exc = ConfigError(  # unlike trace files, not read beside the suite
                        exc.source,
                        exc.field,
                        f"no such file in {Path.cwd()} (a relative pipeline path is read from "
                        "the folder lokirl runs in, not the suite's)",
                        f"write {beside.resolve()}",
                    )
                raise exc.within(source, f"{where}.pipeline") from None
        pipe = pipelines[case.pipeline]
        if "workers" not in case.cluster:
            unknown = sorted(set(case.cluster) - set(pipe.accelerators))
            if unknown:
                raise ConfigError(
                    source,
                    f"{where}.cluster",
                    f"accelerator types {unknown} are not profiled for pipeline {case.pipeline!r}",
                    f"use types among {list(pipe.accelerators)} or {{workers: N}}",
                )
        total = case.cluster.get("workers") or sum(
            n for a, n in case.cluster.items() if a in pipe.accelerators
        )
        if total < len(pipe.tasks):
            raise ConfigError(
                source,
                f"{where}.cluster",
                f"{total} workers for pipeline {case.pipeline!r}, which has "
                f"{len(pipe.tasks)} tasks that each need at least one worker",
                f"give the case at least {len(pipe.tasks)} workers (with --trace: --workers {len(pipe.tasks)})",
            )
        if case.traffic.generator is not None:
            try:  # draw it now: a misspelled or bad parameter fails before any episode
                _generated(case)
            except LokiError as exc:
                raise ConfigError(
                    source,
                    f"{where}.traffic.params",
                    *problem_and_fix(
                        exc, "use the generator's parameters (lokirl.traces.generators)"
                    ),
                ) from None
        if case.traffic.trace is not None:
            try:
                _trace_file(case.traffic.trace, base_dir)
            except LokiError as exc:
                raise ConfigError(
                    source, f"{where}.traffic.trace", *problem_and_fix(exc, _FIXES["trace"])
                ) from None
            try:  # read it now: a file lokirl cannot read fails before any episode is played
                series = case_trace(case, 1.0, base_dir, min_requests=0)
            except LokiError as exc:
                fix = (
                    "set traffic.format and traffic.column to how the file is written "
                    "(with --trace: --format, --column)"
                )
                raise ConfigError(source, f"{where}.traffic", *problem_and_fix(exc, fix)) from None
            if case.load is None:  # played as recorded: refuse what the simulator cannot play
                from lokirl.sim.config import SimConfig

                frames = float(series.rates.sum() * series.bin_s)
                limit = SimConfig().max_frames
                if frames > limit:
                    raise ConfigError(
                        source,
                        f"{where}.load",
                        f"the trace, played as recorded (no load), asks for about {frames:.3g} "
                        f"frames in {min(series.duration_s, case.duration_s):g} s, more than "
                        "the simulator's limit of "
                        f"{limit:.3g}",
                        "map it onto the cluster with load: [lo, hi] (with --trace: --load "
                        "0.3:2.0) or shorten duration_s",
                    )


def _trace_file(spec: str, base_dir: Path | None) -> Path:
    """The file behind a trace name or path (beside the suite first, then cwd, then bundled)."""
    from lokirl.traces import bundled_path, list_bundled

    folder = False
    for cand in ([base_dir / spec] if base_dir is not None else []) + [Path(spec)]:
        if cand.is_file():
            return cand
        folder = folder or cand.is_dir()
    if spec in list_bundled():
        return bundled_path(spec)
    if folder:
        raise ConfigError(spec, "trace", "is a folder, not a trace file", "name one file")
    raise ConfigError(spec, "trace", "neither a trace file nor a bundled trace", _FIXES["trace"])


def suite_hash(spec: SuiteSpec, base_dir: Path | None = None) -> str:
    """SHA-256 of the suite's resolved content and of the bytes of the trace files it plays.

    Comments, key order and layout of the YAML do not change it; any field of any
    case, the seeds, the controllers, and any byte of a played trace file do.
    """
    h = hashlib.sha256()
    h.update(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode())
    for case in spec.cases:
        if case.traffic.trace is not None:
            path = _trace_file(case.traffic.trace, base_dir)
            h.update(case.traffic.trace.encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
        elif spec.frozen:
            # The generated rates themselves (rounded to 1e-6 frames/s): a change to a
            # generator's code changes a frozen suite's traffic as surely as a changed file.
            h.update(np.round(_generated(case).rates, 6).astype("<f8").tobytes())
    return h.hexdigest()


def _generated(case: CaseSpec) -> RateSeries:
    """The raw series a generated case draws (before its window and rescale)."""
    from lokirl.traces import generate

    t = case.traffic
    assert t.generator is not None and t.seed is not None
    return generate(
        t.generator, t.start_s + case.duration_s, np.random.default_rng(t.seed), **t.params
    )


def held_out_digests() -> dict[str, str]:
    """``{sha256 of the bytes: trace}`` of every trace file a bundled frozen suite plays."""
    out: dict[str, str] = {}
    for name in BUILTIN_SUITES:
        suite = load_suite(name, check_frozen=False)
        if not suite.spec.frozen:
            continue
        for case in suite.spec.cases:
            if case.traffic.trace is not None:
                path = _trace_file(case.traffic.trace, suite.base_dir)
                out[hashlib.sha256(path.read_bytes()).hexdigest()] = case.traffic.trace
    return out


def held_out_traces(traces: Sequence[str], base_dir: Path | None = None) -> list[str]:
    """The traces among ``traces`` (names or files) whose bytes a frozen suite plays.

    Compared by content, so a copy or a renamed file of a held-out trace is found too.
    Names that resolve to no file are left to the caller's own checks.
    """
    digests = held_out_digests()
    found = []
    for spec in traces:
        try:
            path = _trace_file(spec, base_dir)
        except ConfigError:
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() in digests:
            found.append(spec)
    return found


def check_not_held_out(
    traces: Sequence[str], allow_test: bool, field: str, base_dir: Path | None = None
) -> None:
    """Refuse traces the frozen test suite plays unless ``allow_test``.

    Raises:
        ConfigError: a trace is held out for the test suite and ``allow_test`` is False.

    """
    if allow_test:
        return
    found = held_out_traces(traces, base_dir)
    if found:
        raise ConfigError(
            field,
            ", ".join(found),
            "played by the frozen test suite (the same bytes): results on it are reported, "
            "never used to choose",
            "use other traces (e.g. the validation suite's); pass --allow-test only to "
            "report a finished choice",
        )


def adhoc_suite(
    trace: str,
    *,
    pipeline: str = "traffic_analysis",
    workers: int = 20,
    load: tuple[float, float] | Literal["auto"] | None = "auto",
    load_unit: Literal["auto", "full_accuracy", "max"] = "auto",
    duration_s: float = 300.0,
    swap: str = "overlap",
    seeds: tuple[int, ...] = (0, 1, 2),
    trace_format: str = "auto",
    column: str | None = None,
) -> Suite:
    """A one-case suite playing a user's trace file (``lokirl bench --trace FILE``).

    ``trace_format`` and ``column`` say how to read the file (``--format``, ``--column``).
    ``load_unit: auto`` is the capacity at full accuracy when the pipeline's most
    accurate variants meet the SLO on the cluster, else its largest capacity at any
    accuracy (two solves); ``load: auto`` is that unit's :data:`AUTO_LOAD` range, as
    the suites load their cases.

    Raises:
        ConfigError: the pipeline cannot be loaded (``load_unit: auto``).

    """
    if load_unit == "auto":
        from lokirl.core.pipeline import Cluster
        from lokirl.core.pipeline_config import load_pipeline

        pipe = load_pipeline(pipeline)
        load_unit = "max"
        if workers >= len(pipe.tasks):
            ok = capacities(pipe, Cluster.homogeneous(pipe, workers))["full_accuracy_ok"]
            load_unit = "full_accuracy" if ok else "max"
    if load == "auto":
        load = AUTO_LOAD[load_unit]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(trace).stem).strip("-") or "trace"
    raw = {
        "name": f"adhoc-{stem}",
        "description": f"one case on {trace}",
        "seeds": list(seeds),
        "cases": [
            {
                "id": stem,
                "family": "adhoc",
                "pipeline": pipeline,
                "cluster": {"workers": workers},
                "traffic": {"trace": trace, "format": trace_format, "column": column},
                "load": list(load) if load is not None else None,
                "load_unit": load_unit,
                "duration_s": duration_s,
                "swap": swap,
            }
        ],
    }
    return parse_suite(raw, source=f"--trace {trace}", base_dir=None)


# ---------------------------------------------------------------------------- traffic


def matching_case_ids(
    ids: Sequence[str], patterns: Sequence[str], source: str, where: str, strict: bool = True
) -> list[str]:
    """The case ids (in their order) that match one of the shell-style ``patterns``.

    Args:
        ids: The case ids to pick from.
        patterns: Shell-style patterns (``ta20-*``).
        source: What the error names as its source (a suite file, ``--from``).
        where: What the ids are, for the error (``suite 'validation'``).
        strict: Refuse a pattern that matches no id (else it matches nothing).

    Raises:
        ConfigError: with ``strict``, a pattern that matches no id (with the ids to
            pick from).

    """
    import fnmatch

    for pat in patterns if strict else ():
        if not any(fnmatch.fnmatchcase(c, pat) for c in ids):
            raise ConfigError(
                source,
                "--cases",
                f"{pat!r} matches no case of {where}",
                "pick from: " + ", ".join(ids),
            )
    return [c for c in ids if any(fnmatch.fnmatchcase(c, pat) for pat in patterns)]


def select_cases(suite: Suite, patterns: Sequence[str]) -> Suite:
    """The suite restricted to the cases whose id matches one of ``patterns``.

    Patterns are shell-style (``ta20-*``). The hash stays the whole suite's (the
    frozen check has already run on it); the rows name the cases they played.

    Raises:
        ConfigError: a pattern that matches no case (with the case ids to pick from).

    """
    ids = [c.id for c in suite.spec.cases]
    kept = set(matching_case_ids(ids, patterns, suite.source, f"suite {suite.name!r}"))
    spec = suite.spec.model_copy(
        update={"cases": tuple(c for c in suite.spec.cases if c.id in kept)}
    )
    return suite.model_copy(update={"spec": spec})


def with_swap(suite: Suite, swap: str) -> Suite:
    """The suite with every case played under swap mode ``swap``.

    A sensitivity check on the suites' swap mode (e.g. ``free``, the Loki authors'
    simulator, where a worker changes variant at no cost). The hash stays the
    suite's (its frozen check has already run); the run records the override and
    its rows name the mode each episode was played under.

    Raises:
        ConfigError: a mode that is not ``overlap``, ``stop`` or ``free``.

    """
    from lokirl.core.reconfig import SWAP_MODES

    if swap not in SWAP_MODES:
        raise ConfigError("--swap", swap, "not a swap mode", f"pass one of {', '.join(SWAP_MODES)}")
    cases = tuple(c.model_copy(update={"swap": swap}) for c in suite.spec.cases)
    return suite.model_copy(update={"spec": suite.spec.model_copy(update={"cases": cases})})


def capacities(pipeline: Any, cluster: Any) -> dict[str, Any]:
    """The cluster's capacities in frames/s, solved deterministically (work-bounded).

    :func:`lokirl.envs.features.solve_capacities` (deterministic, work-bounded solves)
    as a mapping, so that the load unit, and hence every trace a suite plays, is the
    same on every run.

    Returns:
        ``{"full_accuracy": ..., "full_accuracy_ok": bool, "max": ...}``;
        ``full_accuracy_ok`` is False when the most accurate variants cannot meet
        the SLO (the allocator's plan failed).

    """
    from dataclasses import asdict

    from lokirl.envs.features import solve_capacities

    return asdict(solve_capacities(pipeline, cluster))


def load_unit(case: CaseSpec, caps: Mapping[str, Any]) -> float:
    """Frames/s of one unit of ``case.load``.

    Raises:
        ConfigError: ``load_unit: full_accuracy`` on a pipeline whose most accurate
            variants cannot meet the SLO.

    """
    if case.load_unit == "max":
        return float(caps["max"])
    if not caps["full_accuracy_ok"]:
        raise ConfigError(
            case.id,
            "load_unit",
            f"pipeline {case.pipeline!r} has no capacity at full accuracy (its most "
            "accurate variants cannot meet the SLO on this cluster)",
            "set load_unit: max (load relative to the largest capacity at any accuracy)",
        )
    return float(caps["full_accuracy"])


def case_trace(
    case: CaseSpec, unit: float, base_dir: Path | None = None, min_requests: float = 1.0
) -> RateSeries:
    """The rate series a case plays: drawn or read, windowed, rescaled onto its load range.

    Args:
        case: The case.
        unit: Frames/s of one unit of ``case.load`` (:func:`load_unit`).
        base_dir: Folder relative trace files are resolved against.
        min_requests: Fewest requests the rescaled series may expect (an episode of no
            frames would score as perfect); 0 to read a trace before its unit is known.

    Raises:
        ConfigError: the traffic has no requests in the case's window, or fewer than
            ``min_requests`` once rescaled.

    """
    from lokirl.traces import as_rates, fine_bins, load_trace, rescale, window

    t = case.traffic
    if t.generator is not None:
        series = _generated(case)
    else:
        assert t.trace is not None
        path = _trace_file(t.trace, base_dir)
        series = as_rates(load_trace(path, fmt=t.format, column=t.column))
    # bins wider than a second (a per-minute file) would stretch the window to whole bins
    series = as_rates(window(fine_bins(series), t.start_s, t.start_s + case.duration_s))
    if series.rates.size == 0 or float(series.rates.sum()) <= 0:
        raise ConfigError(
            case.id,
            "traffic",
            f"no requests in seconds {t.start_s:g}..{t.start_s + case.duration_s:g}",
            "give a trace with requests in that span (in a suite: lower start_s or duration_s)",
        )
    if case.load is not None:
        series = as_rates(rescale(series, case.load[0] * unit, case.load[1] * unit))
        if not series.expected_requests >= min_requests:
            raise ConfigError(
                case.id,
                "load",
                f"{case.load[0]:g}:{case.load[1]:g} x {unit:.4g} frames/s leaves "
                f"{series.expected_requests:.3g} requests expected in {case.duration_s:g} s",
                "raise the load range (e.g. 0.3:2.0, or auto)",
            )
    return RateSeries(series.rates, series.bin_s, name=case.id)
