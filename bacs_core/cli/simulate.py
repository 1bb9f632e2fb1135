"""``bacs simulate``: serve a simulated battery room on the real wire protocols."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from ..bus.timing import LineTiming
from ..model import MODULE_SPECS, DeviceKind
from ..sim.control import serve_control
from ..sim.physics import PlantOptions
from ..sim.room import Fault, Room, RoomConfig, Scenario
from ..sim.server import BusServer, make_server


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="serve a simulated battery room",
        description="Simulate strings of batteries with their BACS modules, current sensors, a "
        "relay module wired to each string's breaker and an environment sensor, and serve "
        "them over Modbus TCP, RTU over TCP or RTU on a pseudo-terminal.",
    )
    p.add_argument("--strings", type=int, default=2)
    p.add_argument("--blocks", type=int, default=32, help="blocks per string")
    p.add_argument(
        "--kind", default="C20", choices=[k.name for k in MODULE_SPECS], help="module kind"
    )
    p.add_argument("--capacity", type=float, default=100.0, help="block capacity (Ah)")
    p.add_argument("--spread", type=float, default=0.6, help="σ of ln(float current)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    p.add_argument("--settle-days", type=float, default=2.0, help="float days before start")
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
        help="one per bus: tcp://127.0.0.1:5020, rtu+tcp://127.0.0.1:5021 or pty:///tmp/bacs0",
    )
    p.add_argument("--control", metavar="URL", help="JSON control channel, tcp://127.0.0.1:5030")
    p.add_argument("--baud", type=int, help="emulate an RS-485 line at this baud rate")
    p.add_argument("--turnaround-ms", type=float, default=5.0, help="module answer delay")
    p.add_argument("--auto-reclose", action="store_true", help="breakers close when relays drop")
    p.add_argument("--noise", type=float, default=0.002, help="module voltage noise σ (V)")
    p.add_argument("--offset", type=float, default=0.0, help="module offsets, uniform ±V")
    p.add_argument("--gain-error", type=float, default=0.0, help="module gain errors, uniform ±")
    p.add_argument("--ripple", type=float, default=0.0, help="charger ripple seen (V amplitude)")
    p.add_argument("--lag-min", type=float, default=20.0, help="float polarisation lag (min)")
    p.add_argument("--tafel", type=float, default=1.0, help="Tafel slope factor")
    p.add_argument("--print-units", action="store_true", help="list the unit ids and exit")
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
    try:
        room = build_room(args)
    except ValueError as err:
        print(f"bacs simulate: {err}")
        return 2
    if args.print_units:
        for bus in room.buses:
            for unit, dev in sorted(bus.devices.items()):
                print(f"bus {bus.index + 1} unit {unit:3d} {dev.kind.name}")
        return 0
    listen = args.listen or ["tcp://127.0.0.1:5020"]
    if len(listen) != len(room.buses):
        print(f"bacs simulate: this room has {len(room.buses)} bus(es); give one --listen per bus")
        return 2
    logging.basicConfig(level=logging.WARNING)
    timing = LineTiming(args.baud, turnaround_s=args.turnaround_ms / 1000) if args.baud else None
    return asyncio.run(_serve(room, listen, args.control, timing, args.speed))


async def _serve(
    room: Room, listen: list[str], control: str | None, timing: LineTiming | None, speed: float
) -> int:
    servers: list[BusServer] = []
    try:
        for index, url in enumerate(listen):
            server = make_server(room, index, url, timing)
            await server.start()
            servers.append(server)
            units = len(room.buses[index].devices)
            print(f"bus {index + 1}: {units} devices on {server.url}", flush=True)
    except (ValueError, OSError) as err:
        print(f"bacs simulate: {err}")
        for server in servers:
            await server.stop()
        return 2
    control_server = None
    if control:
        host, _, port = control.removeprefix("tcp://").rpartition(":")
        control_server = await serve_control(room, host, int(port))
        print(f"control: {control}", flush=True)
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
