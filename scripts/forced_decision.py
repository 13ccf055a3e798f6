"""Play ``lokirl simvslive``'s simulated side with one decision forced (a diagnostic).

Live and simulated runs of a policy can part at one decision (a re-solve live where the
simulator kept its plan, or the reverse) and lose very different numbers of frames
afterwards. Is the difference the live path's, or what the policy does after that
decision? This plays the simulator exactly as ``lokirl simvslive`` does for one seed
(same options, same arrivals, same per-batch overhead), optionally replacing the
controller's decision at ``--force-at`` seconds (simulated, dilated, as the solve logs
print them) by a warm re-solve at ``--headroom`` x the policy's own base demand, as a
learned controller's re-solve reads (``policy: warm re-solve xH (forced)``), and logs
every decision: the context (recent frame violations, last second's demand, the running
plan's nominal capacity and accuracy, queues), the fallback's proposal where the
controller has one, and what was decided. Run from the repository root, e.g.::

    python scripts/forced_decision.py --force-at 84 --log forced.json -- \\
        --pipeline traffic_analysis --emulate --dilation 2 --workers 20 \\
        --trace diurnal_600s_x3.csv --speedup 5 --scale 50:250 --duration 360 \\
        --sim-overhead-ms 4 --controller ppo --seed 4

Prints the violated frames, the solves and reconfigurations, and, after the forced
decision, how many decisions kept the plan while the recent frame violations were 5% or
more (and in how many of those the fallback proposed a change).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

#: Recent frame-violation ratio from which a kept plan counts as kept through violations.
VIOLATING = 0.05


class ForcedDecision:
    """A controller whose decision at one moment is replaced, every decision logged."""

    def __init__(self, inner: Any, at_s: float | None, headroom: float) -> None:
        self.inner = inner
        self.at_s = at_s
        self.headroom = headroom
        self.log: list[dict[str, Any]] = []
        self._proposal: Any = None
        self._recording: Any = None

    def _policy(self) -> Any:
        """The policy deciding (a policy set's bound member), its fallback recorded."""
        policy = getattr(self.inner, "active", None) or self.inner
        fallback = getattr(policy, "_fallback", None)
        if fallback is not None and self._recording is not fallback:
            # what the fallback proposes, once per epoch, without calling it again
            for method in ("decide", "decide_horizons", "decide_settings"):
                if hasattr(fallback, method):
                    self._record(fallback, method)
            self._recording = fallback
        return policy

    def _record(self, fallback: Any, method: str) -> None:
        original = getattr(fallback, method)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            self._proposal = out[-1] if isinstance(out, list | tuple) else out
            return out

        object.__setattr__(fallback, method, recorded)

    def __getattr__(self, name: str) -> Any:  # bind, plan, name, ...: the controller's
        return getattr(self.inner, name)

    def decide(self, context: Any) -> Any:
        """The controller's decision, or the forced one at ``at_s``; logged."""
        from lokirl.core.controller import Decision
        from lokirl.envs.features import POLICY_REASON, base_demand

        policy = self._policy()
        self._proposal = None
        decision = self.inner.decide(context)
        forced = self.at_s is not None and abs(context.now_s - self.at_s) < 1e-6
        if forced:
            spec = policy.spec
            fc = policy._tracker(context)  # the forecast it read this epoch (idempotent)
            decision = Decision(
                resolve=True,
                demand=max(0.0, base_demand(spec, context, fc)) * self.headroom,
                warm_start=True,
                churn_weight=spec.warm_churn_weight,
                reason=f"{POLICY_REASON} warm re-solve x{self.headroom:g} (forced)",
            )
        plan, hist = context.plan, context.demand_history
        proposal = self._proposal
        self.log.append(
            {
                "t": context.now_s,
                "forced": forced,
                "resolve": bool(decision.resolve),
                "reason": decision.reason,
                "fallback": None
                if proposal is None
                else {"resolve": bool(proposal.resolve), "reason": proposal.reason},
                "violations": context.slo_violation_ratio,
                "demand": hist[-1] if hist else None,
                "plan_capacity": plan.max_demand if plan is not None else None,
                "plan_accuracy": plan.expected_accuracy if plan is not None else None,
                "queues": dict(context.queue_lengths),
            }
        )
        return decision


def kept_through_violations(log: list[dict[str, Any]], after_s: float) -> dict[str, int]:
    """Decisions after ``after_s``: all, kept at >= 5% violations, fallback proposing a change."""
    later = [e for e in log if e["t"] > after_s]
    kept = [e for e in later if not e["resolve"] and e["violations"] >= VIOLATING]
    proposed = [e for e in kept if e["fallback"] and e["fallback"]["resolve"]]
    return {
        "decisions": len(later),
        "kept_violating": len(kept),
        "fallback_proposed": len(proposed),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="%(prog)s [--force-at S] [--headroom H] [--log FILE] -- SIMVSLIVE OPTIONS",
    )
    ap.add_argument("--force-at", type=float, help="the decision replaced (s, as solve logs print)")
    ap.add_argument("--headroom", type=float, default=1.6, help="its headroom (default 1.6)")
    ap.add_argument("--log", help="write every decision here (JSON)")
    ours, rest = ap.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]

    import lokirl.core.controllers as controllers
    from lokirl.cli import build_parser
    from lokirl.commands.simvslive import (
        arrivals_for,
        check_options,
        check_workers,
        options_of,
        resolve_rescale,
    )
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.experiments import simvslive as svl

    args = build_parser().parse_args(["simvslive", *rest])
    check_options(args)
    pipeline = load_pipeline(args.pipeline)
    check_workers(pipeline, args.workers)
    args.scale = resolve_rescale(args.scale, pipeline, args.workers)
    trace = arrivals_for(args)
    opts = options_of(args)
    made: list[ForcedDecision] = []
    real = controllers.make_controller

    def make(spec: str, **kw: Any) -> ForcedDecision:
        made.append(ForcedDecision(real(spec, **kw), ours.force_at, ours.headroom))
        return made[-1]

    controllers.make_controller = make
    try:
        demand0 = svl.initial_rate(trace.arrivals_s, opts.epoch * opts.dilation)
        res = svl.run_sim(pipeline, trace, opts, demand0)
    finally:
        controllers.make_controller = real
    log = made[-1].log
    violated = round(res["frame_slo_violation_ratio"] * res["frames"])
    print(f"seed {opts.seed}: {violated} violated frames of {res['frames']}")
    print(f"solves: {res['solve_log']}; reconfigurations {res['reconfigurations']}")
    if ours.force_at is not None:
        k = kept_through_violations(log, ours.force_at)
        print(
            f"after {ours.force_at:g} s: {k['decisions']} decisions, {k['kept_violating']} kept "
            f"the plan at >= {VIOLATING:.0%} recent frame violations (the fallback proposed a "
            f"change in {k['fallback_proposed']} of them)"
        )
    if ours.log:
        with open(ours.log, "w") as f:
            json.dump({"result": {**res, "batches_by_variant": None}, "decisions": log}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
