"""The live runtime: worker actors, the data plane and the controller loop in one process.

``Runtime`` is driven from one asyncio event loop (uvicorn's, or a test's)::

    rt = Runtime(RuntimeConfig(pipeline="traffic_analysis_cpu", workers=2))
    await rt.start()                 # actors, first plan, variants loaded
    result = await rt.submit(image)  # {"outcome": "on_time" | "late" | "dropped", ...}
    await rt.stop()

The controller loop runs every ``epoch_s``: it hands the same
:class:`~lokirl.core.controller.Controller` objects the simulator uses a
:class:`~lokirl.core.controller.ControlContext` (at the tick's scheduled time),
runs a requested solve in a spawned process (a thread when it cannot be sent
there; the running plan stays in force meanwhile), installs the new plan
(swapping variants only on workers that must change, as ``RuntimeConfig.swap``
says: see :mod:`lokirl.core.reconfig`) and rebuilds the routing table from the
demand estimate and the observed branching. The table counts a worker only once
it can serve: it is rebuilt when a load completes. A tick that raises is
logged (one line, and then one line a minute with the count while it keeps
failing) and the loop carries on.

Self-healing: every ``health_check_s`` the runtime pings every live worker (the
actor answers a ping beside a running batch); a worker that leaves a ping
unanswered for ``ping_timeout_s``, or whose batches time out
``max_batch_timeouts`` times in a row, or whose actor dies, is failed: its
in-flight batch is cancelled (its requests dropped, ``worker_failed``), its queue
re-routed, the controller re-plans on the workers left, and the actor is killed
(``ray.kill``) and re-created; once the new actor answers, the controller
re-plans again to use it. A solve that runs past ``solve_timeout_s`` is abandoned
(a solving process is killed; the running plan stays in force) and the next tick
can solve again. :meth:`Runtime.liveness` and :meth:`Runtime.readiness` back
``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import os
import pickle
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lokirl.core.allocator import AllocatorOptions, solve
from lokirl.core.controller import (
    ARRIVAL_BIN_S,
    KEEP,
    ControlContext,
    Controller,
    Decision,
    ewma_demand,
)
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.plan import Plan
from lokirl.core.reconfig import SwapMode, check_swap_mode
from lokirl.errors import ConfigError
from lokirl.runtime.dataplane import DataPlane, WorkerState, _is_actor_death, percentile
from lokirl.runtime.emulated import check_dilation, dilate_pipeline
from lokirl.runtime.metrics import RepeatedFailure, one_line
from lokirl.runtime.models import ModelSource, model_sources

log = logging.getLogger(__name__)


class SolveTimeout(TimeoutError):
    """A solve ran past ``RuntimeConfig.solve_timeout_s`` and was abandoned."""


@dataclass(frozen=True)
class RuntimeConfig:
    """How the live runtime serves a pipeline.

    Attributes:
        pipeline: Built-in pipeline name or pipeline YAML file.
        workers: Worker actors to start (one per GPU on a GPU cluster).
        controller: Controller spec for :func:`~lokirl.core.controllers.make_controller`.
        accelerator: Accelerator type of the profile to plan with (default: the
            pipeline's first).
        epoch_s: Seconds between controller ticks.
        initial_demand: Demand (frames/s) of the first plan; ``None``: 1.
        early_drop: Drop at the queue head requests that cannot meet their deadline.
        branching_window: Observations the branching estimate averages.
        input_size: Square input resolution (default: the pipeline file's, else 224).
        use_gpu: GPU workers; ``None``: when the Ray cluster has GPUs.
        gpus_per_worker: Share of a GPU each worker claims, in (0, 1]; ``None``: 1
            when the cluster has a GPU per worker, else 1/k with k = ceil(workers /
            GPUs) (:func:`~lokirl.runtime.worker.gpu_share`).
        fp16: Half-precision networks and inputs on CUDA workers (refused on CPU
            workers); ``None``: the pipeline file's ``runtime.fp16``.
        worker_num_cpus: CPUs a CPU worker actor claims.
        worker_threads: Torch threads of a CPU worker.
        grace_s: Seconds past a deadline an actor call may take before it is abandoned.
        load_timeout_s: Seconds a variant load may take.
        solver: MILP solver: ``"highs"`` (the allocator's default) or ``"cbc"``.
        solver_time_limit_s: Time limit of one solve.
        history_s: Seconds of demand history the controller sees.
        seed: Seed of routing and branching draws.
        solve_in_subprocess: Run solves in a separate (spawned) process rather than
            a thread of the ingress: the allocator's Python work then does not hold
            the ingress's GIL. Falls back to a thread (with a warning) when the
            solve cannot be pickled (e.g. a controller whose planner holds a lock)
            or the solving process dies.
        health_check_s: Seconds between liveness pings of every live worker; 0: off.
        ping_timeout_s: A worker that leaves a ping unanswered this long is failed
            (hung: e.g. its process was stopped); with the default 0.5 s between
            pings a stopped worker is found within about 2.5 s.
        max_batch_timeouts: Consecutive batch timeouts that fail a worker.
        replace_workers: Kill a failed worker's actor and re-create it.
        solve_timeout_s: Seconds a solve may take (process start-up and hand-over
            included) before it is abandoned and its process killed; the running
            plan stays in force. ``None``: ``solver_time_limit_s + 10``.
        inline_bytes: Frames up to this size travel inline in actor calls; larger
            ones are put into the object store once.
        swap: How a worker changes variant (:data:`~lokirl.core.reconfig.SwapMode`):
            ``"overlap"`` (default: the actor loads the new variant beside the old
            one, which keeps serving until the load completes, when both fit in
            memory), ``"stop"`` (the old variant is freed first; no request is
            routed to the worker until the new one is loaded) or ``"free"`` (the
            router counts the worker at once and its requests wait for the load:
            the Loki authors' assumption, for comparison only).
        emulate: Emulated accelerators (:mod:`lokirl.runtime.emulated`): worker
            actors host no model and take the profiled batch latency and load time
            asleep, claiming no CPU; the rest of the path is the real one.
        dilation: Time dilation ``k`` (1: real time): the runtime plans and serves
            the pipeline with latencies, load times and SLO multiplied by ``k``
            (the ``pipeline`` passed to :class:`Runtime` is the undilated one);
            send traffic at rates divided by ``k``. For emulated workers.
        ingress_replicas: HTTP ingress processes: this one (the controller's) plus
            ``ingress_replicas - 1`` Ray actors (:mod:`lokirl.runtime.replicas`), each
            with its own queues and batching, the controller's routing table, and
            reporting its counts back; 1 (default): this process alone.
        replica_host: Address the extra replicas listen on.
        replica_port: Port of the first extra replica (the next ones follow); 0: any
            free port each (``/v1/status`` lists them).
        replica_report_s: Seconds between pulls of the replicas' counts (also pulled
            right before each controller tick).
        replica_http: ``max_body_bytes``, ``max_pixels``, ``control_url`` of the
            replicas' HTTP apps.

    """

    pipeline: str = "traffic_analysis_cpu"
    workers: int = 2
    controller: str = "loki"
    accelerator: str | None = None
    epoch_s: float = 1.0
    initial_demand: float | None = None
    early_drop: bool = True
    branching_window: int = 50
    input_size: int | None = None
    use_gpu: bool | None = None
    gpus_per_worker: float | None = None
    fp16: bool | None = None
    worker_num_cpus: float = 0.25
    worker_threads: int = 1
    grace_s: float = 2.0
    load_timeout_s: float = 120.0
    solver: str = "highs"
    solver_time_limit_s: float = 5.0
    history_s: int = 120
    seed: int = 0
    solve_in_subprocess: bool = True
    health_check_s: float = 0.5
    ping_timeout_s: float = 1.5
    max_batch_timeouts: int = 2
    replace_workers: bool = True
    solve_timeout_s: float | None = None
    inline_bytes: int = 64 * 1024
    allocator: dict[str, Any] = field(default_factory=dict)
    swap: SwapMode = "overlap"
    emulate: bool = False
    dilation: float = 1.0
    ingress_replicas: int = 1
    replica_host: str = "127.0.0.1"
    replica_port: int = 0
    replica_report_s: float = 0.2
    replica_http: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_swap_mode(self.swap)
        check_dilation(self.dilation)
        if not (self.epoch_s >= 0.01 and math.isfinite(self.epoch_s)):
            raise ConfigError(
                "--epoch",
                f"{self.epoch_s:g}",
                "the controller period must be at least 0.01 s (each tick may start a solve)",
                "pass --epoch 1",
            )
        if self.ingress_replicas < 1:
            raise ConfigError(
                "--ingress-replicas",
                str(self.ingress_replicas),
                "must be at least 1",
                "pass 1 or 2",
            )


def run_solve(fn: Any, args: tuple[Any, ...]) -> tuple[Plan, int, float]:
    """Run one solve; returns ``(plan, pid of the solving process, seconds inside the solve)``.

    Module level so a spawned process can unpickle it.
    """
    start = time.perf_counter()
    plan = fn(*args)
    return plan, os.getpid(), time.perf_counter() - start


def warm_solver() -> int:
    """Import what a solve needs (in a fresh solving process, before the first solve is timed).

    Module level so a spawned process can unpickle it; returns the process id.
    """
    import lokirl.core.allocator  # noqa: F401 - the import is the point

    return os.getpid()


def pipeline_file(spec: str) -> Path | None:
    """The YAML file behind a pipeline spec (a path, ``configs/pipelines/``, or built-in)."""
    from importlib import resources

    p = Path(spec)
    if p.is_file():
        return p
    local = Path("configs") / "pipelines" / f"{spec}.yaml"
    if local.is_file():
        return local
    res = resources.files("lokirl.data.pipelines").joinpath(f"{spec}.yaml")
    if res.is_file():
        return Path(str(res))
    return None


class Runtime:
    """Serves one pipeline on Ray worker actors under its controller.

    Args:
        config: See :class:`RuntimeConfig`.
        controller: A controller object; default ``make_controller(config.controller)``.
        pipeline: An already loaded pipeline (default: ``load_pipeline(config.pipeline)``).

    Ray must be initialised (``ray.init``) before :meth:`start`.

    """

    def __init__(
        self,
        config: RuntimeConfig | None = None,
        controller: Controller | None = None,
        pipeline: Pipeline | None = None,
    ) -> None:
        from lokirl.core.controllers import make_controller
        from lokirl.core.pipeline_config import load_pipeline

        self.config = config or RuntimeConfig()
        self.pipeline = dilate_pipeline(
            pipeline or load_pipeline(self.config.pipeline), self.config.dilation
        )
        accel = self.config.accelerator or self.pipeline.accelerators[0]
        if accel not in self.pipeline.accelerators:
            raise ConfigError(
                "--accelerator",
                accel,
                f"pipeline {self.pipeline.name} has no profile for it",
                f"use {', '.join(self.pipeline.accelerators)}",
            )
        self.accelerator = accel
        if controller is None:  # a trained policy's fit is known before it is loaded
            precheck_policy(self.config.controller, self.pipeline, self.cluster, self.config.swap)
        self.controller = controller or make_controller(self.config.controller)
        check_policy_fits(self.controller, self.pipeline, self.config)
        self._bind_controller()
        self.sources: dict[str, ModelSource] = model_sources(
            pipeline_file(self.config.pipeline),
            [v.name for v in self.pipeline.variants()],
            self.config.input_size,
            self.config.fp16,
        )
        #: Share of a GPU each worker actor claims (set at start; 0: CPU workers).
        self.gpu_share = 0.0
        opts = {
            "solver": self.config.solver,
            "time_limit_s": self.config.solver_time_limit_s,
            **self.config.allocator,
        }
        self.options = AllocatorOptions(**opts)
        self.plane = DataPlane(
            self.pipeline,
            early_drop=self.config.early_drop,
            branching_window=self.config.branching_window,
            grace_s=self.config.grace_s,
            seed=self.config.seed,
            on_worker_lost=self._on_worker_lost,
            inline_bytes=self.config.inline_bytes,
            accelerator=accel,
            history_s=self.config.history_s,
            max_timeouts=self.config.max_batch_timeouts,
            bin_seconds=4 * self.config.epoch_s + 2.0,
        )
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lokirl-solve")
        self.process_pool: concurrent.futures.ProcessPoolExecutor | None = None
        if self.config.solve_in_subprocess:
            import multiprocessing

            self.process_pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn")
            )  # starts its process with the first solve (none before start)
        self.solving = False
        self.solves = 0
        #: The load range of ``loadgen --rescale auto`` (:meth:`auto_load`), once solved.
        self._auto_load: dict[str, Any] | None = None
        self.solver_wall_s = 0.0
        self.solver_inner_s = 0.0
        self.solves_in_process = 0
        self.last_solve_pid: int | None = None
        self.last_solve_time_s = 0.0
        self.last_solve_at = -math.inf
        self.reconfigurations = 0
        self.load_times: list[dict[str, Any]] = []
        self.tick_errors = 0
        self.tick_ms: list[float] = []
        self.decisions: list[dict[str, Any]] = []
        #: The last tick's scheduled time (the arrival counts a context carries start there).
        self._last_tick_at: float | None = None
        self.force_replan = False
        self.demand_estimate = 0.0
        self._control_task: asyncio.Task | None = None
        self._health_task: asyncio.Task | None = None
        self.health_checks = 0
        self._load_tasks: set[asyncio.Task] = set()
        #: Frame-violation ratio and system accuracy over the last tick's span (the
        #: controller's ``slo_violation_ratio`` and ``accuracy``).
        self.recent_violation = 0.0
        self.recent_accuracy = 0.0
        self.started = False
        self.solve_timeouts = 0
        self.worker_failures: dict[str, int] = {}
        self.replacements = 0
        #: Per replaced worker: seconds from failure to the new actor answering, and
        #: to the first plan installed after it.
        self.recoveries: list[dict[str, Any]] = []
        self._replace_tasks: set[asyncio.Task] = set()
        self.load_errors: list[tuple[int, str, str]] = []
        self.last_tick_mono = time.monotonic()
        self._pool_warm: concurrent.futures.Future | None = None
        self._lost: list[WorkerState] = []  # workers already handled by _on_worker_lost
        #: id(worker state) -> (when its pending ping was sent, its future).
        self._pings: dict[int, tuple[float, concurrent.futures.Future]] = {}
        self._pending_recovery: list[tuple[dict[str, Any], float, float]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The extra ingress replicas (``ingress_replicas > 1``; set at start).
        self.replicas: Any = None
        self.tick_failures = RepeatedFailure(log, "controller tick")
        self.solve_failures = RepeatedFailure(log, "solve")

    @property
    def cluster(self) -> Cluster:
        """The cluster the runtime serves: ``config.workers`` workers of its accelerator type.

        (Solves see only the workers alive at the time; a controller is bound to this.)
        """
        return Cluster({self.accelerator: self.config.workers})

    def _bind_controller(self) -> None:
        """Tell the controller what it serves before it decides (:func:`bind_controller`).

        A trained policy (:class:`~lokirl.agents.adapter.PPOController`) checks that it
        fits (a version-1 policy: exactly its worker count; versions 2 and 3: its scope of
        pipeline, accelerators, worker range and swap modes) and, versions 2 and 3, scales
        its observations to this cluster. The pipeline bound is the one served, i.e.
        dilated under ``dilation`` K: its capacities are K times lower and the demand
        the policy sees is in dilated frames/s, so the rate features (arrivals and
        forecasts over capacity) read as undilated; but the longest-load-time feature
        is in seconds, so it reads K times the profiled load time (clipped at 10 s):
        a dilated run shows the policy a cluster whose loads are K times slower.

        Raises:
            ConfigError: the controller does not fit.

        """
        from lokirl.core.binding import bind_controller

        bind_controller(self.controller, self.pipeline, self.cluster, self.config.swap)

    @property
    def solve_timeout_s(self) -> float:
        """Seconds a solve may take before it is abandoned."""
        t = self.config.solve_timeout_s
        return self.config.solver_time_limit_s + 10.0 if t is None else t

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the worker actors, solve and install the first plan, start the control loop.

        Raises:
            ConfigError: more GPU workers than the cluster has GPUs, a first plan
                that places no worker on some task, that cannot be solved in
                ``solve_timeout_s``, or whose variants cannot be loaded (the actors
                started are killed first).

        """
        cfg = self.config
        if cfg.workers < 1:
            raise ConfigError("--workers", str(cfg.workers), "must be at least 1", "pass 2")
        self._loop = asyncio.get_running_loop()
        self._bind_controller()  # again: ``config.workers`` may have been set since
        self._check_gpus()
        # The load range /v1/status reports, for the cluster as started (``workers`` and,
        # on GPUs, the pipeline may have changed since a status call before start):
        # two short solves before anything is served, so on the loop.
        self._auto_load = None
        self.auto_load()
        for i in range(cfg.workers):
            self.plane.workers.append(WorkerState(i, self._new_actor(i)))
        try:
            await self._first_plan()
        except BaseException:
            await self.stop()
            raise
        if self.plane.frames.arrived == 0:
            # Time 0 is when serving starts (as in the simulator): seconds of demand
            # history and controller ticks then line up with the arrivals.
            self.plane.restart_clock()
        for w in self.plane.workers:
            w.loop_task = asyncio.create_task(self.plane.worker_loop(w))
        if cfg.ingress_replicas > 1:
            await self._start_replicas()
        self.last_solve_at = self.plane.now()
        self.last_tick_mono = time.monotonic()
        self._control_task = asyncio.create_task(self._control_loop(self.plane.now()))
        if cfg.health_check_s > 0:
            self._health_task = asyncio.create_task(self._health_loop())
        self.started = True

    def restart_clock(self) -> float:
        """Make now time 0 again, before the first frame, and tick the controller from it.

        :meth:`start` makes time 0 the moment serving starts. A caller whose first
        frame comes later (a replay that is set up after :meth:`start`) calls this
        right before it sends, so that seconds of demand history and controller ticks
        line up with its arrival times, as in the simulator. The first plan stays.

        Returns:
            The seconds the clock had run (the lag it removes).

        Raises:
            RuntimeError: frames have arrived already, the runtime is not started, or
                it runs extra ingress replicas (their clocks were aligned with time 0
                when they started and would count arrivals in other bins).

        """
        if not self.started or self._control_task is None:
            raise RuntimeError("restart_clock before start")
        if self.replicas is not None:
            raise RuntimeError(
                "restart_clock with ingress replicas: their clocks were aligned with "
                "time 0 at start; replay through a runtime with ingress_replicas=1"
            )
        lag = self.plane.now()
        self.plane.restart_clock()  # raises once frames have arrived
        self._control_task.cancel()
        # Ticks at whole epochs of the new time 0, however late the task first runs.
        self._control_task = asyncio.get_running_loop().create_task(self._control_loop(0.0))
        self.last_tick_mono = time.monotonic()
        return lag

    async def _start_replicas(self) -> None:
        """Start the extra ingress replicas; a replica that cannot start stops the runtime.

        Raises:
            ConfigError: a replica could not start (its port in use, say).

        """
        from lokirl.runtime.replicas import ReplicaSet

        self.replicas = ReplicaSet(self, self.config.ingress_replicas - 1)
        try:
            await self.replicas.start()
        except BaseException as exc:
            await self.stop()
            cfg = self.config
            raise ConfigError(
                "--ingress-replicas",
                str(cfg.ingress_replicas),
                f"an ingress replica did not start: {one_line(exc)}",
                f"free ports {cfg.replica_port}..{cfg.replica_port + cfg.ingress_replicas - 2} "
                "(or pass another --port), or serve with fewer replicas",
            ) from None

    def _new_actor(self, wid: int) -> Any:
        """Start the actor of worker slot ``wid`` (at start, and to replace a failed one)."""
        from lokirl.runtime.worker import make_worker

        cfg = self.config
        return make_worker(
            wid,
            cfg.use_gpu,
            cfg.worker_num_cpus,
            cfg.worker_threads,
            cfg.seed,
            emulate=cfg.emulate,
            pipeline=self.pipeline,
            accelerator=self.accelerator,
            gpus_per_worker=self.gpu_share or 1.0,
            batch_calls=cfg.ingress_replicas,  # each ingress replica may send one batch
        )

    def _check_gpus(self) -> None:
        """Set each worker's GPU share; refuse GPU workers that would never start, and fp16 on CPU.

        More GPU workers than the GPUs hold at ``gpus_per_worker`` would wait for a
        GPU forever (:func:`~lokirl.runtime.worker.gpu_share`).
        """
        cfg = self.config
        self.gpu_share = 0.0
        if cfg.emulate:
            return
        if cfg.use_gpu is not False:
            from lokirl.runtime.worker import cluster_gpus, gpu_share, share_worker_memory

            gpus = cluster_gpus()
            if cfg.use_gpu and gpus < 1:
                raise ConfigError(
                    "--workers",
                    str(cfg.workers),
                    f"{cfg.workers} GPU workers need GPUs but the Ray cluster has {gpus:g}",
                    "add GPU nodes to the cluster, or serve on CPU workers",
                )
            self.gpu_share = gpu_share(cfg.workers, gpus, cfg.gpus_per_worker)
            shared = share_worker_memory(self.pipeline, self.accelerator, self.gpu_share)
            if shared is not self.pipeline:
                log.info(
                    "workers share GPUs (%g each): swaps judged against %.0f MiB a worker",
                    self.gpu_share,
                    shared.accelerator_memory_mb[self.accelerator],
                )
                self.pipeline = shared
                self.plane.pipeline = shared
        elif cfg.gpus_per_worker is not None:
            raise ConfigError(
                "--gpus-per-worker",
                f"{cfg.gpus_per_worker:g}",
                "the workers are CPU workers (use_gpu is off)",
                "drop --gpus-per-worker",
            )
        if self.gpu_share == 0.0 and any(s.fp16 for s in self.sources.values()):
            flag = bool(cfg.fp16)
            raise ConfigError(
                "--fp16" if flag else str(pipeline_file(cfg.pipeline) or cfg.pipeline),
                "on" if flag else "runtime.fp16",
                "half precision is for CUDA workers and these workers run on the CPU",
                "drop --fp16 (or set `runtime: {fp16: false}`), or serve on GPU nodes",
            )

    async def _first_plan(self) -> None:
        """Solve and load the first plan; refuse one that serves nothing or cannot load."""
        cfg = self.config
        demand = cfg.initial_demand if cfg.initial_demand is not None else 1.0
        if self.process_pool is not None:  # start the solving process (not timed by _solve)
            self._pool_warm = self.process_pool.submit(warm_solver)
        try:
            plan = await self._solve(self.initial_decision(demand))
        except SolveTimeout:
            raise ConfigError(
                "first plan",
                f"{demand:g} frames/s on {cfg.workers} workers",
                f"the solve did not finish in {self.solve_timeout_s:g} s",
                "raise --solver-time-limit or the solve timeout, or lower --initial-demand",
            ) from None
        placed = {g.task for g in plan.groups if g.replicas > 0}
        missing = [t.name for t in self.pipeline.tasks if t.name not in placed]
        if missing:
            raise ConfigError(
                "--workers",
                str(cfg.workers),
                f"the first plan places no worker on task(s) {', '.join(missing)} of "
                f"{self.pipeline.name} (it has {len(self.pipeline.tasks)} tasks, each needs "
                "a worker), so those frames could never be served",
                f"pass --workers {max(len(self.pipeline.tasks), cfg.workers + len(missing))} "
                "or more",
            )
        self.load_errors.clear()
        await self.install(plan, wait=True)
        # The first plan is in force before serving starts; in the simulator its solve
        # takes no time, so the controller's first contexts read no solve time on either
        # engine (a policy observes it: live it read the first solve's wall time, seconds
        # in a fresh solving process, until the next solve).
        self.last_solve_time_s = 0.0
        if self.load_errors:
            wid, variant, err = self.load_errors[0]
            raise ConfigError(
                "pipeline " + self.pipeline.name,
                f"runtime.models.{variant}",
                f"worker {wid} could not load the first plan's variant {variant}: {err}",
                "fix the model's source in the pipeline file's runtime section "
                "(`lokirl profile` loads it the same way), or raise load_timeout_s",
            )

    async def stop(self) -> None:
        """Stop the control loop, end every queued request (``shutdown``), kill the actors."""
        import ray

        if self.replicas is not None and not self.replicas.stopped:
            try:  # first: their final counts are added to the plane
                await self.replicas.stop()
            except Exception as exc:  # noqa: BLE001 - stopping carries on
                log.warning("stopping the ingress replicas: %s", one_line(exc))
        for task in (self._control_task, self._health_task, *self._replace_tasks):
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self.plane.shutdown()
        tasks = [w.loop_task for w in self.plane.workers if w.loop_task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.grace_s + 5.0)
            for t in pending:
                t.cancel()
        for t in list(self._load_tasks):
            t.cancel()
        for w in self.plane.workers:
            try:
                ray.kill(w.actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._drop_process_pool(kill=True)
        self.started = False

    async def submit(
        self, frame: np.ndarray | Any, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Serve one frame (a CHW array, or an ObjectRef to one); returns its outcome.

        Never hangs: if no outcome is known ``timeout_s`` (default: SLO + grace +
        epoch) after arrival, the frame is counted dropped (reason ``timeout``).
        """
        t0 = time.perf_counter()
        p = self.plane
        f = p.new_frame(frame)
        p.admit_ms.append((time.perf_counter() - t0) * 1000.0)
        wait = timeout_s or (p.slo_s + self.config.grace_s + self.config.epoch_s + 1.0)
        timer = asyncio.get_running_loop().call_later(wait, p.abandon, f, "timeout")
        try:
            return await asyncio.shield(f.future)
        finally:
            timer.cancel()

    # ------------------------------------------------------------------ plans
    async def _solve(self, decision: Decision) -> Plan:
        """Run one solve off the event loop, bounded by ``solve_timeout_s``.

        Raises:
            SolveTimeout: it ran too long; a solving process was killed (a fresh
                one is started for the next solve), a solving thread abandoned.

        """
        opts = replace(self.options, warm_start=decision.warm_start)
        if decision.churn_weight is not None:
            opts = replace(opts, churn_weight=decision.churn_weight)
        demand = max(0.0, float(decision.demand)) if math.isfinite(decision.demand) else 0.0
        alive = sum(1 for w in self.plane.workers if w.status != "dead")
        cluster = Cluster({self.accelerator: max(alive, 1)})
        current = self.plane.plan
        planner = getattr(self.controller, "plan", None)
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        if callable(planner):
            fn, args = planner, (self.pipeline, cluster, decision, opts, current)
        else:
            fn, args = solve, (self.pipeline, cluster, demand, opts, current)
        result = None
        if self.process_pool is not None:
            try:
                pickle.dumps((fn, args))
            except Exception as exc:  # noqa: BLE001 - any pickling failure
                log.warning("solving in a thread: cannot send the solve to a process (%s)", exc)
                self._drop_process_pool()
        limit = self.solve_timeout_s
        warm, self._pool_warm = self._pool_warm, None
        if warm is not None and self.process_pool is not None:
            # A fresh solving process is still starting: its start-up is not the solve's.
            try:
                await asyncio.wait_for(asyncio.wrap_future(warm), max(60.0, limit))
            except Exception as exc:  # noqa: BLE001 - the solve below finds out
                log.warning("the solving process did not start: %s", one_line(exc))
        if self.process_pool is not None:
            pool = self.process_pool
            try:
                result = await asyncio.wait_for(
                    loop.run_in_executor(pool, run_solve, fn, args), limit
                )
            except concurrent.futures.process.BrokenProcessPool as exc:
                log.warning("solving in a thread: the solving process died (%s)", exc)
                self._drop_process_pool()
            except TimeoutError:
                self.solve_timeouts += 1
                self._drop_process_pool(kill=True)
                self._new_process_pool()
                raise SolveTimeout(
                    f"the solve ({decision.reason}) ran past the solve timeout of {limit:g} s; "
                    "its process was killed and the running plan stays in force"
                ) from None
            else:
                self.solves_in_process += 1
        if result is None:
            try:
                result = await asyncio.wait_for(
                    loop.run_in_executor(self.executor, run_solve, fn, args), limit
                )
            except TimeoutError:
                self.solve_timeouts += 1
                # A thread cannot be killed: leave it behind, solve in a new one.
                self.executor.shutdown(wait=False, cancel_futures=True)
                self.executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="lokirl-solve"
                )
                raise SolveTimeout(
                    f"the solve ({decision.reason}) ran past the solve timeout of {limit:g} s "
                    "(in a thread, left behind); the running plan stays in force"
                ) from None
        plan, pid, inner = result
        wall = time.perf_counter() - start
        self.solves += 1
        self.solver_wall_s += wall
        self.solver_inner_s += inner
        self.last_solve_time_s = wall
        self.last_solve_pid = pid
        return plan

    def _drop_process_pool(self, kill: bool = False) -> None:
        pool = self.process_pool
        if pool is None:
            return
        self.process_pool = None
        if kill:  # a hung solve: its process would never end on its own
            for proc in list(getattr(pool, "_processes", {}).values()):
                try:
                    proc.kill()
                except Exception:  # noqa: BLE001 - already gone
                    pass
        pool.shutdown(wait=False, cancel_futures=True)

    def _new_process_pool(self) -> None:
        """A fresh solving process, started now so the next solve does not wait for it."""
        import multiprocessing

        self.process_pool = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")
        )
        try:
            self._pool_warm = self.process_pool.submit(warm_solver)
        except Exception:  # noqa: BLE001 - it starts with the next solve instead
            self._pool_warm = None

    async def install(self, plan: Plan, wait: bool = False) -> list[int]:
        """Make ``plan`` the running plan; returns the ids of workers that swap variant.

        Args:
            plan: The plan.
            wait: Await the swaps (the first plan); otherwise they run in the
                background and the swapping workers serve once loaded.

        """
        to_load = self.plane.install(
            plan, self.config.swap, demand=self.demand_estimate or plan.demand
        )
        # Counted when the swap starts, as the simulator counts it (a load that fails, or
        # that a later plan supersedes, was still a reconfiguration of the cluster).
        self.reconfigurations += len(to_load)
        tasks = []
        for w in to_load:
            t = asyncio.create_task(self._load(w, w.token))
            self._load_tasks.add(t)
            t.add_done_callback(self._load_tasks.discard)
            tasks.append(t)
        if wait and tasks:
            await asyncio.gather(*tasks)
        return [w.wid for w in to_load]

    async def _load(self, w: WorkerState, token: int) -> None:
        """Load ``w``'s new variant; it serves it (and the table counts it) once loaded.

        Under ``overlap`` the actor loads beside the old variant, which keeps
        serving; once loaded, the worker switches (new batches go to the new
        variant) and, when its last old-variant batch is done, the actor frees
        the old one.
        """
        variant = w.variant
        assert variant is not None
        v = self.pipeline.variant(variant)
        src = self.sources[variant].to_dict()
        keep_old = w.swap is not None and w.swap.old_serves
        old_variant = w.held if keep_old else None
        try:
            warm = list(v.batch_sizes(self.accelerator)) or True  # every size a plan may give
            ref = w.actor.load.remote(variant, src, self.pipeline.emits(variant), warm, keep_old)
            res = await asyncio.wait_for(
                asyncio.wrap_future(ref.future()), self.config.load_timeout_s
            )
        except Exception as exc:  # noqa: BLE001
            err = one_line(exc) or f"no answer in {self.config.load_timeout_s:g} s"
            log.warning("worker %d: loading %s failed: %s", w.wid, variant, err)
            self.load_errors.append((w.wid, variant, err))
            if _is_actor_death(exc):
                self.plane.fail_worker(w, f"died loading {variant}", kind="died")
            elif isinstance(exc, asyncio.TimeoutError):
                self.plane.fail_worker(w, f"hung loading {variant}", kind="hung")
            elif w.token == token:
                self.plane.load_failed(w)
                self.force_replan = True
            return
        self.load_times.append(
            {
                "worker": w.wid,
                "variant": variant,
                "load_s": res["load_s"],
                "t": self.plane.now(),
                # where the variant really runs (an ONNX model may fall back to the CPU)
                "device": res.get("device"),
            }
        )
        if w.token != token or w.status != "loading":
            return  # superseded by a later plan
        w.load_s = float(res["load_s"])
        self.plane.worker_ready(w)
        if res.get("kept_old"):
            # Free the old variant once no batch of it is in flight.
            deadline = time.monotonic() + self.plane.slo_s + self.config.grace_s
            while w.batch_variant == old_variant and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            if w.token == token and w.status != "dead":
                try:
                    await asyncio.wait_for(
                        asyncio.wrap_future(w.actor.switch.remote(variant).future()),
                        self.config.load_timeout_s,
                    )
                except Exception as exc:  # noqa: BLE001 - the old variant stays loaded
                    log.warning(
                        "worker %d: switching to %s failed: %s", w.wid, variant, one_line(exc)
                    )

    # ------------------------------------------------------------------ self-healing
    def _on_worker_lost(self, w: WorkerState, kind: str) -> None:
        """A worker failed: re-plan on the workers left, kill and re-create its actor."""
        if w in self._lost:
            return
        self._lost.append(w)
        del self._lost[:-1000]
        self.worker_failures[kind] = self.worker_failures.get(kind, 0) + 1
        log.warning(
            "worker %d lost (%s): re-planning on the workers left%s",
            w.wid,
            w.failure or kind,
            "; replacing its actor" if self.config.replace_workers and self.started else "",
        )
        self.force_replan = True
        try:
            import ray

            ray.kill(w.actor, no_restart=True)  # a hung actor would hold its resources
        except Exception:  # noqa: BLE001 - already gone
            pass
        if self.config.replace_workers and self.started and not self.plane.closed:
            t = asyncio.get_running_loop().create_task(self._replace(w))
            self._replace_tasks.add(t)
            t.add_done_callback(self._replace_tasks.discard)

    async def _replace(self, old: WorkerState, attempts: int = 5) -> bool:
        """Re-create a failed worker's actor in its slot; returns whether it came up.

        The new actor must answer a ping within ``load_timeout_s`` (it may wait
        for resources, e.g. after a node was lost); otherwise it is killed and
        another is tried, up to ``attempts`` times.
        """
        p = self.plane
        failed_at = old.failed_at or time.monotonic()
        for attempt in range(1, attempts + 1):
            if p.closed or old not in p.workers:
                return False
            actor = None
            try:
                actor = self._new_actor(old.wid)
                await asyncio.wait_for(
                    asyncio.wrap_future(actor.ping.remote().future()), self.config.load_timeout_s
                )
            except asyncio.CancelledError:  # stopping: do not leave the new actor behind
                if actor is not None:
                    import ray

                    ray.kill(actor, no_restart=True)
                raise
            except Exception as exc:  # noqa: BLE001 - try again, a few times
                log.warning(
                    "worker %d: replacement %d of %d did not start: %s",
                    old.wid,
                    attempt,
                    attempts,
                    one_line(exc) or "no answer",
                )
                try:
                    import ray

                    ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001
                    pass
                await asyncio.sleep(min(5.0, attempt))
                continue
            if p.closed or old not in p.workers:
                import ray

                ray.kill(actor, no_restart=True)
                return False
            new = WorkerState(old.wid, actor)
            new.restarts = old.restarts + 1
            p.workers[p.workers.index(old)] = new
            new.loop_task = asyncio.create_task(p.worker_loop(new))
            self.replacements += 1
            up_s = time.monotonic() - failed_at
            self.recoveries.append(
                {"worker": old.wid, "failure": old.failure, "replaced_s": round(up_s, 3)}
            )
            del self.recoveries[:-100]
            self._pending_recovery.append((self.recoveries[-1], failed_at, time.monotonic()))
            log.info("worker %d replaced %.2f s after it failed; re-planning", old.wid, up_s)
            self.force_replan = True
            return True
        log.error(
            "worker %d could not be replaced after %d attempts; serving on the workers left",
            old.wid,
            attempts,
        )
        return False

    async def _health_loop(self) -> None:
        """Ping the workers every ``health_check_s``; never dies.

        A round that wakes up late (the event loop itself was held up) judges
        nobody: answers that arrived meanwhile may not have been processed yet.
        """
        every = self.config.health_check_s
        while True:
            due = time.monotonic() + every
            await asyncio.sleep(every)
            late = time.monotonic() - due
            try:
                self.check_health(judge=late < self.config.ping_timeout_s / 2)
            except Exception as exc:  # noqa: BLE001 - the loop never dies
                log.error("health check failed: %s", one_line(exc))

    def check_health(self, judge: bool = True) -> list[int]:
        """One round of pings; returns the ids of workers failed by this round.

        Every live worker gets a ping when its last one was answered. One left
        unanswered for ``ping_timeout_s`` fails the worker (hung; a stopped
        process answers nothing), a ping that raises an actor-death error fails it
        at once. A worker loading a variant while running a batch is excused (both
        of its actor's call slots are busy; the load has its own timeout).

        Args:
            judge: Fail workers whose ping is overdue (``False``: only send pings).

        """
        now = time.monotonic()
        failed = []
        self.health_checks += 1
        for w in list(self.plane.workers):
            if w.status == "dead":
                continue
            pending = self._pings.get(id(w))
            if pending is not None and pending[1].done():  # answered, not processed yet
                self._pinged(w, pending[1])
                pending = self._pings.get(id(w))
            if w.status == "loading" and w.busy:
                if pending is not None:  # its clock starts when a call slot frees
                    self._pings[id(w)] = (now, pending[1])
                continue
            if pending is not None:
                sent = pending[0]
                if judge and now - sent > self.config.ping_timeout_s:
                    self._pings.pop(id(w), None)
                    self.plane.fail_worker(
                        w, f"hung: no answer to a ping for {now - sent:.1f} s", kind="hung"
                    )
                    failed.append(w.wid)
                continue
            try:
                fut = w.actor.ping.remote().future()
            except Exception as exc:  # noqa: BLE001
                if _is_actor_death(exc):
                    self.plane.fail_worker(w, "died (ping refused)", kind="died")
                    failed.append(w.wid)
                continue
            self._pings[id(w)] = (now, fut)
            fut.add_done_callback(lambda f, w=w: self._call_soon(self._pinged, w, f))
        return failed

    def _call_soon(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the event loop from another thread (nothing once it closed)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # closed meanwhile
            pass

    def _pinged(self, w: WorkerState, fut: concurrent.futures.Future) -> None:
        """A ping came back (on the event loop)."""
        pending = self._pings.get(id(w))
        if pending is None or pending[1] is not fut:
            return  # already handled
        del self._pings[id(w)]
        if w.status == "dead" or fut.cancelled():
            return
        exc = fut.exception()
        if exc is None:
            w.last_ok = time.monotonic()
        elif _is_actor_death(exc):
            self.plane.fail_worker(w, f"died: {type(exc).__name__}", kind="died")

    # ------------------------------------------------------------------ health views
    def liveness(self) -> tuple[bool, str]:
        """``/healthz``: whether the control loop is alive and ticking."""
        if not self.started:
            return False, "starting"
        task = self._control_task
        if task is None or task.done():
            return False, "the controller loop has stopped"
        stalled = time.monotonic() - self.last_tick_mono
        limit = max(5.0, 5 * self.config.epoch_s)
        if stalled > limit:
            return False, f"the controller loop has not ticked for {stalled:.1f} s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """``/readyz``: whether enough live workers serve the running plan.

        Not ready while starting, without a plan, while a worker is down (failed
        and not yet replaced), while a plan group has fewer live workers than its
        replicas, or while some task has no worker ready to serve it.
        """
        if not self.started:
            return False, "starting"
        p = self.plane
        if p.plan is None:
            return False, "no plan installed"
        down = [w for w in p.workers if w.status == "dead"]
        if down:
            parts = [f"worker {w.wid} ({w.failure or 'dead'})" for w in down]
            return False, "down, being replaced: " + ", ".join(parts)
        for g in p.plan_groups:
            live = sum(1 for w in p.workers if w.group is g and w.status != "dead")
            if live < g.group.replicas:
                return False, (
                    f"{g.task}/{g.variant} has {live} of {g.group.replicas} planned workers"
                )
        serving = {
            w.serving.task for w in p.workers if w.serving is not None and w.status == "ready"
        }
        idle = [t.name for t in self.pipeline.tasks if t.name not in serving]
        if idle:
            return False, f"no worker ready for task(s) {', '.join(idle)} (loading)"
        return True, "ok"

    # ------------------------------------------------------------------ control loop
    def initial_decision(self, demand: float) -> Decision:
        """The first plan's decision: the controller's, on the simulator's initial context.

        The simulator asks the controller to decide on a context whose demand history
        is the initial demand alone, with no plan yet, and solves what it decides (e.g.
        ``loki`` raises the demand to its floor and over-provisions). The live first
        plan is decided the same way, so both start from the same plan; a controller
        that would not re-solve (or fails to decide) gets a plain solve for ``demand``.
        """
        ctx = ControlContext(
            now_s=0.0,
            demand_history=(demand,),
            plan=None,
            time_since_solve_s=math.inf,
            last_solve_time_s=0.0,
            solving=False,
            slo_violation_ratio=0.0,
            accuracy=0.0,
            queue_lengths={t.name: 0 for t in self.pipeline.tasks},
            active_workers=0,
        )
        try:
            d = self.controller.decide(ctx)
        except Exception as exc:  # noqa: BLE001 - the plain solve below still starts serving
            log.warning("the controller could not decide the first plan: %s", one_line(exc))
            d = KEEP
        if not d.resolve or not math.isfinite(d.demand):
            return Decision(resolve=True, demand=demand, reason="initial")
        # Its reason stays: a controller's planner reads it (a library plan's index, or
        # a policy's own solve), and renamed it built another first plan than the
        # simulator's.
        return d

    def context(self, now_s: float | None = None, since_s: float | None = None) -> ControlContext:
        """The snapshot the controller sees (at ``now_s``: a tick's scheduled time).

        ``since_s``: the previous tick's time; the sub-second arrival counts cover the
        time since (more than an epoch when the loop skipped ticks), else one epoch.
        """
        p = self.plane
        now = p.now() if now_s is None else now_s
        span = self.config.epoch_s if since_s is None else max(0.0, now - since_s)
        bins = p.recent_bins(now, span)
        return ControlContext(
            now_s=now,
            demand_history=p.history(self.config.history_s),
            plan=p.plan,
            time_since_solve_s=now - self.last_solve_at,
            last_solve_time_s=self.last_solve_time_s,
            solving=self.solving,
            slo_violation_ratio=self.recent_violation,
            accuracy=self.recent_accuracy,
            queue_lengths=self.queue_lengths(),
            active_workers=p.active_workers(),
            arrival_bins=bins,
            arrival_bin_s=ARRIVAL_BIN_S if bins else 0.0,
        )

    def queue_lengths(self) -> dict[str, int]:
        """Requests waiting per task, here and at the ingress replicas (as last reported)."""
        out = self.plane.queue_lengths()
        if self.replicas is not None:
            for task, n in self.replicas.queue_lengths().items():
                out[task] = out.get(task, 0) + n
        return out

    async def _control_loop(self, base: float) -> None:
        # Ticks are scheduled at whole epochs from ``base`` (the plane's time when the
        # loop was created, not when the task first runs: on a busy host that is
        # later); the controller sees the scheduled time, so the jitter of a wake-up
        # cannot make "a period since the last solve" look shorter than it is and skip
        # a solve.
        epoch = self.config.epoch_s
        self.last_solve_at = base
        self._last_tick_at = base
        k = 0
        while True:
            k += 1
            tick_at = base + k * epoch
            await asyncio.sleep(max(0.0, tick_at - self.plane.now()))
            late = self.plane.now() - tick_at
            if late >= epoch:  # the loop was held up: skip the ticks missed, do not catch up
                k += int(late // epoch)
                tick_at = base + k * epoch
            if self.replicas is not None:  # the replicas' counts up to now, for this tick
                try:
                    pull = asyncio.ensure_future(self.replicas.collect())
                    await asyncio.wait_for(asyncio.shield(pull), max(0.05, epoch / 4))
                except Exception as exc:  # noqa: BLE001 - ticks on the counts it has
                    log.debug("replica reports before the tick: %s", one_line(exc))
            start = time.perf_counter()
            self.last_tick_mono = time.monotonic()
            try:
                self._tick(tick_at)
            except Exception as exc:  # noqa: BLE001 - the loop never dies
                self.tick_errors += 1
                self.tick_failures.failed(exc)
            self.tick_failures.flush()
            self.solve_failures.flush()
            self.plane.batch_failures.flush()
            self.tick_ms.append((time.perf_counter() - start) * 1000.0)
            if len(self.tick_ms) > 1000:
                del self.tick_ms[:500]

    def _tick(self, tick_at: float | None = None) -> None:
        p = self.plane
        self.recent_violation, self.recent_accuracy = p.recent_window()
        p.reap()
        self.demand_estimate = ewma_demand(p.history(self.config.history_s))
        if p.plan is not None:
            p.rebuild(self.demand_estimate)
        ctx = self.context(tick_at, self._last_tick_at)
        if tick_at is not None:
            self._last_tick_at = tick_at
        error: Exception | None = None
        try:
            decision = self.controller.decide(ctx)
        except Exception as exc:  # noqa: BLE001 - re-raised below, after a forced re-plan
            error, decision = exc, Decision(resolve=False, reason="controller failed")
        if self.force_replan and not self.solving:
            self.force_replan = False
            decision = Decision(
                resolve=True,
                demand=max(self.demand_estimate, 1.0),
                warm_start=True,
                reason="workers changed",
            )
        start = decision.resolve and not self.solving
        if len(self.decisions) < 10000:
            self.decisions.append(
                {
                    "t": round(ctx.now_s, 3),
                    "resolve": decision.resolve,
                    "reason": decision.reason,
                    "started": start,
                }
            )
        if start:
            self.solving = True
            self.last_solve_at = ctx.now_s
            asyncio.get_running_loop().create_task(self._solve_and_install(decision))
        if error is not None:
            raise error

    async def _solve_and_install(self, decision: Decision) -> None:
        started = time.monotonic()
        try:
            plan = await self._solve(decision)
            await self.install(plan)
        except SolveTimeout as exc:
            self.tick_errors += 1
            self.solve_failures.failed(exc)
        except Exception as exc:  # noqa: BLE001 - the running plan stays in force
            self.tick_errors += 1
            self.solve_failures.failed(exc)
        else:
            keep = []
            for rec, failed_at, replaced_at in self._pending_recovery:
                if replaced_at <= started:  # this plan counts the new actor
                    rec["replanned_s"] = round(time.monotonic() - failed_at, 3)
                else:
                    keep.append((rec, failed_at, replaced_at))
            self._pending_recovery = keep
        finally:
            self.solving = False

    # ------------------------------------------------------------------ views
    def auto_load(self) -> dict[str, Any]:
        """The load range a trace maps onto on this cluster (``loadgen --rescale auto``).

        The suites' range (:func:`lokirl.core.load_range.auto_load_range`) on the
        serving pipeline (its latencies as served, dilation included) and cluster: two
        deterministic solves, made once.

        Returns:
            ``{"lo", "hi"}`` in frames/s, the ``unit`` they are multiples of and the
            capacities ``full_accuracy``, ``full_accuracy_ok`` and ``max``.

        """
        if self._auto_load is None:
            from lokirl.core.load_range import auto_load_range
            from lokirl.envs.features import solve_capacities

            mapping = asdict(solve_capacities(self.pipeline, self.cluster))
            lo, hi, unit = auto_load_range(mapping)
            self._auto_load = {"lo": lo, "hi": hi, "unit": unit, **mapping}
        return self._auto_load

    def status(self) -> dict[str, Any]:
        """Running plan, workers, tallies and control cost (``GET /v1/status``)."""
        p = self.plane
        ft, st = p.frame_tally(), p.sub_tally()

        lat = list(p.latencies_ms)
        return {
            "pipeline": self.pipeline.name,
            "slo_ms": self.pipeline.slo_ms,
            "controller": getattr(self.controller, "name", type(self.controller).__name__),
            "accelerator": self.accelerator,
            "uptime_s": round(p.now(), 3),
            "plan": None if p.plan is None else p.plan.to_dict(),
            "workers": [w.to_dict() for w in p.workers],
            "demand_estimate": self.demand_estimate,
            "frames": ft.to_dict(),
            "subrequests": st.to_dict(),
            "accuracy": p.accuracy,
            "accuracy_source": "profile (normalised accuracy of each variant, not measured here)",
            "latency_ms": {"p50": percentile(lat, 50), "p99": percentile(lat, 99)},
            "solves": self.solves,
            "solver_wall_s": self.solver_wall_s,
            "solver_inner_s": self.solver_inner_s,
            "solves_in_process": self.solves_in_process,
            "solving": self.solving,
            "reconfigurations": self.reconfigurations,
            "gpus_per_worker": self.gpu_share,
            "load_times": self.load_times[-20:],
            "tick_errors": self.tick_errors,
            "health_checks": self.health_checks,
            "solve_timeouts": self.solve_timeouts,
            "worker_failures": dict(self.worker_failures),
            "replacements": self.replacements,
            "recoveries": self.recoveries[-20:],
            "ready": dict(zip(("ok", "reason"), self.readiness(), strict=True)),
            "ingress_replicas": None if self.replicas is None else self.replicas.status(),
            "auto_load": self.auto_load(),
            "config": asdict(self.config),
        }


def check_policy_fits(controller: Any, pipeline: Pipeline, config: RuntimeConfig) -> None:
    """Refuse a trained policy whose pipeline or cluster differs from the one served.

    A trained policy (``ppo:PATH``) records the pipeline's tasks and the cluster's
    worker count it was trained with (its :class:`~lokirl.envs.features.FeatureSpec`);
    served elsewhere it would fail on every tick or act on wrongly scaled inputs.

    Raises:
        ConfigError: the tasks or the worker count differ.

    """
    spec = getattr(controller, "spec", None)
    tasks = getattr(spec, "tasks", None)
    if tasks is None:
        return
    name = getattr(controller, "model_path", None) or config.controller
    have = [t.name for t in pipeline.tasks]
    if set(tasks) != set(have):
        raise ConfigError(
            "--controller",
            str(name),
            f"the policy was trained on a pipeline with tasks {list(tasks)}; "
            f"{pipeline.name} has tasks {have}",
            "serve the pipeline it was trained on, or train a policy for this one "
            "(`lokirl train`), or pick another controller (e.g. --controller loki)",
        )
    workers = getattr(spec, "workers", None)
    if workers is not None and int(workers) != config.workers:
        raise ConfigError(
            "--controller",
            str(name),
            f"the policy was trained for a cluster of {workers} workers, not {config.workers}",
            f"pass --workers {workers}, or train a policy for {config.workers} workers",
        )


def precheck_policy(spec: str, pipeline: Pipeline, cluster: Cluster, swap: str) -> None:
    """Refuse a trained-policy spec (``ppo``, ``ppo-v1``, ``ppo:PATH``) that does not fit.

    From its saved feature files alone:
    :func:`lokirl.agents.adapter.check_spec_fits` reads ``model.features.json``
    beside the model without loading the policy (which takes seconds), so a misfit
    is refused at once: a version-1 policy's worker count and tasks, a version-2 or 3
    policy's pipeline, accelerator types, worker range and swap modes. Other specs
    pass.

    Raises:
        ConfigError: the policy does not fit ``pipeline`` on ``cluster`` under ``swap``,
            or its feature file is missing.

    """
    from lokirl.agents.adapter import check_spec_fits, is_policy_spec

    if not is_policy_spec(spec):
        return
    check_spec_fits(spec, pipeline, cluster, swap)
