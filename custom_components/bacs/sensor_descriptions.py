"""What each sensor shows, by where it sits (block, string, string trip, hub, current
sensor, environment sensor): descriptions whose ``value_fn`` reads that part of the snapshot.
bacs_core's MQTT discovery (bacs_core/mqtt/entities.py) describes the same entities; a test
holds the two together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.const import (
    CONCENTRATION_PARTS_PER_MILLION,
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)

from bacs_core.snapshot import (
    BreakerState,
    Capability,
    ChargeState,
    ManagerStatus,
    StringSnapshot,
    SystemSnapshot,
    TripState,
)

from .alarm_summary import attributes, safety_line, summary
from .entity import usable
from .sensor_entity import BacsSensorEntityDescription


def _measured(unit: str | None, precision: int | None = None, **kw: Any) -> dict[str, Any]:
    """A measurement: its unit and the digits shown (a change of one is written)."""
    return {
        "native_unit_of_measurement": unit,
        "state_class": SensorStateClass.MEASUREMENT,
        "suggested_display_precision": precision,
        **kw,
    }


def _volts(precision: int, **kw: Any) -> dict[str, Any]:
    return _measured(
        UnitOfElectricPotential.VOLT, precision, device_class=SensorDeviceClass.VOLTAGE, **kw
    )


def _amps(precision: int, **kw: Any) -> dict[str, Any]:
    return _measured(
        UnitOfElectricCurrent.AMPERE, precision, device_class=SensorDeviceClass.CURRENT, **kw
    )


def _temp() -> dict[str, Any]:
    return _measured(UnitOfTemperature.CELSIUS, 1, device_class=SensorDeviceClass.TEMPERATURE)


def _percent(**kw: Any) -> dict[str, Any]:
    return _measured(PERCENTAGE, 0, **kw)


def _enum(
    key: str, options: list[str], value_fn: Callable[[Any], str], **kw: Any
) -> BacsSensorEntityDescription:
    """A state out of a fixed set, each one translated under the key."""
    return BacsSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.ENUM,
        options=options,
        value_fn=value_fn,
        **kw,
    )


def _equalizer(
    key: str, value_fn: Callable[[Any], float | None], **unit: Any
) -> BacsSensorEntityDescription:
    """What the equalizer does to a block: a diagnostic, shown on demand."""
    return BacsSensorEntityDescription(
        key=key,
        capability=Capability.EQUALIZE,
        translation_key=key,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=value_fn,
        **unit,
    )


MODULE_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    BacsSensorEntityDescription(key="voltage", value_fn=lambda m: usable(m.voltage), **_volts(2)),
    BacsSensorEntityDescription(
        key="internal_resistance",
        capability=Capability.PER_BLOCK_RESISTANCE,
        translation_key="internal_resistance",
        value_fn=lambda m: usable(m.resistance),
        **_measured("mΩ", 2),
    ),
    BacsSensorEntityDescription(
        key="temperature", value_fn=lambda m: usable(m.temperature), **_temp()
    ),
    _equalizer("balancing_current", lambda m: usable(m.balance_current), **_amps(3)),
    _equalizer("deviation", lambda m: m.deviation_v, **_volts(3)),
)


def _extreme(which: str) -> tuple[BacsSensorEntityDescription, ...]:
    """The string's ``highest`` or ``lowest`` block: its voltage, and its position."""

    def block_voltage(s: StringSnapshot) -> float | None:
        block = getattr(s, which)
        return block.voltage if block else None

    def block_position(s: StringSnapshot) -> float | None:
        block = getattr(s, which)
        return block.position if block else None

    return (
        BacsSensorEntityDescription(
            key=f"{which}_block_voltage",
            translation_key=f"{which}_block_voltage",
            value_fn=block_voltage,
            **_volts(2),
        ),
        BacsSensorEntityDescription(
            key=f"{which}_block",
            translation_key=f"{which}_block",
            suggested_display_precision=0,
            value_fn=block_position,
        ),
    )


STRING_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    BacsSensorEntityDescription(key="voltage", value_fn=lambda s: s.voltage, **_volts(1)),
    BacsSensorEntityDescription(key="current", value_fn=lambda s: s.current, **_amps(1)),
    BacsSensorEntityDescription(
        key="power",
        value_fn=lambda s: s.power,
        **_measured(UnitOfPower.WATT, 0, device_class=SensorDeviceClass.POWER),
    ),
    _enum("charge_state", [c.value for c in ChargeState], lambda s: s.charge_state.value),
    BacsSensorEntityDescription(
        key="spread", translation_key="spread", value_fn=lambda s: s.spread, **_volts(2)
    ),
    *_extreme("highest"),
    *_extreme("lowest"),
    BacsSensorEntityDescription(
        key="state_of_charge",
        capability=Capability.STATE_OF_CHARGE,
        translation_key="state_of_charge",
        value_fn=lambda s: s.state_of_charge,
        **_percent(device_class=SensorDeviceClass.BATTERY),
    ),
    BacsSensorEntityDescription(
        key="discharge_weakest_block",
        capability=Capability.DISCHARGE_ANALYSIS,
        translation_key="discharge_weakest_block",
        value_fn=lambda s: s.weak_blocks[0].position if s.weak_blocks else None,
        attr_fn=lambda s: {
            "ranking": [
                {"block": w.position, "extra_drop_v": w.extra_drop_v} for w in s.weak_blocks
            ]
        },
    ),
    BacsSensorEntityDescription(
        key="block_voltages",
        translation_key="block_voltages",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda s: sum(1 for m in s.modules if m.voltage.usable),
        attr_fn=lambda s: {
            "voltages": [
                round(m.voltage.value, 2) if m.voltage.usable and m.voltage.value else None
                for m in s.modules
            ]
        },
        **_measured(None, 0),
    ),
)


# Home Assistant reads a state "unknown" as "no value": a trip state the manager could not
# restore is a safety condition and gets a state of its own.
TRIP_STATE_UNKNOWN = "state_unknown"
TRIP_STATE_OPTIONS = [t.value for t in TripState if t is not TripState.UNKNOWN] + [
    TRIP_STATE_UNKNOWN
]


def _trip_state_value(state: TripState) -> str:
    return TRIP_STATE_UNKNOWN if state is TripState.UNKNOWN else state.value


def _breaker(value_fn: Callable[[Any], str]) -> BacsSensorEntityDescription:
    """A breaker's position, as the trip's relay module reads it."""
    options = [b.value for b in BreakerState]
    return _enum("breaker", options, value_fn, capability=Capability.TRIP)


def _trip_state(value_fn: Callable[[Any], str], **kw: Any) -> BacsSensorEntityDescription:
    """Where the trip stands (armed, pre-trip, tripped, ...)."""
    return _enum("trip_state", TRIP_STATE_OPTIONS, value_fn, capability=Capability.TRIP, **kw)


# Each string's own breaker (relay n trips string n) and its own latch, on the string's device.
STRING_TRIP_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    _breaker(lambda t: t.breaker.value),
    _trip_state(
        lambda t: _trip_state_value(t.state),
        attr_fn=lambda t: {
            "reason": t.reason,
            "tripped_at": t.tripped_at.isoformat(timespec="seconds") if t.tripped_at else None,
        },
    ),
)


# The alarm texts (as core `nut` shows a UPS's status text): the worst alarm's message (what,
# where, the value against its limit) and how many more; the whole list as an attribute.
HUB_ALARMS = BacsSensorEntityDescription(
    key="alarms",
    translation_key="alarms",
    value_fn=lambda snap: summary(snap.alarms, safety_line(snap.safety)),
    attr_fn=lambda snap: attributes(snap.alarms, safety_line(snap.safety)),
)
STRING_ALARMS = BacsSensorEntityDescription(
    key="alarms",
    translation_key="alarms",
    value_fn=lambda alarms: summary(alarms),
    attr_fn=lambda alarms: attributes(alarms),
)


def _link_quality(snap: SystemSnapshot) -> float | None:
    return min((b.link_quality for b in snap.buses), default=None)


HUB_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    _enum("status", [s.value for s in ManagerStatus], lambda snap: snap.status.value),
    BacsSensorEntityDescription(
        key="active_alarms",
        translation_key="active_alarms",
        value_fn=lambda snap: sum(1 for a in snap.alarms if a.active),
        **_measured(None),
    ),
    _trip_state(lambda snap: _trip_state_value(snap.safety.trip_state)),
    _breaker(lambda snap: snap.safety.breaker.value),
    BacsSensorEntityDescription(
        key="link_quality",
        translation_key="link_quality",
        value_fn=_link_quality,
        **_percent(entity_category=EntityCategory.DIAGNOSTIC),
    ),
    BacsSensorEntityDescription(
        key="poll_duration",
        translation_key="poll_duration",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda snap: snap.poll_duration_s,
        **_measured(UnitOfTime.SECONDS, 1, device_class=SensorDeviceClass.DURATION),
    ),
)

CURRENT_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    BacsSensorEntityDescription(key="current", value_fn=lambda c: usable(c.current), **_amps(1)),
    BacsSensorEntityDescription(
        key="temperature", value_fn=lambda c: usable(c.temperature), **_temp()
    ),
)

ENVIRONMENT_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    BacsSensorEntityDescription(
        key="temperature", value_fn=lambda e: usable(e.temperature), **_temp()
    ),
    BacsSensorEntityDescription(
        key="humidity",
        value_fn=lambda e: usable(e.humidity),
        **_percent(device_class=SensorDeviceClass.HUMIDITY),
    ),
    BacsSensorEntityDescription(
        key="hydrogen",
        translation_key="hydrogen",
        value_fn=lambda e: usable(e.hydrogen),
        **_measured(CONCENTRATION_PARTS_PER_MILLION, 0),
    ),
    BacsSensorEntityDescription(
        key="acid_level",
        translation_key="acid_level",
        value_fn=lambda e: usable(e.acid_level),
        **_percent(),
    ),
)
