"""What the appliance shows over MQTT: the Home Assistant integration's entities, as data.

Keys, names, units, device classes and display precisions are the integration's own
(custom_components/bacs/sensor.py and binary_sensor.py; tests/ha/test_mqtt_discovery.py keeps
the two in step), so a user without the integration gets the same battery room from discovery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..snapshot import (
    Alarm,
    BreakerState,
    Capability,
    ChargeState,
    ManagerStatus,
    Severity,
    StringSnapshot,
    SystemSnapshot,
    TripState,
    Value,
)

type StateValue = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """One entity of one kind of device: how Home Assistant shows it and where its value is."""

    key: str
    platform: str  # "sensor" or "binary_sensor"
    name: str
    value: Callable[[Any], StateValue]
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    precision: int | None = None
    diagnostic: bool = False
    enabled: bool = True
    options: tuple[str, ...] | None = None
    qos: int = 0  # 1 for what a person must not miss: alarms, the trip, the breaker
    # Shown only when the source can do or knows this (a read-only GENEREX system has no trip,
    # no equalization and no state-of-charge estimate of ours).
    needs: Capability | None = None


def usable(value: Value) -> float | None:
    return value.value if value.usable else None


def _sensor(key: str, name: str, fn: Callable[[Any], StateValue], **kw: Any) -> EntitySpec:
    return EntitySpec(key, "sensor", name, fn, **kw)


def _volts(key: str, name: str, fn: Callable[[Any], StateValue], p: int, **kw: Any) -> EntitySpec:
    return _sensor(
        key,
        name,
        fn,
        unit="V",
        device_class="voltage",
        state_class="measurement",
        precision=p,
        **kw,
    )


def _amps(key: str, name: str, fn: Callable[[Any], StateValue], p: int, **kw: Any) -> EntitySpec:
    return _sensor(
        key,
        name,
        fn,
        unit="A",
        device_class="current",
        state_class="measurement",
        precision=p,
        **kw,
    )


def _temp(fn: Callable[[Any], StateValue]) -> EntitySpec:
    return _sensor(
        "temperature",
        "Temperature",
        fn,
        unit="°C",
        device_class="temperature",
        state_class="measurement",
        precision=1,
    )


MODULE_ENTITIES: tuple[EntitySpec, ...] = (
    _volts("voltage", "Voltage", lambda m: usable(m.voltage), 2),
    _sensor(
        "internal_resistance",
        "Internal resistance",
        lambda m: usable(m.resistance),
        unit="mΩ",
        state_class="measurement",
        precision=2,
        needs=Capability.PER_BLOCK_RESISTANCE,
    ),
    _temp(lambda m: usable(m.temperature)),
    _amps(
        "balancing_current",
        "Balancing current",
        lambda m: usable(m.balance_current),
        3,
        diagnostic=True,
        enabled=False,
        needs=Capability.EQUALIZE,
    ),
    _volts(
        "deviation",
        "Deviation from target",
        lambda m: m.deviation_v,
        3,
        diagnostic=True,
        enabled=False,
        needs=Capability.EQUALIZE,
    ),
    EntitySpec("problem", "binary_sensor", "Problem", lambda m: m.problem, device_class="problem"),
)


def _extreme(which: str, field: str) -> Callable[[StringSnapshot], StateValue]:
    def value(s: StringSnapshot) -> StateValue:
        block = getattr(s, which)
        return getattr(block, field) if block else None

    return value


STRING_ENTITIES: tuple[EntitySpec, ...] = (
    _volts("voltage", "Voltage", lambda s: s.voltage, 1),
    _amps("current", "Current", lambda s: s.current, 1),
    _sensor(
        "power",
        "Power",
        lambda s: s.power,
        unit="W",
        device_class="power",
        state_class="measurement",
        precision=0,
    ),
    _sensor(
        "charge_state",
        "Charge state",
        lambda s: s.charge_state.value,
        device_class="enum",
        options=tuple(c.value for c in ChargeState),
    ),
    _volts("spread", "Voltage spread", lambda s: s.spread, 2),
    _volts("highest_block_voltage", "Highest block voltage", _extreme("highest", "voltage"), 2),
    _sensor("highest_block", "Highest block", _extreme("highest", "position"), precision=0),
    _volts("lowest_block_voltage", "Lowest block voltage", _extreme("lowest", "voltage"), 2),
    _sensor("lowest_block", "Lowest block", _extreme("lowest", "position"), precision=0),
    _sensor(
        "state_of_charge",
        "Estimated state of charge",
        lambda s: s.state_of_charge,
        unit="%",
        device_class="battery",
        state_class="measurement",
        precision=0,
        needs=Capability.STATE_OF_CHARGE,
    ),
    _sensor(
        "discharge_weakest_block",
        "Weakest block in discharge",
        lambda s: s.weak_blocks[0].position if s.weak_blocks else None,
        needs=Capability.DISCHARGE_ANALYSIS,
    ),
    EntitySpec("problem", "binary_sensor", "Problem", lambda s: s.problem, device_class="problem"),
    EntitySpec(
        "balancing",
        "binary_sensor",
        "Balancing",
        lambda s: s.balancing_active,
        device_class="running",
        needs=Capability.EQUALIZE,
    ),
)

# Home Assistant reads "unknown" as no value; a trip state that could not be restored is a
# safety condition with a state of its own (as in the integration).
TRIP_STATE_UNKNOWN = "state_unknown"


def _trip_state(snap: SystemSnapshot) -> str:
    state = snap.safety.trip_state
    return TRIP_STATE_UNKNOWN if state is TripState.UNKNOWN else state.value


HUB_ENTITIES: tuple[EntitySpec, ...] = (
    _sensor(
        "status",
        "Status",
        lambda snap: snap.status.value,
        device_class="enum",
        options=tuple(s.value for s in ManagerStatus),
        qos=1,
    ),
    _sensor(
        "active_alarms",
        "Active alarms",
        lambda snap: sum(1 for a in snap.alarms if a.active),
        state_class="measurement",
        qos=1,
    ),
    _sensor(
        "trip_state",
        "Breaker trip",
        _trip_state,
        device_class="enum",
        qos=1,
        options=(*(t.value for t in TripState if t is not TripState.UNKNOWN), TRIP_STATE_UNKNOWN),
        needs=Capability.TRIP,
    ),
    _sensor(
        "breaker",
        "Breaker",
        lambda snap: snap.safety.breaker.value,
        device_class="enum",
        options=tuple(b.value for b in BreakerState),
        qos=1,
        needs=Capability.TRIP,
    ),
    _sensor(
        "link_quality",
        "Bus link quality",
        lambda snap: min((b.link_quality for b in snap.buses), default=None),
        unit="%",
        state_class="measurement",
        diagnostic=True,
        precision=0,
    ),
    _sensor(
        "poll_duration",
        "Last poll duration",
        lambda snap: snap.poll_duration_s,
        unit="s",
        device_class="duration",
        state_class="measurement",
        diagnostic=True,
        enabled=False,
        precision=1,
    ),
    EntitySpec(
        "thermal_runaway",
        "binary_sensor",
        "Thermal runaway",
        lambda snap: snap.safety.runaway,
        device_class="safety",
        qos=1,
        needs=Capability.RUNAWAY_DETECTION,
    ),
    EntitySpec(
        "runaway_pre_alert",
        "binary_sensor",
        "Thermal runaway pre-alert",
        lambda snap: snap.safety.pre_alert,
        device_class="safety",
        qos=1,
        needs=Capability.RUNAWAY_DETECTION,
    ),
)

CURRENT_SENSOR_ENTITIES: tuple[EntitySpec, ...] = (
    _amps("current", "Current", lambda c: usable(c.current), 1),
    _temp(lambda c: usable(c.temperature)),
)

ENVIRONMENT_ENTITIES: tuple[EntitySpec, ...] = (
    _temp(lambda e: usable(e.temperature)),
    _sensor(
        "humidity",
        "Humidity",
        lambda e: usable(e.humidity),
        unit="%",
        device_class="humidity",
        state_class="measurement",
        precision=0,
    ),
    _sensor(
        "hydrogen",
        "Hydrogen",
        lambda e: usable(e.hydrogen),
        unit="ppm",
        state_class="measurement",
        precision=0,
    ),
    _sensor(
        "acid_level",
        "Acid level",
        lambda e: usable(e.acid_level),
        unit="%",
        state_class="measurement",
        precision=0,
    ),
)


def relay_input_entities(count: int) -> tuple[EntitySpec, ...]:
    """A relay module's digital inputs (on = contact closed), e.g. a breaker's aux contact."""

    def value(channel: int) -> Callable[[Any], StateValue]:
        return lambda r: r.inputs[channel - 1] if len(r.inputs) >= channel else None

    return tuple(
        EntitySpec(f"input_{n}", "binary_sensor", f"Input {n}", value(n))
        for n in range(1, count + 1)
    )


# -- alarm texts --------------------------------------------------------------------------
_RANK = {Severity.CRITICAL: 0, Severity.ALARM: 1, Severity.WARNING: 2}
NO_ALARMS = "No alarms"
STATE_MAX = 255  # Home Assistant's limit for a state


def ordered(alarms: Sequence[Alarm]) -> list[Alarm]:
    """Worst first: severity, standing before latched, unacknowledged first, oldest first."""
    return sorted(
        alarms,
        key=lambda a: (_RANK.get(a.severity, 3), not a.active, a.acknowledged, a.since, a.key),
    )


def alarm_summary(alarms: Sequence[Alarm]) -> str:
    """The worst alarm's message and how many more, within Home Assistant's state limit."""
    worst = ordered(alarms)
    if not worst:
        return NO_ALARMS
    text = worst[0].message
    if len(worst) > 1:
        text = f"{text} (+{len(worst) - 1} more)"
    return text if len(text) <= STATE_MAX else text[: STATE_MAX - 1] + "…"


def alarm_record(a: Alarm) -> dict[str, Any]:
    return {
        "key": a.key,
        "code": a.code,
        "severity": a.severity.value,
        "source": a.source,
        "device": str(a.device) if a.device else None,
        "string": a.string,
        "message": a.message,
        "value": round(a.value, 2) if a.value is not None else None,
        "threshold": a.threshold,
        "unit": a.unit,
        "active": a.active,
        "latched": a.latched,
        "acknowledged": a.acknowledged,
        "since": a.since.isoformat(),
    }
