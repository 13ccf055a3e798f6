"""Does a replay give the recorded table? Compare two ``lokirl bench`` runs episode by episode.

Run from the repository root, e.g. after playing step 2 of ``docs/results.md``'s "How to
reproduce" at a later commit::

    python scripts/same_rows.py docs/bench_records/2026-12-05_retuned_validation_all \
        runs/bench__validation__YYYYMMDD-HHMMSS

Each argument is a run folder or its ``per_episode.json`` (or ``.json.gz``, as large records keep it). Prints how many episodes
(controller, case, seed) are identical in every result column (timing and the commit
aside), those only one side has, and per column the episodes that differ (the first
few); ``--subset`` compares only the controllers both runs played, ``--common-cases``
only the cases both played, and ``--rename NEW=OLD`` (repeatable) compares the replay's
controller NEW as the recorded OLD (e.g. a policy set ``ppo:A+B`` replaying ``ppo:A`` on
A's cases). Exits 0 when the
replay gives the recorded table, 1 otherwise (or when nothing was compared), 2 on a
missing file. The comparison is
:func:`lokirl.experiments.runner.replay_diff`.
"""

from __future__ import annotations

import argparse
import sys

from lokirl.errors import ConfigError
from lokirl.experiments.runner import Results, replay_diff


def _load(path: str) -> Results:
    try:  # a run folder, a record that keeps its table gzipped, or the file
        return Results.read(path, source="same_rows")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recorded", help="the run on record (folder or per_episode.json)")
    ap.add_argument("replayed", help="the replay (folder or per_episode.json)")
    ap.add_argument("--show", type=int, default=3, help="episodes listed per column (default 3)")
    ap.add_argument(
        "--subset",
        action="store_true",
        help="compare only the controllers both runs played",
    )
    ap.add_argument(
        "--common-cases",
        action="store_true",
        help="compare only the cases both runs played",
    )
    ap.add_argument(
        "--rename",
        action="append",
        default=[],
        metavar="NEW=OLD",
        help="compare the replay's controller NEW as the recorded controller OLD (repeatable)",
    )
    args = ap.parse_args(argv)
    old, new = _load(args.recorded), _load(args.replayed)
    renames = {}
    for item in args.rename:
        new_name, sep, old_name = item.rpartition("=")
        if not sep or not new_name or not old_name:
            ap.error(f"--rename {item!r}: write NEW=OLD (the replay's name, then the record's)")
        renames[new_name] = old_name
    if renames:
        rows = [
            {**r, "controller": renames.get(r["controller"], r["controller"])} for r in new.rows
        ]
        new = Results(rows, new.meta)
    if args.common_cases:
        both = {r["case"] for r in new.rows} & {r["case"] for r in old.rows}
        old = Results([r for r in old.rows if r["case"] in both], old.meta)
        new = Results([r for r in new.rows if r["case"] in both], new.meta)
    if args.subset:
        both = {r["controller"] for r in new.rows} & {r["controller"] for r in old.rows}
        old = Results([r for r in old.rows if r["controller"] in both], old.meta)
        new = Results([r for r in new.rows if r["controller"] in both], new.meta)
    d = replay_diff(old, new)
    print(
        f"recorded at {str(old.meta.get('commit') or '?')[:10]}, replayed at "
        f"{str(new.meta.get('commit') or '?')[:10]}: {d.identical} episodes identical"
    )
    for label, eps in (("only recorded", d.only_recorded), ("only replayed", d.only_replayed)):
        if eps:
            print(f"  {label}: {len(eps)} episodes, e.g. {list(eps[: args.show])}")
    for col, eps in d.differing.items():
        print(f"  {col} differs in {len(eps)} episodes, e.g. {list(eps[: args.show])}")
    if d.identical == 0 and d.same:
        print("nothing compared (no episode in common)")
        return 1
    print("same table" if d.same else "NOT the same table")
    return 0 if d.same else 1


if __name__ == "__main__":
    sys.exit(main())
