"""How far ahead of demand does the hindsight bound move its plans?

Run from the repository root, e.g.::

    python scripts/hindsight_lead.py --suite validation --cases 'ta*' --seeds 0

Plays ``hindsight`` on each (case, seed) and, for each switch of its schedule to a plan
that carries more (``Plan.max_demand``), counts the seconds from the switch to the first
second whose arrivals exceed what the old plan carried: 0 or less means the switch
followed demand (it was already over), a positive lead means the bound moved ahead of
it. Prints the distribution of leads over all such switches, and the share of switches
the old plan could have kept for 30 s more. A controller that wants the bound's lead
needs a forecast at least that many seconds ahead.
"""

from __future__ import annotations

import argparse
import fnmatch
from collections import Counter

import numpy as np

import lokirl.agents  # noqa: F401 - registers the controllers
from lokirl.agents.actors import actor_factory
from lokirl.agents.rollout import rollout
from lokirl.experiments.runner import make_env
from lokirl.experiments.suites import capacities, case_trace, load_suite, load_unit

#: Seconds after a switch searched for the old plan's overload.
WINDOW_S = 30


def leads(schedule, library, arrivals, epoch_s: float = 1.0) -> list[int | None]:
    """Lead (seconds) of each upward switch of ``schedule`` over ``arrivals`` (None: none).

    ``arrivals`` are per second; the schedule is per epoch of ``epoch_s``.
    """
    out: list[int | None] = []
    for e in range(1, len(schedule)):
        old, new = library[schedule[e - 1]], library[schedule[e]]
        if new.max_demand <= old.max_demand:
            continue
        k = int(round(e * epoch_s))  # the second the switch is issued
        busy = arrivals > old.max_demand
        if k < len(busy) and busy[k]:  # already over: how long since the overload began
            j = k
            while j > 0 and k - j < WINDOW_S and busy[j - 1]:
                j -= 1
            out.append(j - k)
            continue
        over = np.nonzero(busy[k : k + WINDOW_S])[0]
        if len(over):
            out.append(int(over[0]))
            continue
        before = np.nonzero(arrivals[max(0, k - WINDOW_S) : k] > old.max_demand)[0]
        out.append(-(min(k, WINDOW_S) - int(before[-1])) if len(before) else None)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="validation", help="suite name or file")
    ap.add_argument("--cases", default="*", help="case id patterns, comma-separated")
    ap.add_argument("--seeds", default="", help="seeds (default: the suite's), e.g. 0,1")
    args = ap.parse_args(argv)
    suite = load_suite(args.suite)
    pats = [p.strip() for p in args.cases.split(",") if p.strip()]
    cases = [c for c in suite.spec.cases if any(fnmatch.fnmatch(c.id, p) for p in pats)]
    if not cases:
        raise SystemExit(f"hindsight_lead: no case of {suite.name} matches {args.cases!r}")
    all_leads: list[int | None] = []
    for case in cases:
        env = make_env(case)
        trace = case_trace(
            case, load_unit(case, capacities(env.pipeline, env.cluster)), suite.base_dir
        )
        seeds = [int(s) for s in args.seeds.split(",") if s] or list(suite.spec.seeds_of(case))
        for seed in seeds:
            holder = {}
            make = actor_factory("hindsight", trace, {})

            def capture(e, make=make, holder=holder):
                holder["ctl"] = make(e)
                return holder["ctl"]

            rollout(env, capture, seed, trace=trace)
            ctl = holder["ctl"]
            arrivals = np.asarray(env.sim.s_arrivals, dtype=float)
            got = leads(ctl.schedule, ctl.library, arrivals, ctl.epoch_s)
            all_leads += got
            shown = [x for x in got if x is not None]
            print(
                f"{case.id} seed {seed}: {len(got)} upward switches, leads "
                f"{sorted(shown)} s, {got.count(None)} never overloaded"
            )
    known = [x for x in all_leads if x is not None]
    bins = Counter(
        "<=0 (followed demand)" if x <= 0 else "1" if x == 1 else "2" if x == 2
        else "3-5" if x <= 5 else ">5"
        for x in known
    )  # fmt: skip
    n = len(all_leads)
    print(f"\n{n} upward switches over {len(cases)} cases")
    for b in ("<=0 (followed demand)", "1", "2", "3-5", ">5"):
        print(f"  lead {b:<22} {bins.get(b, 0):4d} ({bins.get(b, 0) / max(n, 1):.0%})")
    print(
        f"  old plan never overloaded within {WINDOW_S} s: {all_leads.count(None)} "
        f"({all_leads.count(None) / max(n, 1):.0%})"
    )
    if known:
        pos = [x for x in known if x > 0]
        print(f"  median lead of the switches ahead of demand: {np.median(pos) if pos else 0:g} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
