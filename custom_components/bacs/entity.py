"""Base entities: device tree (hub → strings → blocks; sensors, relays, environment) and the
write-on-change rule that keeps ~2000 entities inside the recorder budget."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

import bacs_core
from bacs_core.model import DeviceFamily, DeviceKind
from bacs_core.snapshot import DeviceRef, StringSnapshot, Value

from .const import MANUFACTURER
from .coordinator import (
    BacsCoordinator,
    device_identifier,
    hub_identifier,
    string_identifier,
)

MODEL_NAMES = {DeviceKind.GX_R_AUX: "GX-R-AUX", DeviceKind.ENVIRONMENT: "Environment sensor"}
FAMILY_NAMES = {
    DeviceFamily.CURRENT_SENSOR: "Current sensor",
    DeviceFamily.RELAY: "Relay module",
    DeviceFamily.ENVIRONMENT: "Environment sensor",
}


def usable(value: Value) -> float | None:
    """A measured value HA may show: None (unknown) when nothing trustworthy arrived."""
    return value.value if value.usable else None


class BacsEntity(CoordinatorEntity[BacsCoordinator]):
    """Writes state only when what it shows changed (value at display precision,
    availability, attributes); the coordinator calls every entity on every cycle."""

    _attr_has_entity_name = True
    _last_key: Any = None

    def __init__(self, coordinator: BacsCoordinator, description: EntityDescription) -> None:
        super().__init__(coordinator)
        self.entity_description = description

    def state_key(self) -> Any:
        """What decides a write; subclasses add their rounded value."""
        return self.available

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self._last_key = self.state_key()

    def changed(self, key: Any) -> bool:
        """Whether ``key`` differs from what was last written (sensors add a deadband)."""
        return bool(key != self._last_key)

    @callback
    def _handle_coordinator_update(self) -> None:
        key = self.state_key()
        if not self.changed(key):
            return
        self._last_key = key
        self.async_write_ha_state()


class HubEntity(BacsEntity):
    """An entity of the manager itself (the hub device)."""

    def __init__(self, coordinator: BacsCoordinator, description: EntityDescription) -> None:
        super().__init__(coordinator, description)
        entry = coordinator.config_entry
        self._attr_unique_id = f"{entry.entry_id}-{description.key}"
        self._attr_device_info = hub_device_info(coordinator)


class StringEntity(BacsEntity):
    def __init__(
        self, coordinator: BacsCoordinator, description: EntityDescription, index: int
    ) -> None:
        super().__init__(coordinator, description)
        entry = coordinator.config_entry
        self.index = index
        self._attr_unique_id = f"{entry.entry_id}-string{index}-{description.key}"
        snap = coordinator.index.strings[index]
        self._attr_device_info = DeviceInfo(
            identifiers={string_identifier(entry, index)},
            name=snap.name,
            manufacturer=MANUFACTURER,
            model="Battery string",
            via_device=hub_identifier(entry),
        )

    @property
    def string(self) -> StringSnapshot | None:
        return self.coordinator.index.strings.get(self.index)

    @property
    def available(self) -> bool:
        return (
            super().available
            and self.index in self.coordinator.index.strings
            and all(self.coordinator.index.bus_connected.values())
        )


class BusDeviceEntity(BacsEntity):
    """An entity of a device on the bus: a block's module, a sensor, a relay module."""

    def __init__(
        self, coordinator: BacsCoordinator, description: EntityDescription, ref: DeviceRef
    ) -> None:
        super().__init__(coordinator, description)
        self.ref = ref
        index = coordinator.index
        info = index.infos[ref]
        self._attr_unique_id = f"{info.kind.family.value}-{info.serial}-{description.key}"
        entry = coordinator.config_entry
        family = info.kind.family
        via = hub_identifier(entry)
        if family is DeviceFamily.BATTERY_MODULE:
            module = index.modules[ref]
            string = index.strings[module.string]
            name = f"{string.name} block {module.position}"
            via = string_identifier(entry, module.string)
        else:
            name = f"{FAMILY_NAMES[family]} {ref.unit}"
            sensor = index.sensors.get(ref)
            if sensor is not None and sensor.string is not None:
                via = string_identifier(entry, sensor.string)
        self._attr_device_info = DeviceInfo(
            identifiers={device_identifier(info)},
            name=name,
            manufacturer=MANUFACTURER,
            model=MODEL_NAMES.get(info.kind, info.kind.name),
            model_id=f"0x{int(info.kind):04X}",
            serial_number=str(info.serial),
            sw_version=info.firmware,
            via_device=via,
        )

    @property
    def available(self) -> bool:
        return super().available and self.coordinator.index.device_available(self.ref)


def hub_device_info(coordinator: BacsCoordinator) -> DeviceInfo:
    entry = coordinator.config_entry
    return DeviceInfo(
        identifiers={hub_identifier(entry)},
        name=entry.title,
        manufacturer=MANUFACTURER,
        model="BACS manager",
        sw_version=bacs_core.__version__,  # not importlib.metadata: that reads files in the loop
    )


type ValueFn = Callable[[Any], Any]


type EntityFactory = Callable[[BacsCoordinator, set[Any]], list[BacsEntity]]


@callback
def async_setup_dynamic(
    coordinator: BacsCoordinator,
    add_entities: Callable[[list[BacsEntity]], None],
    factory: EntityFactory,
) -> None:
    """Add entities for what the bus has now, and for devices that appear later (dynamic
    devices: a module wired in and found by a rescan gets its entities without a reload)."""
    known: set[Any] = set()
    size = -1

    @callback
    def _check() -> None:
        nonlocal size
        index = coordinator.index
        now = len(index.infos) + len(index.strings)
        if now == size:
            return  # the topology did not change: the common case, every cycle
        size = now
        new = factory(coordinator, known)
        if new:
            add_entities(new)

    _check()
    coordinator.config_entry.async_on_unload(coordinator.async_add_listener(_check))


def new_targets[T](known: set[Any], targets: dict[T, Any] | list[T]) -> list[T]:
    fresh = [t for t in targets if t not in known]
    known.update(fresh)
    return fresh
