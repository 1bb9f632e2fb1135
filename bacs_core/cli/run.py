"""``bacs run URL…``: run the manager (equalization, alarms, trip) and print its events."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from ..events import Event
from ..gateway import cli as gateway_cli
from ..manager import ConfigError, validate_config
from ..manager.config import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN
from ..sim.clock import SimClock, SimClockError, wall_clock_of
from ..snapshot import SystemSnapshot
from ..source import SourceUnavailableError, is_generex_url, is_remote_url, open_source
from . import appliance, history_run
from .common import integer, number, quiet_pymodbus


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the manager on one or more buses, or read a GENEREX web manager",
        description="Poll the buses, equalize, raise alarms and trip the breaker on thermal "
        "runaway. Events are printed as they happen, with one status line per cycle. "
        "generex://HOST reads an installed GENEREX CS141 instead (read-only; our alarm "
        "rules on its readings).",
    )
    p.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        help="bus URLs (bus1, bus2, … in order) or one generex://HOST[:PORT]?unit=…",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="a site file (YAML: the appliance, docs/appliance.md) or a JSON file of settings",
    )
    p.add_argument(
        "--strings", type=integer(1, 64), help="split the modules into this many strings"
    )
    p.add_argument(
        "--interval",
        type=number(POLL_INTERVAL_MIN, POLL_INTERVAL_MAX),
        help="poll interval in seconds",
    )
    p.add_argument("--auto-trip", action="store_true", help="relay k channel n trips string n")
    p.add_argument("--json", action="store_true", help="events as JSON lines")
    p.add_argument(
        "--cycles", type=integer(0, 10**9), default=0, help="stop after N cycles (0 = never)"
    )
    p.add_argument(
        "--clock",
        metavar="sim:HOST:PORT",
        help="take time from a simulator's control channel (bacs simulate --control): with "
        "--speed N the manager's interval, lags and timers then run N× faster too",
    )
    gateway_cli.add_arguments(p)  # --serve-modbus/--serve-snmp (bacs_core/gateway/cli.py)
    history_run.add_arguments(p)  # --history DIR|off (bacs_core/cli/history_run.py)
    appliance.add_arguments(p)  # the appliance (bacs_core/cli/appliance.py)
    p.set_defaults(handler=run)


def load_settings(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.config:
        data = read_config_file(args.config)
    if args.urls:
        data["buses"] = [{"id": f"bus{i + 1}", "url": u} for i, u in enumerate(args.urls)]
    if args.strings is not None:
        data["string_count"] = args.strings
    if args.interval is not None:
        data["poll_interval"] = args.interval
    if args.auto_trip:
        data.setdefault("trip", {})["auto"] = True
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings file as a dict, or a ValueError that says in one line what is wrong."""
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a settings file")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ValueError(f"{path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON object is expected")
    return data


def run(args: argparse.Namespace) -> int:
    if appliance.handles(args):  # a YAML site file: the service (bacs_core/cli/appliance.py)
        return appliance.run(args)
    try:
        config = validate_config(load_settings(args))
        urls = [b.url for b in config.buses]
        if len(urls) > 1 and any(is_generex_url(u) or is_remote_url(u) for u in urls):
            raise ValueError(
                "a generex:// or mqtt:// source is run on its own, not beside other buses"
            )
        args.gateway = gateway_cli.options_from_args(args, config.poll_interval)
    except (ConfigError, OSError, ValueError) as err:
        print(f"bacs run: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_pymodbus()
    return asyncio.run(_run(config, args))


def _print_event(event: Event, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "type": event.type.value,
                    "time": event.timestamp.isoformat(),
                    "message": event.message,
                    "device": str(event.device) if event.device else None,
                    "string": event.string,
                    "data": dict(event.data),
                }
            ),
            flush=True,
        )
    else:
        print(f"{event.timestamp:%H:%M:%S} {event.type.value:<24} {event.message}", flush=True)


def _status_line(snap: SystemSnapshot) -> str:
    parts = [f"cycle {snap.cycle}", snap.status.value, f"{snap.poll_duration_s:.2f}s"]
    for s in snap.strings:
        v = f"{s.voltage:.2f}V" if s.voltage is not None else "—"
        i = f"{s.current:+.3f}A" if s.current is not None else "—"
        spread = f"{s.spread * 1000:.0f}mV" if s.spread is not None else "—"
        parts.append(f"{s.name}: {v} {i} {s.charge_state.value} spread {spread}")
    parts.append(f"alarms {len(snap.alarms)} trip {snap.safety.trip_state.value}")
    return " | ".join(parts)


async def _run(config: Any, args: argparse.Namespace) -> int:
    clock = None
    if args.clock:
        try:
            clock = SimClock.parse(args.clock)
            await clock.start()
        except (ValueError, SimClockError) as err:
            print(f"bacs run: {err}", file=sys.stderr)
            return 2
    try:
        return await _manage(config, args, clock)
    finally:
        if clock is not None:
            await clock.stop()


async def _manage(config: Any, args: argparse.Namespace, clock: SimClock | None) -> int:
    wall = wall_clock_of(clock) if clock is not None else None
    # generex://, mqtt:// (a remote appliance, watched) or a bus
    manager = open_source(config.buses[0].url, config, clock=clock, wall_clock=wall)
    history = _history(args, wall)
    done = asyncio.Event()
    cycles = 0

    def on_snapshot(snap: SystemSnapshot) -> None:
        nonlocal cycles
        cycles += 1
        if not args.json:
            print(_status_line(snap), flush=True)
        if args.cycles and cycles >= args.cycles:
            done.set()

    manager.add_event_listener(lambda e: _print_event(e, args.json))
    manager.add_snapshot_listener(on_snapshot)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    if history is not None:
        await history.start(manager)  # before the manager: its first snapshots recorded
    try:
        await manager.start()
    except SourceUnavailableError as err:
        print(f"bacs run: {err}", file=sys.stderr)
        if history is not None:
            await history.stop()
        return 1
    if not manager.devices:
        print("bacs run: no devices answer on the configured buses", file=sys.stderr)
    gateway = None
    if args.gateway is not None:  # the SCADA/NMS gateway (bacs_core/gateway)
        from ..gateway.service import Gateway, GatewayError

        gateway = Gateway(manager, args.gateway)
        try:
            await gateway.start()
        except GatewayError as err:
            print(f"bacs run: gateway: {err}", file=sys.stderr)
            await manager.stop()
            if history is not None:
                await history.stop()
            return 2
        print(gateway.describe(), file=sys.stderr, flush=True)
    await done.wait()
    if gateway is not None:
        await gateway.stop()
    await manager.stop()
    if history is not None:
        await history.stop()  # after the manager: its last snapshots written
    return 0


def _history(args: argparse.Namespace, wall: Any) -> history_run.RunHistory | None:
    """``--history DIR`` records there; without a site file nothing is recorded by default
    (``bacs run URL`` has no state directory)."""
    settings = history_run.from_args(args.history, history_run.HistorySettings(enabled=False))
    directory = settings.directory(None)
    if directory is None:
        return None
    return history_run.RunHistory(directory, settings.config, clock=wall)
