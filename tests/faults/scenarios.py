"""The fault scenarios: one code path for tests/faults (a representative subset) and
scripts/bench_faults.py (all of them).

Families:
- ``proxy``: the simulator's Modbus TCP or RTU-over-TCP server behind the fault proxy (drop,
  corrupt, truncate, delay, reset at a rate), polled by a BusClient;
- ``hostile``: one unit of a hostile server misbehaves in one way; the others must not lose
  a reading;
- ``manager_float``, ``manager_runaway``: the real Manager over the proxy (time simulated, the
  wire real): a healthy room must never trip, a developing runaway must;
- ``bus_killed``: the Manager's bus disappears for some cycles and comes back;
- ``relay_silent``, ``restart_bus_down``, ``state_file``: the latch across restarts, a relay
  module silent at start and damaged state files (fixed on branch h/latch);
- ``kill9``: ``bacs run`` killed with SIGKILL mid-trip or mid-discharge, then restarted.

Every accepted value is compared with the simulator's truth: what the device serves at the
moment of the poll (the room does not move during a cycle). A value is wrong when it is off by
more than the step a second read would have been asked for (``plausibility.STEPS``); smaller
differences are counted apart (``small_deviations``): over Modbus TCP (no CRC) they cannot be
told from measurement noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bacs_core import registers as reg
from bacs_core.bus import (
    BusClient,
    BusError,
    CurrentReading,
    DeviceIdentity,
    EnvironmentReading,
    ModuleReading,
    RelayReading,
    open_transport,
)
from bacs_core.bus.plausibility import STEPS
from bacs_core.events import Event, EventType
from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.manager.storage import FileStorage
from bacs_core.model import Quality
from bacs_core.sim.physics import ChargerMode
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.sim.server import TcpBusServer
from bacs_core.snapshot import SystemSnapshot, TripState
from tests.faults.hostile import RELAY_MODES, TCP_ONLY, Hostile, HostileServer
from tests.faults.proxy import FaultProxy, ProxyFault

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = 6
UNITS = BLOCKS + 3  # modules, current sensor, relay module, environment sensor
SENSOR, RELAY, ENVIRONMENT = BLOCKS + 1, BLOCKS + 2, BLOCKS + 3
TIMEOUT = 0.1
DT = 10.0  # simulated seconds per poll cycle
FAULT_CYCLES = 8
RECOVERY_LIMIT = 6
LATCHED = (TripState.TRIPPED, TripState.FAILED, "unknown")
TRANSPORTS = ("tcp", "rtu+tcp")
RATES = (0.05, 0.2, 0.5)

METRICS = (
    "crashes",
    "unhandled_exceptions",
    "false_trips",
    "missed_trips",
    "latches_lost",
    "wrong_values_accepted",
    "lost_alarm_events",
)


@dataclass(frozen=True, slots=True)
class Scenario:
    family: str
    mode: str
    transport: str = "tcp"
    rate: float = 1.0
    seed: int = 1
    latch: bool = False  # depends on the latch fix of branch h/latch

    @property
    def name(self) -> str:
        return f"{self.family}/{self.mode}/{self.transport}/r{self.rate:g}/s{self.seed}"


@dataclass
class Outcome:
    scenario: Scenario
    crashes: int = 0
    unhandled_exceptions: int = 0
    false_trips: int = 0
    missed_trips: int = 0
    latches_lost: int = 0
    wrong_values_accepted: int = 0
    lost_alarm_events: int = 0
    recovery_cycles: int | None = None
    other_units_lost: int = 0  # readings of healthy units lost to another unit's fault
    small_deviations: int = 0
    values_checked: int = 0
    rejected_frames: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def defects(self) -> int:
        return sum(getattr(self, m) for m in METRICS) + self.other_units_lost


# -- the catalogue --
def all_scenarios(seeds: int = 2) -> list[Scenario]:
    out: list[Scenario] = []
    for seed in range(1, seeds + 1):
        for transport in TRANSPORTS:
            for fault in ProxyFault:
                for rate in RATES:
                    out.append(Scenario("proxy", fault.value, transport, rate, seed))
            for mode in Hostile:
                if transport != "tcp" and mode in TCP_ONLY:
                    continue
                for rate in (0.5, 1.0):
                    out.append(Scenario("hostile", mode.value, transport, rate, seed))
            for fault in (ProxyFault.CORRUPT, ProxyFault.RESET, ProxyFault.TRUNCATE):
                out.append(Scenario("manager_float", fault.value, transport, 0.2, seed))
                out.append(Scenario("manager_runaway", fault.value, transport, 0.2, seed))
            out.append(Scenario("bus_killed", "3_cycles", transport, 1.0, seed))
    for seed in (1, 2):
        out.append(Scenario("relay_silent", "at_start", seed=seed, latch=True))
        out.append(Scenario("restart_bus_down", "twice", seed=seed, latch=True))
    for damage in STATE_DAMAGE:
        out.append(Scenario("state_file", damage, latch=True))
    out.append(Scenario("kill9", "mid_trip", latch=True))
    out.append(Scenario("kill9", "mid_discharge"))
    return out


def representative() -> list[Scenario]:
    """What tests/faults runs: every family and every mode once, on alternating transports."""
    picked: list[Scenario] = []
    for k, fault in enumerate(ProxyFault):
        picked.append(Scenario("proxy", fault.value, TRANSPORTS[k % 2], RATES[k % 3]))
    for k, mode in enumerate(Hostile):
        transport = "tcp" if mode in TCP_ONLY else TRANSPORTS[k % 2]
        picked.append(Scenario("hostile", mode.value, transport, (1.0, 0.5)[k % 2]))
    for k, fault in enumerate((ProxyFault.CORRUPT, ProxyFault.RESET, ProxyFault.TRUNCATE)):
        picked.append(Scenario("manager_float", fault.value, TRANSPORTS[k % 2], 0.2))
        picked.append(Scenario("manager_runaway", fault.value, TRANSPORTS[(k + 1) % 2], 0.2))
    picked.append(Scenario("bus_killed", "3_cycles", "rtu+tcp"))
    picked += [sc for sc in all_scenarios(seeds=1) if sc.latch or sc.family == "kill9"]
    return [sc for k, sc in enumerate(picked) if sc not in picked[:k]]


# -- watching the logs --
class LogWatch(logging.Handler):
    """Counts tracebacks and asyncio errors ("Fatal error on transport", unretrieved task
    exceptions) logged anywhere, and loop exception-handler calls."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if (
            record.exc_info
            or "Traceback" in text
            or "Fatal error" in text
            or (record.name == "asyncio" and record.levelno >= logging.ERROR)
        ):
            self.records.append(record)

    @contextlib.contextmanager
    def installed(self) -> Iterator[LogWatch]:
        root = logging.getLogger()
        root.addHandler(self)
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()

        def on_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            self.records.append(
                logging.LogRecord("loop", logging.ERROR, "", 0, str(context), None, None)
            )

        loop.set_exception_handler(on_error)
        try:
            yield self
        finally:
            root.removeHandler(self)
            loop.set_exception_handler(previous)


# -- truth --
def truth(room: Room, unit: int) -> dict[str, float]:
    dev = room.buses[0].devices[unit]
    block = reg.measurement_block(dev.kind)
    return block.decode(dev.read(block.start, block.count))


def compare(room: Room, reading: Any, out: Outcome) -> None:
    """Every usable value of ``reading`` against what the simulated device serves."""
    real = truth(room, reading.unit)
    if reading.quality is Quality.MISSING:
        return
    if int(reading.status) != int(real["status"]):
        out.wrong_values_accepted += 1
        out.notes.append(f"unit {reading.unit}: status {int(reading.status)} ≠ {real['status']}")
    if isinstance(reading, RelayReading):
        bits = {
            "relays": sum(1 << n for n, on in enumerate(reading.relays or ()) if on),
            "inputs": sum(1 << n for n, on in enumerate(reading.inputs or ()) if on),
        }
        for name, value in bits.items():
            out.values_checked += 1
            if value != real[name]:
                out.wrong_values_accepted += 1
                out.notes.append(f"unit {reading.unit}: {name} {value} ≠ {real[name]}")
        return
    names: tuple[str, ...]
    if isinstance(reading, ModuleReading):
        names = ("voltage", "resistance", "temperature", "balance_current", "module_temperature")
    elif isinstance(reading, CurrentReading):
        names = ("current", "temperature")
    elif isinstance(reading, EnvironmentReading):
        names = ("temperature", "humidity", "hydrogen", "acid_level")
    else:
        return
    for name in names:
        value = getattr(reading, name)
        if not value.usable:
            continue
        out.values_checked += 1
        error = abs(value.value - real[name])
        if error > STEPS[name] + 1e-9:
            out.wrong_values_accepted += 1
            out.notes.append(f"unit {reading.unit}: {name} {value.value} ≠ {real[name]}")
        elif error > 1e-6:
            out.small_deviations += 1


# -- wire scenarios (BusClient) --------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_room(seed: int, **kw: Any) -> Room:
    return Room(RoomConfig(strings=1, blocks=BLOCKS, seed=seed, settle_days=0.2, **kw))


def hostile_target(sc: Scenario) -> int:
    if sc.mode in RELAY_MODES:
        return RELAY
    return (3, SENSOR, ENVIRONMENT, RELAY)[sc.seed % 4 if sc.mode != "short_echo" else 0]


async def run_wire(sc: Scenario) -> Outcome:
    out = Outcome(sc)
    room = make_room(sc.seed)
    rtu = sc.transport == "rtu+tcp"
    server: TcpBusServer | HostileServer
    proxy: FaultProxy | None = None
    target: int | None = None
    if sc.family == "proxy":
        server = TcpBusServer(room, 0, rtu=rtu, gateway=True)
        await server.start()
        proxy = FaultProxy(server.port, seed=sc.seed, delay_s=TIMEOUT * 1.5)
        await proxy.start()
        url = proxy.url(sc.transport)
    else:
        target = hostile_target(sc)
        server = HostileServer(
            room, Hostile(sc.mode), target, rtu=rtu, rate=sc.rate, seed=sc.seed, delay_s=0.15
        )
        await server.start()
        url = server.url
    clock = Clock()
    client = BusClient(open_transport(url, timeout=TIMEOUT, retries=1), clock=clock)
    try:
        await client.connect()
        devices = list((await client.scan(range(1, UNITS + 1), timeout=TIMEOUT)).devices)
        if len(devices) != UNITS:
            out.crashes += 1
            out.notes.append(f"scan found {len(devices)} of {UNITS} devices")
            return out
        if proxy is not None:
            proxy.fault, proxy.rate = ProxyFault(sc.mode), sc.rate
        else:
            assert isinstance(server, HostileServer)
            server.armed = True
        by_unit = {d.unit: d for d in devices}
        for _ in range(FAULT_CYCLES):
            await _wire_cycle(room, clock, client, devices, out, target)
            if target is not None and sc.mode == "short_echo":
                with contextlib.suppress(BusError):
                    await client.write_values(by_unit[target], {"watchdog": 60})
        if proxy is not None:
            proxy.fault = None
        else:
            assert isinstance(server, HostileServer)
            server.armed = False
        for k in range(1, RECOVERY_LIMIT + 1):
            readings = await _wire_cycle(room, clock, client, devices, out, None)
            if all(r.quality is Quality.OK for r in readings.values()):
                out.recovery_cycles = k
                break
        else:
            out.notes.append("no full data after the fault stopped")
        out.rejected_frames = client.rejected_frames()
    finally:
        await client.close()
        if proxy is not None:
            await proxy.stop()
        await server.stop()
    return out


async def _wire_cycle(
    room: Room,
    clock: Clock,
    client: BusClient,
    devices: list[DeviceIdentity],
    out: Outcome,
    target: int | None,
) -> dict[int, Any]:
    room.step(DT)
    clock.t += DT
    try:
        readings = await client.poll(devices)
    except Exception as err:  # poll must never raise
        out.crashes += 1
        out.notes.append(f"poll raised {err!r}")
        return {}
    for unit, reading in readings.items():
        compare(room, reading, out)
        if target is not None and unit != target and reading.quality is not Quality.OK:
            out.other_units_lost += 1
            out.notes.append(f"healthy unit {unit} read {reading.quality}")
    return readings


# -- manager scenarios --
def manager_config(url: str, storage_path: str | None = None) -> Any:
    data: dict[str, Any] = {
        "buses": [{"id": "bus1", "url": url, "timeout": TIMEOUT, "retries": 1}],
        "string_count": 1,
        "capacity_ah": 100,
        "trip": {"auto": True},
        "poll_interval": DT,
    }
    if storage_path:
        data["storage_path"] = storage_path
    return validate_config(data)


class Harness:
    """A room served over TCP behind a fault proxy, and the Manager on simulated time."""

    def __init__(self, room: Room, transport: str = "tcp", seed: int = 1) -> None:
        self.room = room
        self.server = TcpBusServer(room, 0, rtu=transport == "rtu+tcp", gateway=True)
        self.transport = transport
        self.seed = seed
        self.proxy: FaultProxy | None = None
        self.clock = [0.0]
        self.events: list[Event] = []

    async def __aenter__(self) -> Harness:
        await self.server.start()
        self.proxy = FaultProxy(self.server.port, seed=self.seed, delay_s=TIMEOUT * 1.5)
        await self.proxy.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proxy is not None
        await self.proxy.stop()
        await self.server.stop()

    @property
    def url(self) -> str:
        assert self.proxy is not None
        return self.proxy.url(self.transport)

    async def manager(self, storage: Any = None, storage_path: str | None = None) -> Manager:
        manager = Manager(
            manager_config(self.url, storage_path),
            storage=storage if storage is not None else None,
            clock=lambda: self.clock[0],
        )
        manager.add_event_listener(self.events.append)
        # Simulated time for the reconnect backoff too (the Manager does not pass its clock
        # to its BusClients yet).
        for client in manager._clients.values():
            client.clock = lambda: self.clock[0]
        await manager.start(run_loop=False)
        return manager

    async def cycle(self, manager: Manager) -> SystemSnapshot:
        self.room.step(DT)
        self.clock[0] += DT
        return await manager.poll_once()

    @property
    def relay_energised(self) -> bool:
        return self.room.string(1).relay.relays[0]


def full_data(snap: SystemSnapshot) -> bool:
    modules_ok = (
        all(m.voltage.quality is Quality.OK for s in snap.strings for m in s.modules)
        and sum(len(s.modules) for s in snap.strings) == BLOCKS
    )
    return bool(modules_ok and snap.relays and all(b.connected for b in snap.buses))


async def run_manager(sc: Scenario) -> Outcome:
    out = Outcome(sc)
    room = make_room(sc.seed)
    runaway = sc.family == "manager_runaway"
    if runaway:
        room.inject(Fault(FaultKind.RUNAWAY, 1, 2, 3.0))
        for _ in range(265 * 2):  # 4.4 hours: the block is ~14.5 K above ambient
            room.step(30.0)
    async with Harness(room, sc.transport, sc.seed) as h:
        manager = await h.manager(storage=MemoryStorage())
        assert h.proxy is not None
        h.proxy.fault, h.proxy.rate = ProxyFault(sc.mode), sc.rate
        tripped_at: int | None = None
        for cycle in range(1, (60 if runaway else 15) + 1):
            snap = await h.cycle(manager)
            if snap.safety.trip_state is not TripState.ARMED and tripped_at is None:
                tripped_at = cycle
            if tripped_at is not None and cycle >= tripped_at + 4:
                break
        kinds = {e.type for e in h.events}
        if runaway:
            if tripped_at is None or not h.relay_energised:
                out.missed_trips += 1
                out.notes.append(f"no trip (state {snap.safety.trip_state})")
            else:
                for needed in (EventType.RUNAWAY_DETECTED, EventType.TRIPPED):
                    if needed not in kinds and EventType.TRIP_FAILED not in kinds:
                        out.lost_alarm_events += 1
                        out.notes.append(f"no {needed} event")
        elif tripped_at is not None or h.relay_energised:
            out.false_trips += 1
            out.notes.append(f"tripped at cycle {tripped_at}: {snap.safety.reason}")
        out.rejected_frames = sum(c.rejected_frames() for c in manager._clients.values())
        await manager.stop()
    return out


async def run_bus_killed(sc: Scenario) -> Outcome:
    out = Outcome(sc)
    async with Harness(make_room(sc.seed), sc.transport, sc.seed) as h:
        assert h.proxy is not None
        manager = await h.manager(storage=MemoryStorage())
        for _ in range(3):
            await h.cycle(manager)
        await h.proxy.kill()
        for _ in range(3):
            snap = await h.cycle(manager)
        if snap.safety.trip_state is not TripState.ARMED or h.relay_energised:
            out.false_trips += 1
        await h.proxy.restore()
        for k in range(1, RECOVERY_LIMIT + 1):
            snap = await h.cycle(manager)
            if full_data(snap):
                out.recovery_cycles = k
                break
        else:
            out.notes.append("no full data after the bus returned")
        kinds = [e.type for e in h.events]
        for needed in (EventType.BUS_LOST, EventType.BUS_RESTORED):
            if needed not in kinds:
                out.lost_alarm_events += 1
                out.notes.append(f"no {needed} event")
        await manager.stop()
    return out


# -- latch scenarios --
def _latched(snap: SystemSnapshot | None) -> bool:
    return snap is not None and snap.safety.trip_state in LATCHED


async def _tripped_state(h: Harness, storage: Any) -> None:
    """A manager that trips by hand and stops: the state a restart must keep."""
    manager = await h.manager(storage=storage)
    await h.cycle(manager)
    await manager.trip("fault suite: manual trip")
    for _ in range(4):
        await h.cycle(manager)
    await manager.stop()


async def run_relay_silent(sc: Scenario) -> Outcome:
    out = Outcome(sc)
    room = make_room(sc.seed)
    async with Harness(room, seed=sc.seed) as h:
        storage = MemoryStorage()
        await _tripped_state(h, storage)
        room.buses[0].dead.add(RELAY)  # the relay module is silent at the restart
        manager = await h.manager(storage=storage)
        for _ in range(3):
            snap = await h.cycle(manager)
        held = _latched(snap)
        room.buses[0].dead.discard(RELAY)
        for _ in range(3):
            snap = await h.cycle(manager)
        if not (held and _latched(snap) and h.relay_energised):
            out.latches_lost += 1
            out.notes.append(
                f"latch lost: state {snap.safety.trip_state} relay {h.relay_energised}"
            )
        await manager.stop()
    return out


async def run_restart_bus_down(sc: Scenario) -> Outcome:
    out = Outcome(sc)
    room = make_room(sc.seed)
    async with Harness(room, seed=sc.seed) as h:
        assert h.proxy is not None
        storage = MemoryStorage()
        await _tripped_state(h, storage)
        await h.proxy.kill()
        for _ in range(2):  # two restarts before the bus returns
            manager = await h.manager(storage=storage)
            for _ in range(2):
                await h.cycle(manager)
            await manager.stop()
        await h.proxy.restore()
        manager = await h.manager(storage=storage)
        for _ in range(3):
            snap = await h.cycle(manager)
        if not (_latched(snap) and h.relay_energised):
            out.latches_lost += 1
            out.notes.append(
                f"latch lost: state {snap.safety.trip_state} relay {h.relay_energised}"
            )
        await manager.stop()
    return out


STATE_DAMAGE = ("garbage", "truncated", "invalid_utf8", "wrong_types", "directory", "empty")


def damage_state_file(path: Path, how: str) -> None:
    text = path.read_text(encoding="utf-8")
    if how == "garbage":
        path.write_bytes(b"\x00\x93\xfe{garbage" + bytes(range(128, 192)))
    elif how == "truncated":
        path.write_text(text[: len(text) // 2], encoding="utf-8")
    elif how == "invalid_utf8":
        path.write_bytes(b'{"safety": "\xff\xfe"}')
    elif how == "wrong_types":
        data = json.loads(text)
        data["safety"] = {"state": 7, "tripped_at": [], "reason": {"a": 1}}
        data["alarms"] = "none"
        path.write_text(json.dumps(data), encoding="utf-8")
    elif how == "directory":
        path.unlink()
        path.mkdir()
    elif how == "empty":
        path.write_bytes(b"")


async def run_state_file(sc: Scenario) -> Outcome:
    out = Outcome(sc)
    room = make_room(sc.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bacs.json"
        async with Harness(room, seed=sc.seed) as h:
            await _tripped_state(h, FileStorage(path))
            damage_state_file(path, sc.mode)
            try:
                manager = await h.manager(storage=FileStorage(path))
            except Exception as err:
                out.crashes += 1
                out.notes.append(f"start raised {type(err).__name__}: {err}")
                if not h.relay_energised:
                    out.latches_lost += 1
                return out
            snap = None
            for _ in range(3):
                try:
                    snap = await h.cycle(manager)
                except Exception as err:
                    out.crashes += 1
                    out.notes.append(f"cycle raised {type(err).__name__}")
                    break
            if not (_latched(snap) and h.relay_energised):
                out.latches_lost += 1
                state = snap.safety.trip_state if snap else None
                out.notes.append(f"latch lost: state {state} relay {h.relay_energised}")
            with contextlib.suppress(Exception):
                await manager.stop()
    return out


# -- kill -9 of `bacs run` --
async def _read_status(proc: asyncio.subprocess.Process, want: str, limit: float) -> str | None:
    """Status lines of ``bacs run`` until one contains ``want``."""
    assert proc.stdout is not None
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), end - loop.time())
        except TimeoutError:
            return None
        if not line:
            return None
        text = line.decode(errors="replace")
        if want in text:
            return text
    return None


async def _bacs_run(url: str, settings: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bacs_core",
        "run",
        "--config",
        str(settings),
        url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


async def run_kill9(sc: Scenario) -> Outcome:
    """A real `bacs run` against the simulator (real time, 1 s polls), SIGKILLed, restarted."""
    out = Outcome(sc)
    room = make_room(sc.seed)
    if sc.mode == "mid_trip":
        room.inject(Fault(FaultKind.RUNAWAY, 1, 2, 3.0))
        for _ in range(60 * 10):  # five hours: far beyond the trip criteria
            room.step(30.0)
    else:
        room.set_mode(1, ChargerMode.DISCHARGE, 10.0)
    server = TcpBusServer(room, 0, gateway=True)
    await server.start()
    runner = asyncio.create_task(room.run(speed=1.0, tick_s=0.1))
    released = False

    async def watch_relay() -> None:
        nonlocal released
        seen_energised = False
        while True:
            await asyncio.sleep(0.02)
            on = room.string(1).relay.relays[0]
            seen_energised |= on
            released |= seen_energised and not on

    watcher = asyncio.create_task(watch_relay())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Path(tmp) / "settings.json"
            settings.write_text(
                json.dumps(
                    {
                        "string_count": 1,
                        "capacity_ah": 100,
                        "poll_interval": 1.0,
                        "trip": {"auto": True},
                        "storage_path": str(Path(tmp) / "state.json"),
                    }
                ),
                encoding="utf-8",
            )
            want = "trip tripped" if sc.mode == "mid_trip" else "discharge"
            errors = b""
            for attempt in range(2):
                proc = await _bacs_run(server.url, settings)
                expect = want if attempt == 0 else "cycle 2 "
                line = await _read_status(proc, expect, 40.0)
                if line is None:
                    out.notes.append(f"run {attempt + 1}: never showed {expect!r}")
                    out.crashes += 1
                if attempt == 1 and line is not None:
                    if (
                        sc.mode == "mid_trip"
                        and "trip tripped" not in line
                        and ("trip failed" not in line)
                    ):
                        out.latches_lost += 1
                        out.notes.append(f"after restart: {line.strip()}")
                    if sc.mode == "mid_discharge" and "trip armed" not in line:
                        out.false_trips += 1
                if proc.returncode is None:
                    proc.send_signal(signal.SIGKILL if attempt == 0 else signal.SIGTERM)
                _, err = await proc.communicate()
                errors += err
                if line is None and err:
                    out.notes.append(err.decode(errors="replace").strip()[-300:])
            out.unhandled_exceptions += errors.count(b"Traceback")
            if sc.mode == "mid_trip" and (released or not room.string(1).relay.relays[0]):
                out.latches_lost += 1
                out.notes.append("the trip relay was released")
    finally:
        watcher.cancel()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await server.stop()
    return out


RUNNERS = {
    "proxy": run_wire,
    "hostile": run_wire,
    "manager_float": run_manager,
    "manager_runaway": run_manager,
    "bus_killed": run_bus_killed,
    "relay_silent": run_relay_silent,
    "restart_bus_down": run_restart_bus_down,
    "state_file": run_state_file,
    "kill9": run_kill9,
}


async def run(sc: Scenario) -> Outcome:
    """One scenario with its logs watched; an exception out of it is a crash."""
    watch = LogWatch()
    with watch.installed():
        try:
            out = await RUNNERS[sc.family](sc)
        except Exception as err:
            out = Outcome(sc, crashes=1, notes=[f"scenario raised {type(err).__name__}: {err}"])
        await asyncio.sleep(0)
    out.unhandled_exceptions += len(watch.records)
    for record in watch.records[:3]:
        out.notes.append(f"logged: {record.getMessage()[:160]}")
    return out


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """The benchmark's JSON object."""
    recoveries = [o.recovery_cycles for o in outcomes if o.recovery_cycles is not None]
    result: dict[str, Any] = {"scenarios": len(outcomes)}
    for metric in METRICS:
        result[metric] = sum(getattr(o, metric) for o in outcomes)
    result["recovery_cycles_max"] = max(recoveries) if recoveries else None
    result["no_recovery"] = sum(
        1
        for o in outcomes
        if o.scenario.family in ("proxy", "hostile", "bus_killed") and o.recovery_cycles is None
    )
    result["other_units_lost"] = sum(o.other_units_lost for o in outcomes)
    result["small_deviations"] = sum(o.small_deviations for o in outcomes)
    result["values_checked"] = sum(o.values_checked for o in outcomes)
    result["rejected_frames"] = sum(o.rejected_frames for o in outcomes)
    failing = [o for o in outcomes if o.defects]
    result["failing_latch_scenarios"] = sorted(o.scenario.name for o in failing if o.scenario.latch)
    result["failing_other_scenarios"] = sorted(
        o.scenario.name for o in failing if not o.scenario.latch
    )
    return result
