"""The ``bacs`` command. Each subcommand lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("simulate", "scan", "monitor", "run", "probe", "export", "report")


def build_parser() -> argparse.ArgumentParser:
    from .common import Parser

    parser = Parser(
        prog="bacs",
        description="Battery Analysis & Care System: battery bus tools, manager and simulator. "
        "Units are SI (V, A, °C, mΩ); positive current means charging.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"bacs_core.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
