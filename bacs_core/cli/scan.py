"""``bacs scan URL``: which devices answer on a bus, and as what."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from ..bus import BusConnectionError
from ..model import FACTORY_UNIT_ID
from .common import CliError, connect, integer, number


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scan", help="list the devices on a bus")
    p.add_argument("url", help="tcp://host:port, rtu+tcp://host:port or serial:///dev/ttyUSB0")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--first", type=integer(1, FACTORY_UNIT_ID), default=1)
    p.add_argument("--last", type=integer(1, FACTORY_UNIT_ID), default=FACTORY_UNIT_ID)
    p.add_argument(
        "--timeout", type=number(0, 10, above=True), default=0.1, help="seconds to wait per unit"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.first > args.last:
        print(f"bacs scan: --first {args.first} is above --last {args.last}", file=sys.stderr)
        return 2
    try:
        devices = asyncio.run(_scan(args))
    except CliError as err:
        print(f"bacs scan: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(devices, indent=2))
    else:
        print(f"{'unit':>4}  {'kind':<15} {'model':<11} {'serial':>10}  firmware")
        for d in devices:
            row = f"{d['address']:>4}  {d['kind']:<15} {d['model']:<11} {d['serial']:>10}"
            print(f"{row}  {d['firmware']}")
        print(f"{len(devices)} device(s)")
    return 0


async def _scan(args: argparse.Namespace) -> list[dict[str, object]]:
    client = await connect(args.url)
    try:
        result = await client.scan(range(args.first, args.last + 1), timeout=args.timeout)
    except BusConnectionError as err:
        raise CliError(f"lost {args.url}: {err}") from None
    finally:
        await client.close()
    out: list[dict[str, object]] = [
        {
            "address": d.unit,
            "kind": d.kind.label,
            "model": d.kind.name,
            "family": d.family.value,
            "serial": d.serial,
            "firmware": d.firmware,
            "rating": d.rating,
        }
        for d in result.devices
    ]
    out.extend(
        {
            "address": u.unit,
            "kind": "unknown",
            "model": f"0x{u.device_type:04x}",
            "family": "unknown",
            "serial": 0,
            "firmware": "",
            "rating": 0,
        }
        for u in result.unknown
    )
    return sorted(out, key=lambda d: int(str(d["address"])))
