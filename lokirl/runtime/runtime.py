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
logged and the loop carries on. A worker whose actor dies forces a re-plan on the
workers left.
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
from lokirl.core.controller import ControlContext, Controller, Decision, ewma_demand
from lokirl.core.pipeline import Cluster, Pipeline
from lokirl.core.plan import Plan
from lokirl.core.reconfig import SwapMode, check_swap_mode
from lokirl.errors import ConfigError
from lokirl.runtime.dataplane import DataPlane, WorkerState, _is_actor_death, percentile
from lokirl.runtime.emulated import check_dilation, dilate_pipeline
from lokirl.runtime.models import ModelSource, model_sources

log = logging.getLogger(__name__)


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
        use_gpu: One GPU per worker; ``None``: when the Ray cluster has GPUs.
        worker_num_cpus: CPUs a CPU worker actor claims.
        worker_threads: Torch threads of a CPU worker.
        grace_s: Seconds past a deadline an actor call may take before it is abandoned.
        load_timeout_s: Seconds a variant load may take.
        solver: MILP solver.
        solver_time_limit_s: Time limit of one solve.
        history_s: Seconds of demand history the controller sees.
        seed: Seed of routing and branching draws.
        solve_in_subprocess: Run solves in a separate (spawned) process rather than
            a thread of the ingress: the allocator's Python work then does not hold
            the ingress's GIL. Falls back to a thread (with a warning) when the
            solve cannot be pickled (e.g. a controller whose planner holds a lock)
            or the solving process dies.
        health_check_s: Seconds between liveness pings of the workers that are not
            running a batch (a dead idle worker leads to a re-plan); 0: off.
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
    worker_num_cpus: float = 0.25
    worker_threads: int = 1
    grace_s: float = 2.0
    load_timeout_s: float = 120.0
    solver: str = "cbc"
    solver_time_limit_s: float = 5.0
    history_s: int = 120
    seed: int = 0
    solve_in_subprocess: bool = True
    health_check_s: float = 2.0
    inline_bytes: int = 64 * 1024
    allocator: dict[str, Any] = field(default_factory=dict)
    swap: SwapMode = "overlap"
    emulate: bool = False
    dilation: float = 1.0

    def __post_init__(self) -> None:
        check_swap_mode(self.swap)
        check_dilation(self.dilation)


def run_solve(fn: Any, args: tuple[Any, ...]) -> tuple[Plan, int, float]:
    """Run one solve; returns ``(plan, pid of the solving process, seconds inside the solve)``.

    Module level so a spawned process can unpickle it.
    """
    start = time.perf_counter()
    plan = fn(*args)
    return plan, os.getpid(), time.perf_counter() - start


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
        self.controller = controller or make_controller(self.config.controller)
        accel = self.config.accelerator or self.pipeline.accelerators[0]
        if accel not in self.pipeline.accelerators:
            raise ConfigError(
                "--accelerator",
                accel,
                f"pipeline {self.pipeline.name} has no profile for it",
                f"use {', '.join(self.pipeline.accelerators)}",
            )
        self.accelerator = accel
        self.sources: dict[str, ModelSource] = model_sources(
            pipeline_file(self.config.pipeline),
            [v.name for v in self.pipeline.variants()],
            self.config.input_size,
        )
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
        )
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lokirl-solve")
        self.process_pool: concurrent.futures.ProcessPoolExecutor | None = None
        if self.config.solve_in_subprocess:
            import multiprocessing

            self.process_pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn")
            )
        self.solving = False
        self.solves = 0
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
        self.force_replan = False
        self.demand_estimate = 0.0
        self._control_task: asyncio.Task | None = None
        self._health_task: asyncio.Task | None = None
        self.health_checks = 0
        self._load_tasks: set[asyncio.Task] = set()
        self._last_frames = (0, 0)  # (finalised, violations) at the last tick
        self.recent_violation = 0.0
        self.started = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the worker actors, solve and install the first plan, start the control loop."""
        from lokirl.runtime.worker import make_worker

        cfg = self.config
        if cfg.workers < 1:
            raise ConfigError("--workers", str(cfg.workers), "must be at least 1", "pass 2")
        for i in range(cfg.workers):
            actor = make_worker(
                i,
                cfg.use_gpu,
                cfg.worker_num_cpus,
                cfg.worker_threads,
                cfg.seed,
                emulate=cfg.emulate,
                pipeline=self.pipeline,
                accelerator=self.accelerator,
            )
            self.plane.workers.append(WorkerState(i, actor))
        demand = cfg.initial_demand if cfg.initial_demand is not None else 1.0
        plan = await self._solve(Decision(resolve=True, demand=demand, reason="initial"))
        await self.install(plan, wait=True)
        if self.plane.frames.arrived == 0:
            # Time 0 is when serving starts (as in the simulator): seconds of demand
            # history and controller ticks then line up with the arrivals.
            self.plane.restart_clock()
        for w in self.plane.workers:
            w.loop_task = asyncio.create_task(self.plane.worker_loop(w))
        self.last_solve_at = self.plane.now()
        self._control_task = asyncio.create_task(self._control_loop())
        self.started = True

    async def stop(self) -> None:
        """Stop the control loop, end every queued request (``shutdown``), kill the actors."""
        import ray

        for task in (self._control_task, self._health_task):
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
        if self.process_pool is not None:
            self.process_pool.shutdown(wait=False, cancel_futures=True)
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
        if self.process_pool is not None:
            try:
                result = await loop.run_in_executor(self.process_pool, run_solve, fn, args)
            except concurrent.futures.process.BrokenProcessPool as exc:
                log.warning("solving in a thread: the solving process died (%s)", exc)
                self._drop_process_pool()
            else:
                self.solves_in_process += 1
        if result is None:
            result = await loop.run_in_executor(self.executor, run_solve, fn, args)
        plan, pid, inner = result
        wall = time.perf_counter() - start
        self.solves += 1
        self.solver_wall_s += wall
        self.solver_inner_s += inner
        self.last_solve_time_s = wall
        self.last_solve_pid = pid
        return plan

    def _drop_process_pool(self) -> None:
        if self.process_pool is not None:
            self.process_pool.shutdown(wait=False, cancel_futures=True)
            self.process_pool = None

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
            ref = w.actor.load.remote(variant, src, dict(v.branching), True, keep_old)
            res = await asyncio.wait_for(
                asyncio.wrap_future(ref.future()), self.config.load_timeout_s
            )
        except Exception as exc:  # noqa: BLE001
            log.warning("worker %d: loading %s failed: %s", w.wid, variant, exc)
            if _is_actor_death(exc) or isinstance(exc, asyncio.TimeoutError):
                self.plane.mark_dead(w)
            elif w.token == token:
                self.plane.load_failed(w)
                self.force_replan = True
            return
        self.reconfigurations += 1
        self.load_times.append(
            {"worker": w.wid, "variant": variant, "load_s": res["load_s"], "t": self.plane.now()}
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
                    await asyncio.wrap_future(w.actor.switch.remote(variant).future())
                except Exception as exc:  # noqa: BLE001 - the old variant stays loaded
                    log.warning("worker %d: switching to %s failed: %s", w.wid, variant, exc)

    def _on_worker_lost(self, wid: int) -> None:
        log.warning("worker %d lost: re-planning on the workers left", wid)
        self.force_replan = True

    # ------------------------------------------------------------------ control loop
    def context(self, now_s: float | None = None) -> ControlContext:
        """The snapshot the controller sees (at ``now_s``: a tick's scheduled time)."""
        p = self.plane
        now = p.now() if now_s is None else now_s
        return ControlContext(
            now_s=now,
            demand_history=p.history(self.config.history_s),
            plan=p.plan,
            time_since_solve_s=now - self.last_solve_at,
            last_solve_time_s=self.last_solve_time_s,
            solving=self.solving,
            slo_violation_ratio=self.recent_violation,
            accuracy=p.accuracy,
            queue_lengths=p.queue_lengths(),
            active_workers=p.active_workers(),
        )

    async def _control_loop(self) -> None:
        # Ticks are scheduled at whole epochs from the start; the controller sees
        # the scheduled time, so the jitter of a wake-up cannot make "a period
        # since the last solve" look shorter than it is and skip a solve.
        epoch = self.config.epoch_s
        base = self.plane.now()
        self.last_solve_at = base
        k = 0
        every = self.config.health_check_s
        next_health = base + every
        while True:
            k += 1
            tick_at = base + k * epoch
            await asyncio.sleep(max(0.0, tick_at - self.plane.now()))
            late = self.plane.now() - tick_at
            if late >= epoch:  # the loop was held up: skip the ticks missed, do not catch up
                k += int(late // epoch)
                tick_at = base + k * epoch
            start = time.perf_counter()
            try:
                self._tick(tick_at)
            except Exception:  # noqa: BLE001 - the loop never dies
                self.tick_errors += 1
                log.exception("controller tick failed; carrying on")
            self.tick_ms.append((time.perf_counter() - start) * 1000.0)
            if len(self.tick_ms) > 1000:
                del self.tick_ms[:500]
            now = self.plane.now()
            if every > 0 and now >= next_health:
                next_health = now + every
                if self._health_task is None or self._health_task.done():
                    self._health_task = asyncio.create_task(self.check_health())

    async def check_health(self) -> list[int]:
        """Ping every live worker not running a batch; returns the ids found dead.

        A worker found dead leaves its group and forces a re-plan (as one that
        dies with a batch does). A ping that merely times out proves nothing (the
        actor may have taken a batch meanwhile) and is ignored.
        """
        ws = [w for w in self.plane.workers if w.status in ("ready", "idle") and not w.busy]
        if not ws:
            return []
        self.health_checks += 1
        futs = [asyncio.wrap_future(w.actor.ping.remote().future()) for w in ws]
        await asyncio.wait(futs, timeout=self.plane.slo_s + self.config.grace_s)
        dead = []
        for w, fut in zip(ws, futs, strict=True):
            if not fut.done():
                fut.cancel()
                continue
            exc = fut.exception()
            if exc is not None and _is_actor_death(exc) and w.status != "dead":
                log.warning("worker %d failed its health check", w.wid)
                self.plane.mark_dead(w)
                dead.append(w.wid)
        return dead

    def _tick(self, tick_at: float | None = None) -> None:
        p = self.plane
        done = p.frames.on_time + p.frames.late + sum(p.frames.dropped.values())
        viol = p.frames.late + sum(p.frames.dropped.values())
        d_done, d_viol = done - self._last_frames[0], viol - self._last_frames[1]
        self.recent_violation = d_viol / d_done if d_done else 0.0
        self._last_frames = (done, viol)
        p.reap()
        self.demand_estimate = ewma_demand(p.history(self.config.history_s))
        if p.plan is not None:
            p.rebuild(self.demand_estimate)
        ctx = self.context(tick_at)
        decision = self.controller.decide(ctx)
        if self.force_replan and not self.solving:
            self.force_replan = False
            decision = Decision(
                resolve=True,
                demand=max(self.demand_estimate, 1.0),
                warm_start=True,
                reason="worker lost",
            )
        if len(self.decisions) < 10000:
            self.decisions.append(
                {"t": round(ctx.now_s, 3), "resolve": decision.resolve, "reason": decision.reason}
            )
        if decision.resolve and not self.solving:
            self.solving = True
            self.last_solve_at = ctx.now_s
            asyncio.get_running_loop().create_task(self._solve_and_install(decision))

    async def _solve_and_install(self, decision: Decision) -> None:
        try:
            plan = await self._solve(decision)
            await self.install(plan)
        except Exception:  # noqa: BLE001
            self.tick_errors += 1
            log.exception("solve failed; the running plan stays in force")
        finally:
            self.solving = False

    # ------------------------------------------------------------------ views
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
            "load_times": self.load_times[-20:],
            "tick_errors": self.tick_errors,
            "health_checks": self.health_checks,
            "config": asdict(self.config),
        }
