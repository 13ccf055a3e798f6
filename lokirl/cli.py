"""The ``lokirl`` command line.

Each subcommand lives in its own module under :mod:`lokirl.commands` and exposes
``register(subparsers)``; heavy imports happen inside the handlers so that
``lokirl --help`` stays fast. Errors derived from :class:`lokirl.errors.LokiError`
are printed as one line (what is wrong and how to fix it) with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from lokirl import __version__
from lokirl.errors import LokiError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "lokirl.commands.plan",
    "lokirl.commands.simulate",
    "lokirl.commands.reproduce",
    "lokirl.commands.forecast",
    "lokirl.commands.train",
    "lokirl.commands.evaluate",
    "lokirl.commands.bench",
    "lokirl.commands.tune",
    "lokirl.commands.serve",
    "lokirl.commands.loadgen",
    "lokirl.commands.profile",
    "lokirl.commands.simvslive",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="lokirl",
        description=(
            "Serve ML inference pipelines under a latency SLO: hardware scaling, "
            "accuracy scaling (Loki's MILP) and a learned controller."
        ),
    )
    parser.add_argument("--version", action="version", version=f"lokirl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # subcommand not built yet
            raise
        module.register(subparsers)
    return parser


#: A value that starts with a minus sign and a number: ``-1:2``, ``-1e3``, ``-inf``.
_NEGATIVE_VALUE = re.compile(r"-(\d|\.\d|inf|nan)", flags=re.IGNORECASE)


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """Write ``--opt -1:2`` as ``--opt=-1:2`` so that the option's own check sees it.

    argparse takes ``-1:2`` (or ``-1e3``, ``-inf``) after an option for another option
    and answers "expected one argument"; joined, the value reaches the option's check,
    which says what is wrong with it and how to fix it.
    """
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        if (
            a.startswith("--")
            and "=" not in a
            and a != "--"
            and i + 1 < len(args)
            and _NEGATIVE_VALUE.match(args[i + 1])
        ):
            out.append(f"{a}={args[i + 1]}")
            i += 2
            continue
        if a == "--":  # everything after it is positional
            out.extend(args[i:])
            break
        out.append(a)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    try:
        return int(args.handler(args) or 0)
    except LokiError as exc:
        # an error whose source is the command itself is not named twice
        text = str(exc).removeprefix(f"lokirl {args.command}: ")
        print(f"lokirl {args.command}: error: {text}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and friends
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"lokirl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
