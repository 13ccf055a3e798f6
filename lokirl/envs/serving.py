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
from lokirl.core.reconfig import check_swap_mode
from lokirl.envs.features import FeatureSpec, ForecastTracker, observe, to_decision
from lokirl.forecast import make_forecaster
from lokirl.sim import SimConfig, Simulation
from lokirl.sim.fluid import FluidSimulation
from lokirl.sim.solving import running_plan_signature
from lokirl.traces import as_rates, generate, rescale, resolve_trace, window
from lokirl.traces.types import RateSeries


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
class EnvConfig:
    """Configuration of :class:`LokiServingEnv`.

    Attributes:
        pipeline: Built-in pipeline name or YAML path.
        workers: Workers of the pipeline's accelerator type.
        episode_s: Simulated seconds per episode.
        epoch_s: Seconds per decision epoch (one env step).
        traces: Episode trace mix: ``gen:FAMILY`` (generated), a bundled trace name,
            or a trace file in any documented format.
        load_low: Range of the episode's lowest rate, as a multiple of the cluster's
            capacity at full accuracy.
        load_high: Range of the episode's highest rate, same unit.
        forecaster: Forecaster name feeding the observation.
        headrooms: Demand multipliers a re-solve may use.
        base_horizon_s: Forecast horizon a re-solve plans for (0: Loki's EWMA).
        weights: Reward weights.
        solver_time: ``"model"`` (deterministic modelled solver time) or ``"measured"``.
        solver: MILP solver used by re-solves.
        time_limit_s: Solver time limit.
        demand_quantum: Demands are rounded to this relative step so that solves can
            be cached across epochs and episodes (0 disables the cache).
        cache_size: Plans kept in the cache.
        engine: ``"simpy"`` (the discrete-event simulator, request by request) or
            ``"fluid"`` (:class:`~lokirl.sim.fluid.FluidSimulation`, a flow-level
            surrogate several times faster, for training; evaluate on ``simpy``).
        fluid_dt: Time step of the fluid engine, seconds.
        fallback: A controller spec (e.g. ``trigger``) the policy may defer to with a
            fourth action kind; empty for none.
        swap: How a worker changes variant in the simulator
            (:data:`~lokirl.core.reconfig.SwapMode`: ``overlap``, ``stop`` or ``free``).

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
    load_low: tuple[float, float] = (0.1, 0.6)
    load_high: tuple[float, float] = (0.8, 2.5)
    forecaster: str = "ewma"
    headrooms: tuple[float, ...] = (1.0, 1.15, 1.3, 1.5, 1.75)
    base_horizon_s: int = 5
    weights: RewardWeights = field(default_factory=RewardWeights)
    solver_time: str = "model"
    solver: str = "highs"
    time_limit_s: float = 1.0
    demand_quantum: float = 0.02
    cache_size: int = 4096
    engine: str = "simpy"
    fluid_dt: float = 0.05
    fallback: str = ""
    swap: str = "overlap"

    def __post_init__(self) -> None:
        check_swap_mode(self.swap)
        if self.engine not in ("simpy", "fluid"):
            raise ValueError(f"engine: must be 'simpy' or 'fluid', got {self.engine!r}")
        if not 0 < self.fluid_dt <= self.epoch_s:
            raise ValueError(
                f"fluid_dt: must be in (0, epoch_s={self.epoch_s}], got {self.fluid_dt}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnvConfig:
        """Build from a mapping (e.g. a YAML section), converting lists to tuples."""
        d = dict(d)
        for key in ("traces", "headrooms", "load_low", "load_high"):
            if key in d:
                d[key] = tuple(d[key])
        if isinstance(d.get("weights"), dict):
            d["weights"] = RewardWeights(**d["weights"])
        return cls(**d)


class _CachedPlanner:
    """Solves through the allocator, caching plans by (rounded demand, options, running plan).

    The running plan is part of the key whenever the solve depends on it (warm
    start or churn term): see :func:`running_plan_signature`.
    """

    def __init__(self, quantum: float, size: int) -> None:
        self.quantum = quantum
        self.size = size
        self.cache: OrderedDict[tuple, Plan] = OrderedDict()
        self.hits = self.misses = 0

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
        key = (demand, options, sig)
        if self.quantum > 0 and key in self.cache:
            self.hits += 1
            self.cache.move_to_end(key)
            return self.cache[key]
        self.misses += 1
        plan = solve(pipeline, cluster, demand, options, current)
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
    per task. Rates are divided by the cluster's largest capacity.

    ## Action
    ``MultiDiscrete([3, len(headrooms)])``: keep the plan (0), re-solve warm (1) or
    cold (2); and the headroom multiplier applied to the forecast mean at
    ``base_horizon_s`` that the re-solve plans for. The first plan of an episode is
    solved before the first step.

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
        self.pipeline = load_pipeline(cfg.pipeline)
        self.cluster = Cluster.homogeneous(self.pipeline, cfg.workers)
        self.alloc = AllocatorOptions(
            solver=cfg.solver, time_limit_s=cfg.time_limit_s, deterministic=True
        )
        self.hw_capacity, self.max_capacity = cluster_capacities(self.pipeline, self.cluster)
        self.features = FeatureSpec(
            tasks=tuple(t.name for t in self.pipeline.tasks),
            workers=self.cluster.total,
            demand_scale=self.max_capacity,
            headrooms=cfg.headrooms,
            forecaster=cfg.forecaster,
            base_horizon_s=cfg.base_horizon_s,
            fallback=cfg.fallback,
        )
        self.forecaster = make_forecaster(cfg.forecaster)
        self._tracker = ForecastTracker(self.features, self.forecaster)
        self.planner = _CachedPlanner(cfg.demand_quantum, cfg.cache_size)
        self.observation_space = spaces.Box(
            0.0, 20.0, shape=(self.features.size,), dtype=np.float32
        )
        self.action_space = spaces.MultiDiscrete([self.features.kinds, len(cfg.headrooms)])
        self._fallback: Any = None
        self._hint: Decision | None = None
        self.sim: Simulation | FluidSimulation | None = None
        self.context: ControlContext | None = None
        self._forecast = None

    # ------------------------------------------------------------------ traces
    def _draw_trace(self) -> RateSeries:
        cfg, rng = self.config, self.np_random
        spec = cfg.traces[int(rng.integers(len(cfg.traces)))]
        length = cfg.episode_s + 30
        if spec.startswith("gen:"):
            series = generate(spec[4:], length, rng)
        else:
            series = as_rates(resolve_trace(spec))
            if series.duration_s > length:
                start = float(rng.uniform(0, series.duration_s - length))
                series = as_rates(window(series, start, start + length))
        lo = float(rng.uniform(*cfg.load_low)) * self.hw_capacity
        hi = max(lo, float(rng.uniform(*cfg.load_high)) * self.hw_capacity)
        return rescale(series, lo, hi)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode on a freshly drawn trace.

        Options: ``trace`` plays that rate series instead; ``defer_first_plan``
        leaves the first plan to the caller's first :meth:`advance` (by default it
        is solved for the initial demand and one epoch is played).
        """
        super().reset(seed=seed)
        trace = (options or {}).get("trace") or self._draw_trace()
        sim_rng = np.random.default_rng(int(self.np_random.integers(2**63 - 1)))
        sim_cfg = SimConfig(
            epoch_s=self.config.epoch_s,
            solver_time=self.config.solver_time,
            allocator=self.alloc,
            swap=check_swap_mode(self.config.swap),
        )
        if self.config.engine == "fluid":
            self.sim = FluidSimulation(
                self.pipeline, self.cluster, trace, sim_cfg, sim_rng, "env", self.config.fluid_dt
            )
        else:
            self.sim = Simulation(self.pipeline, self.cluster, trace, sim_cfg, sim_rng, name="env")
        ctx = self.sim.reset()
        if self.config.fallback:
            from lokirl.core.controllers import make_controller

            self._fallback = make_controller(self.config.fallback)
        fc = self._tracker(ctx)
        if (options or {}).get("defer_first_plan"):
            # The caller's first decision installs the first plan (baselines with
            # their own planners, oracles): no epoch is played yet.
            self.context = ctx
            self._forecast = fc
            self._hint = self._fallback_hint()
            return observe(self.features, ctx, fc, self._hint).clip(0, 20), {}
        self.sim.apply(to_decision(self.features, (1, 1), ctx, fc), planner=self.planner)
        self.context = self.sim.step_epoch()
        self._forecast = self._tracker(self.context)
        self._hint = self._fallback_hint()
        return observe(self.features, self.context, self._forecast, self._hint).clip(0, 20), {}

    def step(self, action):
        """Apply the action for one epoch and return (obs, reward, terminated, truncated, info)."""
        if self.sim is None or self.context is None:
            raise RuntimeError("call reset() before step()")
        decision = to_decision(self.features, action, self.context, self._forecast, self._hint)
        return self.advance(decision)

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
        sim.apply(decision, planner=planner or self.planner)
        self.context = sim.step_epoch()
        terms = self._reward_terms(sec0, sim.sec_done, sim.solver_time - solver0)
        w = self.config.weights
        reward = (
            terms["goodput"]
            - w.violation * terms["violation_ratio"]
            - w.reconfiguration * terms["reconfigured_share"]
            - w.solver * terms["solver_s"]
            - w.workers * terms["active_share"]
        )
        terms["solves"] = sim.solves - solves0
        terms["reward"] = float(reward)
        self._forecast = self._tracker(self.context)
        self._hint = self._fallback_hint()
        obs = observe(self.features, self.context, self._forecast, self._hint).clip(0, 20)
        return obs, float(reward), sim.done, False, terms

    @property
    def forecast(self):
        """The forecast matching the current context."""
        return self._forecast

    @property
    def hint(self) -> Decision | None:
        """The fallback controller's decision for the current context (None without one)."""
        return self._hint

    def _fallback_hint(self) -> Decision | None:
        if self._fallback is None or self.context is None:
            return None
        return self._fallback.decide(self.context)

    def _reward_terms(self, s0: int, s1: int, solver_s: float) -> dict[str, float]:
        sim = self.sim
        assert sim is not None
        if s1 <= s0:
            s0 = max(0, s1 - 1)
        sl = slice(s0, s1)
        arrived = float(sim.s_arrivals[sl].sum())
        done = float(sim.s_frames_done[sl].sum())
        viol = float(sim.s_frame_viol[sl].sum())
        leaf_n = float(sim.s_leaf_n[sl].sum())
        acc = float(sim.s_leaf_acc[sl].sum()) / leaf_n if leaf_n else 0.0
        n = max(1, self.cluster.total)
        return {
            "goodput": (done - viol) / max(arrived, 1.0) * acc / 100.0 if arrived else 0.0,
            "violation_ratio": viol / done if done else 0.0,
            "accuracy": acc,
            "reconfigured_share": float(sim.s_reconf[sl].sum()) / n,
            "solver_s": float(solver_s),
            "active_share": float(sim.s_active[sl].mean()) / n if s1 > s0 else 0.0,
        }


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
