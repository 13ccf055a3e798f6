"""Prometheus exposition of a runtime's tallies, read at scrape time (nothing on the hot path)."""

from __future__ import annotations

from typing import Any


class _Collector:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self):  # noqa: ANN201
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        rt = self.runtime
        p = rt.plane
        frames = p.frame_tally()
        for kind, tally in (("frames", frames), ("subrequests", p.sub_tally())):
            c = CounterMetricFamily(
                f"lokirl_{kind}", f"{kind.capitalize()} by outcome", labels=["outcome", "reason"]
            )
            c.add_metric(["arrived", ""], tally.arrived)
            c.add_metric(["on_time", ""], tally.on_time)
            c.add_metric(["late", ""], tally.late)
            for reason, n in tally.dropped.items():
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
        q = GaugeMetricFamily("lokirl_queue_length", "Requests waiting per task", labels=["task"])
        for task, n in p.queue_lengths().items():
            q.add_metric([task], n)
        yield q
        w = GaugeMetricFamily("lokirl_active_workers", "Workers serving or loading a plan variant")
        w.add_metric([], p.active_workers())
        yield w
        d = GaugeMetricFamily("lokirl_demand_estimate", "EWMA root demand estimate (frames/s)")
        d.add_metric([], rt.demand_estimate)
        yield d
        s = CounterMetricFamily("lokirl_solves", "Allocator solves run")
        s.add_metric([], rt.solves)
        yield s
        r = CounterMetricFamily("lokirl_reconfigurations", "Workers that loaded a new variant")
        r.add_metric([], rt.reconfigurations)
        yield r
        e = CounterMetricFamily("lokirl_controller_tick_errors", "Controller ticks that raised")
        e.add_metric([], rt.tick_errors)
        yield e
        if p.plan is not None:
            pa = GaugeMetricFamily(
                "lokirl_plan_expected_accuracy", "Expected accuracy of the running plan"
            )
            pa.add_metric([], p.plan.expected_accuracy)
            yield pa
            pc = GaugeMetricFamily("lokirl_plan_max_demand", "Demand the running plan carries")
            pc.add_metric([], p.plan.max_demand)
            yield pc


def render_metrics(runtime: Any) -> tuple[bytes, str]:
    """The runtime's metrics in Prometheus text format, and the content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(_Collector(runtime))
    return generate_latest(registry), CONTENT_TYPE_LATEST
