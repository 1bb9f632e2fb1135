"""Alarm engine edges the mutation bench found unpinned after the engine changed: the string
spread's grace while the equalizer corrects, the unit the spread is shown in, and which block
or device an implausible-reading or silent-device alarm names. Pure engine, plain inputs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bacs_core.manager.alarms import (
    AlarmEngine,
    AlarmUpdate,
    ModuleObservation,
    Observation,
    SensorObservation,
    StringObservation,
)
from bacs_core.manager.thresholds import Chemistry, thresholds_for
from bacs_core.model import Quality
from bacs_core.snapshot import BalancingState, ChargeState, DeviceRef, Severity, Value

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACTIVE, OUT = BalancingState.ACTIVE, BalancingState.OUT_OF_RANGE
SPREAD = 0.2  # V/cell, beyond the VRLA alarm limit (0.122 V/cell)


def module(
    unit: int, *, cells: int = 6, voltage: Value | None = None, online: bool = True
) -> ModuleObservation:
    return ModuleObservation(
        DeviceRef("bus1", unit),
        1,
        unit,
        cells,
        online,
        Value(2.25 * cells) if voltage is None else voltage,
        Value(25.0),
        Value(5.0),
        None,
        None,
    )


def string(
    modules: Sequence[ModuleObservation],
    balancing: Sequence[BalancingState] = (),
    spread: float | None = None,
) -> StringObservation:
    return StringObservation(1, ChargeState.FLOAT, 2.25, spread, 25.0, modules, balancing)


def run(
    engine: AlarmEngine, seconds: int, obs: Observation, start: int = 0, step: int = 10
) -> AlarmUpdate:
    update = None
    for t in range(start, start + seconds + 1, step):
        update = engine.evaluate(T0 + timedelta(seconds=t), obs)
    assert update is not None
    return update


def engine() -> AlarmEngine:
    return AlarmEngine(thresholds_for(Chemistry.VRLA))


def spread_alarm(update: AlarmUpdate):  # type: ignore[no-untyped-def]
    return next((a for a in update.alarms if a.code.startswith("spread")), None)


# -- the string spread while the equalizer corrects ---------------------------------------------

ON_DELAY = int(thresholds_for(Chemistry.VRLA).cell_spread.on_delay)
GRACE = int(thresholds_for(Chemistry.VRLA).deviation_grace)


@pytest.mark.parametrize(
    ("balancing", "after"),
    [
        ((ACTIVE, ACTIVE, ACTIVE), GRACE),  # being equalized: it waits the grace
        ((BalancingState.IDLE,) * 3, GRACE),
        ((OUT, ACTIVE, ACTIVE), GRACE),  # any block still corrected: wait
        ((OUT, OUT, OUT), ON_DELAY),  # nothing corrects it: its own on-delay
        ((BalancingState.PAUSED,) * 3, ON_DELAY),
        ((), ON_DELAY),  # no equalizer ran
    ],
)
def test_the_spread_waits_for_the_equalizer_only_while_it_corrects(
    balancing: tuple[BalancingState, ...], after: int
) -> None:
    assert GRACE > ON_DELAY
    e = engine()
    obs = Observation([string([module(i) for i in (1, 2, 3)], balancing, SPREAD)], [], {})
    assert spread_alarm(run(e, after - 60, obs, step=60)) is None
    alarm = spread_alarm(run(e, 60, obs, start=after, step=60))
    assert alarm is not None and alarm.severity is Severity.ALARM


def test_the_spread_is_shown_per_block_when_every_block_has_the_same_cells() -> None:
    e = engine()
    alarm = spread_alarm(
        run(e, ON_DELAY, Observation([string([module(1), module(2)], (), SPREAD)], [], {}))
    )
    assert alarm is not None
    assert (alarm.value, alarm.unit) == (pytest.approx(SPREAD * 6), "V")
    assert alarm.threshold == pytest.approx(0.122 * 6)


def test_the_spread_is_shown_per_cell_when_block_sizes_differ() -> None:
    e = engine()
    modules = [module(1, cells=6), module(2, cells=3)]
    alarm = spread_alarm(run(e, ON_DELAY, Observation([string(modules, (), SPREAD)], [], {})))
    assert alarm is not None
    assert (alarm.value, alarm.unit) == (pytest.approx(SPREAD), "V/cell")
    assert alarm.threshold == pytest.approx(0.122)


# -- which block or device an alarm names -------------------------------------------------------


@pytest.mark.parametrize("name", ["voltage", "temperature", "resistance"])
def test_an_impossible_reading_warns_naming_the_block_and_the_quantity(name: str) -> None:
    bad = Value(999.0, Quality.OUT_OF_RANGE)
    m = module(2)
    m = ModuleObservation(
        m.ref,
        1,
        2,
        6,
        True,
        bad if name == "voltage" else m.voltage,
        bad if name == "temperature" else m.temperature,
        bad if name == "resistance" else m.resistance,
        None,
        None,
    )
    update = run(engine(), 30, Observation([string([module(1), m])], [], {}))
    [alarm] = update.alarms
    assert (alarm.code, alarm.severity, alarm.device) == (
        "sensor_implausible",
        Severity.WARNING,
        m.ref,
    )
    assert alarm.message.startswith("String 1 block 2: ")
    assert name in alarm.message


def test_an_impossible_environment_reading_names_the_sensor_and_the_quantity() -> None:
    sensor = SensorObservation(
        DeviceRef("bus1", 40),
        "environment",
        True,
        {"acid_level": Value(-5.0, Quality.OUT_OF_RANGE)},
    )
    [alarm] = run(engine(), 30, Observation([], [sensor], {"bus1": True})).alarms
    assert alarm.code == "sensor_implausible"
    assert alarm.message.startswith("Environment sensor 40: ")
    assert "acid level" in alarm.message  # the name as a person reads it


@pytest.mark.parametrize(
    ("source", "buses", "label"),
    [
        ("environment", {"bus1": True}, "Environment sensor 40"),
        ("current_sensor", {"bus1": True}, "Current sensor 40"),
        ("relay", {"bus1": True}, "Relay module 40"),
        ("door_contact", {"bus1": True}, "Door contact 40"),
        ("relay", {"bus1": True, "bus2": True}, "Relay module bus1/40"),  # the bus: two
        ("environment", {"bus1": True, "bus2": True}, "Environment sensor bus1/40"),
    ],
)
def test_a_silent_device_is_named_so_a_person_can_find_it(
    source: str, buses: dict[str, bool], label: str
) -> None:
    sensor = SensorObservation(DeviceRef("bus1", 40), source, False)
    [alarm] = run(engine(), 0, Observation([], [sensor], buses)).alarms
    assert alarm.code == "communication_lost"
    assert alarm.message == f"{label} does not answer"
    assert alarm.source == source


def test_a_silent_block_is_named_by_string_and_position() -> None:
    obs = Observation([string([module(1), module(2, online=False)])], [], {"bus1": True})
    [alarm] = run(engine(), 0, obs).alarms
    assert (alarm.code, alarm.device, alarm.string) == (
        "communication_lost",
        DeviceRef("bus1", 2),
        1,
    )
    assert alarm.message == "String 1 block 2 does not answer"
