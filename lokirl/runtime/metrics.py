"""Prometheus exposition of a runtime, read at scrape time, and the hot path's accumulators.

The data plane records into plain accumulators (:class:`Histogram`,
:class:`Window`: a bisect and two additions per observation, no locks, no
registry); :func:`render_metrics` turns them, and the runtime's tallies, into
Prometheus text at scrape time. Conventions (Prometheus naming): times are
``_seconds`` histograms; counters end in ``_total``; the outcome counters
(``lokirl_frames_total{outcome=on_time|late|dropped}``) plus the in-flight gauge
sum to the arrivals counter (``lokirl_frames_arrived_total``), so ``sum()`` over
the outcomes never double-counts.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from typing import Any

#: Bucket upper bounds (seconds) of the latency histograms: 1 ms to 30 s.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class Histogram:
    """A fixed-bucket histogram (Prometheus semantics), cheap enough for the hot path.

    Args:
        buckets: Increasing upper bounds; ``+Inf`` is implied.

    """

    __slots__ = ("buckets", "counts", "sum", "count")

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Record one observation."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """``[(le, cumulative count)]`` including ``+Inf``, as Prometheus wants them."""
        out, acc = [], 0
        for le, n in zip((*self.buckets, math.inf), self.counts, strict=True):
            acc += n
            out.append(("+Inf" if le == math.inf else repr(float(le)), acc))
        return out


class Histograms:
    """Histograms keyed by a label value (a task, a variant), created on first use."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.buckets = buckets
        self.by: dict[str, Histogram] = {}

    def observe(self, key: str, value: float) -> None:
        """Record ``value`` under ``key``."""
        h = self.by.get(key)
        if h is None:
            h = self.by[key] = Histogram(self.buckets)
        h.observe(value)


class Window:
    """Sums over the last ``seconds`` whole seconds, in a ring of one bucket a second.

    Args:
        seconds: Window length.
        fields: How many quantities each bucket sums.

    """

    def __init__(self, seconds: int = 60, fields: int = 2) -> None:
        self.seconds = seconds
        self.stamp = [-1] * seconds
        self.sums = [[0.0] * fields for _ in range(seconds)]

    def add(self, now_s: float, *values: float) -> None:
        """Add ``values`` to the bucket of second ``now_s``."""
        sec = int(now_s)
        i = sec % self.seconds
        row = self.sums[i]
        if self.stamp[i] != sec:
            self.stamp[i] = sec
            for k in range(len(row)):
                row[k] = 0.0
        for k, v in enumerate(values):
            row[k] += v

    def total(self, now_s: float) -> list[float]:
        """Sums over the seconds ``(now - seconds, now]``."""
        sec = int(now_s)
        out = [0.0] * len(self.sums[0])
        for stamp, row in zip(self.stamp, self.sums, strict=True):
            if sec - self.seconds < stamp <= sec:
                for k, v in enumerate(row):
                    out[k] += v
        return out


class RepeatedFailure:
    """Logs a failure that keeps recurring as one line, then one line a window with its count.

    The first failure after a quiet spell is logged at once (one line; the
    traceback only at DEBUG); later ones are counted and reported as
    ``"<what> failed N times in the last 60 s: <error>"`` once the window is over.

    Args:
        logger: Where to log.
        what: What fails (``"controller tick"``).
        window_s: Seconds between summary lines.

    """

    def __init__(self, logger: logging.Logger, what: str, window_s: float = 60.0) -> None:
        self.log = logger
        self.what = what
        self.window_s = window_s
        self.total = 0
        self.pending = 0
        self.last_error = ""
        self.reported_at = -math.inf

    def failed(self, exc: BaseException) -> None:
        """Record one failure (call inside the ``except`` block)."""
        self.total += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now - self.reported_at >= self.window_s and self.pending == 0:
            self.reported_at = now
            self.log.error("%s failed: %s (carrying on)", self.what, self.last_error)
            self.log.debug("%s failure", self.what, exc_info=exc)
        else:
            self.pending += 1
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Log the count of failures not yet reported once their window is over."""
        now = time.monotonic() if now is None else now
        if self.pending and now - self.reported_at >= self.window_s:
            self.log.error(
                "%s failed %d times in the last %.0f s: %s",
                self.what,
                self.pending,
                now - self.reported_at,
                self.last_error,
            )
            self.pending = 0
            self.reported_at = now


def one_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's message (Ray's carry a traceback)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _hist_family(name: str, doc: str, label: str | None, hists: dict[str, Histogram]) -> Any:
    from prometheus_client.core import HistogramMetricFamily

    fam = HistogramMetricFamily(name, doc, labels=[label] if label else None)
    for key, h in sorted(hists.items()):
        fam.add_metric([key] if label else [], h.cumulative(), sum_value=h.sum)
    return fam


class _Collector:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self):  # noqa: ANN201, C901 - one family after another
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        rt = self.runtime
        p = rt.plane
        frames = p.frame_tally()
        for kind, tally in (("frames", frames), ("subrequests", p.sub_tally())):
            a = CounterMetricFamily(f"lokirl_{kind}_arrived", f"{kind.capitalize()} that arrived")
            a.add_metric([], tally.arrived)
            yield a
            c = CounterMetricFamily(
                f"lokirl_{kind}",
                f"{kind.capitalize()} finished, by outcome (on_time, late, dropped with a "
                f"reason); these plus lokirl_{kind}_in_flight sum to lokirl_{kind}_arrived_total",
                labels=["outcome", "reason"],
            )
            c.add_metric(["on_time", ""], tally.on_time)
            c.add_metric(["late", ""], tally.late)
            for reason, n in sorted(tally.dropped.items()):
                c.add_metric(["dropped", reason], n)
            yield c
            g = GaugeMetricFamily(f"lokirl_{kind}_in_flight", f"{kind.capitalize()} in flight")
            g.add_metric([], tally.in_flight)
            yield g
        acc = GaugeMetricFamily(
            "lokirl_system_accuracy",
            "Mean path accuracy (profile values, 0-100) of on-time leaf sub-requests",
        )
        acc.add_metric([], p.accuracy)
        yield acc
        eff = GaugeMetricFamily(
            "lokirl_effective_accuracy",
            "Effective accuracy (0-100): path accuracy of on-time frames summed over all "
            "arrived frames, a dropped, late or unfinished frame counting 0",
        )
        eff.add_metric([], frames.effective_accuracy)
        yield eff
        window = getattr(p, "window", None)
        if window is not None:
            n, acc_sum, on_time = window.total(p.now())
            wa = GaugeMetricFamily(
                "lokirl_effective_accuracy_window",
                f"Effective accuracy (0-100) of the frames finished in the last "
                f"{window.seconds} s (a dropped or late frame counting 0)",
                labels=["window"],
            )
            wa.add_metric([f"{window.seconds}s"], acc_sum / n if n else 0.0)
            yield wa
            ws = GaugeMetricFamily(
                "lokirl_frame_accuracy_window",
                f"Mean path accuracy (0-100) of the frames finished on time in the last "
                f"{window.seconds} s",
                labels=["window"],
            )
            ws.add_metric([f"{window.seconds}s"], acc_sum / on_time if on_time else 0.0)
            yield ws
        hists = getattr(p, "hist", None)
        if hists is not None:
            yield _hist_family(
                "lokirl_frame_latency_seconds",
                "End-to-end latency of frames served (on time or late)",
                None,
                {"": hists["frame"]},
            )
            yield _hist_family(
                "lokirl_stage_latency_seconds",
                "Time a sub-request spends at a stage (queue wait + batch), by task",
                "task",
                hists["stage"].by,
            )
            yield _hist_family(
                "lokirl_queue_wait_seconds",
                "Time a sub-request waits in its group's queue before its batch is sent, by task",
                "task",
                hists["queue"].by,
            )
            yield _hist_family(
                "lokirl_batch_service_seconds",
                "Round trip of a batch to its worker actor, by variant",
                "variant",
                hists["batch"].by,
            )
        q = GaugeMetricFamily("lokirl_queue_length", "Requests waiting per task", labels=["task"])
        for task, n in p.queue_lengths().items():
            q.add_metric([task], n)
        yield q
        w = GaugeMetricFamily("lokirl_active_workers", "Workers serving or loading a plan variant")
        w.add_metric([], p.active_workers())
        yield w
        yield from _worker_families(p)
        d = GaugeMetricFamily("lokirl_demand_estimate", "EWMA root demand estimate (frames/s)")
        d.add_metric([], rt.demand_estimate)
        yield d
        s = CounterMetricFamily("lokirl_solves", "Allocator solves run")
        s.add_metric([], rt.solves)
        yield s
        st = CounterMetricFamily(
            "lokirl_solve_timeouts", "Solves abandoned at the solve timeout (the plan stayed)"
        )
        st.add_metric([], getattr(rt, "solve_timeouts", 0))
        yield st
        r = CounterMetricFamily(
            "lokirl_reconfigurations", "Swaps started: workers told to load a new variant"
        )
        r.add_metric([], rt.reconfigurations)
        yield r
        e = CounterMetricFamily("lokirl_controller_tick_errors", "Controller ticks that raised")
        e.add_metric([], rt.tick_errors)
        yield e
        failures = getattr(rt, "worker_failures", None)
        if failures is not None:
            f = CounterMetricFamily(
                "lokirl_worker_failures", "Workers found failed, by kind", labels=["kind"]
            )
            for kind, n in sorted(failures.items()):
                f.add_metric([kind], n)
            yield f
            rr = CounterMetricFamily("lokirl_worker_replacements", "Worker actors re-created")
            rr.add_metric([], getattr(rt, "replacements", 0))
            yield rr
        ready = getattr(rt, "readiness", None)
        if callable(ready):
            ok, _ = ready()
            rg = GaugeMetricFamily("lokirl_ready", "1 when /readyz answers 200")
            rg.add_metric([], 1.0 if ok else 0.0)
            yield rg
        if p.plan is not None:
            pa = GaugeMetricFamily(
                "lokirl_plan_expected_accuracy", "Expected accuracy of the running plan"
            )
            pa.add_metric([], p.plan.expected_accuracy)
            yield pa
            pc = GaugeMetricFamily("lokirl_plan_max_demand", "Demand the running plan carries")
            pc.add_metric([], p.plan.max_demand)
            yield pc


#: Worker states exposed by ``lokirl_worker_state`` (one series each, 1 for the current).
WORKER_STATES = ("idle", "loading", "ready", "dead")


def _worker_families(p: Any):  # noqa: ANN202
    from prometheus_client.core import GaugeMetricFamily

    workers = getattr(p, "workers", None)
    if not workers:
        return
    state = GaugeMetricFamily(
        "lokirl_worker_state",
        "1 for the worker's current state (idle, loading, ready, dead)",
        labels=["worker", "state"],
    )
    busy = GaugeMetricFamily(
        "lokirl_worker_busy", "1 while the worker runs a batch", labels=["worker", "variant"]
    )
    queue = GaugeMetricFamily(
        "lokirl_worker_queue_length",
        "Requests queued at the group the worker serves now (shared by its group)",
        labels=["worker", "variant"],
    )
    restarts = GaugeMetricFamily(
        "lokirl_worker_restarts", "Times this worker slot's actor was re-created", labels=["worker"]
    )
    by_variant: dict[str, list[int]] = {}
    for w in workers:
        wid = str(w.wid)
        for s in WORKER_STATES:
            state.add_metric([wid, s], 1.0 if w.status == s else 0.0)
        variant = w.serving.variant if w.serving is not None else (w.variant or "")
        busy.add_metric([wid, variant], 1.0 if w.busy else 0.0)
        queue.add_metric([wid, variant], len(w.serving.queue) if w.serving is not None else 0)
        restarts.add_metric([wid], getattr(w, "restarts", 0))
        if variant and w.status != "dead":
            v = by_variant.setdefault(variant, [0, 0, 0])
            v[0] += 1
            v[1] += int(w.busy)
    for g in list(getattr(p, "groups", [])) + list(getattr(p, "draining", [])):
        by_variant.setdefault(g.variant, [0, 0, 0])[2] += len(g.queue)
    yield state
    yield busy
    yield queue
    yield restarts
    vw = GaugeMetricFamily(
        "lokirl_variant_workers", "Live workers serving a variant", labels=["variant"]
    )
    vb = GaugeMetricFamily(
        "lokirl_variant_busy_workers", "Workers running a batch of a variant", labels=["variant"]
    )
    vq = GaugeMetricFamily(
        "lokirl_variant_queue_length", "Requests queued for a variant", labels=["variant"]
    )
    for variant, (n, b, qn) in sorted(by_variant.items()):
        vw.add_metric([variant], n)
        vb.add_metric([variant], b)
        vq.add_metric([variant], qn)
    yield vw
    yield vb
    yield vq


def render_metrics(runtime: Any) -> tuple[bytes, str]:
    """The runtime's metrics in Prometheus text format, and the content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(_Collector(runtime))
    return generate_latest(registry), CONTENT_TYPE_LATEST
