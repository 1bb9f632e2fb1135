"""The manager end to end on the simulator, in accelerated simulated time."""

from __future__ import annotations

import pytest

from bacs_core.events import Event, EventType
from bacs_core.manager import Manager, MemoryStorage, SafetyRefusedError, validate_config
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.physics import ChargerMode
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.snapshot import BreakerState, ChargeState, ManagerStatus, TripState

CONFIG = {
    "buses": [{"id": "bus1", "url": "sim://x"}],
    "string_count": 2,
    "capacity_ah": 40,
    "trip": {"auto": True},
    "poll_interval": 10,
}


class Site:
    def __init__(self, room: Room, storage: MemoryStorage, **config: object) -> None:
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

    async def cycles(self, n: int):  # type: ignore[no-untyped-def]
        snap = None
        for _ in range(n):
            self.room.step(10.0)
            self.clock[0] += 10.0
            snap = await self.manager.poll_once()
        return snap


@pytest.fixture
def room() -> Room:
    return Room(RoomConfig(strings=2, blocks=16, capacity_ah=40, settle_days=2, seed=4))


async def test_snapshot_and_equalization_on_float(room: Room) -> None:
    site = Site(room, MemoryStorage())
    await site.manager.start(run_loop=False)
    first = await site.cycles(1)
    assert first.status is ManagerStatus.OK
    assert [len(s.modules) for s in first.strings] == [16, 16]
    assert first.strings[0].charge_state is ChargeState.FLOAT
    assert first.strings[0].current is not None
    assert first.safety.trip_state is TripState.ARMED
    assert first.safety.breaker is BreakerState.CLOSED
    spread = first.strings[0].spread
    later = await site.cycles(360 * 2)  # two simulated hours
    assert later.strings[0].spread < 0.025 < spread
    assert any(e.type is EventType.BALANCING_STARTED for e in site.events)
    await site.manager.stop()
    assert all(d.control["balance_setpoint"] == 0 for d in room.string(1).modules)


async def test_discharge_stops_the_shunts(room: Room) -> None:
    site = Site(room, MemoryStorage())
    await site.manager.start(run_loop=False)
    await site.cycles(60)
    room.set_mode(1, room.string(1).physics.mode.DISCHARGE, 4.0)
    snap = await site.cycles(2)
    assert snap.strings[0].charge_state is ChargeState.DISCHARGE
    assert all(m.balancing.value == "paused" for m in snap.strings[0].modules)
    assert all(d.control["balance_setpoint"] == 0 for d in room.string(1).modules)


async def test_runaway_trips_stays_latched_over_a_restart_and_resets_when_cool(room: Room) -> None:
    storage = MemoryStorage()
    site = Site(room, storage)
    await site.manager.start(run_loop=False)
    await site.cycles(30)
    room.inject(Fault(FaultKind.RUNAWAY, 1, 5, 3.0))
    snap = None
    for _ in range(2000):
        snap = await site.cycles(1)
        if snap.safety.trip_state is not TripState.ARMED:
            break
    assert snap is not None
    assert snap.safety.trip_state is TripState.TRIPPED
    snap = await site.cycles(2)
    assert not room.string(1).physics.breaker_closed
    assert room.string(2).physics.breaker_closed  # relay n trips string n only
    tripped = snap.safety.string(1)
    assert tripped is not None and tripped.breaker is BreakerState.OPEN
    assert snap.safety.breaker is BreakerState.CLOSED  # string 2's still connects a battery
    assert snap.status is ManagerStatus.TRIPPED
    types = [e.type for e in site.events]
    assert types.index(EventType.RUNAWAY_DETECTED) < types.index(EventType.TRIPPED)
    await site.manager.stop()

    again = Site(room, storage)  # a restart: the trip is still latched
    await again.manager.start(run_loop=False)
    snap = await again.cycles(1)
    assert snap.safety.trip_state is TripState.TRIPPED
    with pytest.raises(SafetyRefusedError) as err:
        await again.manager.reset_trip()
    assert err.value.code == "runaway_active"
    # Cool the block down (the fault is cleared by replacing it), then reset.
    physics = room.string(1).physics
    physics.replace_block(4, physics.blocks[0])
    for _ in range(200):
        snap = await again.cycles(1)
        if not snap.safety.pre_alert:
            break
    assert not snap.safety.pre_alert
    await again.manager.reset_trip()
    assert again.manager.safety.state is TripState.ARMED


async def test_breaker_that_does_not_open_is_escalated(room: Room) -> None:
    room.inject(Fault(FaultKind.BREAKER_STUCK, 1))
    site = Site(room, MemoryStorage())
    await site.manager.start(run_loop=False)
    await site.cycles(2)
    await site.manager.trip("test")
    snap = await site.cycles(5)
    assert snap.safety.trip_state is TripState.FAILED
    assert any(e.type is EventType.TRIP_FAILED for e in site.events)


async def test_dead_module_is_lost_and_found(room: Room) -> None:
    site = Site(room, MemoryStorage())
    await site.manager.start(run_loop=False)
    await site.cycles(2)
    room.inject(Fault(FaultKind.DEAD, 2, 3))
    snap = await site.cycles(4)
    assert snap.status is ManagerStatus.DEGRADED
    assert any(e.type is EventType.DEVICE_LOST for e in site.events)
    room.buses[0].dead.clear()
    await site.cycles(2)
    assert any(e.type is EventType.DEVICE_FOUND for e in site.events)


async def test_manual_relay_cannot_undo_a_trip(room: Room) -> None:
    site = Site(room, MemoryStorage())
    await site.manager.start(run_loop=False)
    await site.cycles(2)
    await site.manager.trip("test")
    relay = next(r for r in site.manager.devices if site.manager.devices[r].kind.name == "GX_R_AUX")
    with pytest.raises(SafetyRefusedError):
        await site.manager.set_relay(relay, 1, False)
    await site.manager.set_relay(relay, 4, True)  # a spare channel is free to use
    assert room.string(1).relay.relays[3]


async def test_strings_of_unequal_length_by_block_counts(room: Room) -> None:
    """The bus cannot tell which block is in which string; the user says how many."""
    site = Site(room, MemoryStorage(), block_counts=[17, 15])
    await site.manager.start(run_loop=False)
    snap = await site.cycles(1)
    assert [len(s.modules) for s in snap.strings] == [17, 15]
    assert [m.info.ref.unit for m in snap.strings[1].modules] == list(range(18, 33))
    await site.manager.stop()


async def test_a_discharge_ranks_the_blocks_that_fall_early() -> None:
    """An aged block (capacity ×0.75, Ri ×1.4) falls faster than its string in a C/5 discharge;
    the ranking starts over with the next discharge and holds the last one meanwhile."""
    room = Room(
        RoomConfig(
            strings=2,
            blocks=16,
            capacity_ah=40,
            settle_days=1,
            seed=4,
            faults=(Fault.parse("weak:1:7"),),
        )
    )
    site = Site(room, MemoryStorage())
    await site.manager.start(run_loop=False)
    snap = await site.cycles(6)
    assert snap.strings[0].weak_blocks == ()  # no discharge yet
    room.set_mode(1, ChargerMode.DISCHARGE, 8.0)
    snap = await site.cycles(360 * 2)  # two hours at C/5
    ranking = snap.strings[0].weak_blocks
    assert ranking[0].position == 7
    assert ranking[0].extra_drop_v > 0.05
    assert [w.extra_drop_v for w in ranking] == sorted(
        (w.extra_drop_v for w in ranking), reverse=True
    )
    room.set_mode(1, ChargerMode.FLOAT)
    snap = await site.cycles(360)
    assert snap.strings[0].weak_blocks == ranking  # the last discharge, kept on float
    room.set_mode(1, ChargerMode.DISCHARGE, 8.0)
    snap = await site.cycles(3)  # a new discharge: judged from its own start
    assert max(w.extra_drop_v for w in snap.strings[0].weak_blocks) < ranking[0].extra_drop_v
    await site.manager.stop()
