"""The remote-appliance source against a real broker (Debian's mosquitto): an in-process
appliance (a Manager on a simulated room, its MQTT publisher with ``snapshot: true``) and a
RemoteSource reading it through the broker. The source must hand on the very snapshot and
events the manager made, carry the enabled commands both ways, refuse what the site file
does not enable, and never stand between the appliance and its breaker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bacs_core.events import Event, EventType
from bacs_core.manager import Manager, MemoryStorage, SafetyRefusedError, validate_config
from bacs_core.mqtt import mqtt_settings
from bacs_core.mqtt.publisher import DURABLE_EVENTS, MqttPublisher
from bacs_core.mqtt.snapshot_codec import (
    SnapshotFormatError,
    decode_snapshot,
    encode_snapshot,
)
from bacs_core.remote.source import RemoteCommandError, RemoteSource
from bacs_core.remote.url import RemoteUrlError, parse_remote_url, remote_url
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.snapshot import (
    BreakerState,
    Capability,
    ManagerStatus,
    SystemSnapshot,
    TripState,
)
from bacs_core.source import SourceUnavailableError, UnsupportedCommandError, open_source
from tests.mqtt_broker import Mosquitto, Subscriber, needs_mosquitto, running_broker

CONFIG = {
    "buses": [{"id": "bus1", "url": "sim://x"}],
    "string_count": 2,
    "trip": {"auto": True},
    "poll_interval": 10,
}
RUNAWAY, STEP = 10.0, 30.0  # a fierce runaway, 30 s cycles: tripped in about 160 cycles
ALL_COMMANDS = {
    "acknowledge": True,
    "reset_trip": True,
    "identify": True,
    "set_float_voltage": True,
    "trip": True,
    "set_equalization": True,
}


class Appliance:
    """``bacs run`` in miniature: a manager on a simulated room, cycled by the test, and its
    MQTT publisher with the whole snapshot on."""

    def __init__(self, room: Room, port: int, state_dir: Path, **mqtt: Any) -> None:
        self.room = room
        self.clock = [0.0]
        self.manager = Manager(
            validate_config(CONFIG),
            storage=MemoryStorage(),
            transports={"bus1": LoopbackTransport(room)},
            clock=lambda: self.clock[0],
        )
        settings = mqtt_settings(
            {"host": "127.0.0.1", "port": port, "keepalive": 5, "snapshot": True, **mqtt}
        )
        self.publisher = MqttPublisher(
            self.manager, settings, site_id="t1", site_name="Test room", state_dir=state_dir
        )

    async def start(self) -> None:
        await self.manager.start(run_loop=False)
        self.publisher.start()

    async def stop(self) -> None:
        await self.manager.stop()
        await self.publisher.stop()

    async def cycle(self, n: int = 1, step: float = 10.0) -> SystemSnapshot:
        snap = None
        for _ in range(n):
            self.room.step(step)
            self.clock[0] += step
            snap = await self.manager.poll_once()
        assert snap is not None
        return snap


@pytest.fixture
def room() -> Room:
    return Room(RoomConfig(strings=2, blocks=4, seed=5, settle_days=1))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    (tmp_path / "broker").mkdir()
    with running_broker(tmp_path / "broker") as b:
        yield b


@pytest.fixture
async def appliance(room: Room, broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Appliance]:
    a = Appliance(room, broker.port, tmp_path / "state", commands=ALL_COMMANDS)
    await a.start()
    yield a
    await a.stop()


def remote(broker: Mosquitto, **kw: Any) -> RemoteSource:
    url = f"mqtt://127.0.0.1:{broker.port}/bacs/t1"
    source = open_source(url, validate_config({"buses": [{"id": "bus1", "url": url}]}))
    assert isinstance(source, RemoteSource)
    for key, value in kw.items():
        setattr(source, key, value)
    return source


async def until(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def without_capabilities(snap: SystemSnapshot) -> SystemSnapshot:
    from dataclasses import replace

    return replace(snap, capabilities=frozenset())


# -- the wire format ---------------------------------------------------------------------
async def test_the_snapshot_survives_the_wire_exactly(room: Room, tmp_path: Path) -> None:
    a = Appliance(room, 1, tmp_path)
    await a.manager.start(run_loop=False)
    await a.cycle()
    room.buses[0].dead.add(2)  # a module stops answering: an alarm and a lost device
    await a.manager.trip("test", 2)
    snap = await a.cycle(4)
    await a.manager.stop()
    assert snap.alarms and snap.safety.strings  # something to carry
    text = encode_snapshot(
        snap, site="t1", commands=frozenset({"identify"}), float_voltage=13.5,
        float_voltage_per_cell=2.25,
    )  # fmt: skip
    state = decode_snapshot(text.encode())
    assert state.snapshot == snap
    assert (state.site, state.commands, state.float_voltage) == ("t1", {"identify"}, 13.5)
    newer = json.loads(text) | {"format": 99}
    with pytest.raises(SnapshotFormatError, match="format 99.*update bacs-core"):
        decode_snapshot(json.dumps(newer))
    damaged = json.loads(text)
    damaged["snapshot"]["safety"]["trip_state"] = "exploded"
    with pytest.raises(SnapshotFormatError, match="damaged"):
        decode_snapshot(json.dumps(damaged))
    with pytest.raises(SnapshotFormatError, match="not JSON"):
        decode_snapshot(b"{")


def test_remote_urls() -> None:
    a = parse_remote_url("mqtts://bacs:pw@broker.lan/sites/bacs/shelter-17?ca=/etc/ca.pem")
    assert (a.host, a.port, a.prefix, a.site, a.username, a.password, a.tls, a.ca_certs) == (
        "broker.lan", 8883, "sites/bacs", "shelter-17", "bacs", "pw", True, "/etc/ca.pem"
    )  # fmt: skip
    assert "pw" not in a.url() and "pw" not in repr(a)
    assert parse_remote_url(a.url(), password="pw") == a
    assert parse_remote_url("mqtt://h/bacs/x", password="s").password == "s"
    assert remote_url("h", 1884, "bacs", "x", username="u") == "mqtt://u@h:1884/bacs/x"
    for bad, why in [
        ("mqtt://h/site", "topic prefix and the site id"),
        ("mqtt:///bacs/x", "no broker host"),
        ("mqtt://h/bacs/x y", "not a topic level"),
        ("mqtt://h/bacs/x?ca=/c", "need mqtts"),
        ("mqtts://h/bacs/x?foo=1", "unknown option"),
        ("mqtt://h:99999/bacs/x", "out of range"),
    ]:
        with pytest.raises(RemoteUrlError, match=why):
            parse_remote_url(bad)
    # The manager's schema takes it as a bus URL (a config entry keeps one), with its errors.
    validate_config({"buses": [{"id": "b", "url": "mqtt://h/bacs/x"}]})
    with pytest.raises(Exception, match="topic prefix"):
        validate_config({"buses": [{"id": "b", "url": "mqtt://h/x"}]})


# -- against the broker ------------------------------------------------------------------
@needs_mosquitto
async def test_the_source_hands_on_the_managers_snapshots_and_events(
    appliance: Appliance, broker: Mosquitto, room: Room
) -> None:
    await appliance.cycle()
    source = remote(broker)
    got: list[SystemSnapshot] = []
    events: list[Event] = []
    source.add_snapshot_listener(got.append)
    source.add_event_listener(events.append)
    states_told: list[tuple[EventType, TripState]] = []
    source.add_event_listener(lambda e: states_told.append((e.type, source.trip_state)))
    await source.start()
    try:
        assert source.snapshot is not None
        local = appliance.manager.snapshot
        assert local is not None
        assert without_capabilities(source.snapshot) == without_capabilities(local)
        assert set(source.devices) == set(appliance.manager.devices)
        # What a remote reader can do: everything read, the commands the site file enables;
        # never a bus rescan, a resistance measurement or a relay output.
        assert Capability.TRIP in source.capabilities
        assert Capability.ACKNOWLEDGE in source.capabilities
        assert {Capability.RESCAN, Capability.MEASURE_RI, Capability.RELAYS}.isdisjoint(
            source.capabilities
        )
        assert source.snapshot.capabilities == source.capabilities

        local_events: list[Event] = []
        appliance.manager.add_event_listener(local_events.append)
        room.inject(Fault(FaultKind.RUNAWAY, 1, 3, RUNAWAY))
        for _ in range(400):
            snap = await appliance.cycle(step=STEP)
            if snap.safety.trip_state is TripState.TRIPPED:
                break
        assert snap.safety.trip_state is TripState.TRIPPED
        await until(
            lambda: source.snapshot is not None
            and source.snapshot.safety == appliance.manager.snapshot.safety  # type: ignore[union-attr]
        )
        await until(lambda: EventType.TRIPPED in {e.type for e in events})
        # The very events the manager announced (the durable ones at QoS 1, in order).
        assert [e for e in events if e.type in DURABLE_EVENTS] == [
            e for e in local_events if e.type in DURABLE_EVENTS
        ]
        types = [e.type for e in events]
        assert types.index(EventType.RUNAWAY_DETECTED) < types.index(EventType.TRIPPED)
        # As from the manager itself: an event is told once the state it led to is there.
        assert (EventType.TRIPPED, TripState.TRIPPED) in states_told
        tripped = next(e for e in events if e.type is EventType.TRIPPED)
        assert tripped.string == 1 and "block 3" in tripped.message
        assert source.trip_state is TripState.TRIPPED
        room.inject(Fault(FaultKind.DEAD, 2, 3))  # a module stops answering: an alarm
        snap = await appliance.cycle(4)
        waiting = [a for a in snap.alarms if not a.acknowledged]
        assert waiting
        await until(lambda: source.snapshot is not None and source.snapshot.alarms == snap.alarms)
        assert await source.acknowledge(waiting[0].key) == 1
        assert await source.acknowledge() == len(waiting) - 1
        # An unchanged picture is not handed on again.
        before = len(got)
        await asyncio.sleep(0.3)
        assert len(got) == before
    finally:
        await source.stop()


@needs_mosquitto
async def test_commands_round_trip_with_the_managers_own_answers(
    appliance: Appliance, broker: Mosquitto, room: Room
) -> None:
    await appliance.cycle(2)
    source = remote(broker)
    await source.start()
    try:
        await source.trip("from afar", 2)
        assert appliance.manager.safety.state is TripState.TRIPPED
        snap = await appliance.cycle(2)
        assert snap.safety.string(2).state is TripState.TRIPPED  # type: ignore[union-attr]
        assert snap.safety.string(1).state is TripState.ARMED  # type: ignore[union-attr]
        assert "from afar" in (snap.safety.string(2).reason or "")  # type: ignore[union-attr]
        await until(lambda: source.trip_state is TripState.TRIPPED)

        relay = next(r for r in appliance.manager.devices if r.unit == 2 * 4 + 3)
        room.buses[0].dead.add(relay.unit)  # the breaker can no longer be read: unsafe
        await appliance.cycle(3)
        with pytest.raises(SafetyRefusedError) as refused:
            await source.reset_trip(2)
        assert refused.value.code == "state_unknown"
        room.buses[0].dead.clear()
        await appliance.cycle(3)
        with pytest.raises(ValueError, match="no string 7"):
            await source.reset_trip(7)
        await source.reset_trip(2)  # that string only
        snap = await appliance.cycle(1)
        assert snap.safety.string(2).state is TripState.ARMED  # type: ignore[union-attr]

        await source.identify(relay)
        await source.set_float_voltage(13.5)
        await until(lambda: source.config.float_voltage == 13.5)
        await source.set_equalization(False)
        await appliance.cycle(1)
        await until(
            lambda: source.snapshot is not None and not source.snapshot.equalization_enabled
        )
        with pytest.raises(ValueError, match="outside"):
            await source.set_float_voltage(99.0)
        for command in (source.rescan(), source.measure_resistance(relay)):
            with pytest.raises(UnsupportedCommandError, match="no such command"):
                await command
    finally:
        await source.stop()


@needs_mosquitto
async def test_commands_the_site_file_does_not_enable_are_refused_here(
    room: Room, broker: Mosquitto, tmp_path: Path
) -> None:
    a = Appliance(room, broker.port, tmp_path / "state", commands={"identify": True})
    await a.start()
    source = remote(broker)
    try:
        await a.cycle()
        await source.start()
        assert Capability.ACKNOWLEDGE not in source.capabilities
        assert Capability.IDENTIFY in source.capabilities
        await a.manager.trip("test")
        with pytest.raises(UnsupportedCommandError, match="commands: reset_trip: true"):
            await source.reset_trip()
        assert a.manager.safety.state is TripState.TRIPPED
    finally:
        await source.stop()
        await a.stop()


@needs_mosquitto
async def test_a_silent_appliance_times_out_and_an_offline_one_is_marked_lost(
    appliance: Appliance, broker: Mosquitto
) -> None:
    await appliance.cycle()
    source = remote(broker, command_timeout=0.5)
    await source.start()
    try:
        assert source.snapshot is not None
        assert source.snapshot.status is not ManagerStatus.BUS_LOST
        await appliance.publisher.stop()  # says "offline", as its last will would
        await until(lambda: source.appliance_online is False)
        assert source.snapshot.status is ManagerStatus.BUS_LOST
        assert not any(b.connected for b in source.snapshot.buses)
        with pytest.raises(RemoteCommandError, match="offline"):
            await source.acknowledge()
        source.appliance_online = None  # as if the offline word never came: no answer
        with pytest.raises(RemoteCommandError, match="did not answer within 0.5 s"):
            await source.acknowledge()
    finally:
        await source.stop()


@needs_mosquitto
async def test_start_says_why_there_is_no_snapshot(
    room: Room, broker: Mosquitto, tmp_path: Path
) -> None:
    source = remote(broker, start_timeout=0.5)
    with pytest.raises(SourceUnavailableError, match="nothing is published under bacs/t1/"):
        await source.start()
    a = Appliance(room, broker.port, tmp_path / "state", snapshot=False)
    await a.start()
    try:
        await a.cycle()
        await asyncio.to_thread(a.publisher.connected_event.wait, 10)
        source = remote(broker, start_timeout=0.5)
        with pytest.raises(SourceUnavailableError, match="set 'snapshot: true'"):
            await source.start()
    finally:
        await a.stop()
    gone = parse_remote_url(f"mqtt://127.0.0.1:{broker.port}/bacs/t1")
    broker.stop()
    source = RemoteSource(gone, validate_config(CONFIG), start_timeout=0.5)
    with pytest.raises(SourceUnavailableError, match=r"127\.0\.0\.1"):
        await source.start()


@needs_mosquitto
async def test_the_appliance_trips_while_no_reader_is_connected(
    appliance: Appliance, broker: Mosquitto, room: Room
) -> None:
    """The reader (Home Assistant's side) goes away mid-runaway: the breaker still opens on
    the simulator, and the reader that comes back finds the latched trip retained."""
    sub = Subscriber(broker.port, "bacs/t1/event")
    await appliance.cycle()
    source = remote(broker)
    await source.start()
    room.inject(Fault(FaultKind.RUNAWAY, 1, 3, RUNAWAY))
    for _ in range(400):
        snap = await appliance.cycle(step=STEP)
        if snap.safety.pre_alert:
            break
    await until(lambda: source.snapshot is not None and source.snapshot.safety.pre_alert)
    await source.stop()
    for _ in range(400):
        snap = await appliance.cycle(step=STEP)
        if snap.safety.trip_state is TripState.TRIPPED:
            break
    assert snap.safety.trip_state is TripState.TRIPPED
    snap = await appliance.cycle(2)  # the breaker's auxiliary contact is read a cycle later
    string = room.string(1)
    assert string.relay.relays[string.channel], "the trip relay is energised"
    assert not string.physics.breaker_closed, "the breaker opened"
    assert snap.safety.string(1).breaker is BreakerState.OPEN  # type: ignore[union-attr]
    await asyncio.to_thread(appliance.publisher.flush)
    again = remote(broker)
    await again.start()
    try:
        await until(lambda: again.trip_state is TripState.TRIPPED)
        assert again.snapshot is not None
        assert again.snapshot.safety.string(1).breaker is BreakerState.OPEN  # type: ignore[union-attr]
        await asyncio.to_thread(
            sub.wait_for, lambda: any(e["type"] == "tripped" for e in sub.events("bacs/t1/event"))
        )
    finally:
        sub.close()
        await again.stop()


@needs_mosquitto
async def test_bacs_run_watches_a_remote_appliance(appliance: Appliance, broker: Mosquitto) -> None:
    """``bacs run mqtt://…`` (this worktree's code): the remote appliance's cycle, printed."""
    import os
    import sys

    await appliance.cycle()
    await asyncio.to_thread(appliance.publisher.flush)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    url = f"mqtt://127.0.0.1:{broker.port}/bacs/t1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bacs_core", "run", url, "--cycles", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=root,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert f"cycle {appliance.manager.snapshot.cycle}" in out.decode()  # type: ignore[union-attr]
    assert "trip armed" in out.decode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bacs_core", "run", url.replace("/t1", "/t1/x"), "--cycles", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=root,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "nothing is published under bacs/t1/x/" in err.decode()


@needs_mosquitto
async def test_a_quiet_cycle_sends_no_snapshot(appliance: Appliance) -> None:
    await appliance.cycle(2)
    await asyncio.to_thread(appliance.publisher.flush)
    # The first snapshot goes once the publisher is connected, which a loaded machine delays.
    deadline = asyncio.get_running_loop().time() + 15
    while appliance.publisher.stats.snapshot_messages < 1:
        assert asyncio.get_running_loop().time() < deadline, "no snapshot was published"
        await asyncio.sleep(0.1)
        await asyncio.to_thread(appliance.publisher.flush)
    sent = appliance.publisher.stats.snapshot_messages
    for _ in range(2):  # the room stands still: every value as it was
        appliance.clock[0] += 10.0
        await appliance.manager.poll_once()
    await asyncio.to_thread(appliance.publisher.flush)
    assert appliance.publisher.stats.snapshot_messages == sent
    await appliance.manager.set_equalization(False)  # not a value topic, still news
    appliance.clock[0] += 10.0
    await appliance.manager.poll_once()
    await asyncio.to_thread(appliance.publisher.flush)
    assert appliance.publisher.stats.snapshot_messages == sent + 1


@needs_mosquitto
async def test_a_broker_restart_marks_the_appliance_lost_then_found(
    appliance: Appliance, broker: Mosquitto
) -> None:
    await appliance.cycle()
    source = remote(broker)
    await source.start()
    try:
        assert source.snapshot is not None and source.snapshot.buses[0].connected
        broker.stop()  # forgets every retained message, like a broker without persistence
        await until(lambda: not source.connected)
        assert source.snapshot.status is ManagerStatus.BUS_LOST
        assert not source.snapshot.buses[0].connected
        snap = await appliance.cycle()  # the appliance goes on without the broker
        broker.start()
        await until(lambda: source.connected and source.snapshot.buses[0].connected, 30)
        await until(lambda: source.snapshot.cycle >= snap.cycle)  # type: ignore[union-attr]
        assert source.snapshot.status is not ManagerStatus.BUS_LOST
    finally:
        await source.stop()
