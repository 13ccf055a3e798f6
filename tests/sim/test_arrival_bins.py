"""The sub-second arrival counts both engines hand the controller."""

import numpy as np
import pytest

from lokirl.core.controller import KEEP, ControlContext, Decision
from lokirl.core.pipeline import Cluster
from lokirl.sim.config import SimConfig
from lokirl.sim.engine import simulate
from lokirl.sim.fluid import FluidSimulation
from lokirl.sim.host import ARRIVAL_BIN_S
from lokirl.traces.types import RateSeries

from .conftest import tiny_pipeline


class Recorder:
    """Solves once, then keeps; records every context."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[ControlContext] = []

    def decide(self, context: ControlContext) -> Decision:
        self.seen.append(context)
        if context.plan is None:
            return Decision(resolve=True, demand=40.0)
        return KEEP


def _trace() -> RateSeries:
    rates = np.concatenate([np.full(4, 20.0), np.full(4, 60.0)])
    return RateSeries(rates=rates, bin_s=1.0, name="steps")


def test_simpy_bins_sum_to_the_second_just_ended() -> None:
    rec = Recorder()
    cfg = SimConfig(duration_s=8.0)
    simulate(tiny_pipeline(), Cluster({"gpu": 4}), _trace(), rec, cfg, np.random.default_rng(3))
    first, rest = rec.seen[0], rec.seen[1:]
    assert first.arrival_bins == () and first.arrival_bin_s == 0.0
    assert len(rest) == 7
    for ctx in rest:
        assert ctx.arrival_bin_s == ARRIVAL_BIN_S
        assert len(ctx.arrival_bins) == round(1.0 / ARRIVAL_BIN_S)
        assert sum(ctx.arrival_bins) == ctx.demand_history[-1]
    # the step from 20 to 60 frames/s shows in the counts
    assert sum(rest[-1].arrival_bins) > 2 * sum(rest[1].arrival_bins)


@pytest.mark.parametrize("epoch_s", [1.0, 2.0])
def test_fluid_bins_are_each_epochs_arrivals(epoch_s) -> None:
    sim = FluidSimulation(
        tiny_pipeline(),
        Cluster({"gpu": 4}),
        _trace(),
        SimConfig(duration_s=8.0, epoch_s=epoch_s),
        np.random.default_rng(3),
    )
    sim.reset()
    sim.apply(Decision(resolve=True, demand=40.0))
    seen = 0
    while not sim.done:
        ctx = sim.step_epoch()
        assert len(ctx.arrival_bins) == round(epoch_s / ARRIVAL_BIN_S)
        # the fluid engine's steps never cross a second: each epoch's bins are
        # exactly its seconds' arrivals
        lo = int(round(ctx.now_s - epoch_s))
        assert sum(ctx.arrival_bins) == sim.s_arrivals[lo : int(round(ctx.now_s))].sum()
        seen += 1
    assert seen == 8 / epoch_s and sim.s_arrivals.sum() > 0


def test_simpy_bins_with_two_second_epochs() -> None:
    rec = Recorder()
    cfg = SimConfig(duration_s=8.0, epoch_s=2.0)
    simulate(tiny_pipeline(), Cluster({"gpu": 4}), _trace(), rec, cfg, np.random.default_rng(3))
    for ctx in rec.seen[1:]:
        assert len(ctx.arrival_bins) == 40
        assert sum(ctx.arrival_bins) == sum(ctx.demand_history[-2:])


def test_bins_need_their_width() -> None:
    with pytest.raises(ValueError, match="arrival_bin_s"):
        ControlContext(now_s=1.0, demand_history=(1.0,), arrival_bins=(1.0,))
