"""``bacs monitor URL``: a live table per string, straight from the bus (no manager)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..bus import BusClient, CurrentReading, DeviceIdentity, ModuleReading
from ..model import FACTORY_UNIT_ID, DeviceFamily
from .common import CliError, connect, integer, number


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("monitor", help="live table of a bus, per string")
    p.add_argument("url")
    p.add_argument(
        "--strings", type=integer(1, 64), default=1, help="modules split evenly, in unit order"
    )
    p.add_argument("--interval", type=number(0, 3600, above=True), default=2.0)
    p.add_argument("--once", action="store_true", help="print one table and exit")
    p.add_argument(
        "--count", type=integer(0, 10**9), default=0, help="stop after N tables (0 = never)"
    )
    p.add_argument(
        "--last",
        type=integer(1, FACTORY_UNIT_ID),
        default=FACTORY_UNIT_ID,
        help="highest unit to scan",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_monitor(args))
    except CliError as err:
        print(f"bacs monitor: {err}", file=sys.stderr)
        return 2
    return 0


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def render(
    strings: list[list[DeviceIdentity]],
    sensors: list[DeviceIdentity],
    readings: dict[int, object],
) -> str:
    lines = [
        f"{'string':<7}{'voltage V':>11}{'current A':>11}{'min V':>13}{'max V':>13}"
        f"{'spread V':>10}{'max °C':>8}{'missing':>9}"
    ]
    for index, modules in enumerate(strings):
        volts: list[tuple[int, float]] = []
        temps: list[float] = []
        missing = 0
        for pos, dev in enumerate(modules, 1):
            r = readings.get(dev.unit)
            if isinstance(r, ModuleReading) and r.voltage.usable and r.voltage.value is not None:
                volts.append((pos, r.voltage.value))
                if r.temperature.value is not None:
                    temps.append(r.temperature.value)
            else:
                missing += 1
        current = None
        if index < len(sensors):
            c = readings.get(sensors[index].unit)
            if isinstance(c, CurrentReading) and c.current.usable:
                current = c.current.value
        total = sum(v for _, v in volts) if volts else None
        lo = min(volts, key=lambda x: x[1]) if volts else None
        hi = max(volts, key=lambda x: x[1]) if volts else None
        low = f"{lo[1]:.3f}#{lo[0]}" if lo else "—"
        high = f"{hi[1]:.3f}#{hi[0]}" if hi else "—"
        lines.append(
            f"{index + 1:<7}{_fmt(total, '.2f'):>11}{_fmt(current, '.3f'):>11}{low:>13}{high:>13}"
            f"{_fmt(hi[1] - lo[1] if hi and lo else None, '.3f'):>10}"
            f"{_fmt(max(temps) if temps else None, '.1f'):>8}{missing:>9}"
        )
    return "\n".join(lines)


async def _monitor(args: argparse.Namespace) -> None:
    client: BusClient = await connect(args.url)
    try:
        found = (await client.scan(range(1, args.last + 1), timeout=0.1)).devices
        modules = [d for d in found if d.family is DeviceFamily.BATTERY_MODULE]
        sensors = [d for d in found if d.family is DeviceFamily.CURRENT_SENSOR]
        if not modules:
            raise CliError(f"no battery modules answer on {args.url}")
        n = max(1, args.strings)
        per = len(modules) // n
        strings = [modules[i * per : (i + 1) * per] for i in range(n)]
        shown = 0
        while True:
            readings = await client.poll(found)
            table = render(strings, sensors, dict(readings))
            if not args.once and sys.stdout.isatty():
                print("\x1b[2J\x1b[H", end="")
            print(table, flush=True)
            shown += 1
            if args.once or (args.count and shown >= args.count):
                return
            await asyncio.sleep(args.interval)
    finally:
        await client.close()
