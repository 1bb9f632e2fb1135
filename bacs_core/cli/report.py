"""``bacs report STATE_DIR``: one discharge (``--discharge last|N|DATE``) or a period
(``--history --since --until``) as one self-contained HTML page (pictures inline, prints on A4)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..history.reader import FILENAME, HistoryReader
from .common import CliError
from .export import _when

MISSING_EXTRA = "the report needs matplotlib: pip install 'bacs-core[report]'"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="write a discharge or history report as one HTML page",
        description="Read the history a manager recorded (history.db in its state directory "
        "or Home Assistant's config directory) and write one self-contained HTML page: for a "
        "discharge, each block's end voltage with its recovery and the blocks that fell early, "
        "the weakest blocks' curves, temperatures, resistance trends and the figures; for a "
        "period, the float voltage spread, balancing and alarms. Dates given here are local.",
    )
    p.add_argument("state_dir", type=Path, help="the directory that holds history.db")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--discharge", metavar="last|N|DATE", help="one discharge (numbers: bacs export --list)"
    )
    which.add_argument("--history", action="store_true", help="a period (--since, --until)")
    p.add_argument("--since", help="period start, YYYY-MM-DD[THH:MM] (default: 30 days ago)")
    p.add_argument("--until", help="period end (default: now)")
    p.add_argument(
        "--string",
        type=int,
        help="one string (default: every string of the same discharge, or every string)",
    )
    p.add_argument("--title", help="the page's title")
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..report import ReportError, discharge_report, period_report
    except ImportError as err:
        print(f"bacs report: {MISSING_EXTRA} ({err})", file=sys.stderr)
        return 2
    try:
        if not (args.state_dir / FILENAME).is_file():
            raise CliError(f"no {FILENAME} in {args.state_dir}")
        if not args.history and (args.since or args.until):
            raise CliError("--since and --until go with --history")
        reader = HistoryReader(args.state_dir)
        extra = {"title": args.title} if args.title else {}
        if args.history:
            now = datetime.now(UTC)
            start = _when(args.since, now - timedelta(days=30))
            end = _when(args.until, now)
            html = period_report(reader, start, end, args.string, **extra)
        else:
            html = discharge_report(reader, args.discharge, args.string, **extra)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(args.out)
    except (CliError, ReportError, FileNotFoundError, ValueError, OSError) as err:
        print(f"bacs report: {err}", file=sys.stderr)
        return 2
    print(f"report written to {args.out} ({len(html) // 1024} KiB)", file=sys.stderr)
    return 0
