"""Sensors: per block, per string, per bus device and for the manager itself. What each one
shows is in sensor_descriptions.py, the base they share in sensor_entity.py; the history's
sensors are in history_sensor.py."""

from __future__ import annotations

from typing import Any

from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from bacs_core.snapshot import (
    Alarm,
    CurrentSensorSnapshot,
    EnvironmentSnapshot,
    ModuleSnapshot,
    StringTrip,
)

from .coordinator import BacsConfigEntry, BacsCoordinator
from .entity import (
    BacsEntity,
    BusDeviceEntity,
    HubEntity,
    StringEntity,
    async_setup_dynamic,
    new_hub,
    new_targets,
    supported,
)
from .history_sensor import string_history_sensors
from .sensor_descriptions import (
    CURRENT_SENSORS,
    ENVIRONMENT_SENSORS,
    HUB_ALARMS,
    HUB_SENSORS,
    MODULE_SENSORS,
    STRING_ALARMS,
    STRING_SENSORS,
    STRING_TRIP_SENSORS,
)
from .sensor_entity import BacsSensor

PARALLEL_UPDATES = 0  # read-only: the manager pushes


class HubSensor(HubEntity, BacsSensor):
    """A sensor of the manager: reads the whole snapshot."""


class HubAlarmSensor(HubSensor):
    _unrecorded_attributes = frozenset({"alarms"})


class StringSensor(StringEntity, BacsSensor):
    _unrecorded_attributes = frozenset({MATCH_ALL})


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
    index = coordinator.index
    out: list[BacsEntity] = []
    if new_hub(known):
        out += [HubSensor(coordinator, d) for d in supported(coordinator, HUB_SENSORS)]
        out.append(HubAlarmSensor(coordinator, HUB_ALARMS))
    for i in new_targets(known, list(index.strings)):
        out += [StringSensor(coordinator, d, i) for d in supported(coordinator, STRING_SENSORS)]
        out.append(StringAlarmSensor(coordinator, STRING_ALARMS, i))
        trip = supported(coordinator, STRING_TRIP_SENSORS)
        out += [StringTripSensor(coordinator, d, i) for d in trip]
        out += string_history_sensors(coordinator, i)
    for ref in new_targets(known, index.modules):
        out += [ModuleSensor(coordinator, d, ref) for d in supported(coordinator, MODULE_SENSORS)]
    for ref in new_targets(known, index.sensors):
        out += [CurrentSensorSensor(coordinator, d, ref) for d in CURRENT_SENSORS]
    for ref in new_targets(known, index.environment):
        out += [EnvironmentSensor(coordinator, d, ref) for d in ENVIRONMENT_SENSORS]
    return out


async def async_setup_entry(
    hass: HomeAssistant, entry: BacsConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    async_setup_dynamic(entry.runtime_data.coordinator, async_add_entities, _entities)
