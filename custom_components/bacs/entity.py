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
from bacs_core.snapshot import DeviceInfo as SnapshotDeviceInfo
from bacs_core.snapshot import DeviceRef, StringSnapshot, Value

from .const import (
    CONF_KIND,
    KIND_GENEREX,
    KIND_REMOTE,
    KIND_SIM,
    MANUFACTURER,
    MANUFACTURER_GENEREX,
    MANUFACTURER_SIMULATOR,
    SOFTWARE_MAKER,
)
from .coordinator import (
    BacsCoordinator,
    device_identifier,
    hub_identifier,
    identity_key,
    string_identifier,
)

MODEL_NAMES = {DeviceKind.GX_R_AUX: "GX-R-AUX", DeviceKind.ENVIRONMENT: "Environment sensor"}
FAMILY_NAMES = {
    DeviceFamily.CURRENT_SENSOR: "Current sensor",
    DeviceFamily.RELAY: "Relay module",
    DeviceFamily.ENVIRONMENT: "Environment sensor",
}


NOWHERE = DeviceRef("", 0)  # the address of a device that is no longer on the bus


def block_name(string_name: str, position: int, blocks: int) -> str:
    """ "String 1 block 07": zero-padded to the string's size, because Home Assistant's
    device and entity lists sort names as text (1, 10, 11, 2 without padding)."""
    return f"{string_name} block {position:0{len(str(max(blocks, position)))}d}"


def module_manufacturer(coordinator: BacsCoordinator) -> str:
    """Who made a module we cannot tell (the protocol has no vendor field): say what it
    speaks, or that it is simulated."""
    kind = coordinator.config_entry.data.get(CONF_KIND)
    if kind == KIND_GENEREX:  # the web manager reads GENEREX's own modules
        return MANUFACTURER_GENEREX
    return MANUFACTURER_SIMULATOR if kind == KIND_SIM else MANUFACTURER


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
            manufacturer=SOFTWARE_MAKER,
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
    """An entity of a device on the bus: a block's module, a sensor, a relay module.

    It belongs to the device's serial number, not to its address: ``ref`` is where that
    device answers now (NOWHERE once it left the bus, e.g. replaced by another module)."""

    def __init__(
        self, coordinator: BacsCoordinator, description: EntityDescription, ref: DeviceRef
    ) -> None:
        super().__init__(coordinator, description)
        index = coordinator.index
        info = index.infos[ref]
        self.identity = identity_key(info)
        self._attr_unique_id = f"{self.identity}-{description.key}"
        entry = coordinator.config_entry
        family = info.kind.family
        via = hub_identifier(entry)
        if family is DeviceFamily.BATTERY_MODULE:
            module = index.modules[ref]
            string = index.strings[module.string]
            name = block_name(string.name, module.position, len(string.modules))
            via = string_identifier(entry, module.string)
        else:
            name = f"{FAMILY_NAMES[family]} {ref.unit}"
            sensor = index.sensors.get(ref)
            if sensor is not None and sensor.string is not None:
                via = string_identifier(entry, sensor.string)
        self._attr_device_info = DeviceInfo(
            identifiers={device_identifier(info)},
            name=name,
            manufacturer=module_manufacturer(coordinator),
            model=MODEL_NAMES.get(info.kind, info.kind.name),
            model_id=f"0x{int(info.kind):04X}",
            serial_number=str(info.serial) if info.serial else None,
            sw_version=info.firmware or None,
            via_device=via,
        )

    @property
    def ref(self) -> DeviceRef:
        return self.coordinator.index.by_identity.get(self.identity, NOWHERE)

    @property
    def available(self) -> bool:
        return super().available and self.coordinator.index.device_available(self.ref)


def hub_device_info(coordinator: BacsCoordinator) -> DeviceInfo:
    entry = coordinator.config_entry
    generex = entry.data.get(CONF_KIND) == KIND_GENEREX
    model = "BACS reader for a GENEREX web manager (read-only)" if generex else "BACS manager"
    if entry.data.get(CONF_KIND) == KIND_REMOTE:
        model = "BACS appliance (remote, through MQTT)"
    return DeviceInfo(
        identifiers={hub_identifier(entry)},
        name=entry.title,
        manufacturer=SOFTWARE_MAKER,
        # A web manager is read by bacs-ha (our alarm rules on its readings), not controlled.
        model=model,
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
    seen: frozenset[str] | None = None

    @callback
    def _check() -> None:
        nonlocal seen
        topology = coordinator.index.topology
        if topology == seen:
            return  # the same devices and strings: the common case, every cycle
        seen = topology
        new = factory(coordinator, known)
        if new:
            add_entities(new)

    _check()
    coordinator.config_entry.async_on_unload(coordinator.async_add_listener(_check))


def new_targets[T](known: set[Any], targets: dict[T, Any] | list[T]) -> list[T]:
    """The targets without entities yet. A device counts by its serial number (a
    re-addressed module is not new; one replaced at the same address is)."""
    fresh: list[T] = []
    for target in targets:
        item = targets[target] if isinstance(targets, dict) else None
        info = getattr(item, "info", None)
        key = identity_key(info) if isinstance(info, SnapshotDeviceInfo) else target
        if key not in known:
            known.add(key)
            fresh.append(target)
    return fresh
