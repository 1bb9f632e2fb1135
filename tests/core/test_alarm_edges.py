"""The alarm engine at its edges, with limits set here (not the chemistry defaults, which are
tuned elsewhere): exact thresholds on both sides, on- and off-delays to the second, hysteresis
only for an alarm that stands, stepping down, latching and acknowledgement, what is judged when
(float only, online only, plausible only), and a restart that restores each alarm to its device.

The engine is pure: one Observation per cycle in, alarms and events out. Messages are for
people and are not pinned here, only that they exist.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from bacs_core.events import Event, EventType
from bacs_core.manager.alarms import (
    AlarmEngine,
    AlarmUpdate,
    ModuleObservation,
    Observation,
    SensorObservation,
    StringObservation,
)
from bacs_core.manager.thresholds import Limit, Thresholds, thresholds_for
from bacs_core.model import Chemistry, Quality
from bacs_core.snapshot import Alarm, ChargeState, DeviceRef, Severity, Value

T0 = datetime(2026, 1, 1, tzinfo=UTC)
M1 = DeviceRef("bus1", 3)
M2 = DeviceRef("bus2", 7)
ENV = DeviceRef("bus1", 40)
OFF = Limit()  # no bounds: a rule that never fires

# Every rule off except the ones a test turns on.
QUIET = replace(
    thresholds_for(Chemistry.VRLA),
    cell_voltage=OFF,
    cell_deviation=OFF,
    temperature=OFF,
    above_ambient=OFF,
    resistance_vs_baseline=OFF,
    resistance_vs_median=OFF,
    cell_spread=OFF,
    hydrogen=OFF,
    humidity=OFF,
    acid_level=OFF,
    room_temperature=OFF,
)
HYDROGEN = Limit(None, None, 4000.0, 10000.0, hysteresis=200.0)
ACID = Limit(90.0, 80.0, None, None, hysteresis=1.0)
VOLTS = Limit(2.20, 2.15, 2.35, 2.40, hysteresis=0.005, on_delay=60, off_delay=30, latch=True)


@dataclass
class Module:
    ref: DeviceRef = M1
    string: int = 1
    position: int = 1
    cells: int = 6
    online: bool = True
    volts: float | None = 13.62
    temperature: float | None = 25.0
    resistance: float | None = 5.0
    baseline: float | None = 5.0
    median: float | None = 5.0
    quality: Quality = Quality.OK

    def observe(self) -> ModuleObservation:
        return ModuleObservation(
            self.ref,
            self.string,
            self.position,
            self.cells,
            self.online,
            Value(self.volts, self.quality),
            Value(self.temperature),
            Value(self.resistance),
            self.baseline,
            self.median,
        )


@dataclass
class Scene:
    modules: list[Module] = field(default_factory=lambda: [Module()])
    state: ChargeState = ChargeState.FLOAT
    mean_cell: float | None = 2.27
    spread: float | None = 0.01
    ambient: float | None = 25.0
    env: dict[str, Value] = field(default_factory=dict)
    env_online: bool = True
    buses: dict[str, bool] = field(default_factory=lambda: {"bus1": True, "bus2": True})

    def observe(self) -> Observation:
        strings: dict[int, list[ModuleObservation]] = {}
        for m in self.modules:
            strings.setdefault(m.string, []).append(m.observe())
        sensors = []
        if self.env:
            sensors.append(SensorObservation(ENV, "environment", self.env_online, self.env))
        return Observation(
            [
                StringObservation(i, self.state, self.mean_cell, self.spread, self.ambient, ms)
                for i, ms in sorted(strings.items())
            ],
            sensors,
            self.buses,
        )


class Clock:
    """An engine driven at chosen seconds after T0, keeping every event."""

    def __init__(self, thresholds: Thresholds = QUIET, *, latch: bool = True) -> None:
        self.engine = AlarmEngine(thresholds, latch_alarms=latch)
        self.events: list[Event] = []
        self.last: AlarmUpdate | None = None

    def at(self, seconds: float, scene: Scene) -> list[Alarm]:
        self.last = self.engine.evaluate(T0 + timedelta(seconds=seconds), scene.observe())
        self.events += self.last.events
        return list(self.last.alarms)

    def count(self) -> Counter[EventType]:
        return Counter(e.type for e in self.events)


def codes(alarms: list[Alarm]) -> dict[str, Severity]:
    return {a.code: a.severity for a in alarms if a.active}


def gas(ppm: float, **more: float) -> Scene:
    values = {"hydrogen": Value(ppm)} | {k: Value(v) for k, v in more.items()}
    return Scene(env=values)


def acid(level: float) -> Scene:
    return Scene(env={"acid_level": Value(level)})


def only(thresholds: Thresholds = QUIET, **limits: Limit) -> Thresholds:
    return replace(thresholds, **limits)


# -- exact thresholds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ppm", "expected"),
    [
        (4000.0, {}),
        (4000.5, {"hydrogen_high": Severity.WARNING}),
        (10000.0, {"hydrogen_high": Severity.WARNING}),
        (10000.5, {"hydrogen_high": Severity.ALARM}),
    ],
)
def test_high_bounds_are_exclusive(ppm: float, expected: dict[str, Severity]) -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    assert codes(c.at(0, gas(ppm))) == expected


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (90.0, {}),
        (89.5, {"acid_level_low": Severity.WARNING}),
        (80.0, {"acid_level_low": Severity.WARNING}),
        (79.5, {"acid_level_low": Severity.ALARM}),
    ],
)
def test_low_bounds_are_exclusive(level: float, expected: dict[str, Severity]) -> None:
    c = Clock(only(acid_level=ACID))
    assert codes(c.at(0, acid(level))) == expected


def test_a_raised_alarm_carries_its_value_threshold_and_place() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    (alarm,) = c.at(0, gas(12000.0))
    assert alarm.key == f"environment:{ENV}:hydrogen"
    assert alarm.code == "hydrogen_high"
    assert alarm.severity is Severity.ALARM
    assert alarm.source == "environment"
    assert alarm.device == ENV
    assert alarm.string is None
    assert alarm.value == pytest.approx(12000.0)
    assert alarm.threshold == pytest.approx(10000.0)
    assert alarm.active is True
    assert alarm.latched is False
    assert alarm.acknowledged is False
    assert alarm.since == T0
    assert alarm.message
    (event,) = c.events
    assert event.type is EventType.ALARM_RAISED
    assert event.device == ENV
    assert event.data["key"] == alarm.key
    assert event.data["code"] == "hydrogen_high"
    assert event.data["severity"] == "alarm"
    assert event.message


def test_a_low_alarm_carries_its_low_threshold() -> None:
    c = Clock(only(acid_level=ACID))
    (alarm,) = c.at(0, acid(85.0))
    assert alarm.threshold == pytest.approx(90.0)
    (alarm,) = c.at(10, acid(75.0))
    assert alarm.threshold == pytest.approx(80.0)
    assert alarm.severity is Severity.ALARM


# -- hysteresis: only for what stands ------------------------------------------------------


def test_hysteresis_does_not_raise_an_alarm_that_does_not_stand() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    for t in range(0, 100, 10):
        assert c.at(t, gas(3999.0)) == []  # inside the 200 ppm band, never above the bound
    assert c.count() == Counter()


def test_hysteresis_holds_a_standing_warning_down_to_its_band() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    c.at(0, gas(4100.0))
    assert codes(c.at(10, gas(3850.0))) == {"hydrogen_high": Severity.WARNING}
    assert codes(c.at(20, gas(3800.5))) == {"hydrogen_high": Severity.WARNING}
    assert codes(c.at(30, gas(3800.0))) == {}  # the band's edge: cleared (no off-delay here)
    assert c.count() == Counter({EventType.ALARM_RAISED: 1, EventType.ALARM_CLEARED: 1})


def test_hysteresis_on_the_low_side() -> None:
    c = Clock(only(acid_level=ACID))
    c.at(0, acid(89.0))
    assert codes(c.at(10, acid(90.5))) == {"acid_level_low": Severity.WARNING}
    assert codes(c.at(20, acid(91.0))) == {}


def test_a_standing_alarm_steps_down_past_its_band_only() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    c.at(0, gas(10100.0))
    assert codes(c.at(10, gas(9850.0))) == {"hydrogen_high": Severity.ALARM}
    alarms = c.at(20, gas(9800.0))
    assert codes(alarms) == {"hydrogen_high": Severity.WARNING}
    assert alarms[0].threshold == pytest.approx(4000.0)
    assert alarms[0].since == T0  # the same condition since it was first raised
    assert codes(c.at(30, gas(3000.0))) == {}


def test_a_standing_warning_gets_no_hysteresis_on_the_alarm_bound() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    c.at(0, gas(5000.0))
    assert codes(c.at(10, gas(9900.0))) == {"hydrogen_high": Severity.WARNING}
    assert codes(c.at(20, gas(10000.5))) == {"hydrogen_high": Severity.ALARM}


def test_a_standing_low_alarm_steps_down_past_its_band_only() -> None:
    c = Clock(only(acid_level=ACID))
    c.at(0, acid(70.0))
    assert codes(c.at(10, acid(80.5))) == {"acid_level_low": Severity.ALARM}
    assert codes(c.at(20, acid(81.0))) == {"acid_level_low": Severity.WARNING}


# -- on- and off-delays ----------------------------------------------------------------------


def delayed(on: float = 60.0, off: float = 30.0, latch: bool = False) -> Thresholds:
    return only(hydrogen=replace(HYDROGEN, on_delay=on, off_delay=off, latch=latch))


def test_on_delay_to_the_second() -> None:
    c = Clock(delayed())
    for t in (0, 10, 50, 59):
        assert c.at(t, gas(5000.0)) == [], t
    (alarm,) = c.at(60, gas(5000.0))
    assert alarm.since == T0 + timedelta(seconds=60)
    for t in range(70, 300, 10):
        c.at(t, gas(5000.0))
    assert c.count() == Counter({EventType.ALARM_RAISED: 1})


def test_on_delay_restarts_when_the_condition_breaks() -> None:
    c = Clock(delayed())
    c.at(0, gas(5000.0))
    c.at(30, gas(5000.0))
    c.at(40, gas(100.0))  # gone for one cycle
    c.at(50, gas(5000.0))
    assert c.at(100, gas(5000.0)) == []
    assert codes(c.at(110, gas(5000.0))) == {"hydrogen_high": Severity.WARNING}


def test_off_delay_to_the_second() -> None:
    c = Clock(delayed())
    c.at(0, gas(5000.0))
    c.at(60, gas(5000.0))
    c.at(100, gas(100.0))
    assert codes(c.at(129, gas(100.0))) == {"hydrogen_high": Severity.WARNING}
    assert c.at(130, gas(100.0)) == []
    cleared = [e for e in c.events if e.type is EventType.ALARM_CLEARED]
    assert len(cleared) == 1
    assert cleared[0].timestamp == T0 + timedelta(seconds=130)
    assert cleared[0].data["key"] == f"environment:{ENV}:hydrogen"
    assert cleared[0].data["latched"] is False
    for t in range(140, 300, 10):
        c.at(t, gas(100.0))
    assert c.count() == Counter({EventType.ALARM_RAISED: 1, EventType.ALARM_CLEARED: 1})


def test_off_delay_restarts_when_the_condition_returns() -> None:
    """An alarm that comes back within its off-delay never flaps: one raise, one clear."""
    c = Clock(delayed())
    c.at(0, gas(5000.0))
    c.at(60, gas(5000.0))
    c.at(100, gas(100.0))
    c.at(120, gas(5000.0))  # back before the 30 s were up
    c.at(130, gas(100.0))
    assert codes(c.at(150, gas(100.0))) == {"hydrogen_high": Severity.WARNING}
    assert c.at(160, gas(100.0)) == []
    assert c.count() == Counter({EventType.ALARM_RAISED: 1, EventType.ALARM_CLEARED: 1})


def test_an_alarm_that_clears_and_returns_is_raised_again() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    c.at(0, gas(5000.0))
    c.at(10, gas(100.0))
    (alarm,) = c.at(20, gas(5000.0))
    assert alarm.since == T0 + timedelta(seconds=20)
    assert c.count() == Counter({EventType.ALARM_RAISED: 2, EventType.ALARM_CLEARED: 1})


# -- latching and acknowledgement ------------------------------------------------------------


def test_an_alarm_latches_until_acknowledged() -> None:
    c = Clock(delayed(on=0, off=0, latch=True))
    c.at(0, gas(12000.0))
    (alarm,) = c.at(10, gas(100.0))
    assert alarm.latched is True
    assert alarm.active is False
    assert alarm.severity is Severity.ALARM
    assert alarm.since == T0
    cleared = [e for e in c.events if e.type is EventType.ALARM_CLEARED]
    assert [e.data["latched"] for e in cleared] == [True]
    for t in range(20, 200, 10):
        assert len(c.at(t, gas(100.0))) == 1  # stays shown
    events = c.engine.acknowledge(T0, alarm.key)
    assert [e.type for e in events] == [EventType.ALARM_ACKNOWLEDGED]
    assert events[0].data == {"key": alarm.key, "code": "hydrogen_high"}
    assert c.at(200, gas(100.0)) == []
    assert list(c.engine.active_keys()) == []


def test_an_acknowledged_alarm_does_not_latch() -> None:
    c = Clock(delayed(on=0, off=0, latch=True))
    (alarm,) = c.at(0, gas(12000.0))
    events = c.engine.acknowledge(T0, alarm.key)
    assert [e.type for e in events] == [EventType.ALARM_ACKNOWLEDGED]
    (alarm,) = c.at(10, gas(12000.0))
    assert alarm.acknowledged is True
    assert c.at(20, gas(100.0)) == []
    assert c.engine.acknowledge(T0, None) == []


def test_warnings_never_latch() -> None:
    c = Clock(delayed(on=0, off=0, latch=True))
    c.at(0, gas(5000.0))
    assert c.at(10, gas(100.0)) == []


def test_an_alarm_that_stepped_down_to_a_warning_does_not_latch() -> None:
    c = Clock(delayed(on=0, off=0, latch=True))
    c.at(0, gas(12000.0))
    c.at(10, gas(5000.0))
    assert c.at(20, gas(100.0)) == []


def test_latching_can_be_turned_off() -> None:
    c = Clock(delayed(on=0, off=0, latch=True), latch=False)
    c.at(0, gas(12000.0))
    assert c.at(10, gas(100.0)) == []


def test_a_latched_alarm_that_returns_stands_again_unacknowledged() -> None:
    c = Clock(delayed(on=0, off=0, latch=True))
    c.at(0, gas(12000.0))
    c.at(10, gas(100.0))
    (alarm,) = c.at(20, gas(12000.0))
    assert alarm.active is True
    assert alarm.latched is False
    assert alarm.acknowledged is False


def test_acknowledge_all_and_again() -> None:
    c = Clock(only(hydrogen=HYDROGEN, acid_level=ACID))
    c.at(0, Scene(env={"hydrogen": Value(5000.0), "acid_level": Value(85.0)}))
    events = c.engine.acknowledge(T0 + timedelta(seconds=5))
    assert sorted(e.data["code"] for e in events) == ["acid_level_low", "hydrogen_high"]
    assert all(e.type is EventType.ALARM_ACKNOWLEDGED for e in events)
    assert all(e.timestamp == T0 + timedelta(seconds=5) for e in events)
    assert c.engine.acknowledge(T0) == []  # nothing new to acknowledge
    alarms = c.at(10, Scene(env={"hydrogen": Value(5000.0), "acid_level": Value(85.0)}))
    assert [a.acknowledged for a in alarms] == [True, True]
    with pytest.raises(KeyError):
        c.engine.acknowledge(T0, "environment:bus1/40:nothing")


def test_a_rise_to_alarm_is_no_longer_acknowledged() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    (alarm,) = c.at(0, gas(5000.0))
    c.engine.acknowledge(T0, alarm.key)
    (alarm,) = c.at(10, gas(12000.0))
    assert alarm.acknowledged is False
    assert alarm.severity is Severity.ALARM
    assert alarm.since == T0


# -- what is judged, and when ----------------------------------------------------------------


def test_float_voltage_window_per_cell_and_scaled_to_the_block() -> None:
    c = Clock(only(cell_voltage=VOLTS))
    high = Scene(modules=[Module(volts=6 * 2.36)])
    c.at(0, high)
    (alarm,) = c.at(60, high)
    assert alarm.code == "voltage_high"
    assert alarm.severity is Severity.WARNING
    assert alarm.value == pytest.approx(14.16)
    assert alarm.threshold == pytest.approx(14.1)
    assert alarm.device == M1
    assert alarm.string == 1
    assert alarm.source == "module"
    # A 2 V cell at the same per-cell voltage is judged the same.
    c = Clock(only(cell_voltage=VOLTS))
    cell = Scene(modules=[Module(volts=2.36, cells=1)])
    c.at(0, cell)
    (alarm,) = c.at(60, cell)
    assert alarm.code == "voltage_high"
    assert alarm.value == pytest.approx(2.36)


def test_deviation_from_the_string_mean() -> None:
    limit = Limit(-0.034, -0.040, 0.050, 0.082)
    c = Clock(only(cell_deviation=limit))
    (alarm,) = c.at(0, Scene(modules=[Module(volts=6 * 2.33)], mean_cell=2.27))
    assert alarm.code == "deviation_high"
    assert alarm.severity is Severity.WARNING
    assert alarm.value == pytest.approx(0.36)
    assert alarm.threshold == pytest.approx(0.30)
    (alarm,) = c.at(10, Scene(modules=[Module(volts=6 * 2.22)], mean_cell=2.27))
    assert alarm.code == "deviation_low"
    assert alarm.severity is Severity.ALARM


def test_float_rules_hold_their_state_off_float() -> None:
    """A standing voltage alarm neither clears nor flaps in a discharge; back on float with a
    normal voltage it clears after its off-delay."""
    c = Clock(only(cell_voltage=VOLTS))
    high = Scene(modules=[Module(volts=6 * 2.36)])
    c.at(0, high)
    c.at(60, high)
    for t in range(70, 400, 10):
        low = Scene(modules=[Module(volts=6 * 1.9)], state=ChargeState.DISCHARGE)
        assert codes(c.at(t, low)) == {"voltage_high": Severity.WARNING}
    c.at(400, Scene(modules=[Module(volts=6 * 2.27)]))
    assert c.at(430, Scene(modules=[Module(volts=6 * 2.27)])) == []
    # Nothing is raised from a discharge either.
    c = Clock(only(cell_voltage=VOLTS, cell_spread=Limit(None, None, 0.05, 0.08)))
    for t in range(0, 200, 10):
        d = Scene(modules=[Module(volts=6 * 1.9)], spread=0.2, state=ChargeState.DISCHARGE)
        assert c.at(t, d) == []


def test_string_spread_on_float() -> None:
    c = Clock(only(cell_spread=Limit(None, None, 0.05, 0.08)))
    (alarm,) = c.at(0, Scene(spread=0.09))
    assert alarm.key == "string:1:spread"
    assert alarm.code == "spread_high"
    assert alarm.severity is Severity.ALARM
    assert alarm.device is None
    assert alarm.string == 1
    assert alarm.source == "string"
    assert codes(c.at(10, Scene(spread=0.08))) == {"spread_high": Severity.WARNING}
    assert codes(c.at(20, Scene(spread=0.05))) == {}
    assert c.at(30, Scene(spread=None)) == []


def test_block_temperature_and_temperature_above_ambient() -> None:
    c = Clock(
        only(temperature=Limit(10.0, 0.0, 35.0, 45.0), above_ambient=Limit(None, None, 3.0, 5.0))
    )
    alarms = c.at(0, Scene(modules=[Module(temperature=36.0)], ambient=30.0))
    assert codes(alarms) == {
        "temperature_high": Severity.WARNING,
        "above_ambient_high": Severity.ALARM,
    }
    above = next(a for a in alarms if a.code == "above_ambient_high")
    assert above.value == pytest.approx(6.0)
    assert above.threshold == pytest.approx(5.0)
    # Without an ambient reading the difference is not judged (and what stood is not cleared
    # by it either: it is simply not evaluated).
    c = Clock(only(above_ambient=Limit(None, None, 3.0, 5.0)))
    assert c.at(0, Scene(modules=[Module(temperature=40.0)], ambient=None)) == []
    c = Clock(only(temperature=Limit(10.0, 0.0, 35.0, 45.0)))
    assert codes(c.at(0, Scene(modules=[Module(temperature=-1.0)]))) == {
        "temperature_low": Severity.ALARM
    }


def test_resistance_against_baseline_and_median() -> None:
    limits = {
        "resistance_vs_baseline": Limit(None, None, 1.25, 1.50),
        "resistance_vs_median": Limit(None, None, 1.30, 1.60),
    }
    c = Clock(only(**limits))
    alarms = c.at(0, Scene(modules=[Module(resistance=8.0, baseline=5.0, median=6.0)]))
    assert codes(alarms) == {
        "resistance_high": Severity.ALARM,  # 1.6× its baseline
        "resistance_median_high": Severity.WARNING,  # 1.33× the median
    }
    by_code = {a.code: a for a in alarms}
    assert by_code["resistance_high"].value == pytest.approx(1.6)
    assert by_code["resistance_median_high"].value == pytest.approx(8.0 / 6.0, abs=1e-4)
    for baseline, median in ((None, None), (0.0, 0.0)):
        c = Clock(only(**limits))
        module = Module(resistance=50.0, baseline=baseline, median=median)
        assert c.at(0, Scene(modules=[module])) == []


def test_room_sensor_values_are_judged_by_name() -> None:
    thresholds = only(
        humidity=Limit(None, None, 80.0, 90.0),
        room_temperature=Limit(10.0, 0.0, 30.0, 40.0),
        hydrogen=HYDROGEN,
        acid_level=ACID,
    )
    c = Clock(thresholds)
    env = {
        "humidity": Value(92.0),
        "temperature": Value(5.0),
        "hydrogen": Value(100.0),
        "acid_level": Value(100.0),
        "pressure": Value(5000.0),  # not a rule: not judged
    }
    alarms = c.at(0, Scene(env=env))
    assert codes(alarms) == {"humidity_high": Severity.ALARM, "temperature_low": Severity.WARNING}
    assert {a.key for a in alarms} == {
        f"environment:{ENV}:humidity",
        f"environment:{ENV}:temperature",
    }


def test_an_impossible_reading_is_one_warning_after_its_delay_and_is_not_judged() -> None:
    c = Clock(only(cell_voltage=replace(VOLTS, on_delay=0)))
    bad = Scene(modules=[Module(volts=30.0, quality=Quality.OUT_OF_RANGE)])
    assert c.at(0, bad) == []
    assert c.at(29, bad) == []
    (alarm,) = c.at(30, bad)
    assert alarm.code == "sensor_implausible"
    assert alarm.severity is Severity.WARNING
    assert alarm.key == f"module:{M1}:voltage_implausible"
    assert alarm.device == M1
    good = Scene(modules=[Module(volts=6 * 2.27)])
    assert codes(c.at(40, good)) == {"sensor_implausible": Severity.WARNING}
    assert c.at(99, good) != []
    assert c.at(100, good) == []  # 60 s after it was gone
    assert c.count() == Counter({EventType.ALARM_RAISED: 1, EventType.ALARM_CLEARED: 1})


def test_a_missing_reading_is_neither_judged_nor_implausible() -> None:
    c = Clock(only(cell_voltage=replace(VOLTS, on_delay=0)))
    for t in range(0, 100, 10):
        assert c.at(t, Scene(modules=[Module(volts=None, quality=Quality.MISSING)])) == []
        assert c.at(t, Scene(modules=[Module(volts=20.0, quality=Quality.MISSING)])) == []


def test_a_silent_module_is_communication_lost_and_not_judged() -> None:
    c = Clock(only(cell_voltage=replace(VOLTS, on_delay=0)))
    (alarm,) = c.at(0, Scene(modules=[Module(online=False, volts=30.0)]))
    assert alarm.code == "communication_lost"
    assert alarm.severity is Severity.WARNING
    assert alarm.key == f"comm:{M1}"
    assert alarm.device == M1
    assert alarm.string == 1
    assert c.at(10, Scene(modules=[Module(volts=6 * 2.27)])) == []  # back: cleared at once
    assert c.count() == Counter({EventType.ALARM_RAISED: 1, EventType.ALARM_CLEARED: 1})


def test_a_silent_sensor_is_communication_lost() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    scene = Scene(env={"hydrogen": Value(100.0)}, env_online=False)
    (alarm,) = c.at(0, scene)
    assert alarm.code == "communication_lost"
    assert alarm.device == ENV
    assert alarm.source == "environment"
    assert alarm.string is None


def test_a_lost_bus_is_one_alarm_for_its_devices() -> None:
    c = Clock()
    scene = Scene(
        modules=[Module(online=False), Module(ref=M2, online=False, position=2)],
        buses={"bus1": False, "bus2": True},
    )
    alarms = c.at(0, scene)
    assert {a.key: (a.code, a.severity) for a in alarms} == {
        "bus:bus1": ("bus_lost", Severity.ALARM),
        f"comm:{M2}": ("communication_lost", Severity.WARNING),
    }
    bus = next(a for a in alarms if a.code == "bus_lost")
    assert bus.device is None
    assert bus.source == "bus"
    assert c.last is not None
    assert c.last.problem_devices == frozenset({M2})
    assert c.last.problem_strings == frozenset({1})
    assert c.at(10, Scene(modules=[Module(), Module(ref=M2, position=2)])) == []


def test_problem_devices_and_strings() -> None:
    c = Clock(only(cell_voltage=replace(VOLTS, on_delay=0)))
    scene = Scene(
        modules=[Module(), Module(ref=M2, string=2, position=5, volts=6 * 2.45)],
    )
    c.at(0, scene)
    assert c.last is not None
    assert c.last.problem_devices == frozenset({M2})
    assert c.last.problem_strings == frozenset({2})


def test_alarms_come_sorted_by_key() -> None:
    c = Clock(only(hydrogen=HYDROGEN, acid_level=ACID))
    alarms = c.at(0, Scene(env={"hydrogen": Value(5000.0), "acid_level": Value(85.0)}))
    assert [a.key for a in alarms] == sorted(a.key for a in alarms)
    assert len(alarms) == 2


def test_a_device_no_longer_observed_keeps_its_alarm_quietly() -> None:
    c = Clock(only(cell_voltage=replace(VOLTS, on_delay=0, latch=False)))
    bad = Scene(modules=[Module(volts=6 * 2.45)])
    c.at(0, bad)
    assert c.at(10, Scene(modules=[])) == []  # removed from the configuration
    assert codes(c.at(20, bad)) == {"voltage_high": Severity.ALARM}
    assert c.count() == Counter({EventType.ALARM_RAISED: 1})


# -- a restart -------------------------------------------------------------------------------


def test_a_restart_restores_each_alarm_to_its_device() -> None:
    limits = only(cell_voltage=replace(VOLTS, on_delay=0, off_delay=0), hydrogen=HYDROGEN)
    c = Clock(limits)
    m1 = Module()
    m2 = Module(ref=M2, string=2, position=5, volts=6 * 2.45)  # latching alarm on bus2/7
    c.at(0, Scene(modules=[m1, m2], env={"hydrogen": Value(5000.0)}))
    m2.volts = 6 * 2.27
    c.at(10, Scene(modules=[m1, m2], env={"hydrogen": Value(5000.0)}))  # bus2/7 latched
    before = {a.key: a for a in c.last.alarms} if c.last else {}
    saved = json.loads(json.dumps(c.engine.state_dict()))

    fresh = Clock(limits)
    fresh.engine.restore({"broken": {"level": "x"}, **saved})
    alarms = {
        a.key: a for a in fresh.at(20, Scene(modules=[m1, m2], env={"hydrogen": Value(5000.0)}))
    }
    assert set(alarms) == set(before) == {f"module:{M2}:voltage", f"environment:{ENV}:hydrogen"}
    latched = alarms[f"module:{M2}:voltage"]
    assert latched.device == M2
    assert latched.string == 2
    assert latched.source == "module"
    assert latched.code == "voltage_high"
    assert latched.severity is Severity.ALARM
    assert latched.latched is True
    assert latched.active is False
    assert latched.since == T0
    assert latched.value == pytest.approx(14.7)
    assert latched.threshold == pytest.approx(14.4)
    assert latched.message == before[f"module:{M2}:voltage"].message
    standing = alarms[f"environment:{ENV}:hydrogen"]
    assert standing.device == ENV
    assert standing.string is None
    assert standing.active is True
    assert standing.since == T0
    assert fresh.events == []  # nothing new happened: nothing is announced again
    # The restored latch is acknowledged like any other.
    fresh.engine.acknowledge(T0, f"module:{M2}:voltage")
    assert {
        a.key for a in fresh.at(30, Scene(modules=[m1, m2], env={"hydrogen": Value(100.0)}))
    } == set()


def test_an_acknowledged_standing_alarm_stays_acknowledged_after_a_restart() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    (alarm,) = c.at(0, gas(5000.0))
    c.engine.acknowledge(T0, alarm.key)
    fresh = Clock(only(hydrogen=HYDROGEN))
    fresh.engine.restore(json.loads(json.dumps(c.engine.state_dict())))
    (again,) = fresh.at(10, gas(5000.0))
    assert again.acknowledged is True
    assert again.latched is False
    assert fresh.engine.acknowledge(T0) == []


def test_only_standing_and_latched_alarms_are_saved() -> None:
    c = Clock(delayed(on=60))
    c.at(0, gas(5000.0))  # pending, not raised
    assert c.engine.state_dict() == {}


def test_a_restored_latching_alarm_still_latches() -> None:
    limits = only(cell_voltage=replace(VOLTS, on_delay=0, off_delay=0))
    c = Clock(limits)
    c.at(0, Scene(modules=[Module(volts=6 * 2.45)]))
    fresh = Clock(limits)
    fresh.engine.restore(json.loads(json.dumps(c.engine.state_dict())))
    (alarm,) = fresh.at(10, Scene(modules=[Module(volts=6 * 2.27)]))
    assert alarm.latched is True
    assert alarm.active is False


def test_a_lost_bus_survives_a_restart_without_being_announced_again() -> None:
    c = Clock()
    down = Scene(modules=[Module(online=False)], buses={"bus1": False})
    c.at(0, down)
    fresh = Clock()
    fresh.engine.restore(json.loads(json.dumps(c.engine.state_dict())))
    (alarm,) = fresh.at(10, down)
    assert alarm.key == "bus:bus1"
    assert alarm.device is None
    assert alarm.since == T0
    assert fresh.events == []


def test_a_record_without_its_time_is_skipped() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    c.at(0, gas(5000.0))
    saved = json.loads(json.dumps(c.engine.state_dict()))
    for record in saved.values():
        record["since"] = None
    fresh = Clock(only(hydrogen=HYDROGEN))
    fresh.engine.restore(saved)
    (alarm,) = fresh.at(10, gas(5000.0))  # raised afresh, and the cycle does not fail
    assert alarm.since == T0 + timedelta(seconds=10)


# -- each device, each key -------------------------------------------------------------------


def test_a_silent_module_does_not_stop_the_next_from_being_judged() -> None:
    c = Clock(only(cell_voltage=replace(VOLTS, on_delay=0)))
    scene = Scene(modules=[Module(online=False), Module(ref=M2, position=2, volts=6 * 2.45)])
    alarms = c.at(0, scene)
    assert {(a.key, a.code) for a in alarms} == {
        (f"comm:{M1}", "communication_lost"),
        (f"module:{M2}:voltage", "voltage_high"),
    }
    comm = next(a for a in alarms if a.code == "communication_lost")
    assert comm.source == "module"


@pytest.mark.parametrize("name", ["temperature", "resistance"])
def test_every_module_reading_has_its_own_implausible_warning(name: str) -> None:
    c = Clock()
    module = Module()
    setattr(module, name, 500.0)
    bad = module.observe()
    bad = ModuleObservation(
        bad.ref,
        bad.string,
        bad.position,
        bad.cells,
        True,
        bad.voltage,
        Value(500.0, Quality.OUT_OF_RANGE) if name == "temperature" else bad.temperature,
        Value(500.0, Quality.OUT_OF_RANGE) if name == "resistance" else bad.resistance,
        bad.resistance_baseline,
        bad.resistance_median,
    )
    obs = Observation([StringObservation(1, ChargeState.FLOAT, 2.27, 0.01, 25.0, [bad])], [], {})
    c.engine.evaluate(T0, obs)
    update = c.engine.evaluate(T0 + timedelta(seconds=30), obs)
    (alarm,) = update.alarms
    assert alarm.key == f"module:{M1}:{name}_implausible"
    assert alarm.code == "sensor_implausible"
    assert alarm.value == 500.0
    assert alarm.device == M1
    assert alarm.string == 1
    assert [e.timestamp for e in update.events] == [T0 + timedelta(seconds=30)]


def test_a_room_sensor_reading_has_its_own_implausible_warning() -> None:
    c = Clock(only(hydrogen=HYDROGEN))
    scene = Scene(env={"hydrogen": Value(90000.0, Quality.OUT_OF_RANGE), "humidity": Value(40.0)})
    c.at(0, scene)
    (alarm,) = c.at(30, scene)
    assert alarm.key == f"environment:{ENV}:hydrogen_implausible"
    assert alarm.code == "sensor_implausible"
    assert alarm.value == 90000.0
    assert alarm.device == ENV
    assert alarm.source == "environment"


def test_a_deviation_alarm_stands_through_a_discharge() -> None:
    c = Clock(only(cell_deviation=Limit(-0.034, -0.040, 0.050, 0.082)))
    c.at(0, Scene(modules=[Module(volts=6 * 2.33)], mean_cell=2.27))
    for t in range(10, 300, 10):
        d = Scene(modules=[Module(volts=6 * 1.9)], mean_cell=1.9, state=ChargeState.DISCHARGE)
        assert codes(c.at(t, d)) == {"deviation_high": Severity.WARNING}


def test_a_device_on_a_bus_not_reported_is_judged_as_answering() -> None:
    c = Clock()
    (alarm,) = c.at(0, Scene(modules=[Module(online=False)], buses={}))
    assert alarm.code == "communication_lost"


def test_a_lost_bus_clears_its_devices_own_alarms_at_once() -> None:
    c = Clock()
    c.at(0, Scene(modules=[Module(online=False)], buses={"bus1": True}))
    alarms = c.at(10, Scene(modules=[Module(online=False)], buses={"bus1": False}))
    assert [a.code for a in alarms] == ["bus_lost"]
    cleared = [e for e in c.events if e.type is EventType.ALARM_CLEARED]
    assert [(e.data["key"], e.data["code"]) for e in cleared] == [
        (f"comm:{M1}", "communication_lost")
    ]
    assert cleared[0].timestamp == T0 + timedelta(seconds=10)


def test_events_carry_their_time_place_and_value() -> None:
    c = Clock(only(cell_voltage=replace(VOLTS, on_delay=0, off_delay=0, latch=False)))
    scene = Scene(modules=[Module(ref=M2, string=2, position=5, volts=6 * 2.45)])
    c.at(0, scene)
    c.at(10, Scene(modules=[Module(ref=M2, string=2, position=5)]))
    raised, cleared = c.events
    assert raised.type is EventType.ALARM_RAISED
    assert raised.timestamp == T0
    assert raised.device == M2
    assert raised.string == 2
    assert raised.data["value"] == pytest.approx(14.7)
    assert raised.data["code"] == "voltage_high"
    assert cleared.type is EventType.ALARM_CLEARED
    assert cleared.timestamp == T0 + timedelta(seconds=10)
    assert cleared.device == M2
    assert cleared.string == 2
    assert cleared.data == {"key": f"module:{M2}:voltage", "code": "voltage_high", "latched": False}


def test_an_unobserved_device_does_not_hide_the_others() -> None:
    c = Clock(only(cell_voltage=replace(VOLTS, on_delay=0, latch=False)))
    both = [Module(volts=6 * 2.45), Module(ref=M2, position=2, volts=6 * 2.45)]
    c.at(0, Scene(modules=both))
    alarms = c.at(10, Scene(modules=[Module(ref=M2, position=2, volts=6 * 2.45)]))
    assert [a.key for a in alarms] == [f"module:{M2}:voltage"]


def test_a_pending_alarm_does_not_hide_the_standing_ones() -> None:
    thresholds = only(hydrogen=HYDROGEN, acid_level=replace(ACID, on_delay=60))
    c = Clock(thresholds)
    scene = Scene(env={"acid_level": Value(85.0), "hydrogen": Value(5000.0)})
    alarms = c.at(0, scene)  # acid_level waits for its on-delay; it sorts first
    assert [a.code for a in alarms] == ["hydrogen_high"]
    assert list(c.engine.state_dict()) == [f"environment:{ENV}:hydrogen"]


def test_acknowledging_all_skips_what_was_acknowledged_and_names_each() -> None:
    c = Clock(only(cell_voltage=replace(VOLTS, on_delay=0)))
    both = [Module(volts=6 * 2.45), Module(ref=M2, string=2, position=2, volts=6 * 2.45)]
    c.at(0, Scene(modules=both))
    (first,) = c.engine.acknowledge(T0, f"module:{M1}:voltage")
    assert first.device == M1
    assert first.string == 1
    assert first.message
    (second,) = c.engine.acknowledge(T0)
    assert second.data["key"] == f"module:{M2}:voltage"
    assert second.device == M2
    assert second.string == 2
    with pytest.raises(KeyError) as err:
        c.engine.acknowledge(T0, "module:bus9/9:voltage")
    assert err.value.args == ("module:bus9/9:voltage",)
