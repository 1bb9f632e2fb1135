"""``bacs export STATE_DIR``: history rows for a period or one discharge, as CSV or JSON Lines;
``--list`` shows the recorded discharges (their numbers are what ``--discharge N`` takes)."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from ..history import DischargeRecord
from ..history.export import ExportFormat, export_discharge, export_period
from ..history.reader import FILENAME, HistoryReader
from .common import CliError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="export the battery history (a period or a discharge) as CSV or JSON Lines",
        description="Read the history a manager recorded (history.db in its state directory "
        "or Home Assistant's config directory). Times are UTC in the output; dates given "
        "here are local.",
    )
    p.add_argument("state_dir", type=Path, help="the directory that holds history.db")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--discharge", metavar="last|N|DATE", help="one discharge")
    which.add_argument("--list", action="store_true", help="list the recorded discharges")
    p.add_argument("--since", help="period start, YYYY-MM-DD[THH:MM] (default: 7 days ago)")
    p.add_argument("--until", help="period end (default: now)")
    p.add_argument("--string", type=int, help="one string (1-based)")
    p.add_argument("--format", choices=[f.value for f in ExportFormat], default="csv")
    p.add_argument("--out", type=Path, help="write here instead of standard output")
    p.set_defaults(handler=run)


def _when(text: str | None, default: datetime) -> datetime:
    if text is None:
        return default
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"not a date or time: {text!r} (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return parsed if parsed.tzinfo else parsed.astimezone()


def _summary(r: DischargeRecord) -> str:
    weakest = r.weakest
    weak = f"block {weakest.position}" if weakest and r.early else "none fell early"
    state = " (running)" if r.in_progress else " (interrupted)" if r.interrupted else ""
    return (
        f"{r.id:>5}  string {r.string}  {r.start.astimezone():%Y-%m-%d %H:%M}  "
        f"{r.duration_s / 60:6.1f} min  {r.ah:7.2f} Ah  {r.wh / 1000:7.3f} kWh  {weak}{state}"
    )


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (CliError, FileNotFoundError, ValueError, OSError) as err:
        print(f"bacs export: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if not (args.state_dir / FILENAME).is_file():
        raise CliError(f"no {FILENAME} in {args.state_dir}")
    store = HistoryReader(args.state_dir)
    if args.list:
        for listed in reversed(store.discharges(args.string)):
            print(_summary(listed))
        return 0
    with ExitStack() as stack:
        out: TextIO = sys.stdout
        if args.out is not None:
            out = stack.enter_context(args.out.open("w", encoding="utf-8", newline=""))
        if args.discharge:
            record = store.discharge(args.discharge, args.string)
            if record is None:
                raise CliError(f"no discharge {args.discharge!r} (see --list)")
            count = export_discharge(store, out, args.format, record)
        else:
            now = datetime.now(UTC)
            start = _when(args.since, now - timedelta(days=7))
            end = _when(args.until, now)
            count = export_period(store, out, args.format, start, end, args.string)
    if args.out is not None:
        print(f"{count} samples written to {args.out}", file=sys.stderr)
    return 0
