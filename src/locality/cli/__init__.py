"""The ``locality`` command: one subcommand per module in this package, each thin.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``run=callable(args) -> int`` as a default. Heavy imports happen inside ``run``, so ``--help`` is
fast and optional extras are only needed by the subcommands that use them.

A user error (a ValueError, an OSError or a missing optional dependency raised by ``run``) is one
line on stderr, ``locality CMD: error: ...``, and exit status 2, as argparse reports bad arguments;
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Order is the order shown by ``locality --help``.
SUBCOMMANDS: tuple[str, ...] = (
    "tour",
    "compare",
    "summary",
    "draw",
    "train",
    "experiment",
    "localize",
    "sharing",
    "inpaint",
    "keras_import",
)


def build_parser() -> argparse.ArgumentParser:
    from locality import __version__

    parser = argparse.ArgumentParser(
        prog="locality",
        description="Fully connected, locally connected, tiled and convolutional layers: "
        "count, compare, draw, convert and train them.",
    )
    parser.add_argument("--version", action="version", version=f"locality {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for name in SUBCOMMANDS:
        importlib.import_module(f"locality.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # the reader went away (``locality tour | head``): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError, ImportError) as error:
        return user_error(args.command, error)


def user_error(command: str, error: BaseException | str) -> int:
    """Report ``error`` as argparse reports a bad argument: one line on stderr; exit status 2."""
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"locality {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
