"""``bacs simulate``: serve a simulated battery room on the real wire protocols."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import sys

from ..bus.timing import LineTiming
from ..bus.url import BAUD_RATES
from ..model import MODULE_SPECS, DeviceKind
from ..sim.control import serve_control
from ..sim.physics import PlantOptions
from ..sim.room import Fault, Room, RoomConfig, Scenario
from ..sim.server import BusServer, make_server
from .common import LOCALHOST, host_port, integer, listen_url, number


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="serve a simulated battery room",
        description="Simulate strings of batteries with their BACS modules, current sensors, a "
        "relay module wired to each string's breaker and an environment sensor, and serve "
        "them over Modbus TCP, RTU over TCP or RTU on a pseudo-terminal.",
    )
    p.add_argument("--strings", type=integer(1, 64), default=2)
    p.add_argument("--blocks", type=integer(1, 240), default=32, help="blocks per string")
    p.add_argument(
        "--kind", default="C20", choices=[k.name for k in MODULE_SPECS], help="module kind"
    )
    p.add_argument(
        "--capacity", type=number(0, 20000, above=True), default=100.0, help="block capacity (Ah)"
    )
    p.add_argument("--spread", type=number(0, 5), default=0.6, help="σ of ln(float current)")
    p.add_argument("--seed", type=integer(0, 2**31 - 1), default=1)
    p.add_argument(
        "--speed",
        type=number(0, 100000, above=True),
        default=1.0,
        help="simulated seconds per second",
    )
    p.add_argument(
        "--settle-days", type=number(0, 3650), default=2.0, help="float days before start"
    )
    p.add_argument("--scenario", default="float", choices=[s.value for s in Scenario])
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="kind[:string[:block]][=value][@seconds], e.g. weak:1:7, runaway:1:12=3@600, "
        "dead:2:5, timeouts:1=0.02 (bus 1), crc:1=0.01, vanish:1=5@30",
    )
    p.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="URL",
        type=listen_url,
        help="one per bus: tcp://127.0.0.1:5020, rtu+tcp://127.0.0.1:5021 or pty:///tmp/bacs0",
    )
    p.add_argument(
        "--control",
        metavar="[HOST:]PORT",
        type=host_port,
        help="JSON control channel; on 127.0.0.1 unless a host is given (e.g. 5030)",
    )
    p.add_argument(
        "--baud",
        type=integer(BAUD_RATES[0], BAUD_RATES[-1]),
        help="emulate an RS-485 line at this baud rate",
    )
    p.add_argument("--turnaround-ms", type=number(0, 1000), default=5.0, help="module answer delay")
    p.add_argument("--auto-reclose", action="store_true", help="breakers close when relays drop")
    p.add_argument("--noise", type=float, default=0.002, help="module voltage noise σ (V)")
    p.add_argument("--offset", type=float, default=0.0, help="module offsets, uniform ±V")
    p.add_argument("--gain-error", type=float, default=0.0, help="module gain errors, uniform ±")
    p.add_argument("--ripple", type=float, default=0.0, help="charger ripple seen (V amplitude)")
    p.add_argument("--lag-min", type=float, default=20.0, help="float polarisation lag (min)")
    p.add_argument("--tafel", type=float, default=1.0, help="Tafel slope factor")
    p.add_argument("--print-units", action="store_true", help="list the unit ids and exit")
    # Impersonation of an installed GENEREX CS141 (bacs_core/sim/generex.py).
    p.add_argument(
        "--as",
        dest="impersonate",
        default="bacs",
        choices=["bacs", "generex"],
        help="bacs: our module bus (default); generex: a CS141 web manager (Modbus TCP + SNMP)",
    )
    p.add_argument(
        "--snmp", type=host_port, metavar="HOST:PORT", help="with --as generex: serve SNMP here"
    )
    p.add_argument("--community", default="public", help="with --as generex: SNMP community")
    p.add_argument(
        "--string-scale",
        type=integer(1, 1000),
        default=10,
        help="with --as generex: raw units per V/A in the Modbus string block",
    )
    p.add_argument("--snmp-index-base", type=integer(0, 1), default=1, help="with --as generex")
    p.add_argument(
        "--unit", type=integer(0, 255), default=1, help="with --as generex: Modbus unit id"
    )
    p.set_defaults(handler=run)


def build_room(args: argparse.Namespace) -> Room:
    return Room(
        RoomConfig(
            strings=args.strings,
            blocks=args.blocks,
            kind=DeviceKind[args.kind],
            capacity_ah=args.capacity,
            spread=args.spread,
            seed=args.seed,
            scenario=Scenario(args.scenario),
            faults=tuple(Fault.parse(f) for f in args.fault),
            auto_reclose=args.auto_reclose,
            settle_days=args.settle_days,
            noise_v=args.noise,
            offset_v=args.offset,
            gain_error=args.gain_error,
            ripple_v=args.ripple,
            plant=PlantOptions(lag_s=args.lag_min * 60.0, tafel_factor=args.tafel),
        )
    )


def run(args: argparse.Namespace) -> int:
    if args.baud is not None and args.baud not in BAUD_RATES:
        print(f"bacs simulate: --baud {args.baud} is not one of {BAUD_RATES}", file=sys.stderr)
        return 2
    try:
        room = build_room(args)
    except ValueError as err:
        print(f"bacs simulate: {err}", file=sys.stderr)
        return 2
    if args.print_units:
        for bus in room.buses:
            for unit, dev in sorted(bus.devices.items()):
                print(f"bus {bus.index + 1} unit {unit:3d} {dev.kind.name}")
        return 0
    if args.impersonate == "generex":
        return _run_generex(room, args)
    listen = args.listen or ["tcp://127.0.0.1:5020"]
    if len(listen) != len(room.buses):
        print(
            f"bacs simulate: this room has {len(room.buses)} bus(es); give one --listen per bus",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING)
    timing = LineTiming(args.baud, turnaround_s=args.turnaround_ms / 1000) if args.baud else None
    return asyncio.run(_serve(room, listen, args.control, timing, args.speed))


def _run_generex(room: Room, args: argparse.Namespace) -> int:
    from ..generex.cs141_map import Cs141Settings
    from ..sim.generex import ImpersonationOptions, serve_impersonation

    if len(args.listen) > 1:
        print("bacs simulate: --as generex serves one Modbus TCP address (one --listen)")
        return 2
    try:
        settings = Cs141Settings(string_scale=args.string_scale, unit=args.unit)
    except ValueError as err:
        print(f"bacs simulate: {err}")
        return 2
    options = ImpersonationOptions(settings, args.snmp_index_base, args.community)
    logging.basicConfig(level=logging.WARNING)
    listen = args.listen[0] if args.listen else None
    return asyncio.run(
        serve_impersonation(room, listen, args.snmp, options, args.speed, args.control)
    )


async def _serve(
    room: Room,
    listen: list[str],
    control: tuple[str, int] | None,
    timing: LineTiming | None,
    speed: float,
) -> int:
    servers: list[BusServer] = []
    control_server = None
    where = ""
    try:
        for index, url in enumerate(listen):
            where = url
            server = make_server(room, index, url, timing)
            await server.start()
            servers.append(server)
            units = len(room.buses[index].devices)
            print(f"bus {index + 1}: {units} devices on {server.url}", flush=True)
        if control:
            host, port = control
            where = f"control channel {host}:{port}"
            control_server = await serve_control(room, host or LOCALHOST, port)
            port = control_server.sockets[0].getsockname()[1]
            print(f"control: tcp://{host}:{port}", flush=True)
    except (ValueError, OSError) as err:
        if isinstance(err, OSError) and err.errno == errno.EADDRINUSE:
            reason = f"{where} is already in use"
        else:
            reason = f"cannot listen on {where}: {err}"
        print(f"bacs simulate: {reason}", file=sys.stderr)
        for server in servers:
            await server.stop()
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = loop.create_task(room.run(speed))
    await stop.wait()
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    for server in servers:
        await server.stop()
    if control_server:
        control_server.close()
    print("simulator stopped", flush=True)
    return 0
