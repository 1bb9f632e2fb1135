"""Every alarm rule of the engine at its VRLA defaults: the level it raises, its on-delay and
where it does not apply. (Voltage window, hysteresis, latching, plausibility and persistence are
in test_manager_rules.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bacs_core.manager.alarms import (
    AlarmEngine,
    ModuleObservation,
    Observation,
    SensorObservation,
    StringObservation,
)
from bacs_core.manager.thresholds import Chemistry, thresholds_for
from bacs_core.snapshot import ChargeState, DeviceRef, Severity, Value

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODULE = DeviceRef("bus1", 1)
ENV = DeviceRef("bus1", 40)


@dataclass
class Room:
    """One block in one string and an environment sensor; every value normal by default."""

    volts: float = 13.62  # 2.27 V/cell
    temperature: float = 25.0
    resistance: float = 5.0
    baseline: float | None = 5.0
    median: float | None = 5.0
    mean_cell: float | None = 2.27
    spread: float | None = 0.01
    ambient: float | None = 25.0
    state: ChargeState = ChargeState.FLOAT
    env: dict[str, float] = field(
        default_factory=lambda: {
            "hydrogen": 50.0,
            "humidity": 45.0,
            "acid_level": 100.0,
            "temperature": 25.0,
        }
    )
    bus_ok: bool = True

    def observe(self) -> Observation:
        module = ModuleObservation(
            MODULE,
            1,
            1,
            6,
            True,
            Value(self.volts),
            Value(self.temperature),
            Value(self.resistance),
            self.baseline,
            self.median,
        )
        string = StringObservation(
            1, self.state, self.mean_cell, self.spread, self.ambient, [module]
        )
        env = SensorObservation(
            ENV, "environment", True, {k: Value(v) for k, v in self.env.items()}
        )
        return Observation([string], [env], {"bus1": self.bus_ok})


def levels(room: Room, seconds: int) -> dict[str, Severity]:
    """Active alarms by code after ``seconds`` of the same readings, polled every 10 s."""
    engine = AlarmEngine(thresholds_for(Chemistry.VRLA))
    update = None
    for t in range(0, seconds + 1, 10):
        update = engine.evaluate(T0 + timedelta(seconds=t), room.observe())
    assert update is not None
    return {a.code: a.severity for a in update.alarms if a.active}


def test_a_normal_room_raises_nothing() -> None:
    assert levels(Room(), 3600) == {}


def env(**values: float) -> dict[str, float]:
    return Room().env | values


@pytest.mark.parametrize(
    ("room", "code", "severity", "on_delay"),
    [
        # A block 0.06 V/cell above its string's mean: a warning after 5 min.
        (Room(volts=6 * 2.33, mean_cell=2.27), "deviation_high", Severity.WARNING, 300),
        # 0.09 V/cell above the mean: an alarm (the float window itself is not crossed).
        (Room(volts=6 * 2.36, mean_cell=2.27), "deviation_high", Severity.ALARM, 300),
        # 6 K above ambient for 15 min: an alarm (thermal stress before runaway).
        (Room(temperature=31.0, ambient=25.0), "above_ambient_high", Severity.ALARM, 900),
        (Room(temperature=28.5, ambient=25.0), "above_ambient_high", Severity.WARNING, 900),
        # Internal resistance against the block's own learned baseline: ×1.3, ×1.6.
        (Room(resistance=6.5, median=6.5), "resistance_high", Severity.WARNING, 0),
        (Room(resistance=8.0, median=8.0), "resistance_high", Severity.ALARM, 0),
        # ... and against the string median (a block ageing faster than its neighbours).
        (Room(resistance=7.0, baseline=7.0), "resistance_median_high", Severity.WARNING, 0),
        (Room(resistance=8.5, baseline=8.5), "resistance_median_high", Severity.ALARM, 0),
        # String spread on float for 10 min: 0.13 V/cell (0.78 V on a 12 V block) is beyond
        # the sum of the deviation alarm bounds (0.73 V); 0.09 V/cell beyond the warnings'.
        (Room(spread=0.13), "spread_high", Severity.ALARM, 600),
        (Room(spread=0.09), "spread_high", Severity.WARNING, 600),
        # The room: hydrogen (ppm; 4 000 is 10 % of the lower explosive limit), humidity,
        # electrolyte level (%), room temperature.
        (Room(env=env(hydrogen=5000.0)), "hydrogen_high", Severity.WARNING, 30),
        (Room(env=env(hydrogen=12000.0)), "hydrogen_high", Severity.ALARM, 30),
        (Room(env=env(humidity=92.0)), "humidity_high", Severity.ALARM, 600),
        (Room(env=env(acid_level=85.0)), "acid_level_low", Severity.WARNING, 600),
        (Room(env=env(acid_level=75.0)), "acid_level_low", Severity.ALARM, 600),
        (Room(env=env(temperature=42.0)), "temperature_high", Severity.ALARM, 300),
        (Room(env=env(temperature=5.0)), "temperature_low", Severity.WARNING, 300),
    ],
)
def test_rule_raises_its_level_after_its_on_delay(
    room: Room, code: str, severity: Severity, on_delay: int
) -> None:
    if on_delay:
        assert code not in levels(room, on_delay - 10)  # not one cycle early
    assert levels(room, on_delay + 10).get(code) == severity


def test_float_rules_do_not_judge_a_discharge() -> None:
    """In a discharge blocks spread by design; that is the discharge analysis's business."""
    room = Room(volts=6 * 2.0, mean_cell=2.1, spread=0.2, state=ChargeState.DISCHARGE)
    raised = levels(room, 1200)
    assert not [c for c in raised if c.startswith(("deviation", "spread", "voltage"))], raised


def test_without_a_baseline_or_median_resistance_is_not_judged() -> None:
    room = Room(resistance=50.0, baseline=None, median=None)
    raised = levels(room, 60)
    assert not [c for c in raised if c.startswith("resistance")], raised


def test_a_lost_bus_is_one_alarm_not_one_per_device() -> None:
    room = Room(bus_ok=False)
    assert levels(room, 0) == {"bus_lost": Severity.ALARM}
