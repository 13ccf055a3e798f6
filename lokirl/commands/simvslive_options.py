"""The checks of ``lokirl simvslive``'s options, all made before Ray starts.

A bad value met after Ray has started costs its start-up (seconds, a GB of memory)
and, for the solve time or the epoch, ended in a traceback; here each is refused
with the option, what is wrong and the fix.
"""

from __future__ import annotations

import argparse
import math

from lokirl.commands.options import check_dilation, parse_seeds, parse_solver_time
from lokirl.errors import ConfigError


def check_options(args: argparse.Namespace) -> list[int]:
    """Check every option of ``lokirl simvslive`` that needs no cluster; return the seeds.

    ``args.seed`` is set to the first seed (``--seed`` and ``--seeds`` together are
    refused: one of them was silently dropped).

    Raises:
        ConfigError: naming the option, what is wrong and the fix.

    """
    from lokirl.experiments import simvslive as svl

    if args.workers < 1:
        raise ConfigError("--workers", str(args.workers), "must be at least 1", "pass 2")
    if not (args.duration > 0 and math.isfinite(args.duration)):
        raise ConfigError("--duration", str(args.duration), "must be positive", "pass 60")
    if args.seeds and args.seed is not None:
        raise ConfigError(
            "--seed/--seeds",
            f"{args.seed} / {args.seeds}",
            "give one of them (--seed was dropped when --seeds was given)",
            f"pass --seeds {args.seed},... or --seed alone",
        )
    seeds = parse_seeds(args.seeds) if args.seeds else [args.seed or 0]
    args.seed = seeds[0]
    svl.sim_cores(args)  # a bad --sim-cores fails here, before Ray starts
    check_dilation(args.dilation, args.emulate)
    if not (args.sim_overhead_ms >= 0 and math.isfinite(args.sim_overhead_ms)):
        raise ConfigError(
            "--sim-overhead-ms", str(args.sim_overhead_ms), "must be >= 0", "pass 0 or 1.5"
        )
    if not (args.sim_host_cores >= 0 and math.isfinite(args.sim_host_cores)):
        raise ConfigError(
            "--sim-host-cores", str(args.sim_host_cores), "must be >= 0", "pass 0 or 0.5"
        )
    if not (args.epoch >= 0.01 and math.isfinite(args.epoch)):
        raise ConfigError(
            "--epoch",
            str(args.epoch),
            "must be at least 0.01 s (the controller's period)",
            "pass 1",
        )
    parse_solver_time(args.solver_time, measured=True)
    if args.size is not None and not 1 <= args.size <= 8192:
        raise ConfigError("--size", str(args.size), "must be 1..8192 pixels", "pass e.g. --size 64")
    if args.max_in_flight < 1:
        raise ConfigError(
            "--max-in-flight", str(args.max_in_flight), "must be at least 1", "pass e.g. 512"
        )
    if args.num_cpus is not None and args.num_cpus < 1:  # 0 meant "all of them"
        raise ConfigError(
            "--num-cpus", str(args.num_cpus), "must be at least 1", "pass e.g. 2, or leave it out"
        )
    import lokirl.agents  # noqa: F401 - registers ppo: and trigger
    import lokirl.sim  # noqa: F401 - registers the baselines
    from lokirl.core.controllers import make_controller

    make_controller(args.controller)  # an unknown spec fails here, not after Ray's start
    return seeds
