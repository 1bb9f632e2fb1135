"""Relay n trips string n: the trip per string, end to end on the simulator.

A room of 2 strings whose relay module opens string n's breaker with relay n; the manager on
the in-process simulator with a simulated clock. Both scope policies, a second runaway, the
breaker that does not open, per-string resets and refusals, persistence per string and the
migration of a state file that knew one trip for the whole room.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bacs_core.events import Event, EventType
from bacs_core.manager import FileStorage, Manager, SafetyRefusedError, validate_config
from bacs_core.manager.config import ConfigError
from bacs_core.manager.persisted import PersistedState, StateFormatError
from bacs_core.manager.safety import (
    Breaker,
    RelayState,
    Safety,
    SafetyDecision,
    SafetyRecord,
    TripRecord,
    TripSettings,
)
from bacs_core.manager.storage import Storage
from bacs_core.sim.control import handle_command, serve_control
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.snapshot import (
    Alarm,
    BreakerState,
    DeviceRef,
    ManagerStatus,
    Severity,
    SystemSnapshot,
    TripScope,
    TripState,
)

CONFIG: dict[str, Any] = {
    "buses": [{"id": "bus1", "url": "sim://x"}],
    "string_count": 2,
    "capacity_ah": 40,
    "trip": {"auto": True},
    "poll_interval": 10,
    # A runaway confirmed within simulated minutes (the detector's own rules, low bounds).
    "runaway": {"pre_alert_delta": 1, "alarm_delta": 2, "trip_delta": 3, "confirm_cycles": 1},
}


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

    async def until(self, done: Any, limit: int = 400) -> SystemSnapshot:
        for _ in range(limit):
            snap = await self.cycles(1, step=60.0)
            if done(snap):
                return snap
        raise AssertionError("condition not reached")

    def of(self, kind: EventType) -> list[Event]:
        return [e for e in self.events if e.type is kind]


def energised(room: Room, string: int) -> bool:
    s = room.string(string)
    return bool(s.relay.relays[s.channel])


def closed(room: Room, string: int) -> bool:
    return room.string(string).physics.breaker_closed


def state(snap: SystemSnapshot, string: int) -> TripState:
    trip = snap.safety.string(string)
    assert trip is not None
    return trip.state


def alarm(snap: SystemSnapshot, key: str) -> Alarm | None:
    return next((a for a in snap.alarms if a.key == key), None)


def runaway(room: Room, string: int, block: int = 2) -> None:
    room.inject(Fault(FaultKind.RUNAWAY, string, block, 3.0))


@pytest.fixture
def room() -> Room:
    return Room(RoomConfig(strings=2, blocks=4, capacity_ah=40, settle_days=0.2, seed=5))


class Memory:
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = data

    async def load(self) -> dict[str, Any] | None:
        return self.data

    async def save(self, data: dict[str, Any]) -> None:
        self.data = data


# -- what trips what ---------------------------------------------------------------------------
async def test_scope_string_trips_only_the_runaways_string(room: Room) -> None:
    site = await Site(room, Memory()).start()
    snap = await site.cycles(2)
    assert snap.safety.scope is TripScope.STRING
    assert [t.string for t in snap.safety.strings] == [1, 2]
    runaway(room, 2)
    snap = await site.until(lambda s: s.safety.trip_state is not TripState.ARMED)
    assert state(snap, 2) is TripState.TRIPPED
    assert state(snap, 1) is TripState.ARMED
    assert energised(room, 2) and not energised(room, 1)  # relay 2 only
    snap = await site.cycles(3)
    assert not closed(room, 2) and closed(room, 1)
    two, one = snap.safety.string(2), snap.safety.string(1)
    assert two is not None and two.breaker is BreakerState.OPEN and two.runaway
    assert two.reason is not None and two.reason.startswith("string 2:")
    assert one is not None and one.breaker is BreakerState.CLOSED and not one.runaway
    assert snap.safety.trip_state is TripState.TRIPPED  # the whole: the most severe string
    assert snap.safety.breaker is BreakerState.CLOSED  # string 1 still connects a battery
    assert snap.status is ManagerStatus.TRIPPED
    (detected,) = site.of(EventType.RUNAWAY_DETECTED)
    assert detected.string == 2 and detected.data["trip"] == "trip"
    (tripped,) = site.of(EventType.TRIPPED)
    assert tripped.string == 2 and tripped.data["strings"] == "2"


async def test_a_second_runaway_trips_its_own_string_too(room: Room) -> None:
    site = await Site(room, Memory()).start()
    await site.cycles(2)
    runaway(room, 2)
    await site.until(lambda s: s.safety.trip_state is not TripState.ARMED)
    assert not energised(room, 1)
    runaway(room, 1, 3)
    snap = await site.until(lambda s: state(s, 1) is not TripState.ARMED)
    assert state(snap, 1) is TripState.TRIPPED and state(snap, 2) is TripState.TRIPPED
    assert energised(room, 1) and energised(room, 2)
    assert [e.string for e in site.of(EventType.RUNAWAY_DETECTED)] == [2, 1]
    assert [e.string for e in site.of(EventType.TRIPPED)] == [2, 1]
    snap = await site.cycles(3)
    assert snap.safety.breaker is BreakerState.OPEN  # every breaker open now


async def test_scope_all_trips_every_string(room: Room) -> None:
    site = await Site(room, Memory(), trip={"auto": True, "scope": "all"}).start()
    snap = await site.cycles(2)
    assert snap.safety.scope is TripScope.ALL
    runaway(room, 2)
    snap = await site.until(lambda s: s.safety.trip_state is not TripState.ARMED)
    assert state(snap, 1) is TripState.TRIPPED and state(snap, 2) is TripState.TRIPPED
    assert energised(room, 1) and energised(room, 2)
    (tripped,) = site.of(EventType.TRIPPED)  # one event for the lot
    assert tripped.string is None and tripped.data == {"strings": "1,2", "scope": "all"}
    snap = await site.cycles(3)
    assert not closed(room, 1) and not closed(room, 2)
    assert snap.safety.breaker is BreakerState.OPEN
    # With scope all, string 2's runaway holds string 1 too: no reset of either.
    for string in (1, 2, None):
        with pytest.raises(SafetyRefusedError) as err:
            await site.manager.reset_trip(string)
        assert err.value.code == "runaway_active"


async def test_a_common_breaker_opens_for_a_runaway_on_any_string(room: Room) -> None:
    """A configured breaker naming no string is a main breaker: it serves every string."""
    relay = room.string(1).relay.unit
    breakers = [{"relay": f"bus1/{relay}", "channel": 2, "input": 2}]
    site = await Site(room, Memory(), trip={"breakers": breakers}).start()
    await site.cycles(2)
    runaway(room, 1)
    snap = await site.until(lambda s: s.safety.trip_state is not TripState.ARMED)
    assert state(snap, 1) is TripState.TRIPPED and state(snap, 2) is TripState.ARMED
    assert energised(room, 2) and not energised(room, 1)  # the one configured output


async def test_a_configured_breaker_names_its_string(room: Room) -> None:
    relay = room.string(1).relay.unit
    breakers = [
        {"relay": f"bus1/{relay}", "channel": 1, "input": 1, "string": 2},
        {"relay": f"bus1/{relay}", "channel": 2, "input": 2, "string": 1},
    ]
    site = await Site(room, Memory(), trip={"breakers": breakers}).start()
    await site.cycles(2)
    await site.manager.trip("test", 2)
    await site.cycles(1)
    assert energised(room, 1) and not energised(room, 2)  # string 2's breaker is on relay 1


def test_the_scope_and_a_breakers_string_are_validated() -> None:
    assert validate_config(CONFIG).trip.scope is TripScope.STRING
    assert validate_config(CONFIG | {"trip": {"scope": "all"}}).trip.scope is TripScope.ALL
    with pytest.raises(ConfigError, match="trip.scope"):
        validate_config(CONFIG | {"trip": {"scope": "some"}})
    breaker = {"relay": "bus1/80", "channel": 1, "input": 1, "string": 3}
    with pytest.raises(ConfigError, match="names string 3, but there are 2 strings"):
        validate_config(CONFIG | {"trip": {"breakers": [breaker]}})
    with pytest.raises(ConfigError, match="listed twice"):
        validate_config(CONFIG | {"trip": {"breakers": [breaker | {"string": 1}] * 2}})
    ok = validate_config(CONFIG | {"trip": {"breakers": [breaker | {"string": 2}]}})
    assert ok.trip.breakers[0].string == 2


# -- a manual trip and reset name a string ----------------------------------------------------
async def test_manual_trip_and_reset_of_one_string(room: Room) -> None:
    site = await Site(room, Memory()).start()
    await site.cycles(2)
    await site.manager.trip("test", 2)
    assert energised(room, 2) and not energised(room, 1)  # at once, not at the next cycle
    snap = await site.cycles(3)
    assert state(snap, 2) is TripState.TRIPPED and state(snap, 1) is TripState.ARMED
    with pytest.raises(SafetyRefusedError) as err:
        await site.manager.reset_trip(1)
    assert err.value.code == "not_tripped"
    with pytest.raises(SafetyRefusedError) as err:
        await site.manager.reset_trip(3)
    assert err.value.code == "unknown_string"
    with pytest.raises(SafetyRefusedError) as err:
        await site.manager.trip("test", 5)
    assert err.value.code == "unknown_string"
    await site.manager.trip("everything")  # None: every string
    assert energised(room, 1) and energised(room, 2)
    await site.manager.reset_trip(2)
    assert energised(room, 1) and not energised(room, 2)
    (reset,) = site.of(EventType.TRIP_RESET)
    assert reset.string == 2 and reset.data == {"from": "tripped", "strings": "2"}
    room.close_breaker(2)
    with pytest.raises(ValueError, match="still energised"):
        room.close_breaker(1)
    snap = await site.cycles(3)
    assert state(snap, 2) is TripState.ARMED and state(snap, 1) is TripState.TRIPPED
    assert snap.safety.string(2).breaker is BreakerState.CLOSED  # type: ignore[union-attr]


async def test_reset_is_refused_on_the_hot_string_and_permitted_on_the_other(room: Room) -> None:
    site = await Site(room, Memory()).start()
    await site.cycles(2)
    await site.manager.trip("smoke")
    runaway(room, 2)
    snap = await site.until(lambda s: s.safety.string(2).runaway)  # type: ignore[union-attr]
    assert not snap.safety.string(1).pre_alert  # type: ignore[union-attr]
    for string in (2, None):  # the hot string, or all of them
        with pytest.raises(SafetyRefusedError) as err:
            await site.manager.reset_trip(string)
        assert err.value.code == "runaway_active"
        assert "string 2" in str(err.value)
    assert energised(room, 1) and energised(room, 2)  # a refusal changes nothing
    await site.manager.reset_trip(1)
    assert not energised(room, 1) and energised(room, 2)
    room.close_breaker(1)
    snap = await site.cycles(3)
    assert state(snap, 1) is TripState.ARMED and state(snap, 2) is TripState.TRIPPED
    assert closed(room, 1) and not closed(room, 2)


# -- the breaker that does not open ----------------------------------------------------------
async def test_a_breaker_that_does_not_open_is_a_latched_critical_alarm(room: Room) -> None:
    room.inject(Fault(FaultKind.BREAKER_STUCK, 2))
    site = await Site(room, Memory(), latch_alarms=False).start()  # latches regardless
    await site.cycles(2)
    runaway(room, 2)
    await site.until(lambda s: s.safety.trip_state is not TripState.ARMED)
    snap = await site.cycles(6)
    assert state(snap, 2) is TripState.FAILED and state(snap, 1) is TripState.ARMED
    assert snap.safety.trip_state is TripState.FAILED
    failed = alarm(snap, "safety:trip_failed:2")
    assert failed is not None and failed.severity is Severity.CRITICAL and failed.active
    assert failed.string == 2 and "string 2" in failed.message
    assert alarm(snap, "safety:trip_failed:1") is None
    await site.cycles(5)
    (event,) = site.of(EventType.TRIP_FAILED)  # announced once
    assert event.string == 2 and "string 2" in event.message
    # The breaker opens by itself later: the state goes back, the alarm stays latched.
    handle_command(room, {"clear_fault": "breaker_stuck:2"})
    snap = await site.cycles(4)
    assert not closed(room, 2)
    assert state(snap, 2) is TripState.TRIPPED
    failed = alarm(snap, "safety:trip_failed:2")
    assert failed is not None and failed.severity is Severity.CRITICAL
    assert not failed.active and failed.latched and not failed.acknowledged
    snap = await site.cycles(3)
    assert alarm(snap, "safety:trip_failed:2") is not None  # until a person acknowledges
    assert len(site.of(EventType.TRIP_FAILED)) == 1
    await site.manager.acknowledge("safety:trip_failed:2")
    snap = await site.cycles(1)
    assert alarm(snap, "safety:trip_failed:2") is None


async def test_a_reset_acknowledges_the_strings_failed_alarm(room: Room) -> None:
    room.inject(Fault(FaultKind.BREAKER_STUCK, 1))
    site = await Site(room, Memory()).start()
    await site.cycles(2)
    await site.manager.trip("test", 1)
    snap = await site.cycles(6)
    assert state(snap, 1) is TripState.FAILED
    assert alarm(snap, "safety:trip_failed:1") is not None
    await site.manager.reset_trip(1)
    snap = await site.cycles(2)
    assert state(snap, 1) is TripState.ARMED
    assert alarm(snap, "safety:trip_failed:1") is None
    assert EventType.ALARM_ACKNOWLEDGED in [e.type for e in site.events]


async def test_the_failed_alarm_survives_a_restart(room: Room, tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "state.json")
    room.inject(Fault(FaultKind.BREAKER_STUCK, 2))
    site = await Site(room, storage).start()
    await site.cycles(2)
    await site.manager.trip("test", 2)
    await site.cycles(6)
    handle_command(room, {"clear_fault": "breaker_stuck:2"})
    snap = await site.cycles(4)
    assert state(snap, 2) is TripState.TRIPPED
    await site.manager.stop()
    again = await Site(room, storage).start()
    snap = await again.cycles(2)
    failed = alarm(snap, "safety:trip_failed:2")
    assert failed is not None and failed.latched and failed.severity is Severity.CRITICAL


# -- persistence --------------------------------------------------------------------------------
async def test_each_strings_trip_survives_a_restart(room: Room, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    site = await Site(room, FileStorage(path)).start()
    await site.cycles(2)
    await site.manager.trip("test", 2)
    await site.cycles(3)
    await site.manager.stop()
    saved = json.loads(path.read_text())
    assert saved["version"] == 3
    assert saved["safety"]["strings"]["1"]["state"] == "armed"
    assert saved["safety"]["strings"]["2"] == {
        "state": "tripped",
        "reason": "manual: test",
        "tripped_at": saved["safety"]["strings"]["2"]["tripped_at"],
        "note": None,
    }
    assert saved["safety"]["others"]["state"] == "armed"
    room.string(2).relay.control["relay_setpoint"] = 0  # the module restarted: outputs off
    again = await Site(room, FileStorage(path)).start()
    snap = await again.cycles(1)
    assert state(snap, 2) is TripState.TRIPPED and state(snap, 1) is TripState.ARMED
    assert energised(room, 2) and not energised(room, 1)
    assert not again.of(EventType.TRIPPED)  # restored, not tripped again


@pytest.mark.parametrize("version", [1, 2])
async def test_an_old_single_trip_latches_every_string(
    room: Room, tmp_path: Path, version: int
) -> None:
    path = tmp_path / "state.json"
    old: dict[str, Any] = {
        "safety": {"state": "tripped", "reason": "string 1: block 3 hot", "note": None},
        "alarms": {},
    }
    if version == 2:
        old |= {"version": 2, "topology": {"relays": [], "units": []}}
    path.write_text(json.dumps(old))
    site = await Site(room, FileStorage(path)).start()
    snap = await site.cycles(1)
    assert state(snap, 1) is TripState.TRIPPED and state(snap, 2) is TripState.TRIPPED
    assert energised(room, 1) and energised(room, 2)
    assert snap.safety.reason == "string 1: block 3 hot"
    await site.manager.stop()
    saved = json.loads(path.read_text())
    assert saved["version"] == 3
    assert {s["state"] for s in saved["safety"]["strings"].values()} == {"tripped"}
    assert saved["safety"]["others"]["state"] == "tripped"  # a string found later too
    again = await Site(room, FileStorage(path)).start()
    await again.cycles(3)
    await again.manager.reset_trip()
    snap = await again.cycles(1)
    assert snap.safety.trip_state is TripState.ARMED
    await again.manager.stop()
    assert json.loads(path.read_text())["safety"]["others"]["state"] == "armed"


async def test_an_old_countdown_or_armed_state_migrates_per_string(
    room: Room, tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 2, "safety": {"state": "armed"}}))
    snap = await (await Site(room, FileStorage(path)).start()).cycles(1)
    assert [t.state for t in snap.safety.strings] == [TripState.ARMED] * 2
    path.write_text(json.dumps({"version": 2, "safety": {"state": "countdown"}}))
    snap = await (await Site(room, FileStorage(path)).start()).cycles(1)
    assert [t.state for t in snap.safety.strings] == [TripState.TRIPPED] * 2


async def test_a_damaged_per_string_record_is_named(room: Room, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    bad = {
        "version": 3,
        "safety": {"strings": {"2": {"state": "hot"}}, "others": {"state": "armed"}},
    }
    path.write_text(json.dumps(bad))
    snap = await (await Site(room, FileStorage(path)).start()).cycles(1)
    assert snap.safety.trip_state is TripState.UNKNOWN
    assert [t.state for t in snap.safety.strings] == [TripState.UNKNOWN] * 2
    unknown = alarm(snap, "safety:state_unknown")
    assert unknown is not None and "safety.strings.2.state" in unknown.message
    assert not energised(room, 1) and not energised(room, 2)  # left as they were


# -- the demo's fault clears: the block cools and a reset is permitted ------------------------
async def test_a_cleared_runaway_cools_and_the_breaker_can_be_closed(room: Room) -> None:
    site = await Site(room, Memory()).start()
    await site.cycles(2)
    answer = handle_command(room, {"fault": "runaway:1:2=3"})
    assert answer["ok"]
    snap = await site.until(lambda s: state(s, 1) is TripState.TRIPPED)
    snap = await site.cycles(3)
    assert not closed(room, 1)
    hottest = room.string(1).physics.temperatures[1]
    answer = handle_command(room, {"clear_fault": "runaway:1:2"})
    assert answer["ok"], answer
    with pytest.raises(SafetyRefusedError) as err:
        await site.manager.reset_trip(1)  # still hot: the block cools by the physics
    assert err.value.code == "runaway_active"
    snap = await site.cycles(1, step=60.0)
    cooling = room.string(1).physics.temperatures[1]
    assert room.string(1).physics.ambient_c + 1 < cooling < hottest  # not at once
    snap = await site.until(lambda s: not s.safety.string(1).pre_alert, limit=2000)  # type: ignore[union-attr]
    await site.manager.reset_trip(1)
    assert not energised(room, 1)
    assert handle_command(room, {"close_breaker": 1})["ok"]
    snap = await site.cycles(3)
    assert state(snap, 1) is TripState.ARMED
    assert snap.safety.string(1).breaker is BreakerState.CLOSED  # type: ignore[union-attr]
    assert snap.safety.trip_state is TripState.ARMED


def test_clear_fault_says_what_cannot_be_cleared(room: Room) -> None:
    assert "no runaway" in handle_command(room, {"clear_fault": "runaway:1:2"})["error"]
    assert "replace the block" in handle_command(room, {"clear_fault": "weak:1:2"})["error"]
    assert "no block 9" in handle_command(room, {"clear_fault": "runaway:1:9"})["error"]
    room.inject(Fault(FaultKind.RUNAWAY, 2, 1, 3.0, at_s=600.0))
    assert handle_command(room, {"clear_fault": "runaway:2:1"})["ok"]  # a pending one
    room.step(900.0)
    assert max(room.string(2).physics.temperatures) < room.string(2).physics.ambient_c + 1


async def test_the_demo_clears_a_fault_over_its_control_channel(
    room: Room, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``./scripts/demo clear-fault runaway:1:2`` reaches the running simulator."""
    demo = _demo_module()
    server = await serve_control(room, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        demo.DemoState(0, port, "pw").save(tmp_path / "demo.json")
        run = demo.build_parser().parse_args
        assert await demo.control(run(["--dir", str(tmp_path), "fault", "runaway:1:2=3"])) == 0
        for _ in range(20):
            room.step(300.0)
        hot = room.string(1).physics.temperatures[1]
        assert hot > room.string(1).physics.ambient_c + 3
        assert await demo.control(run(["--dir", str(tmp_path), "clear-fault", "runaway:1:2"])) == 0
        status = json.loads(capsys.readouterr().out.split("\n}\n")[-2] + "\n}")
        assert status["strings"][0]["trip_relay_energised"] is False
        room.step(300.0)
        assert room.string(1).physics.temperatures[1] < hot  # it cools
        with pytest.raises(demo.DemoError, match="no runaway"):
            await demo.control(run(["--dir", str(tmp_path), "clear-fault", "runaway:1:2"]))
    finally:
        server.close()
        await server.wait_closed()


def _demo_module() -> Any:
    import importlib.util
    import sys

    scripts = Path(__file__).parents[2] / "scripts"
    sys.path.insert(0, str(scripts))  # demo.py imports its sibling demo_dashboard.py
    try:
        spec = importlib.util.spec_from_file_location("bacs_demo_script", scripts / "demo.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bacs_demo_script"] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(scripts))


# -- the engine alone: countdowns per string, an unrecorded energised relay ------------------
R = DeviceRef("bus1", 40)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _engine(scope: TripScope = TripScope.STRING, delay: float = 0.0) -> Safety:
    breakers = (Breaker(R, 1, 1, 1), Breaker(R, 2, 2, 2))
    return Safety(TripSettings(breakers, delay, scope=scope, strings=(1, 2)))


def _relays(outputs: tuple[bool, ...] = (False,) * 4) -> dict[DeviceRef, RelayState]:
    return {R: RelayState(outputs, (True,) * 4)}


def _cycle(s: Safety, t: float, runaway: dict[int, str], relays: Any = None) -> SafetyDecision:
    return s.update(
        T0 + timedelta(seconds=t),
        t,
        bool(runaway),
        None,
        bool(runaway),
        relays or _relays(),
        False,
        runaway_strings=runaway,
        pre_alert_strings=set(runaway),
    )


def test_a_countdown_runs_for_the_runaways_string_only() -> None:
    s = _engine(delay=30.0)
    d = _cycle(s, 10, {2: "string 2: block 1 hot"})
    assert s.string_state(2) is TripState.COUNTDOWN and s.string_state(1) is TripState.ARMED
    (_detected, countdown) = d.events
    assert countdown.type is EventType.TRIP_COUNTDOWN and countdown.string == 2
    assert countdown.data == {"seconds": 30.0, "strings": "2"}
    assert "string 2" in countdown.message
    assert d.outputs == {R: {1: False, 2: False}}
    assert d.snapshot.countdown_s == 30.0
    d = _cycle(s, 40, {})
    assert d.outputs == {R: {1: False, 2: True}}
    assert [e.type for e in d.events] == [EventType.TRIPPED]


def test_with_scope_all_one_countdown_for_every_string() -> None:
    s = _engine(TripScope.ALL, delay=30.0)
    d = _cycle(s, 10, {2: "string 2: block 1 hot"})
    assert [t.state for t in d.snapshot.strings] == [TripState.COUNTDOWN] * 2
    countdown = d.events[1]
    assert countdown.string is None and countdown.data["strings"] == "1,2"
    assert "every string" in countdown.message
    d = _cycle(s, 40, {})
    assert d.outputs == {R: {1: True, 2: True}}
    (tripped,) = d.events
    assert tripped.data == {"strings": "1,2", "scope": "all"}


def test_an_energised_relay_with_no_record_makes_its_string_unknown() -> None:
    s = _engine()
    d = _cycle(s, 10, {}, _relays((False, True, False, False)))
    assert s.string_state(2) is TripState.UNKNOWN and s.string_state(1) is TripState.ARMED
    assert d.outputs == {R: {1: False}}  # string 2's relay is left as it is
    assert d.snapshot.trip_state is TripState.UNKNOWN
    assert "channel 2" in (d.snapshot.string(2).note or "")  # type: ignore[union-attr]
    s.reset(T0, string=2)
    assert s.string_state(2) is TripState.ARMED


@pytest.mark.parametrize(
    ("safety", "named"),
    [
        ({"strings": {}}, "safety.others: missing"),
        ({"strings": {"x": {"state": "armed"}}, "others": {"state": "armed"}}, "safety.strings.x"),
        ({"strings": {"0": {"state": "armed"}}, "others": {"state": "armed"}}, "safety.strings.0"),
        ({"strings": {"1": []}, "others": {"state": "armed"}}, "safety.strings.1: an object"),
        ({"strings": [], "others": {"state": "armed"}}, "strings: an object"),
        ({"strings": {}, "others": {"state": "armed", "reason": 5}}, "safety.others.reason"),
        ({"strings": {"2": {"reason": "x"}}, "others": {"state": "armed"}}, "strings.2.state"),
    ],
)
def test_a_wrong_per_string_field_is_named(safety: dict[str, Any], named: str) -> None:
    with pytest.raises(StateFormatError, match=re.escape(named)):
        PersistedState.from_dict({"version": 3, "safety": safety})


def test_the_state_round_trips_per_string() -> None:
    record = SafetyRecord(
        {1: TripRecord(TripState.ARMED), 2: TripRecord(TripState.FAILED, "hot", T0)},
        TripRecord(TripState.ARMED),
    )
    data = json.loads(json.dumps(PersistedState(record).as_dict()))
    assert PersistedState.from_dict(data).safety == record
