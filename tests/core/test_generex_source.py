"""The passive source: a CS141 (the simulator impersonating one) read on our schedule, our alarm
rules on its readings, the same snapshot and events as the Manager, commands it cannot do
refused; ``open_source`` picks it by scheme; ``bacs run generex://`` serves it on the gateway."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bacs_core.events import Event, EventType
from bacs_core.generex.adapter import GenerexAdapter
from bacs_core.generex.source import GenerexSource
from bacs_core.generex.url import parse_generex_url
from bacs_core.manager import Manager, ManagerConfig, MemoryStorage, validate_config
from bacs_core.sim.generex import Cs141Impersonation
from bacs_core.sim.room import Fault, Room, RoomConfig
from bacs_core.snapshot import Capability, DeviceRef, ManagerStatus, SystemSnapshot, TripState
from bacs_core.source import (
    GENEREX_CAPABILITIES,
    MANAGER_CAPABILITIES,
    Source,
    SourceError,
    SourceUnavailableError,
    UnsupportedCommandError,
    open_source,
)

BLOCKS = 4
ROOT = Path(__file__).resolve().parents[2]


def make_room(*faults: str) -> Room:
    return Room(
        RoomConfig(
            strings=2,
            blocks=BLOCKS,
            seed=3,
            settle_days=0.2,
            faults=tuple(Fault.parse(f) for f in faults),
        )
    )


async def serve(room: Room) -> Cs141Impersonation:
    cs141 = Cs141Impersonation(room)
    await cs141.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    return cs141


def url_of(cs141: Cs141Impersonation) -> str:
    assert cs141.modbus is not None
    return f"generex://127.0.0.1:{cs141.modbus.port}?snmp={cs141.snmp_port}&timeout=0.4"


def config_for(url: str, **settings: object) -> ManagerConfig:
    return validate_config({"buses": [{"id": "cs141", "url": url}], **settings})


@pytest.fixture
async def cs141() -> AsyncIterator[Cs141Impersonation]:
    served = await serve(make_room())
    yield served
    await served.stop()


def open_generex(url: str, **settings: object) -> GenerexSource:
    source = open_source(url, config_for(url, **settings))
    assert isinstance(source, GenerexSource)
    return source


async def test_open_source_picks_by_scheme() -> None:
    sim = "sim://pick?strings=1&blocks=2&speed=0&settle_days=0"
    manager = open_source(sim, validate_config({"buses": [{"id": "bus1", "url": sim}]}))
    assert isinstance(manager, Manager) and isinstance(manager, Source)
    assert manager.capabilities == MANAGER_CAPABILITIES
    generex = open_generex("generex://192.0.2.1?snmp=0")
    assert isinstance(generex, Source)
    assert generex.capabilities == GENEREX_CAPABILITIES
    assert Capability.TRIP not in generex.capabilities
    with pytest.raises(ValueError, match="unknown option"):
        validate_config({"buses": [{"id": "x", "url": "generex://h?nope=1"}]})


async def test_it_publishes_the_same_snapshot_and_events(cs141: Cs141Impersonation) -> None:
    source = open_generex(url_of(cs141))
    snaps: list[SystemSnapshot] = []
    source.add_snapshot_listener(snaps.append)
    await source.start(run_loop=False)
    try:
        snap = await source.poll_once()
    finally:
        await source.stop()
    assert len(snaps) == 2 and snaps[-1] is snap is source.snapshot
    assert snap.capabilities == GENEREX_CAPABILITIES and snap.can(Capability.ACKNOWLEDGE)
    assert snap.status is ManagerStatus.OK and snap.alarms == ()
    assert snap.safety.trip_state is TripState.DISABLED and source.trip_state is TripState.DISABLED
    assert [len(s.modules) for s in snap.strings] == [BLOCKS, BLOCKS]
    devices = [dev for s in cs141.room.strings for dev in s.modules]
    modules = [m for s in snap.strings for m in s.modules]
    for module, dev in zip(modules, devices, strict=True):
        assert module.voltage.value == pytest.approx(dev.voltage, abs=0.0051)
        assert module.temperature.value == pytest.approx(dev.temperature, abs=0.051)
        assert module.resistance.value == pytest.approx(dev.resistance_mohm, abs=0.0051)
    assert set(source.devices) == {DeviceRef("cs141", n) for n in range(1, 2 * BLOCKS + 1)}
    assert snap.extra["generex_flags"] > 0


async def test_our_alarm_rules_run_on_its_readings(cs141: Cs141Impersonation) -> None:
    """A 20 °C temperature alarm limit on a room at about 25 °C: every block raises our
    temperature alarm, once, with our message; acknowledging works as on the Manager."""
    source = open_generex(
        url_of(cs141),
        thresholds={"temperature": {"warning_high": 19, "alarm_high": 20, "on_delay": 0}},
    )
    events: list[Event] = []
    source.add_event_listener(events.append)
    await source.start(run_loop=False)
    try:
        snap = await source.poll_once()
        raised = [e for e in events if e.type is EventType.ALARM_RAISED]
        keys = {a.key for a in snap.alarms}
        assert f"module:{DeviceRef('cs141', 1)}:temperature" in keys
        assert len(raised) == 2 * BLOCKS
        alarm = next(a for a in snap.alarms if a.device == DeviceRef("cs141", 5))
        assert alarm.code == "temperature_high" and alarm.string == 2
        assert alarm.message.startswith("String 2 block 1:")
        assert snap.status is ManagerStatus.ALARM
        assert all(m.problem for s in snap.strings for m in s.modules)
        assert await source.acknowledge() == 2 * BLOCKS
        assert any(e.type is EventType.ALARM_ACKNOWLEDGED for e in events)
    finally:
        await source.stop()


async def test_the_web_managers_own_verdicts_are_conditions() -> None:
    """A dead module: the CS141 flags it lost; our source says it does not answer (the same
    comm-lost rule as the Manager) and announces the device lost."""
    cs141 = await serve(make_room("dead:1:2"))
    source = open_generex(url_of(cs141))
    events: list[Event] = []
    source.add_event_listener(events.append)
    try:
        await source.start(run_loop=False)
        snap = source.snapshot
        assert snap is not None
        lost = snap.strings[0].modules[1]
        assert not lost.info.online and lost.voltage.value is None and lost.problem
        assert any(a.key == f"comm:{lost.info.ref}" for a in snap.alarms)
        assert snap.status is ManagerStatus.DEGRADED
        assert any(e.type is EventType.DEVICE_LOST and e.device == lost.info.ref for e in events)
    finally:
        await source.stop()
        await cs141.stop()


async def test_a_silent_web_manager_is_a_lost_bus_not_old_figures() -> None:
    cs141 = await serve(make_room())
    source = open_generex(url_of(cs141))
    events: list[Event] = []
    source.add_event_listener(events.append)
    await source.start(run_loop=False)
    await cs141.stop()
    try:
        snap = await source.poll_once()
    finally:
        await source.stop()
    assert snap.status is ManagerStatus.BUS_LOST and not snap.buses[0].connected
    assert [len(s.modules) for s in snap.strings] == [BLOCKS, BLOCKS]  # the devices stay
    assert all(m.voltage.value is None and not m.info.online for m in snap.strings[0].modules)
    assert any(a.code == "bus_lost" for a in snap.alarms)
    assert [e.type for e in events if e.type is EventType.BUS_LOST] == [EventType.BUS_LOST]
    assert "127.0.0.1" not in str(source.diagnostics())


async def test_nothing_answering_at_start_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = open_generex(f"generex://127.0.0.1:{port}?snmp=0&timeout=0.2")
    with pytest.raises(SourceUnavailableError, match="does not answer"):
        await source.start()


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("trip", ("test",)),
        ("reset_trip", ()),
        ("measure_resistance", (DeviceRef("cs141", 1),)),
        ("identify", (DeviceRef("cs141", 1),)),
        ("set_relay", (DeviceRef("cs141", 1), 1, True)),
        ("set_equalization", (True,)),
        ("set_float_voltage", (13.5,)),
        ("rescan", ()),
    ],
)
async def test_commands_it_cannot_do_are_refused(command: str, args: tuple[object, ...]) -> None:
    source = open_generex("generex://192.0.2.1?snmp=0")
    with pytest.raises(UnsupportedCommandError, match="read-only") as err:
        await getattr(source, command)(*args)
    assert isinstance(err.value, SourceError) and err.value.command == command


async def test_latched_alarms_survive_a_restart(cs141: Cs141Impersonation) -> None:
    storage = MemoryStorage()
    url = url_of(cs141)
    hot = {"temperature": {"warning_high": 19, "alarm_high": 20, "on_delay": 0}}
    config = config_for(url, thresholds=hot)
    first = GenerexSource(parse_generex_url(url), config, storage=storage)
    await first.start(run_loop=False)
    await first.stop()
    cool = config_for(url)
    second = GenerexSource(parse_generex_url(url), cool, storage=storage)
    await second.start(run_loop=False)
    await second.stop()
    assert second.snapshot is not None
    # Under the cool limits nothing would be raised: these come from the stored state.
    restored = [a for a in second.snapshot.alarms if a.code == "temperature_high"]
    assert len(restored) == 2 * BLOCKS


async def test_bacs_run_generex_serves_the_gateway(cs141: Cs141Impersonation) -> None:
    """simulator (as a CS141) → bacs run generex:// → gateway → our adapter: the same module
    values within one scale step."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bacs_core", "run", url_of(cs141), "--interval", "1",
        "--serve-modbus", f"127.0.0.1:{port}", "--serve-snmp", "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert b"gateway: Modbus TCP" in line, line
        adapter = GenerexAdapter(parse_generex_url(f"generex://127.0.0.1:{port}?snmp=0"))
        try:
            for _ in range(100):
                r = await adapter.read()
                if len(r.strings) == 2 and r.strings[0].voltage.value:
                    break
                await asyncio.sleep(0.1)
        finally:
            await adapter.close()
        assert r.general is not None and r.general.num_modules == 2 * BLOCKS
        for reading, s in zip(r.strings, cs141.room.strings, strict=True):
            total = sum(dev.voltage for dev in s.modules)
            assert reading.voltage.value == pytest.approx(total, abs=0.11)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
