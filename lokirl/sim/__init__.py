"""lokirl.sim: a simpy discrete-event model of a cluster serving a pipeline.

Importing the package registers the baseline controllers (``inferline``,
``proteus``, ``static``) next to the core's ``loki``.
"""

from lokirl.sim import baselines as baselines
from lokirl.sim.config import (
    SOLVE_TIME_BY_PHASE,
    ConservationError,
    SimConfig,
    SimResult,
    modelled_solve_time,
)
from lokirl.sim.engine import Planner, Simulation, simulate

__all__ = [
    "SOLVE_TIME_BY_PHASE",
    "ConservationError",
    "Planner",
    "SimConfig",
    "SimResult",
    "Simulation",
    "baselines",
    "modelled_solve_time",
    "simulate",
]
