"""Sensors: per block, per string, per bus device and for the manager itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    CONCENTRATION_PARTS_PER_MILLION,
    MATCH_ALL,
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from bacs_core.snapshot import (
    Alarm,
    BreakerState,
    ChargeState,
    CurrentSensorSnapshot,
    EnvironmentSnapshot,
    ManagerStatus,
    ModuleSnapshot,
    StringSnapshot,
    StringTrip,
    SystemSnapshot,
    TripState,
)

from .alarm_summary import attributes, safety_line, summary
from .coordinator import BacsConfigEntry, BacsCoordinator
from .entity import (
    BacsEntity,
    BusDeviceEntity,
    HubEntity,
    StringEntity,
    async_setup_dynamic,
    new_targets,
    usable,
)

PARALLEL_UPDATES = 0  # read-only: the manager pushes


@dataclass(frozen=True, kw_only=True)
class BacsSensorEntityDescription(SensorEntityDescription):
    """``value_fn`` reads the entity's value from its part of the snapshot."""

    value_fn: Callable[[Any], float | str | None]
    attr_fn: Callable[[Any], dict[str, Any]] | None = None


def _volts(**kw: Any) -> dict[str, Any]:
    return {
        "device_class": SensorDeviceClass.VOLTAGE,
        "native_unit_of_measurement": UnitOfElectricPotential.VOLT,
        "state_class": SensorStateClass.MEASUREMENT,
        **kw,
    }


def _temp(**kw: Any) -> dict[str, Any]:
    return {
        "device_class": SensorDeviceClass.TEMPERATURE,
        "native_unit_of_measurement": UnitOfTemperature.CELSIUS,
        "state_class": SensorStateClass.MEASUREMENT,
        "suggested_display_precision": 1,
        **kw,
    }


def _amps(**kw: Any) -> dict[str, Any]:
    return {
        "device_class": SensorDeviceClass.CURRENT,
        "native_unit_of_measurement": UnitOfElectricCurrent.AMPERE,
        "state_class": SensorStateClass.MEASUREMENT,
        **kw,
    }


MODULE_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    BacsSensorEntityDescription(
        key="voltage",
        value_fn=lambda m: usable(m.voltage),
        **_volts(suggested_display_precision=2),
    ),
    BacsSensorEntityDescription(
        key="internal_resistance",
        translation_key="internal_resistance",
        native_unit_of_measurement="mΩ",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda m: usable(m.resistance),
    ),
    BacsSensorEntityDescription(
        key="temperature", value_fn=lambda m: usable(m.temperature), **_temp()
    ),
    BacsSensorEntityDescription(
        key="balancing_current",
        translation_key="balancing_current",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda m: usable(m.balance_current),
        **_amps(suggested_display_precision=3),
    ),
    BacsSensorEntityDescription(
        key="deviation",
        translation_key="deviation",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda m: m.deviation_v,
        **_volts(suggested_display_precision=3),
    ),
)


def _extreme_position(which: str) -> Callable[[StringSnapshot], float | None]:
    def value(s: StringSnapshot) -> float | None:
        block = getattr(s, which)
        return block.position if block else None

    return value


def _extreme_voltage(which: str) -> Callable[[StringSnapshot], float | None]:
    def value(s: StringSnapshot) -> float | None:
        block = getattr(s, which)
        return block.voltage if block else None

    return value


STRING_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    BacsSensorEntityDescription(
        key="voltage", value_fn=lambda s: s.voltage, **_volts(suggested_display_precision=1)
    ),
    BacsSensorEntityDescription(
        key="current", value_fn=lambda s: s.current, **_amps(suggested_display_precision=1)
    ),
    BacsSensorEntityDescription(
        key="power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda s: s.power,
    ),
    BacsSensorEntityDescription(
        key="charge_state",
        translation_key="charge_state",
        device_class=SensorDeviceClass.ENUM,
        options=[c.value for c in ChargeState],
        value_fn=lambda s: s.charge_state.value,
    ),
    BacsSensorEntityDescription(
        key="spread",
        translation_key="spread",
        value_fn=lambda s: s.spread,
        **_volts(suggested_display_precision=2),
    ),
    BacsSensorEntityDescription(
        key="highest_block_voltage",
        translation_key="highest_block_voltage",
        value_fn=_extreme_voltage("highest"),
        **_volts(suggested_display_precision=2),
    ),
    BacsSensorEntityDescription(
        key="highest_block",
        translation_key="highest_block",
        suggested_display_precision=0,
        value_fn=_extreme_position("highest"),
    ),
    BacsSensorEntityDescription(
        key="lowest_block_voltage",
        translation_key="lowest_block_voltage",
        value_fn=_extreme_voltage("lowest"),
        **_volts(suggested_display_precision=2),
    ),
    BacsSensorEntityDescription(
        key="lowest_block",
        translation_key="lowest_block",
        suggested_display_precision=0,
        value_fn=_extreme_position("lowest"),
    ),
    BacsSensorEntityDescription(
        key="state_of_charge",
        translation_key="state_of_charge",
        device_class=SensorDeviceClass.BATTERY,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda s: s.state_of_charge,
    ),
    BacsSensorEntityDescription(
        key="discharge_weakest_block",
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
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda s: sum(1 for m in s.modules if m.voltage.usable),
        attr_fn=lambda s: {
            "voltages": [
                round(m.voltage.value, 2) if m.voltage.usable and m.voltage.value else None
                for m in s.modules
            ]
        },
    ),
)


# Home Assistant reads a state "unknown" as "no value": a trip state the manager could not
# restore is a safety condition and gets a state of its own.
TRIP_STATE_UNKNOWN = "state_unknown"


def _trip_state(snap: SystemSnapshot) -> str:
    return _trip_state_value(snap.safety.trip_state)


def _trip_state_value(state: TripState) -> str:
    return TRIP_STATE_UNKNOWN if state is TripState.UNKNOWN else state.value


TRIP_STATE_OPTIONS = [t.value for t in TripState if t is not TripState.UNKNOWN] + [
    TRIP_STATE_UNKNOWN
]

# Each string's own breaker (relay n trips string n) and its own latch, on the string's device.
STRING_TRIP_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    BacsSensorEntityDescription(
        key="breaker",
        translation_key="breaker",
        device_class=SensorDeviceClass.ENUM,
        options=[b.value for b in BreakerState],
        value_fn=lambda t: t.breaker.value,
    ),
    BacsSensorEntityDescription(
        key="trip_state",
        translation_key="trip_state",
        device_class=SensorDeviceClass.ENUM,
        options=TRIP_STATE_OPTIONS,
        value_fn=lambda t: _trip_state_value(t.state),
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
    BacsSensorEntityDescription(
        key="status",
        translation_key="status",
        device_class=SensorDeviceClass.ENUM,
        options=[s.value for s in ManagerStatus],
        value_fn=lambda snap: snap.status.value,
    ),
    BacsSensorEntityDescription(
        key="active_alarms",
        translation_key="active_alarms",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda snap: sum(1 for a in snap.alarms if a.active),
    ),
    BacsSensorEntityDescription(
        key="trip_state",
        translation_key="trip_state",
        device_class=SensorDeviceClass.ENUM,
        options=TRIP_STATE_OPTIONS,
        value_fn=_trip_state,
    ),
    BacsSensorEntityDescription(
        key="breaker",
        translation_key="breaker",
        device_class=SensorDeviceClass.ENUM,
        options=[b.value for b in BreakerState],
        value_fn=lambda snap: snap.safety.breaker.value,
    ),
    BacsSensorEntityDescription(
        key="link_quality",
        translation_key="link_quality",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        suggested_display_precision=0,
        value_fn=_link_quality,
    ),
    BacsSensorEntityDescription(
        key="poll_duration",
        translation_key="poll_duration",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        suggested_display_precision=1,
        value_fn=lambda snap: snap.poll_duration_s,
    ),
)

CURRENT_SENSORS: tuple[BacsSensorEntityDescription, ...] = (
    BacsSensorEntityDescription(
        key="current",
        value_fn=lambda c: usable(c.current),
        **_amps(suggested_display_precision=1),
    ),
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
        device_class=SensorDeviceClass.HUMIDITY,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda e: usable(e.humidity),
    ),
    BacsSensorEntityDescription(
        key="hydrogen",
        translation_key="hydrogen",
        native_unit_of_measurement=CONCENTRATION_PARTS_PER_MILLION,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda e: usable(e.hydrogen),
    ),
    BacsSensorEntityDescription(
        key="acid_level",
        translation_key="acid_level",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda e: usable(e.acid_level),
    ),
)


class BacsSensor(BacsEntity, SensorEntity):
    entity_description: BacsSensorEntityDescription

    def source(self) -> Any:
        raise NotImplementedError

    @property
    def native_value(self) -> float | str | None:
        src = self.source()
        if src is None:
            return None
        value = self.entity_description.value_fn(src)
        precision = self.entity_description.suggested_display_precision
        if isinstance(value, float) and precision is not None:
            return round(value, precision + 2)  # no float noise like 0.5369999999
        return value

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        src = self.source()
        attr_fn = self.entity_description.attr_fn
        return None if src is None or attr_fn is None else attr_fn(src)

    def state_key(self) -> Any:
        if not self.available:
            return None
        attrs = None
        if self.entity_description.attr_fn is not None:
            attrs = repr(self.extra_state_attributes)
        return (self.native_value, attrs)

    def changed(self, key: Any) -> bool:
        """A numeric value is written again only once it moved by a whole display step from
        the value last written: measurement noise around a rounding boundary (σ 2 mV on a
        0.01 V display) would otherwise flip the shown value on most cycles."""
        last = self._last_key
        if key is None or last is None or key[1] != last[1]:
            return bool(key != last)
        value, before = key[0], last[0]
        precision = self.entity_description.suggested_display_precision
        if isinstance(value, float) and isinstance(before, float) and precision is not None:
            return abs(value - before) >= 0.999 * 10.0**-precision
        return bool(value != before)


class HubSensor(HubEntity, BacsSensor):
    def source(self) -> SystemSnapshot:
        return self.coordinator.data


class HubAlarmSensor(HubSensor):
    _unrecorded_attributes = frozenset({"alarms"})


class StringSensor(StringEntity, BacsSensor):
    _unrecorded_attributes = frozenset({MATCH_ALL})

    def source(self) -> StringSnapshot | None:
        return self.string


class StringAlarmSensor(StringEntity, BacsSensor):
    """The alarms of one string and its blocks."""

    _unrecorded_attributes = frozenset({"alarms"})

    def source(self) -> list[Alarm] | None:
        if self.string is None:
            return None
        return [a for a in self.coordinator.data.alarms if a.string == self.index]


class StringTripSensor(StringEntity, BacsSensor):
    """The string's breaker and its trip, as the manager's safety snapshot has them."""

    def source(self) -> StringTrip | None:
        return self.coordinator.data.safety.string(self.index)


class ModuleSensor(BusDeviceEntity, BacsSensor):
    def source(self) -> ModuleSnapshot | None:
        return self.coordinator.index.modules.get(self.ref)


class CurrentSensorSensor(BusDeviceEntity, BacsSensor):
    def source(self) -> CurrentSensorSnapshot | None:
        return self.coordinator.index.sensors.get(self.ref)


class EnvironmentSensor(BusDeviceEntity, BacsSensor):
    def source(self) -> EnvironmentSnapshot | None:
        return self.coordinator.index.environment.get(self.ref)


def _entities(coordinator: BacsCoordinator, known: set[Any]) -> list[BacsEntity]:
    from .history_sensor import string_history_sensors  # it builds on this module's base

    index = coordinator.index
    out: list[BacsEntity] = []
    if "hub" not in known:
        known.add("hub")
        out += [HubSensor(coordinator, d) for d in HUB_SENSORS]
        out.append(HubAlarmSensor(coordinator, HUB_ALARMS))
    for i in new_targets(known, list(index.strings)):
        out += [StringSensor(coordinator, d, i) for d in STRING_SENSORS]
        out.append(StringAlarmSensor(coordinator, STRING_ALARMS, i))
        out += [StringTripSensor(coordinator, d, i) for d in STRING_TRIP_SENSORS]
        out += string_history_sensors(coordinator, i)
    for ref in new_targets(known, index.modules):
        out += [ModuleSensor(coordinator, d, ref) for d in MODULE_SENSORS]
    for ref in new_targets(known, index.sensors):
        out += [CurrentSensorSensor(coordinator, d, ref) for d in CURRENT_SENSORS]
    for ref in new_targets(known, index.environment):
        out += [EnvironmentSensor(coordinator, d, ref) for d in ENVIRONMENT_SENSORS]
    return out


async def async_setup_entry(
    hass: HomeAssistant, entry: BacsConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    async_setup_dynamic(entry.runtime_data.coordinator, async_add_entities, _entities)
