"""The latch is the last thing to go: the trip state survives silent relay modules, lost
buses, restarts and damaged state files. On the simulator, with real FileStorage in tmp dirs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bacs_core.events import Event, EventType
from bacs_core.manager import FileStorage, Manager, SafetyRefusedError, validate_config
from bacs_core.manager.storage import Storage
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.snapshot import (
    BreakerState,
    DeviceRef,
    ManagerStatus,
    Severity,
    SystemSnapshot,
    TripState,
)

CONFIG: dict[str, Any] = {
    "buses": [{"id": "bus1", "url": "sim://x"}],
    "string_count": 2,
    "capacity_ah": 40,
    "trip": {"auto": True},
    "poll_interval": 10,
}
# A runaway confirmed within a few simulated minutes (the detector's own rules, low bounds).
HOT = {"runaway": {"pre_alert_delta": 1, "alarm_delta": 2, "trip_delta": 3, "confirm_cycles": 1}}


class Site:
    """One manager process on the room; a new Site on the same storage is a restart."""

    def __init__(self, room: Room, storage: Storage, **config: Any) -> None:
        self.room = room
        self.clock = [0.0]
        self.events: list[Event] = []
        self.manager = Manager(
            validate_config(CONFIG | config),
            storage=storage,
            transports={"bus1": LoopbackTransport(room)},
            clock=lambda: self.clock[0],
        )
        self.manager.add_event_listener(self.events.append)

    async def start(self) -> Site:
        await self.manager.start(run_loop=False)
        return self

    async def cycles(self, n: int, step: float = 10.0) -> SystemSnapshot:
        snap = None
        for _ in range(n):
            self.room.step(step)
            self.clock[0] += step
            snap = await self.manager.poll_once()
        assert snap is not None
        return snap

    def types(self) -> list[EventType]:
        return [e.type for e in self.events]


def alarm(snap: SystemSnapshot, key: str) -> Any:
    return next((a for a in snap.alarms if a.key == key), None)


def relay_unit(room: Room) -> int:
    return room.string(1).relay.unit


def energised(room: Room) -> bool:
    return bool(room.string(1).relay.relays[room.string(1).channel])


def release_relays(room: Room, bits: int = 0) -> None:
    """The relay module's outputs set from outside (a restart, a person at the module)."""
    room.string(1).relay.control["relay_setpoint"] = bits


def silence_relay(room: Room, silent: bool = True) -> None:
    dead = room.buses[0].dead
    if silent:
        dead.add(relay_unit(room))
    else:
        dead.discard(relay_unit(room))


@pytest.fixture
def room() -> Room:
    return Room(RoomConfig(strings=2, blocks=4, capacity_ah=40, settle_days=0.2, seed=5))


async def tripped_site(room: Room, storage: Storage) -> None:
    """A manual trip, seen through, then the process stops."""
    site = await Site(room, storage).start()
    await site.cycles(2)
    await site.manager.trip("test")
    snap = await site.cycles(3)
    assert snap.safety.trip_state is TripState.TRIPPED
    assert snap.safety.breaker is BreakerState.OPEN
    await site.manager.stop()


# -- the relay module silent at start, or lost -------------------------------------------------
async def test_latch_restored_with_the_relay_silent_and_applied_when_it_answers(
    room: Room, tmp_path: Path
) -> None:
    storage = FileStorage(tmp_path / "state.json")
    await tripped_site(room, storage)
    release_relays(room)  # the module restarted and forgot its outputs
    silence_relay(room)
    site = await Site(room, storage).start()
    snap = await site.cycles(2)
    assert snap.safety.trip_state is TripState.TRIPPED  # never rewritten as armed
    assert not snap.safety.breaker_path_available
    path = alarm(snap, "safety:trip_path")
    assert path is not None and path.severity is Severity.CRITICAL
    assert snap.status is ManagerStatus.TRIPPED
    with pytest.raises(SafetyRefusedError) as err:
        await site.manager.reset_trip()
    assert err.value.code == "state_unknown"  # the breaker cannot be read
    silence_relay(room, False)
    snap = await site.cycles(1)
    assert energised(room)  # re-applied the cycle it answers
    snap = await site.cycles(3)
    assert snap.safety.breaker_path_available
    assert snap.safety.trip_state is TripState.TRIPPED
    assert alarm(snap, "safety:trip_path") is None
    assert EventType.ALARM_CLEARED in site.types()


async def test_two_restarts_with_the_relay_silent_keep_the_latch(
    room: Room, tmp_path: Path
) -> None:
    storage = FileStorage(tmp_path / "state.json")
    await tripped_site(room, storage)
    silence_relay(room)
    for _ in range(2):
        site = await Site(room, storage).start()
        snap = await site.cycles(2)
        assert snap.safety.trip_state is TripState.TRIPPED
        await site.manager.stop()
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["safety"]["strings"]["1"]["state"] == "tripped"
    assert saved["safety"]["strings"]["2"]["state"] == "tripped"
    silence_relay(room, False)
    site = await Site(room, storage).start()
    snap = await site.cycles(3)
    assert snap.safety.trip_state is TripState.TRIPPED
    assert energised(room)


async def test_two_restarts_with_the_bus_down_keep_the_latch(room: Room, tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "state.json")
    await tripped_site(room, storage)
    room.inject(Fault(FaultKind.VANISH, 1, value=1e9))
    for _ in range(2):
        site = await Site(room, storage).start()
        snap = await site.cycles(2)
        assert snap.safety.trip_state is TripState.TRIPPED
        assert snap.status is ManagerStatus.TRIPPED
        await site.manager.stop()
    room.buses[0].faults.vanished_until = -1.0  # the bus is back
    site = await Site(room, storage).start()
    snap = await site.cycles(3)
    assert snap.safety.trip_state is TripState.TRIPPED
    assert energised(room)


async def test_relay_silent_at_first_start_is_searched_for_and_arms_the_trip(room: Room) -> None:
    silence_relay(room)
    site = await Site(room, FileStorageless()).start()
    snap = await site.cycles(2)
    assert snap.safety.trip_state is TripState.ARMED
    assert not snap.safety.breaker_path_available
    path = alarm(snap, "safety:trip_path")
    assert path is not None and path.severity is Severity.ALARM
    assert snap.status is not ManagerStatus.OK
    silence_relay(room, False)
    snap = await site.cycles(4, step=10.0)  # the search runs every 30 s of manager time
    assert snap.safety.breaker_path_available
    assert alarm(snap, "safety:trip_path") is None
    assert len(snap.relays) == 1
    assert EventType.DEVICE_ADDED in site.types()


async def test_configured_trip_relay_silent_at_start_is_probed_every_cycle(room: Room) -> None:
    silence_relay(room)
    unit = relay_unit(room)
    breakers = [{"relay": f"bus1/{unit}", "channel": 1, "input": 1}]
    site = await Site(room, FileStorageless(), trip={"breakers": breakers}).start()
    snap = await site.cycles(2)
    assert snap.safety.trip_state is TripState.ARMED
    assert not snap.safety.breaker_path_available
    assert f"bus1/{unit}" in alarm(snap, "safety:trip_path").message
    silence_relay(room, False)
    snap = await site.cycles(1)  # its address is known: found the next cycle
    assert snap.safety.breaker_path_available
    assert alarm(snap, "safety:trip_path") is None


async def test_runaway_while_the_relay_is_silent_trips_when_it_answers(room: Room) -> None:
    silence_relay(room)
    site = await Site(room, FileStorageless(), **HOT).start()
    await site.cycles(2)
    room.inject(Fault(FaultKind.RUNAWAY, 1, 2, 3.0))
    snap = await _until(site, lambda s: s.safety.trip_state is not TripState.ARMED)
    detected = [e for e in site.events if e.type is EventType.RUNAWAY_DETECTED]
    assert detected and detected[0].data["trip"] == "path_unavailable"
    assert snap.safety.trip_state is TripState.TRIPPED  # latched, waiting for the relay
    assert not energised(room)
    silence_relay(room, False)
    snap = await site.cycles(6)  # found by the next search (30 s), confirmed open (2 polls)
    assert energised(room)
    string1 = snap.safety.string(1)
    assert string1 is not None and string1.breaker is BreakerState.OPEN


async def test_runaway_without_any_trip_relay_is_still_announced(room: Room) -> None:
    site = await Site(room, FileStorageless(), trip={"auto": False}, **HOT).start()
    await site.cycles(2)
    room.inject(Fault(FaultKind.RUNAWAY, 1, 2, 3.0))
    snap = await _until(site, lambda s: s.safety.runaway)
    assert snap.safety.trip_state is TripState.DISABLED
    detected = [e for e in site.events if e.type is EventType.RUNAWAY_DETECTED]
    assert len(detected) == 1 and detected[0].data["trip"] == "no_trip_relay"
    assert EventType.RUNAWAY_PRE_ALERT in site.types()
    await site.cycles(3)
    assert [e.type for e in site.events].count(EventType.RUNAWAY_DETECTED) == 1


async def _until(site: Site, done: Any, limit: int = 400) -> SystemSnapshot:
    for _ in range(limit):
        snap = await site.cycles(1, step=60.0)
        if done(snap):
            return snap
    raise AssertionError("condition not reached")


class FileStorageless:
    """No state stored yet (a first start), held in memory."""

    def __init__(self) -> None:
        self.data: dict[str, Any] | None = None

    async def load(self) -> dict[str, Any] | None:
        return self.data

    async def save(self, data: dict[str, Any]) -> None:
        self.data = data


# -- state files that fail safe ---------------------------------------------------------------
def _damage_main(kind: str, path: Path) -> None:
    """Damage the state file one way; the backup copy goes (else it would be read)."""
    path.with_name("state.json.bak").unlink()
    if kind == "corrupt":
        path.write_text('{"safety": {"state": "tripp')
    elif kind == "utf8":
        path.write_bytes(b'{"safety": {"state": "tripped\xff\xfe"}}')
    elif kind == "mistyped":
        path.write_text(json.dumps({"version": 2, "safety": {"state": ["tripped"]}}))
    elif kind == "not_an_object":
        path.write_text("[1, 2]")
    elif kind == "directory":
        path.unlink()
        path.mkdir()
    elif kind == "unreadable":
        path.unlink()
        path.parent.joinpath("blocker").write_text("a file where a directory is expected")


@pytest.mark.parametrize(
    ("kind", "relay_on"),
    [
        ("corrupt", True),
        ("utf8", False),
        ("mistyped", True),
        ("not_an_object", False),
        ("directory", True),
        ("unreadable", False),
    ],
)
async def test_damaged_state_file_starts_unknown_and_leaves_the_relays(
    room: Room, tmp_path: Path, kind: str, relay_on: bool
) -> None:
    path = tmp_path / "state.json"
    await tripped_site(room, FileStorage(path))
    if not relay_on:  # someone closed the breaker by hand and released the relay
        release_relays(room)
        room.close_breaker(1)
        room.close_breaker(2)
    _damage_main(kind, path)
    state_path = tmp_path / "blocker" / "state.json" if kind == "unreadable" else path
    site = await Site(room, FileStorage(state_path)).start()
    snap = await site.cycles(3)
    assert snap.safety.trip_state is TripState.UNKNOWN
    assert snap.safety.state_note
    critical = alarm(snap, "safety:state_unknown")
    assert critical is not None and critical.severity is Severity.CRITICAL
    assert str(state_path) in critical.message
    assert energised(room) is relay_on  # never de-energised, never energised by a file
    await site.manager.stop()
    again = await Site(room, FileStorage(state_path)).start()  # a restart keeps it unknown
    snap = await again.cycles(2)
    assert snap.safety.trip_state is TripState.UNKNOWN
    assert energised(room) is relay_on
    relay = room.string(1).relay
    with pytest.raises(SafetyRefusedError) as err:  # not by switching the relay off
        await again.manager.set_relay(DeviceRef("bus1", relay.unit), 1, False)
    assert err.value.code == "use_reset"
    await again.manager.reset_trip()  # a person confirms
    snap = await again.cycles(2)
    assert snap.safety.trip_state is TripState.ARMED
    assert alarm(snap, "safety:state_unknown") is None
    assert not energised(room)


async def test_unknown_reset_is_refused_while_unsafe_and_a_runaway_still_trips(
    room: Room, tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    path.write_text("garbage")
    site = await Site(room, FileStorage(path), **HOT).start()
    silence_relay(room)
    await site.cycles(2)
    with pytest.raises(SafetyRefusedError) as err:
        await site.manager.reset_trip()
    assert err.value.code == "state_unknown"
    silence_relay(room, False)
    room.inject(Fault(FaultKind.RUNAWAY, 1, 2, 3.0))
    snap = await _until(site, lambda s: s.safety.pre_alert)
    with pytest.raises(SafetyRefusedError) as err:
        await site.manager.reset_trip()
    assert err.value.code == "runaway_active"
    assert site.manager.safety.state is TripState.UNKNOWN
    snap = await _until(site, lambda s: s.safety.trip_state is TripState.TRIPPED)
    assert energised(room)
    assert snap.safety.trip_state is TripState.TRIPPED


async def test_backup_copy_keeps_the_latch_when_the_main_file_is_damaged(
    room: Room, tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    await tripped_site(room, FileStorage(path))
    backup = tmp_path / "state.json.bak"
    assert backup.exists()
    assert json.loads(backup.read_text())["safety"]["strings"]["1"]["state"] == "tripped"
    path.write_text(json.dumps({"version": 2, "safety": {"state": "tripped", "reason": 7}}))
    site = await Site(room, FileStorage(path)).start()
    snap = await site.cycles(2)
    assert snap.safety.trip_state is TripState.TRIPPED
    note = alarm(snap, "safety:state_recovered")
    assert note is not None and "safety.reason" in note.message and ".bak" in note.message
    assert any(p.name.startswith("state.json.corrupt-") for p in tmp_path.iterdir())
    await site.manager.acknowledge("safety:state_recovered")
    snap = await site.cycles(1)
    assert alarm(snap, "safety:state_recovered") is None


async def test_both_copies_damaged_is_unknown_and_says_so(room: Room, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    await tripped_site(room, FileStorage(path))
    path.write_text("{")
    (tmp_path / "state.json.bak").write_bytes(b"\xff")
    site = await Site(room, FileStorage(path)).start()
    snap = await site.cycles(1)
    assert snap.safety.trip_state is TripState.UNKNOWN
    message = alarm(snap, "safety:state_unknown").message
    assert "not valid JSON" in message and "backup copy is damaged too" in message


async def test_missing_state_directory_is_created(room: Room, tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.json"
    site = await Site(room, FileStorage(path)).start()
    snap = await site.cycles(1)
    assert snap.safety.trip_state is TripState.ARMED
    await site.manager.stop()
    assert json.loads(path.read_text())["version"] == 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
async def test_permission_denied_is_unknown(room: Room, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    await tripped_site(room, FileStorage(path))
    path.chmod(0)
    site = await Site(room, FileStorage(path)).start()
    snap = await site.cycles(1)
    assert snap.safety.trip_state is TripState.UNKNOWN


async def test_trip_relay_energised_with_no_record_is_unknown(room: Room) -> None:
    release_relays(room, 1 << room.string(1).channel)
    site = await Site(room, FileStorageless()).start()
    snap = await site.cycles(2)
    assert snap.safety.trip_state is TripState.UNKNOWN
    assert energised(room)


# -- stale data and the breaker input -----------------------------------------------------------
async def test_stuck_module_is_reported_and_its_block_unwatched(room: Room) -> None:
    site = await Site(room, FileStorageless()).start()
    snap = await site.cycles(2)
    assert snap.safety.unwatched_blocks == ()
    room.inject(Fault(FaultKind.STUCK, 1, 3))
    snap = await site.cycles(6)
    ref = room.string(1).modules[2]
    module = snap.strings[0].modules[2]
    assert module.info.stale
    stale = alarm(snap, f"stale:bus1/{ref.unit}")
    assert stale is not None and "string 1 block 3" in stale.message
    assert [(b.string, b.position, b.reason) for b in snap.safety.unwatched_blocks] == [
        (1, 3, "stale")
    ]
    unwatched = alarm(snap, "safety:unwatched")
    assert unwatched is not None and "string 1 block 3 (stale)" in unwatched.message
    room.string(1).modules[2].frozen = False
    snap = await site.cycles(3)
    assert alarm(snap, f"stale:bus1/{ref.unit}") is None
    assert snap.safety.unwatched_blocks == ()


async def test_breaker_input_glitch_for_one_poll_changes_nothing(room: Room) -> None:
    site = await Site(room, FileStorageless()).start()
    snap = await site.cycles(2)
    assert snap.safety.breaker is BreakerState.CLOSED
    relay = room.string(1).relay
    channel = room.string(1).channel

    async def glitch(closed: bool) -> SystemSnapshot:
        room.step(10.0)
        site.clock[0] += 10.0
        relay.inputs[channel] = closed  # one corrupted poll (no CRC on Modbus TCP)
        return await site.manager.poll_once()

    snap = await glitch(False)
    assert snap.safety.breaker is BreakerState.CLOSED  # "open" for one poll is doubted
    snap = await site.cycles(1)
    assert snap.safety.breaker is BreakerState.CLOSED
    await site.manager.trip("test")
    snap = await site.cycles(3)
    assert snap.safety.trip_state is TripState.TRIPPED
    for _ in range(3):  # "closed" for one poll, repeatedly: TRIPPED never turns FAILED
        snap = await glitch(True)
        assert snap.safety.breaker is BreakerState.OPEN
        snap = await site.cycles(1)
    assert snap.safety.trip_state is TripState.TRIPPED
    assert EventType.TRIP_FAILED not in site.types()


# -- a restart probes the devices it knew first -------------------------------------------------
async def test_restart_probes_known_devices_first_and_scans_the_rest_in_batches(
    room: Room,
) -> None:
    storage = FileStorageless()
    first = await Site(room, storage).start()
    await first.cycles(1)
    await first.manager.stop()
    assert storage.data is not None
    units = storage.data["topology"]["units"]
    assert len(units) == len(room.buses[0].devices)
    storage.data["topology"]["units"] = [u for u in units if u != "bus1/8"]  # added while down
    again = Site(room, storage)
    await again.start()
    assert len(again.manager.devices) == len(units) - 1  # only the known ones, at once
    snap = await again.cycles(20)
    assert len(again.manager.devices) == len(units)  # the rest of the bus, a batch per cycle
    assert any(e.type is EventType.DEVICE_ADDED and str(e.device) == "bus1/8" for e in again.events)
    assert [len(s.modules) for s in snap.strings] == [4, 4]
