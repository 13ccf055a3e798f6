"""How much do the controllers' outcomes hang on milliseconds of arrival timing?

Run from the repository root on the copies of one ``lokirl bench --arrival-jitter``
command, e.g.::

    for k in 0 1 2 3 4; do
        lokirl bench --suite validation --controllers ppo,trigger-tuned \\
            --arrival-jitter 4 --jitter-copy $k --jobs 2 --out runs/timing/c$k
    done
    python scripts/timing_spread.py runs/timing/c*/bench__* --controller ppo \\
        --reference trigger-tuned

Prints, per controller, the standard deviation of the frame violation ratio and the
reward over the copies (mean over (case, seed)) beside that over the seeds of copy 0
(other Poisson draws of the same case), and the share of episodes whose solve count is
not the same in every copy; then ``--controller``'s paired reward against
``--reference`` in each copy and on the means over the copies (95% hierarchical
bootstrap over cases, as ``lokirl bench`` reports it).
"""

from __future__ import annotations

import argparse

from lokirl.experiments.runner import Results
from lokirl.experiments.stats import compare
from lokirl.experiments.timing import copy_spread, pooled_copies


def _interval(rows, controller: str, reference: str, n_boot: int) -> str:
    iv = compare(rows, "reward", reference, [controller, reference], n_boot=n_boot)[controller]
    m = iv["overall"]["mean"]
    return f"{m.estimate:+.2f} [{m.lo:+.2f}, {m.hi:+.2f}] ({m.cases} cases)"


def main(argv: list[str] | None = None) -> int:
    """Print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders of the copies (one per --jitter-copy)")
    ap.add_argument("--controller", help="the controller read against --reference")
    ap.add_argument("--reference", help="the baseline it is read against")
    ap.add_argument("--bootstrap", type=int, default=2000, help="resamples (default 2000)")
    args = ap.parse_args(argv)
    runs = [Results.read(p, "runs") for p in args.runs]
    runs.sort(key=lambda r: r.meta["arrival_timing"]["copy"])
    timing = runs[0].meta["arrival_timing"]
    print(
        f"{len(runs)} copies (up to {timing['jitter_ms']:g} ms later), "
        f"suite {runs[0].meta['suite']}, commit {runs[0].meta['commit']}"
    )
    print(
        "| controller | frame viol. sd over copies | over seeds | ratio "
        "| reward sd over copies | over seeds | ratio | solves differ | episodes |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    fv = copy_spread(runs, "frame_violation_ratio")
    rw = copy_spread(runs, "reward")
    for f, r in zip(fv, rw, strict=True):
        print(
            f"| {f.controller} | {100 * f.within:.2f} pts | {100 * f.between:.2f} pts "
            f"| {f.ratio:.2f} | {r.within:.2f} | {r.between:.2f} | {r.ratio:.2f} "
            f"| {100 * f.flipped:.0f}% | {f.episodes} |"
        )
    if args.controller and args.reference:
        print(f"\n{args.controller} against {args.reference}, reward (mean over cases):")
        for run in runs:
            copy = run.meta["arrival_timing"]["copy"]
            iv = _interval(run.rows, args.controller, args.reference, args.bootstrap)
            print(f"- copy {copy}: {iv}")
        iv = _interval(pooled_copies(runs), args.controller, args.reference, args.bootstrap)
        print(f"- mean over the copies: {iv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
