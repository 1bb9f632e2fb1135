"""Alarm, runaway, trip, configuration, storage and charge-state rules, edge by edge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import ANY

import pytest

from bacs_core.events import EventType
from bacs_core.manager import ConfigError, FileStorage, validate_config
from bacs_core.manager.alarms import (
    AlarmEngine,
    ModuleObservation,
    Observation,
    StringObservation,
)
from bacs_core.manager.charge_state import ChargeStateTracker
from bacs_core.manager.runaway import RunawayDetector, StringThermal
from bacs_core.manager.safety import (
    Breaker,
    LostBusPolicy,
    RelayState,
    Safety,
    SafetyRefusedError,
    TripSettings,
)
from bacs_core.manager.storage import BACKUP_NOTE_KEY, StateUnreadableError
from bacs_core.manager.thresholds import Chemistry, thresholds_for
from bacs_core.manager.trend import ResistanceTrend
from bacs_core.model import Quality
from bacs_core.snapshot import BreakerState, ChargeState, DeviceRef, TripState, Value

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REF = DeviceRef("bus1", 1)


def obs(
    volts: float,
    temp: float = 25.0,
    state: ChargeState = ChargeState.FLOAT,
    quality: Quality = Quality.OK,
    online: bool = True,
) -> Observation:
    module = ModuleObservation(
        REF, 1, 1, 6, online, Value(volts, quality), Value(temp), Value(5.0), None, None
    )
    return Observation(
        [StringObservation(1, state, None, None, 25.0, [module])], [], {"bus1": True}
    )


def run(engine: AlarmEngine, seconds: int, **kw: object) -> tuple[list, list]:
    alarms, events = [], []
    for t in range(0, seconds + 1, 10):
        update = engine.evaluate(T0 + timedelta(seconds=t + kw.pop("offset", 0)), obs(**kw))  # type: ignore[arg-type]
        alarms, events = list(update.alarms), events + list(update.events)
    return alarms, events


def engine() -> AlarmEngine:
    return AlarmEngine(thresholds_for(Chemistry.VRLA))


def test_float_voltage_edges_and_on_delay() -> None:
    e = engine()
    # 14.09 V is just inside the 14.1 V (2.35 V/cell) warning bound.
    assert e.evaluate(T0, obs(14.09)).alarms == ()
    e.evaluate(T0, obs(14.15))
    assert e.evaluate(T0 + timedelta(seconds=59), obs(14.15)).alarms == ()  # 60 s on-delay
    update = e.evaluate(T0 + timedelta(seconds=60), obs(14.15))
    assert [a.code for a in update.alarms] == ["voltage_high"]
    assert update.events[0].type is EventType.ALARM_RAISED


def test_hysteresis_holds_an_alarm_near_its_bound() -> None:
    e = engine()
    for t in (0, 60):
        e.evaluate(T0 + timedelta(seconds=t), obs(14.15))
    # 14.09 V is below 14.1 but inside the 30 mV hysteresis (5 mV/cell): still standing.
    later = e.evaluate(T0 + timedelta(seconds=200), obs(14.09))
    later = e.evaluate(T0 + timedelta(seconds=300), obs(14.09))
    assert [a.code for a in later.alarms] == ["voltage_high"]
    cleared = e.evaluate(T0 + timedelta(seconds=400), obs(13.6))
    cleared = e.evaluate(T0 + timedelta(seconds=440), obs(13.6))  # off-delay 30 s
    assert cleared.alarms == ()


def test_float_window_is_not_judged_in_a_discharge() -> None:
    e = engine()
    for t in range(0, 200, 10):
        update = e.evaluate(T0 + timedelta(seconds=t), obs(12.0, state=ChargeState.DISCHARGE))
    assert update.alarms == ()


def test_alarms_latch_until_acknowledged() -> None:
    e = engine()
    for t in (0, 60):
        e.evaluate(T0 + timedelta(seconds=t), obs(14.5))  # above 14.4 V: alarm, latching
    for t in (100, 140):
        update = e.evaluate(T0 + timedelta(seconds=t), obs(13.6))
    assert len(update.alarms) == 1
    assert update.alarms[0].latched
    assert not update.alarms[0].active
    events = e.acknowledge(T0, update.alarms[0].key)
    assert events[0].type is EventType.ALARM_ACKNOWLEDGED
    assert e.evaluate(T0 + timedelta(seconds=200), obs(13.6)).alarms == ()
    with pytest.raises(KeyError):
        e.acknowledge(T0, "module:bus1/99:nothing")


def test_impossible_values_raise_one_warning_never_a_flapping_alarm() -> None:
    e = engine()
    codes: set[str] = set()
    for t in range(0, 300, 10):
        value = 25.0 if (t // 10) % 2 else 30.0
        update = e.evaluate(T0 + timedelta(seconds=t), obs(value, quality=Quality.OUT_OF_RANGE))
        codes |= {a.code for a in update.alarms}
    assert codes == {"sensor_implausible"}


def test_lost_device_raises_communication_lost() -> None:
    e = engine()
    update = e.evaluate(T0, obs(13.6, online=False))
    assert [a.code for a in update.alarms] == ["communication_lost"]


def test_state_survives_a_restart() -> None:
    e = engine()
    for t in (0, 60):
        e.evaluate(T0 + timedelta(seconds=t), obs(14.5))
    saved = json.loads(json.dumps(e.state_dict()))
    fresh = engine()
    fresh.restore(saved)
    fresh.restore({"broken": {"level": "x"}})  # a bad record is skipped, not fatal
    assert [a.code for a in fresh.evaluate(T0 + timedelta(seconds=70), obs(14.5)).alarms] == [
        "voltage_high"
    ]


def thermal(temps: list[float | None], ambient: float = 25.0) -> list[StringThermal]:
    return [StringThermal(1, temps, ambient, 0.1, ChargeState.FLOAT)]


def test_one_spike_never_trips_and_sustained_heat_trips_in_two_cycles() -> None:
    d = RunawayDetector()
    normal = [25.0] * 8
    for k in range(10):
        assert not d.update(k * 10.0, thermal(normal)).confirmed
    spike = d.update(100.0, thermal([90.0, *normal[1:]]))
    assert not spike.confirmed
    assert not d.update(110.0, thermal([90.0, *normal[1:]])).confirmed  # set aside: jumped
    dead = d.update(120.0, thermal([None] * 8))
    assert not dead.confirmed
    d2 = RunawayDetector()
    temps = 25.0
    cycles_with_criteria = 0
    for k in range(2000):
        temps += 0.02  # 7 K/h: a real runaway, well within a battery's thermal mass
        status = d2.update(k * 10.0, thermal([temps, *normal[1:]]))
        if status.criteria:
            cycles_with_criteria += 1
        if status.confirmed:
            break
    assert status.confirmed
    assert cycles_with_criteria == 2  # criteria held, confirmed on the second cycle


def safety(delay: float = 0.0) -> Safety:
    return Safety(
        TripSettings((Breaker(DeviceRef("bus1", 67), 1, 1),), pre_trip_delay=delay, verify_cycles=2)
    )


def relays(closed: bool) -> dict[DeviceRef, RelayState]:
    return {DeviceRef("bus1", 67): RelayState((not closed,) * 4, (closed,) * 4)}


def test_trip_verify_and_failure_escalation() -> None:
    s = safety()
    d = s.update(T0, 0, True, "hot", True, relays(True), False)
    assert s.state is TripState.TRIPPED
    assert d.outputs[DeviceRef("bus1", 67)][1] is True
    seen = []
    for k in range(1, 4):
        d = s.update(T0, k, True, "hot", True, relays(True), False)  # breaker stays closed
        seen += d.events
    assert s.state is TripState.FAILED
    assert any(e.type is EventType.TRIP_FAILED for e in seen)
    assert d.outputs[DeviceRef("bus1", 67)][1] is True  # keep commanding
    s.update(T0, 5, True, "hot", True, relays(False), False)
    assert s.state is TripState.FAILED  # one poll reading "open" is confirmed first
    s.update(T0, 6, True, "hot", True, relays(False), False)
    assert s.state is TripState.TRIPPED
    assert s.breaker is BreakerState.OPEN


def test_countdown_then_trip() -> None:
    s = safety(delay=30)
    d = s.update(T0, 0, True, "hot", True, relays(True), False)
    assert s.state is TripState.COUNTDOWN
    assert d.snapshot.countdown_s == 30
    s.update(T0, 29, True, "hot", True, relays(True), False)
    assert s.state is TripState.COUNTDOWN
    s.update(T0, 30, True, "hot", True, relays(True), False)
    assert s.state is TripState.TRIPPED


def test_reset_refuses_while_unsafe_and_the_trip_survives_a_restart() -> None:
    s = safety()
    s.trip(T0, "test")
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, runaway_active=True, breaker_readable=True)
    assert err.value.code == "runaway_active"
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, runaway_active=False, breaker_readable=False)
    assert err.value.code == "state_unknown"
    again = safety()
    again.restore(s.record())
    assert again.state is TripState.TRIPPED
    events = again.reset(T0, runaway_active=False, breaker_readable=True)
    assert events[0].type is EventType.TRIP_RESET
    assert again.state is TripState.ARMED
    with pytest.raises(SafetyRefusedError):
        Safety(TripSettings()).trip(T0, "no relay")


def test_lost_bus_policy_trip_after_timeout() -> None:
    s = Safety(
        TripSettings(
            (Breaker(DeviceRef("bus2", 1), 1, 1),),
            lost_bus_policy=LostBusPolicy.TRIP,
            lost_bus_timeout=60,
        )
    )
    s.update(T0, 0, False, None, False, relays(True), True)
    assert s.state is TripState.ARMED
    s.update(T0, 61, False, None, False, relays(True), True)
    assert s.state is TripState.TRIPPED


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="buses"):
        validate_config({})
    with pytest.raises(ConfigError, match=r"buses\.0\.url"):
        validate_config({"buses": [{"id": "b", "url": "ftp://x"}]})
    with pytest.raises(ConfigError, match="poll_interval"):
        validate_config({"buses": [{"id": "b", "url": "sim://x"}], "poll_interval": 0})
    with pytest.raises(ConfigError, match="temperature"):
        validate_config(
            {
                "buses": [{"id": "b", "url": "sim://x"}],
                "thresholds": {"temperature": {"warning_high": 50}},
            }
        )
    with pytest.raises(ConfigError, match="unknown bus"):
        validate_config(
            {"buses": [{"id": "b", "url": "sim://x"}], "strings": [{"modules": "other/1-4"}]}
        )
    with pytest.raises(ConfigError, match="block_counts: 1 counts for 2 strings"):
        validate_config(
            {"buses": [{"id": "b", "url": "sim://x"}], "string_count": 2, "block_counts": [4]}
        )
    with pytest.raises(ConfigError, match="block_counts"):
        validate_config({"buses": [{"id": "b", "url": "sim://x"}], "block_counts": [0]})
    cfg = validate_config(
        {"buses": [{"id": "b", "url": "sim://x"}], "string_count": 2, "block_counts": [5, 3]}
    )
    assert cfg.block_counts == (5, 3)
    assert validate_config(cfg.to_dict()) == cfg
    cfg = validate_config(
        {
            "buses": [{"id": "b", "url": "sim://x"}],
            "strings": [{"modules": "b/1-4", "current_sensor": "b/9"}],
        }
    )
    assert len(cfg.strings[0].modules) == 4  # type: ignore[index]
    assert validate_config(cfg.to_dict()) == cfg


def test_file_storage_is_atomic_and_keeps_a_corrupt_file(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "state.json"
    store = FileStorage(path)
    asyncio.run(store.save({"a": 1}))
    assert asyncio.run(store.load()) == {"a": 1}
    # No temp file left; the second good copy beside the main one.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.bak"]
    path.write_text("{half a file")
    assert asyncio.run(store.load()) == {"a": 1, BACKUP_NOTE_KEY: ANY}  # the copy is read
    path.write_text("{half a file")
    (tmp_path / "state.json.bak").unlink()
    with pytest.raises(StateUnreadableError, match="not valid JSON.*no backup copy"):
        asyncio.run(store.load())  # damaged is not empty: the manager starts UNKNOWN
    assert any(p.name.startswith("state.json.corrupt-") for p in tmp_path.iterdir())


def test_charge_state_from_current_and_from_voltage() -> None:
    t = ChargeStateTracker(100.0)
    assert t.update(0.1, None) is ChargeState.FLOAT
    assert t.update(-10.0, None) is ChargeState.DISCHARGE  # at once
    t.update(5.0, None)
    assert t.update(5.0, None) is ChargeState.CHARGE  # debounced over two cycles
    assert t.update(0.0, None) is ChargeState.CHARGE
    assert t.update(0.0, None) is ChargeState.REST
    v = ChargeStateTracker(100.0)
    assert v.update(None, 2.27) is ChargeState.FLOAT
    v.update(None, 2.05)
    assert v.update(None, 2.04) is ChargeState.DISCHARGE


def test_resistance_trend_projects_a_replace_date() -> None:
    trend = ResistanceTrend()
    for day in range(40):
        trend.add(T0 + timedelta(days=day), 5.0 + 0.02 * day, sequence=day)
    assert trend.baseline == pytest.approx(5.02)
    replace_by = trend.replace_by()
    assert replace_by is not None
    # 1.5 × 5.02 = 7.53 mΩ at 0.02 mΩ/day from 5.78 mΩ on day 39: ~87 days later.
    assert (replace_by - (T0 + timedelta(days=39)).date()).days == pytest.approx(87, abs=2)
    flat = ResistanceTrend()
    for day in range(40):
        flat.add(T0 + timedelta(days=day), 5.0, sequence=day)
    assert flat.replace_by() is None
