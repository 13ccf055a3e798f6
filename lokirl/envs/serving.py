"""``lokirl/LokiServing-v0``: when and how to re-solve the allocation, as a gymnasium env."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.controller import ControlContext, Decision
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.pipeline_config import load_pipeline
from lokirl.core.plan import Plan
from lokirl.core.reconfig import SWAP_MODES, check_swap_mode
from lokirl.envs.features import (
    FEATURE_VERSIONS,
    FOLLOW,
    ClusterScale,
    FeatureSpec,
    ForecastTracker,
    PolicyScope,
    cluster_scale,
    fallback_decisions,
    observe,
    to_decision,
)
from lokirl.forecast import make_forecaster
from lokirl.sim import SimConfig, Simulation
from lokirl.sim.fluid import FluidSimulation
from lokirl.sim.plan_library import PlanLibrary, plan_key
from lokirl.sim.solving import running_plan_signature
from lokirl.traces import as_rates, generate, rescale, resolve_trace, window
from lokirl.traces.types import RateSeries

#: Units of an episode's load range (:attr:`EnvConfig.load_unit`).
LOAD_UNITS: tuple[str, ...] = ("full_accuracy", "max")


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms (see :class:`LokiServingEnv`).

    Attributes:
        violation: Per unit of frame-level SLO violation ratio in the epoch.
        reconfiguration: Per share of the cluster's workers reconfigured in the epoch.
        solver: Per second of solver time charged in the epoch.
        workers: Per share of the cluster's workers active (hardware cost).

    """

    violation: float = 1.0
    reconfiguration: float = 0.5
    solver: float = 0.1
    workers: float = 0.05


@dataclass(frozen=True)
class EpisodeRandomisation:
    """What changes from one episode to the next (drawn from the env's rng at reset).

    Empty fields draw nothing (the :class:`EnvConfig` value holds), so an env
    without randomisation consumes no extra randomness. Any randomisation needs
    ``feature_version`` 2 or 3 (version-1 observations are scaled to one cluster).

    Attributes:
        workers: Cluster sizes (total workers), one drawn uniformly per episode.
        workers_range: ``(lo, hi)``: a cluster size drawn uniformly from the
            integers ``lo..hi`` (inclusive). At most one of ``workers`` and
            ``workers_range``.
        swaps: Swap modes, one drawn uniformly per episode.
        load_scale: ``(lo, hi)``: a factor on every variant's load time, drawn
            uniformly and rounded to 0.01 (so the scaled pipelines can be cached).

    """

    workers: tuple[int, ...] = ()
    workers_range: tuple[int, int] | None = None
    swaps: tuple[str, ...] = ()
    load_scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if any(int(w) < 1 for w in self.workers):
            raise ValueError(f"randomise.workers: cluster sizes must be >= 1, got {self.workers}")
        if self.workers and self.workers_range is not None:
            raise ValueError("randomise.workers_range: give either workers or workers_range")
        if self.workers_range is not None:
            lo, hi = self.workers_range
            if not 1 <= lo <= hi:
                raise ValueError(
                    f"randomise.workers_range: need 1 <= lo <= hi, got {self.workers_range}"
                )
        for m in self.swaps:
            if m not in SWAP_MODES:
                raise ValueError(
                    f"randomise.swaps: unknown swap mode {m!r} (use {', '.join(SWAP_MODES)})"
                )
        if self.load_scale is not None:
            lo, hi = self.load_scale
            if not 0 < lo <= hi:
                raise ValueError(f"randomise.load_scale: need 0 < lo <= hi, got {self.load_scale}")

    @property
    def active(self) -> bool:
        """Whether anything is drawn per episode."""
        return bool(self.workers or self.workers_range or self.swaps or self.load_scale is not None)

    def worker_bounds(self, default: int) -> tuple[int, int]:
        """Smallest and largest cluster size an episode may get."""
        if self.workers:
            return min(self.workers), max(self.workers)
        if self.workers_range is not None:
            return self.workers_range
        return default, default

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeRandomisation:
        """Build from a mapping (e.g. a YAML section), converting lists to tuples."""
        d = dict(d)
        if d.get("workers") is not None:
            d["workers"] = tuple(int(w) for w in d["workers"])
        for key in ("workers_range", "load_scale", "swaps"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**{k: v for k, v in d.items() if v is not None})


@dataclass(frozen=True)
class EnvConfig:
    """Configuration of :class:`LokiServingEnv`.

    Attributes:
        pipeline: Built-in pipeline name or YAML path.
        workers: Workers of the pipeline's accelerator type.
        episode_s: Simulated seconds per episode.
        epoch_s: Seconds per decision epoch (one env step).
        traces: Episode trace mix: ``gen:FAMILY`` (generated), a bundled trace name,
            or a trace file in any documented format.
        trace_format: How the trace files are written (``auto``, ``arrivals``,
            ``rates``, ``timestamps``).
        trace_column: Timestamp column of timestamp-CSV trace files with several columns.
        load_low: Range of the episode's lowest rate, as a multiple of ``load_unit``.
        load_high: Range of the episode's highest rate, same unit.
        load_unit: ``full_accuracy`` (default): the cluster's capacity with the most
            accurate variants only; ``max``: its largest capacity at any accuracy (for
            pipelines whose most accurate variants cannot meet the SLO).
        forecaster: Forecaster name feeding the observation.
        headrooms: Demand multipliers a re-solve may use.
        base_horizon_s: Forecast horizon a re-solve plans for (0: Loki's EWMA).
        weights: Reward weights.
        solver_time: ``"model"`` (deterministic modelled solver time), ``"measured"``
            or a fixed number of seconds per solve.
        solver: MILP solver used by re-solves.
        time_limit_s: Solver time limit.
        demand_quantum: Demands are rounded to this relative step so that solves can
            be cached across epochs and episodes (0 disables the cache).
        cache_size: Plans kept in the cache.
        plan_library: A SQLite file of solved plans shared by every environment
            and training run that names it (:mod:`lokirl.sim.plan_library`); empty:
            none. Solves are work-bounded, so a filed plan is the plan a new solve
            would give.
        engine: ``"simpy"`` (the discrete-event simulator, request by request) or
            ``"fluid"`` (:class:`~lokirl.sim.fluid.FluidSimulation`, a flow-level
            surrogate several times faster, for training; evaluate on ``simpy``).
        fluid_dt: Time step of the fluid engine, seconds.
        fallback: A controller spec (e.g. ``trigger``) the policy may defer to with a
            fourth action kind; empty for none.
        follow_horizons: With a ``fluid`` fallback and feature version 2: the horizons
            FOLLOW's second index chooses among (see
            :class:`~lokirl.envs.features.FeatureSpec`); empty: FOLLOW takes the
            fallback's own decision.
        follow_settings: Instead of ``follow_horizons``: ``(horizon, burst_s,
            derate)`` settings of the ``fluid`` fallback FOLLOW chooses among.
        swap: How a worker changes variant in the simulator
            (:data:`~lokirl.core.reconfig.SwapMode`: ``overlap``, ``stop`` or ``free``).
        feature_version: Observation version (:func:`lokirl.envs.features.observe`):
            1 scales to this one cluster (what the shipped policy uses); 2 is
            relative to each episode's cluster, so a policy can serve any size; 3 is
            2 with demand over the capacity at any accuracy (with ``load_unit: max``).
        randomise: Per-episode cluster size, swap mode and load-time scale
            (:class:`EpisodeRandomisation`; needs ``feature_version`` 2 or 3).
        batch_overhead_s: Seconds each batch occupies its worker beyond its profiled
            latency in the ``simpy`` engine (:class:`~lokirl.sim.SimConfig`): a
            per-batch cost no plan accounts for, as the live path's hop (default 0;
            the ``fluid`` engine does not model it).

    """

    pipeline: str = "traffic_analysis"
    workers: int = 20
    episode_s: int = 120
    epoch_s: float = 1.0
    traces: tuple[str, ...] = (
        "gen:diurnal",
        "gen:bursts",
        "gen:mmpp",
        "gen:step",
        "gen:spikes",
        "gen:random_walk",
    )
    trace_format: str = "auto"
    trace_column: str | None = None
    load_low: tuple[float, float] = (0.1, 0.6)
    load_high: tuple[float, float] = (0.8, 2.5)
    load_unit: str = "full_accuracy"
    forecaster: str = "ewma"
    headrooms: tuple[float, ...] = (1.0, 1.15, 1.3, 1.5, 1.75)
    base_horizon_s: int = 5
    weights: RewardWeights = field(default_factory=RewardWeights)
    solver_time: str | float = "model"
    solver: str = "highs"
    time_limit_s: float = 1.0
    demand_quantum: float = 0.02
    cache_size: int = 4096
    plan_library: str = ""
    engine: str = "simpy"
    fluid_dt: float = 0.05
    fallback: str = ""
    follow_horizons: tuple[int, ...] = ()
    follow_settings: tuple[tuple[int, float, float], ...] = ()
    swap: str = "overlap"
    feature_version: int = 1
    randomise: EpisodeRandomisation = field(default_factory=EpisodeRandomisation)
    batch_overhead_s: float = 0.0

    def __post_init__(self) -> None:
        check_swap_mode(self.swap)
        if not (math.isfinite(self.batch_overhead_s) and 0 <= self.batch_overhead_s < self.epoch_s):
            raise ValueError(
                f"batch_overhead_s: must be at least 0 and shorter than epoch_s "
                f"({self.epoch_s:g} s), got {self.batch_overhead_s!r}"
            )
        if self.feature_version not in FEATURE_VERSIONS:
            raise ValueError(
                f"feature_version: must be one of {list(FEATURE_VERSIONS)}, "
                f"got {self.feature_version!r}"
            )
        if self.load_unit not in LOAD_UNITS:
            raise ValueError(
                f"load_unit: must be one of {list(LOAD_UNITS)}, got {self.load_unit!r}"
            )
        if (self.load_unit == "max") != (self.feature_version == 3):
            raise ValueError(
                f"load_unit: {self.load_unit!r} with feature_version {self.feature_version}: "
                "a policy observes demand in the unit its loads are drawn in; use "
                "load_unit 'max' with feature_version 3, or 'full_accuracy' with 1 or 2"
            )
        if self.randomise.active and self.feature_version < 2:
            raise ValueError(
                "randomise: per-episode clusters need feature_version 2 or 3 "
                "(version-1 observations are scaled to one cluster)"
            )
        if self.engine not in ("simpy", "fluid"):
            raise ValueError(f"engine: must be 'simpy' or 'fluid', got {self.engine!r}")
        if not 0 < self.fluid_dt <= self.epoch_s:
            raise ValueError(
                f"fluid_dt: must be in (0, epoch_s={self.epoch_s}], got {self.fluid_dt}"
            )
        if self.engine == "fluid" and self.batch_overhead_s:
            raise ValueError(
                "batch_overhead_s: the fluid engine does not model a per-batch overhead; "
                "use engine 'simpy' or batch_overhead_s 0"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnvConfig:
        """Build from a mapping (e.g. a YAML section), converting lists to tuples."""
        d = dict(d)
        for key in ("traces", "headrooms", "load_low", "load_high", "follow_horizons"):
            if key in d:
                d[key] = tuple(d[key])
        if "follow_settings" in d:
            d["follow_settings"] = tuple(
                (x["horizon"], x["burst_s"], x["derate"]) if isinstance(x, dict) else tuple(x)
                for x in d["follow_settings"]
            )
        if isinstance(d.get("weights"), dict):
            d["weights"] = RewardWeights(**d["weights"])
        if isinstance(d.get("randomise"), dict):
            d["randomise"] = EpisodeRandomisation.from_dict(d["randomise"])
        elif d.get("randomise", ...) is None:
            del d["randomise"]
        return cls(**d)


class _CachedPlanner:
    """Solves through the allocator, caching plans by (rounded demand, options, running plan, cluster).

    The running plan is part of the key whenever the solve depends on it (warm
    start or churn term): see :func:`running_plan_signature`. Behind the in-memory
    cache, an optional :class:`~lokirl.sim.plan_library.PlanLibrary` shares
    work-bounded solves with the other environments of a run and with later runs.
    """

    def __init__(self, quantum: float, size: int, library: PlanLibrary | None = None) -> None:
        self.quantum = quantum
        self.size = size
        self.cache: OrderedDict[tuple, Plan] = OrderedDict()
        self.hits = self.misses = 0
        #: Plans shared with other environments and runs (work-bounded solves only).
        self.library = library

    def _round(self, demand: float) -> float:
        if self.quantum <= 0 or demand <= 1.0:
            return round(demand, 3)
        step = math.log1p(self.quantum)
        return float(math.exp(round(math.log(demand) / step) * step))

    def plan(
        self,
        pipeline: Pipeline,
        cluster: Cluster,
        decision: Decision,
        options: AllocatorOptions,
        current: Plan | None,
    ) -> Plan:
        demand = self._round(max(0.0, decision.demand))
        sig = running_plan_signature(current, options)
        key = (demand, options, sig, tuple(sorted(cluster.workers.items())))
        if self.quantum > 0 and key in self.cache:
            self.hits += 1
            self.cache.move_to_end(key)
            return self.cache[key]
        shared = self.library if self.quantum > 0 and options.deterministic else None
        plan = lkey = None
        if shared is not None:
            lkey = plan_key(pipeline, cluster, demand, options, current)
            plan = shared.get(lkey)
        if plan is not None:
            self.hits += 1
        else:
            self.misses += 1
            plan = solve(pipeline, cluster, demand, options, current)
            if shared is not None and lkey is not None:
                shared.put(lkey, plan)
        if self.quantum > 0 and plan.status != "failed":
            self.cache[key] = plan
            if len(self.cache) > self.size:
                self.cache.popitem(last=False)
        return plan


class LokiServingEnv(gym.Env):
    """Decide, every epoch, whether to re-solve the allocation, warm or cold, with what headroom.

    Each step is one decision epoch of the simpy simulator (:mod:`lokirl.sim`) serving
    a pipeline on a fixed cluster (or of its flow-level surrogate,
    ``engine="fluid"``, to train faster); the episode plays a trace drawn from a mix of
    generated families, bundled traces and trace files, randomly offset and
    rescaled.

    ## Observation
    A float32 vector (:func:`lokirl.envs.features.observe`): the last ``history_s``
    per-second frame arrivals; the forecaster's mean and upper quantile at each
    horizon; the running plan's capacity, its ratio to the forecast, its expected
    accuracy and whether it is accuracy-scaled; the recent frame SLO violation
    ratio and system accuracy; the share of workers active; time since the last
    solve and its (modelled) wall time, plus whether a solve is pending; queue length
    per task. Version 1 (``feature_version``) divides rates by the cluster's largest
    capacity; version 2 expresses them relative to the running plan's and the
    cluster's capacity and adds the cluster's size, swap mode and longest load time
    (its size does not depend on the cluster); version 3 is version 2 in the capacity
    at any accuracy (with ``load_unit: max``).

    ## Episodes
    With ``config.randomise`` (versions 2 and 3) each reset draws the cluster size, swap
    mode and load-time scale from the env's rng, before the trace (whose load is a
    multiple of the drawn cluster's capacity); clusters, their capacities and the
    scaled pipelines are cached, so a reset costs two solves only for a cluster
    size not seen before. ``reset(options={"workers": n, "swap": m,
    "load_scale": f})`` sets them instead (version 2). ``reset`` returns them in
    its info.

    ## Action
    ``MultiDiscrete([3, len(headrooms)])``: keep the plan (0), re-solve warm (1) or
    cold (2); and the headroom multiplier applied to the forecast mean at
    ``base_horizon_s`` that the re-solve plans for. The first plan of an episode is
    solved before the first step: the fallback's when there is one, else a warm solve
    at the second headroom.

    ## Reward
    Per epoch: accuracy-weighted goodput (on-time frames / arrived frames x system
    accuracy / 100) minus ``weights.violation`` x frame SLO violation ratio, minus
    ``weights.reconfiguration`` x share of workers reconfigured, minus
    ``weights.solver`` x solver seconds charged, minus ``weights.workers`` x share of
    workers active.

    ## Termination
    None inside the trace: episodes end by truncation through gymnasium's
    ``TimeLimit`` (``episode_s / epoch_s`` steps, set at registration). The env
    reports ``terminated`` only if the trace itself runs out.

    Args:
        config: An :class:`EnvConfig`, or None for the defaults.
        **overrides: Fields of :class:`EnvConfig` to override.

    """

    metadata = {"render_modes": []}

    def __init__(self, config: EnvConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = config or EnvConfig()
        if overrides:
            cfg = replace(cfg, **overrides)
        self.config = cfg
        self.base_pipeline = load_pipeline(cfg.pipeline)
        self.pipeline = self.base_pipeline
        self.cluster = Cluster.homogeneous(self.pipeline, cfg.workers)
        self.swap: str = cfg.swap
        self.load_scale = 1.0
        self.alloc = AllocatorOptions(
            solver=cfg.solver, time_limit_s=cfg.time_limit_s, deterministic=True
        )
        self._clusters: dict[int, Cluster] = {}
        self._scales: dict[tuple, ClusterScale] = {}
        self._pipelines: dict[float, Pipeline] = {1.0: self.base_pipeline}
        self._files: dict[str, RateSeries] = {}
        for spec in cfg.traces:  # read every trace file now: a bad one fails before training
            if not spec.startswith("gen:"):
                self._trace_file(spec)
        #: The served cluster as version-2 features see it (``None`` in version 1).
        self.scale: ClusterScale | None = None
        common = dict(
            tasks=tuple(t.name for t in self.pipeline.tasks),
            headrooms=cfg.headrooms,
            forecaster=cfg.forecaster,
            base_horizon_s=cfg.base_horizon_s,
            fallback=cfg.fallback,
            follow_horizons=tuple(int(h) for h in cfg.follow_horizons),
            follow_settings=tuple((int(h), float(b), float(r)) for h, b, r in cfg.follow_settings),
        )
        if cfg.feature_version == 1:
            self.hw_capacity, self.max_capacity = cluster_capacities(self.pipeline, self.cluster)
            self.features = FeatureSpec(
                workers=self.cluster.total, demand_scale=self.max_capacity, **common
            )
        else:
            self._use_scale()
            rz = cfg.randomise
            ls = rz.load_scale or (1.0, 1.0)
            self.features = FeatureSpec(
                version=cfg.feature_version,
                scope=PolicyScope(
                    pipeline=self.pipeline.name,
                    accelerators=tuple(sorted(self.cluster.workers)),
                    workers=rz.worker_bounds(cfg.workers),
                    swaps=rz.swaps or (cfg.swap,),
                    load_scale=(float(ls[0]), float(ls[1])),
                ),
                **common,
            )
        self.forecaster = make_forecaster(cfg.forecaster)
        self._tracker = ForecastTracker(self.features, self.forecaster)
        self.planner = _CachedPlanner(
            cfg.demand_quantum,
            cfg.cache_size,
            PlanLibrary(cfg.plan_library) if cfg.plan_library else None,
        )
        self.observation_space = spaces.Box(
            0.0, 20.0, shape=(self.features.size,), dtype=np.float32
        )
        self.action_space = spaces.MultiDiscrete([self.features.kinds, len(cfg.headrooms)])
        self._fallback: Any = None
        self._hint: Decision | None = None
        #: The fallback's decisions at each of ``follow_horizons`` / ``follow_settings``.
        self._hints: tuple[Decision, ...] = ()
        self.sim: Simulation | FluidSimulation | None = None
        self.context: ControlContext | None = None
        self._forecast = None

    # ------------------------------------------------------------------ clusters
    def _draw_cluster(self, options: dict) -> dict[str, Any]:
        """Set this episode's cluster, swap mode and load-time scale; returns them.

        Draws from the env's rng only what ``config.randomise`` asks for and
        ``options`` does not set; without either nothing changes (and, in version
        1, a cluster set from outside, as the experiment runner does, is kept).
        """
        cfg, rz, rng = self.config, self.config.randomise, self.np_random
        asked = {k for k in ("workers", "swap", "load_scale") if options.get(k) is not None}
        if asked and cfg.feature_version < 2:
            raise ValueError(
                f"options {sorted(asked)}: need feature_version 2 or 3 "
                "(version-1 observations are scaled to one cluster)"
            )
        if rz.active or asked:
            if options.get("workers") is not None:
                workers = int(options["workers"])
            elif rz.workers:
                workers = int(rz.workers[int(rng.integers(len(rz.workers)))])
            elif rz.workers_range is not None:
                workers = int(rng.integers(rz.workers_range[0], rz.workers_range[1] + 1))
            else:
                workers = cfg.workers
            if options.get("swap") is not None:
                swap = check_swap_mode(str(options["swap"]))
            elif rz.swaps:
                swap = rz.swaps[int(rng.integers(len(rz.swaps)))]
            else:
                swap = cfg.swap
            if options.get("load_scale") is not None:
                load = round(float(options["load_scale"]), 2)
            elif rz.load_scale is not None:
                load = round(float(rng.uniform(*rz.load_scale)), 2)
            else:
                load = 1.0
            if workers not in self._clusters:
                self._clusters[workers] = Cluster.homogeneous(self.base_pipeline, workers)
            self.cluster = self._clusters[workers]
            self.swap = swap
            self.load_scale = max(load, 0.01)
            self.pipeline = self._scaled_pipeline(self.load_scale)
        if cfg.feature_version >= 2:
            self._use_scale()
        return {"workers": self.cluster.total, "swap": self.swap, "load_scale": self.load_scale}

    def _scaled_pipeline(self, factor: float) -> Pipeline:
        """The pipeline with every variant's load times times ``factor`` (cached)."""
        if factor not in self._pipelines:
            self._pipelines[factor] = scale_load_times(self.base_pipeline, factor)
        return self._pipelines[factor]

    def _use_scale(self) -> None:
        """Version 2: the current cluster's capacities and :class:`ClusterScale` (cached)."""
        key = tuple(sorted(self.cluster.workers.items()))
        if key not in self._scales:
            self._scales[key] = cluster_scale(self.base_pipeline, self.cluster)
        base = self._scales[key]
        self.hw_capacity, self.max_capacity = base.full_capacity, base.max_capacity
        self.scale = replace(
            base,
            swap=self.swap,
            max_load_time_s=max((v.load_time_s for v in self.pipeline.variants()), default=0.0),
        )

    @property
    def load_capacity(self) -> float:
        """Frames/s of one unit of ``load_low``/``load_high`` on the current cluster."""
        return self.max_capacity if self.config.load_unit == "max" else self.hw_capacity

    def _observe(self, context: ControlContext, forecast: Any) -> np.ndarray:
        obs = observe(self.features, context, forecast, self._hint, self.scale, self._hints)
        return obs.clip(0, 20)

    # ------------------------------------------------------------------ traces
    def _trace_file(self, spec: str) -> RateSeries:
        """A bundled trace or trace file as 1 s rates, read once per environment."""
        if spec not in self._files:
            cfg = self.config
            self._files[spec] = as_rates(
                resolve_trace(spec, fmt=cfg.trace_format, column=cfg.trace_column)
            )
        return self._files[spec]

    def _draw_trace(self) -> RateSeries:
        cfg, rng = self.config, self.np_random
        spec = cfg.traces[int(rng.integers(len(cfg.traces)))]
        length = cfg.episode_s + 30
        if spec.startswith("gen:"):
            series = generate(spec[4:], length, rng)
        else:
            series = self._trace_file(spec)
            if series.duration_s > length:
                start = float(rng.uniform(0, series.duration_s - length))
                series = as_rates(window(series, start, start + length))
        lo = float(rng.uniform(*cfg.load_low)) * self.load_capacity
        hi = max(lo, float(rng.uniform(*cfg.load_high)) * self.load_capacity)
        return rescale(series, lo, hi)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode on a freshly drawn trace.

        Options: ``trace`` plays that rate series (or arrival trace) instead; ``defer_first_plan``
        leaves the first plan to the caller's first :meth:`advance` (by default it
        is solved for the initial demand and one epoch is played).
        """
        super().reset(seed=seed)
        info = self._draw_cluster(options or {})
        trace = (options or {}).get("trace")
        if trace is None:  # (an arrival trace without arrivals is falsy, and is still played)
            trace = self._draw_trace()
        sim_rng = np.random.default_rng(int(self.np_random.integers(2**63 - 1)))
        sim_cfg = SimConfig(
            epoch_s=self.config.epoch_s,
            solver_time=self.config.solver_time,
            allocator=self.alloc,
            swap=check_swap_mode(self.swap),
            batch_overhead_s=self.config.batch_overhead_s,
        )
        if self.config.engine == "fluid":
            self.sim = FluidSimulation(
                self.pipeline, self.cluster, trace, sim_cfg, sim_rng, "env", self.config.fluid_dt
            )
        else:
            self.sim = Simulation(self.pipeline, self.cluster, trace, sim_cfg, sim_rng, name="env")
        ctx = self.sim.reset()
        if self.config.fallback:
            from lokirl.core.binding import bind_controller
            from lokirl.core.controllers import make_controller

            self._fallback = make_controller(self.config.fallback)
            if hasattr(self._fallback, "plan_store"):
                # a model-based fallback's plan library is filed with the env's plans
                self._fallback.plan_store = self.planner.library
            bind_controller(self._fallback, self.pipeline, self.cluster, self.swap)
        fc = self._tracker(ctx)
        if (options or {}).get("defer_first_plan"):
            # The caller's first decision installs the first plan (baselines with
            # their own planners, oracles): no epoch is played yet.
            self.context = ctx
            self._forecast = fc
            self._hint = self._fallback_hint()
            return self._observe(ctx, fc), info
        # The first plan: the fallback's where there is one (a residual policy starts as
        # its fallback), else a warm solve at the second headroom.
        self.context = ctx
        hint = self._fallback_hint()
        first = (FOLLOW, 1) if hint is not None else (1, 1)
        decision = to_decision(self.features, first, ctx, fc, hint, self._hints)
        self.sim.apply(decision, planner=self._planner_for(decision, hint))
        self.context = self.sim.step_epoch()
        self._forecast = self._tracker(self.context)
        self._hint = self._fallback_hint()
        return self._observe(self.context, self._forecast), info

    def step(self, action):
        """Apply the action for one epoch and return (obs, reward, terminated, truncated, info)."""
        if self.sim is None or self.context is None:
            raise RuntimeError("call reset() before step()")
        decision = to_decision(
            self.features, action, self.context, self._forecast, self._hint, self._hints
        )
        return self.advance(decision)

    def set_violation_weight(self, weight: float) -> None:
        """Set the reward's violation weight (the multiplier of constrained training).

        See :mod:`lokirl.agents.constraint`: the Lagrange multiplier of the frame
        violation budget is pushed here after every rollout.
        """
        if not weight >= 0.0:
            raise ValueError(f"violation weight must be >= 0, got {weight}")
        self.config = replace(
            self.config, weights=replace(self.config.weights, violation=float(weight))
        )

    def advance(self, decision: Decision, planner: Any = None):
        """Play one epoch under an explicit decision (baselines, oracles, evaluation).

        Args:
            decision: What to do this epoch.
            planner: Optional object with a ``plan`` method building the plan instead
                of the (cached) allocator, as the baseline controllers have.

        Returns:
            The same tuple as :meth:`step`.

        """
        sim = self.sim
        if sim is None or self.context is None:
            raise RuntimeError("call reset() before advance()")
        sec0 = sim.sec_done
        solver0 = sim.solver_time
        solves0 = sim.solves
        sim.apply(decision, planner=planner or self._planner_for(decision, self._hint))
        self.context = sim.step_epoch()
        terms = step_terms(sim, sec0, sim.sec_done, sim.solver_time - solver0, self.cluster.total)
        reward = step_reward(terms, self.config.weights)
        terms["solves"] = sim.solves - solves0
        terms["reward"] = float(reward)
        self._forecast = self._tracker(self.context)
        self._hint = self._fallback_hint()
        obs = self._observe(self.context, self._forecast)
        return obs, float(reward), sim.done, False, terms

    @property
    def forecast(self):
        """The forecast matching the current context."""
        return self._forecast

    @property
    def hint(self) -> Decision | None:
        """The fallback controller's decision for the current context (None without one)."""
        return self._hint

    def _planner_for(self, decision: Decision, hint: Decision | None) -> Any:
        """Who builds the plan of ``decision``.

        The fallback's own planner when the decision is the fallback's and it has one
        (a model-based fallback names plans of its library), else the cached allocator.
        """
        ours = hint is not None and (decision is hint or any(decision is h for h in self._hints))
        if ours and callable(getattr(self._fallback, "plan", None)):
            return self._fallback
        return self.planner

    def _fallback_hint(self) -> Decision | None:
        """The fallback's decision now; with ``follow_horizons`` also those at each (``_hints``)."""
        self._hints = ()
        if self._fallback is None or self.context is None:
            return None
        hint, self._hints = fallback_decisions(self._fallback, self.features, self.context)
        return hint

    @property
    def hints(self) -> tuple[Decision, ...]:
        """The fallback's decisions at each of ``follow_horizons`` (empty without them)."""
        return self._hints


def step_terms(sim: Any, s0: int, s1: int, solver_s: float, workers: int) -> dict[str, float]:
    """A step's reward terms over the simulated seconds it completed, ``[s0, s1)``.

    The ratios (goodput, violation ratio, accuracy, active share) are the step's
    own; the counts (``frames_done`` and the reconfigured share) add up over the
    steps to the simulator's totals. A step shorter than a second may complete no
    whole second: it repeats the ratios of the last completed one (a sub-second
    epoch still gets a reward) and counts nothing, so no second is counted twice.

    Args:
        sim: The simulator (either engine: both keep the per-second ``s_*`` arrays).
        s0: Seconds completed before the step.
        s1: Seconds completed after it.
        solver_s: Solver time charged in the step.
        workers: The cluster's workers (the shares' denominator).

    Returns:
        ``goodput``, ``violation_ratio``, ``frames_done``, ``accuracy``,
        ``reconfigured_share``, ``solver_s`` and ``active_share``.

    """
    counted = s1 > s0
    if not counted:
        s0 = max(0, s1 - 1)
    sl = slice(s0, s1)
    arrived = float(sim.s_arrivals[sl].sum())
    done = float(sim.s_frames_done[sl].sum())
    viol = float(sim.s_frame_viol[sl].sum())
    leaf_n = float(sim.s_leaf_n[sl].sum())
    acc = float(sim.s_leaf_acc[sl].sum()) / leaf_n if leaf_n else 0.0
    n = max(1, workers)
    return {
        "goodput": (done - viol) / max(arrived, 1.0) * acc / 100.0 if arrived else 0.0,
        "violation_ratio": viol / done if done else 0.0,
        "frames_done": done if counted else 0.0,
        "accuracy": acc,
        "reconfigured_share": float(sim.s_reconf[sl].sum()) / n if counted else 0.0,
        "solver_s": float(solver_s),
        "active_share": float(sim.s_active[sl].mean()) / n if s1 > s0 else 0.0,
    }


def step_reward(terms: dict[str, float], weights: RewardWeights) -> float:
    """The reward of a step's :func:`step_terms` under ``weights``."""
    return float(
        terms["goodput"]
        - weights.violation * terms["violation_ratio"]
        - weights.reconfiguration * terms["reconfigured_share"]
        - weights.solver * terms["solver_s"]
        - weights.workers * terms["active_share"]
    )


def scale_load_times(pipeline: Pipeline, factor: float) -> Pipeline:
    """``pipeline`` with every variant's load times (disk and host) times ``factor``."""
    if factor == 1.0:
        return pipeline
    tasks = tuple(
        replace(
            t,
            variants=tuple(
                replace(
                    v,
                    load_time_s=v.load_time_s * factor,
                    load_time_host_s=(
                        None if v.load_time_host_s is None else v.load_time_host_s * factor
                    ),
                )
                for v in t.variants
            ),
        )
        for t in pipeline.tasks
    )
    return replace(pipeline, tasks=tasks)


def cluster_capacities(pipeline: Pipeline, cluster: Cluster) -> tuple[float, float]:
    """(capacity at full accuracy, largest capacity at any accuracy) in frames/s.

    The first is the demand that hardware scaling alone carries on the whole
    cluster (the largest share of a huge demand served by the most accurate
    variants); the second the largest share the allocator serves with any variants.
    """
    from lokirl.sim.baselines import best_only

    opts = AllocatorOptions(time_limit_s=5.0)
    huge = 1e6
    hw = solve(best_only(pipeline), cluster, huge, opts).served_share * huge
    any_acc = solve(pipeline, cluster, huge, opts).served_share * huge
    return max(hw, 1e-3), max(any_acc, hw, 1e-3)
