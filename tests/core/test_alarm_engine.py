"""What the alarm engine tells people: messages, one announcement per alarm, counts that match,
and deviations the equalizer is still correcting (on the simulator where it matters)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bacs_core.events import Event, EventType
from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.manager.alarms import (
    AlarmEngine,
    ModuleObservation,
    Observation,
    SensorObservation,
    StringObservation,
)
from bacs_core.manager.thresholds import Chemistry, thresholds_for
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.snapshot import BalancingState, ChargeState, DeviceRef, Severity, Value

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def module(unit: int, volts: float, position: int | None = None) -> ModuleObservation:
    return ModuleObservation(
        DeviceRef("bus1", unit),
        1,
        position or unit,
        6,
        True,
        Value(volts),
        Value(25.0),
        Value(5.0),
        None,
        None,
    )


def observe(
    *volts: float,
    mean_cell: float | None = None,
    balancing: Sequence[BalancingState] = (),
    env: dict[str, float] | None = None,
) -> Observation:
    modules = [module(i + 1, v) for i, v in enumerate(volts)]
    string = StringObservation(
        1, ChargeState.FLOAT, mean_cell, None, 25.0, modules, balancing=balancing
    )
    sensors = []
    if env is not None:
        sensors.append(
            SensorObservation(
                DeviceRef("bus1", 40), "environment", True, {k: Value(v) for k, v in env.items()}
            )
        )
    return Observation([string], sensors, {"bus1": True})


class Clock:
    def __init__(self, engine: AlarmEngine) -> None:
        self.engine = engine
        self.t = 0
        self.events: list[Event] = []

    def run(self, seconds: int, obs: Observation, step: int = 10):  # type: ignore[no-untyped-def]
        update = None
        end = self.t + seconds
        while self.t <= end:
            update = self.engine.evaluate(T0 + timedelta(seconds=self.t), obs)
            self.events += update.events
            self.t += step
        assert update is not None
        return update

    def kinds(self) -> list[EventType]:
        return [e.type for e in self.events]


def engine(**overrides: object) -> AlarmEngine:
    return AlarmEngine(thresholds_for(Chemistry.VRLA, overrides or None))


# -- messages ----------------------------------------------------------------------------------
def test_a_low_block_says_where_what_its_value_and_the_limit() -> None:
    update = Clock(engine()).run(60, observe(12.84))
    [alarm] = update.alarms
    assert alarm.message == (
        "String 1 block 1: float voltage 12.84 V, below the 12.90 V alarm limit"
    )
    assert (alarm.value, alarm.threshold, alarm.unit) == (pytest.approx(12.84), 12.9, "V")
    assert alarm.severity is Severity.ALARM


def test_a_value_that_rounds_onto_its_limit_gets_a_digit_more() -> None:
    [alarm] = Clock(engine()).run(60, observe(12.899)).alarms
    assert alarm.message.endswith("float voltage 12.899 V, below the 12.900 V alarm limit")


def test_an_alarm_held_by_its_hysteresis_does_not_claim_a_false_comparison() -> None:
    clock = Clock(engine())
    clock.run(60, observe(12.84))
    [alarm] = clock.run(20, observe(12.91)).alarms  # above 12.90, inside the 30 mV hysteresis
    assert alarm.active
    assert alarm.message == (
        "String 1 block 1: float voltage 12.91 V, back inside the 12.90 V alarm limit "
        "(clears above 12.93 V)"
    )


@pytest.mark.parametrize(
    ("obs", "message"),
    [
        (
            observe(6 * 2.36, mean_cell=2.27),
            "String 1 block 1: deviation from the string mean +0.54 V, "
            "above the +0.49 V alarm limit",
        ),
        (
            observe(13.62, env={"hydrogen": 12345.0}),
            "Environment sensor 40: hydrogen 12345 ppm, above the 10000 ppm alarm limit",
        ),
        (
            observe(13.62, env={"temperature": 41.26}),
            "Environment sensor 40: temperature 41.3 °C, above the 40.0 °C alarm limit",
        ),
    ],
)
def test_each_quantity_at_its_display_precision(obs: Observation, message: str) -> None:
    update = Clock(engine()).run(900, obs, step=30)
    assert message in [a.message for a in update.alarms]


def test_noise_around_a_rounding_boundary_does_not_rewrite_the_message() -> None:
    clock = Clock(engine())
    clock.run(60, observe(12.845))
    messages = set()
    for k in range(30):
        messages |= {
            a.message for a in clock.run(0, observe(12.845 + (0.004 if k % 2 else -0.004))).alarms
        }
    assert len(messages) == 1, messages
    [alarm] = clock.run(0, observe(12.80)).alarms  # a real move is shown
    assert "12.80 V" in alarm.message


# -- one announcement per alarm ----------------------------------------------------------------
def test_one_alarm_raised_per_alarm_and_one_escalation() -> None:
    clock = Clock(engine(cell_voltage={"off_delay": 0}))
    clock.run(60, observe(13.15))  # below 13.2 V: warning
    clock.run(60, observe(12.85))  # below 12.9 V: escalates to alarm
    clock.run(60, observe(13.15))  # back to warning (still standing)
    clock.run(60, observe(12.85))  # alarm again: already announced at this level
    assert clock.kinds() == [EventType.ALARM_RAISED, EventType.ALARM_ESCALATED]
    raised, escalated = clock.events
    assert raised.data["severity"] == "warning" and escalated.data["severity"] == "alarm"


def test_a_latched_alarm_that_returns_is_not_announced_again() -> None:
    clock = Clock(engine())
    clock.run(60, observe(12.80))
    clock.run(60, observe(13.62))  # clears; stays latched until acknowledged
    assert clock.run(60, observe(12.80)).alarms[0].active
    assert clock.kinds() == [EventType.ALARM_RAISED, EventType.ALARM_CLEARED]
    clock.engine.acknowledge(T0, None)
    clock.run(60, observe(13.62))
    clock.run(60, observe(12.80))  # a new alarm after it was dealt with: announced
    assert clock.kinds()[-1] is EventType.ALARM_RAISED


# -- counts ------------------------------------------------------------------------------------
def test_acknowledging_counts_the_alarms_people_saw() -> None:
    e = engine()
    clock = Clock(e)
    clock.run(60, observe(12.80, 12.70, 13.62, mean_cell=2.27))  # two low blocks, 60 s on-delay
    # Block 3 starts to deviate: pending its on-delay, not shown, not counted.
    update = clock.run(20, observe(12.80, 12.70, 6 * 2.36, mean_cell=2.27))
    assert len(update.alarms) == 2
    assert len(e.acknowledge(T0, None)) == 2
    assert e.acknowledge(T0, None) == []  # nothing new to acknowledge
    with pytest.raises(KeyError):
        e.acknowledge(T0, "module:bus1/3:deviation")  # pending only


async def test_the_manager_reports_the_number_it_acknowledged() -> None:
    room = Room(RoomConfig(strings=1, blocks=4, seed=2, settle_days=0.1))
    clock = [0.0]
    manager = Manager(
        validate_config(
            {
                "buses": [{"id": "bus1", "url": "sim://x"}],
                "thresholds": {"temperature": {"warning_high": 20, "on_delay": 0}},
            }
        ),
        storage=MemoryStorage(),
        transports={"bus1": LoopbackTransport(room)},
        clock=lambda: clock[0],
        wall_clock=lambda: T0 + timedelta(seconds=clock[0]),
    )
    await manager.start(run_loop=False)
    for _ in range(3):
        room.step(10)
        clock[0] += 10
        snap = await manager.poll_once()
    shown = [a for a in snap.alarms if not a.acknowledged]
    assert len(shown) == 4  # every block is above 20 °C
    assert await manager.acknowledge() == 4
    assert await manager.acknowledge() == 0
    await manager.stop()


# -- deviations the equalizer is correcting ----------------------------------------------------
# Block 1 0.54 V above the string mean (an alarm by its limit), inside the float window.
DEVIATING = (6 * 2.34, 13.5, 13.5)


@pytest.mark.parametrize(
    ("state", "raised_after"),
    [
        (BalancingState.ACTIVE, 6 * 3600),  # being equalized: after the grace
        (BalancingState.IDLE, 6 * 3600),
        (BalancingState.OUT_OF_RANGE, 300),  # beyond the equalizer's reach: at once
        (BalancingState.DISABLED, 300),  # no equalizer: at once
        (BalancingState.PAUSED, 300),  # not being corrected now
        (None, 300),  # no equalizer ran
    ],
)
def test_deviation_waits_for_the_equalizer_only_while_it_corrects(
    state: BalancingState | None, raised_after: int
) -> None:
    states = () if state is None else (state,) * 3
    obs = observe(*DEVIATING, mean_cell=2.25, balancing=states)
    clock = Clock(engine())
    assert clock.run(raised_after - 60, obs, step=60).alarms == ()
    [alarm] = clock.run(60, obs, step=60).alarms
    assert alarm.code == "deviation_high"


def test_a_block_found_out_of_range_during_the_grace_is_raised_at_once() -> None:
    clock = Clock(engine())
    clock.run(3600, observe(*DEVIATING, mean_cell=2.25, balancing=[BalancingState.ACTIVE] * 3))
    states = [BalancingState.OUT_OF_RANGE, BalancingState.ACTIVE, BalancingState.ACTIVE]
    [alarm] = clock.run(0, observe(*DEVIATING, mean_cell=2.25, balancing=states)).alarms
    assert alarm.code == "deviation_high"


def test_the_grace_is_a_setting() -> None:
    obs = observe(*DEVIATING, mean_cell=2.25, balancing=[BalancingState.ACTIVE] * 3)
    assert Clock(engine(deviation_grace=600)).run(600, obs).alarms != ()
    with pytest.raises(Exception, match="deviation_grace"):
        validate_config(
            {"buses": [{"id": "b", "url": "sim://x"}], "thresholds": {"deviation_grace": -1}}
        )


class Site:
    """A room on float under the manager, wall clock and monotonic clock in simulated time."""

    def __init__(self, room: Room, **config: object) -> None:
        self.room = room
        self.clock = [0.0]
        self.events: list[Event] = []
        self.manager = Manager(
            validate_config(
                {
                    "buses": [{"id": "bus1", "url": "sim://x"}],
                    "string_count": 2,
                    "poll_interval": 10,
                    **config,
                }
            ),
            storage=MemoryStorage(),
            transports={"bus1": LoopbackTransport(room)},
            clock=lambda: self.clock[0],
            wall_clock=lambda: T0 + timedelta(seconds=self.clock[0]),
        )
        self.manager.add_event_listener(self.events.append)

    async def hours(self, hours: float) -> None:
        await self.manager.start(run_loop=False)
        for _ in range(int(hours * 360)):
            self.room.step(10.0)
            self.clock[0] += 10.0
            await self.manager.poll_once()
        await self.manager.stop()

    def raised(self, string: int) -> list[Event]:
        return [
            e
            for e in self.events
            if e.type in (EventType.ALARM_RAISED, EventType.ALARM_ESCALATED) and e.string == string
        ]


async def test_on_the_simulator_a_healthy_string_being_equalized_does_not_alarm() -> None:
    """Two hours of float: string 2 is healthy (its blocks start 0.56 V apart and the
    equalizer brings them in); string 1 block 5 has a soft short (0.25 A self-discharge),
    which the equalizer cannot lift: that one alarms."""
    room = Room(
        RoomConfig(
            strings=2,
            blocks=16,
            seed=4,
            settle_days=2,
            faults=(Fault(FaultKind.SOFT_SHORT, 1, 5, 0.25),),
        )
    )
    site = Site(room)
    await site.hours(2)
    healthy = site.raised(2)
    assert not [e for e in healthy if e.data["severity"] == "alarm"], healthy
    weak = [e for e in site.raised(1) if e.data["severity"] == "alarm"]
    assert [(e.data["code"], e.device) for e in weak] == [
        ("deviation_low", DeviceRef("bus1", 5))
    ], weak
    assert weak[0].message.startswith("String 1 block 5: deviation from the string mean −0.")


async def test_on_the_simulator_without_the_grace_the_same_string_alarms_in_minutes() -> None:
    """The same healthy room with deviation_grace 0: the test above can fail."""
    site = Site(
        Room(RoomConfig(strings=2, blocks=16, seed=4, settle_days=2)),
        thresholds={"deviation_grace": 0},
    )
    await site.hours(0.5)
    assert [e for e in site.raised(2) if e.data["severity"] == "alarm"]


def test_a_spread_is_shown_per_block_against_the_scaled_limit() -> None:
    modules = [module(1, 13.5), module(2, 14.28)]
    string = StringObservation(1, ChargeState.FLOAT, 2.3, 0.13, 25.0, modules)
    update = Clock(engine()).run(700, Observation([string], [], {"bus1": True}), step=50)
    spread = next(a for a in update.alarms if a.code == "spread_high")
    assert spread.message == (
        "String 1: voltage spread (highest − lowest block) 0.78 V, above the 0.73 V alarm limit"
    )


def test_a_restored_alarm_is_not_announced_again() -> None:
    first = Clock(engine())
    first.run(60, observe(12.80))
    saved = first.engine.state_dict()
    second = Clock(engine())
    second.engine.restore(saved)
    assert second.run(60, observe(12.80)).alarms[0].unit == "V"
    assert second.events == []


async def test_the_manager_logs_a_trip(caplog: pytest.LogCaptureFixture) -> None:
    room = Room(RoomConfig(strings=1, blocks=4, seed=2, settle_days=0.1))
    manager = Manager(
        validate_config({"buses": [{"id": "bus1", "url": "sim://x"}], "trip": {"auto": True}}),
        storage=MemoryStorage(),
        transports={"bus1": LoopbackTransport(room)},
    )
    await manager.start(run_loop=False)
    await manager.poll_once()
    await manager.trip("smoke in the room")
    await manager.stop()
    assert any(
        r.levelname == "WARNING" and r.name.startswith("bacs_core") and "smoke" in r.getMessage()
        for r in caplog.records
    ), caplog.records
