"""Binary sensors: problems (with their reasons), balancing per string, the thermal-runaway
safety state, relay inputs.

Balancing is one sensor per string, with the blocks whose shunts carry current as an attribute:
a binary sensor per block put every shunt's on/off into the logbook (binary sensors always go
there), three quarters of it on a float day. The current of each shunt is a sensor with a unit
(``balancing_current``), which the logbook leaves out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from bacs_core.generex.cs141_map import GeneralFlag
from bacs_core.model import DeviceFamily
from bacs_core.snapshot import (
    Alarm,
    BalancingState,
    Capability,
    StringSnapshot,
    SystemSnapshot,
)

from .alarm_summary import reasons
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

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class BacsBinarySensorEntityDescription(BinarySensorEntityDescription):
    value_fn: Callable[[Any], bool | None]
    # Attributes from the entity's part of the snapshot and the whole snapshot.
    attr_fn: Callable[[Any, SystemSnapshot], dict[str, Any]] | None = None
    capability: Capability | None = None  # the source must have it (snapshot.capabilities)


def _problem(concerns: Callable[[Any, Alarm], bool]) -> BacsBinarySensorEntityDescription:
    """On while the block or string has a problem; the reasons (its alarms that ``concerns``)
    as an attribute."""
    return BacsBinarySensorEntityDescription(
        key="problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
        value_fn=lambda part: part.problem,
        attr_fn=lambda part, snap: {
            "reasons": reasons(a for a in snap.alarms if concerns(part, a))
        },
    )


def _balancing_blocks(s: StringSnapshot, snap: SystemSnapshot) -> dict[str, Any]:
    def blocks(state: BalancingState) -> list[int]:
        return [m.position for m in s.modules if m.balancing is state]

    return {
        "balancing_blocks": blocks(BalancingState.ACTIVE),
        "out_of_range_blocks": blocks(BalancingState.OUT_OF_RANGE),
    }


def _runaway(
    key: str, value_fn: Callable[[SystemSnapshot], bool]
) -> BacsBinarySensorEntityDescription:
    """The manager's thermal-runaway detection (a safety state)."""
    return BacsBinarySensorEntityDescription(
        key=key,
        capability=Capability.RUNAWAY_DETECTION,
        translation_key=key,
        device_class=BinarySensorDeviceClass.SAFETY,
        value_fn=value_fn,
    )


MODULE_BINARY: tuple[BacsBinarySensorEntityDescription, ...] = (
    _problem(lambda m, alarm: alarm.device == m.info.ref),
)

STRING_BINARY: tuple[BacsBinarySensorEntityDescription, ...] = (
    _problem(lambda s, alarm: alarm.string == s.index),
    BacsBinarySensorEntityDescription(
        key="balancing",
        capability=Capability.EQUALIZE,
        translation_key="balancing",
        device_class=BinarySensorDeviceClass.RUNNING,
        value_fn=lambda s: s.balancing_active,
        attr_fn=_balancing_blocks,
    ),
)

HUB_BINARY: tuple[BacsBinarySensorEntityDescription, ...] = (
    _runaway("thermal_runaway", lambda snap: snap.safety.runaway),
    _runaway("runaway_pre_alert", lambda snap: snap.safety.pre_alert),
)


def _flag(flag: GeneralFlag) -> Callable[[SystemSnapshot], bool | None]:
    """One bit of a CS141's register 1000 (None while the web manager is not read)."""

    def value(snap: SystemSnapshot) -> bool | None:
        raw = snap.extra.get("generex_flags")
        return None if raw is None else bool(int(raw) & flag)

    return value


_PROBLEM_FLAGS = {
    GeneralFlag.MODULE_LOST,
    GeneralFlag.SYSTEM_FAILURE,
    GeneralFlag.VOLTAGE_OUT_OF_RANGE,
    GeneralFlag.TEMPERATURE_OUT_OF_RANGE,
    GeneralFlag.RESISTANCE_OUT_OF_RANGE,
}
_RUNNING_FLAGS = {
    GeneralFlag.RUNNING,
    GeneralFlag.DISCHARGING,
    GeneralFlag.CHARGING,
    GeneralFlag.FLOAT_CHARGING,
    GeneralFlag.EQUALISATION,
}
# The web manager's start-up and addressing phases: shown on demand.
_QUIET_FLAGS = {
    GeneralFlag.CONNECTED,
    GeneralFlag.DISCHARGING_STOPPED,
    GeneralFlag.MODULE_ADDRESSING,
    GeneralFlag.MODULE_SEARCHING,
}

# A GENEREX web manager's general status flags (register 1000), one binary sensor per bit.
GENERAL_FLAG_BINARY: tuple[BacsBinarySensorEntityDescription, ...] = tuple(
    BacsBinarySensorEntityDescription(
        key=f"generex_{(flag.name or '').lower()}",
        translation_key=f"generex_{(flag.name or '').lower()}",
        capability=Capability.GENERAL_FLAGS,
        device_class=BinarySensorDeviceClass.PROBLEM
        if flag in _PROBLEM_FLAGS
        else BinarySensorDeviceClass.RUNNING
        if flag in _RUNNING_FLAGS
        else None,
        entity_registry_enabled_default=flag not in _QUIET_FLAGS,
        value_fn=_flag(flag),
    )
    for flag in GeneralFlag
)


class BacsBinarySensor(BacsEntity, BinarySensorEntity):
    entity_description: BacsBinarySensorEntityDescription
    # Lists that change with every alarm: shown, not recorded.
    _unrecorded_attributes = frozenset({"reasons", "balancing_blocks", "out_of_range_blocks"})

    def source(self) -> Any:
        raise NotImplementedError

    @property
    def is_on(self) -> bool | None:
        src = self.source()
        return None if src is None else self.entity_description.value_fn(src)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        src = self.source()
        attr_fn = self.entity_description.attr_fn
        if src is None or attr_fn is None:
            return None
        return attr_fn(src, self.coordinator.data)

    def state_key(self) -> Any:
        if not self.available:
            return None
        return (self.is_on, repr(self.extra_state_attributes))


class HubBinarySensor(HubEntity, BacsBinarySensor):
    """A binary sensor of the manager: reads the whole snapshot."""


class StringBinarySensor(StringEntity, BacsBinarySensor):
    """A binary sensor of a string: reads the string's snapshot."""


class ModuleBinarySensor(BusDeviceEntity, BacsBinarySensor):
    def source(self) -> Any:
        return self.coordinator.index.modules.get(self.ref)


class DigitalInputSensor(BusDeviceEntity, BacsBinarySensor):
    """A relay module's digital input (on = contact closed), e.g. a breaker's aux contact."""

    def __init__(self, coordinator: BacsCoordinator, ref: Any, channel: int) -> None:
        super().__init__(
            coordinator,
            BacsBinarySensorEntityDescription(
                key=f"input_{channel}",
                translation_key="digital_input",
                translation_placeholders={"channel": str(channel)},
                value_fn=lambda r: r.inputs[channel - 1] if len(r.inputs) >= channel else None,
            ),
            ref,
        )

    def source(self) -> Any:
        return self.coordinator.index.relays.get(self.ref)


def _entities(coordinator: BacsCoordinator, known: set[Any]) -> list[BacsEntity]:
    index = coordinator.index
    out: list[BacsEntity] = []
    if new_hub(known):
        hub = supported(coordinator, HUB_BINARY + GENERAL_FLAG_BINARY)
        out += [HubBinarySensor(coordinator, d) for d in hub]
    for i in new_targets(known, list(index.strings)):
        out += [
            StringBinarySensor(coordinator, d, i) for d in supported(coordinator, STRING_BINARY)
        ]
    for ref in new_targets(known, index.modules):
        out += [
            ModuleBinarySensor(coordinator, d, ref) for d in supported(coordinator, MODULE_BINARY)
        ]
    for ref in new_targets(known, index.relays):
        relay = index.relays[ref]
        out += [DigitalInputSensor(coordinator, ref, n) for n in range(1, len(relay.inputs) + 1)]
    return out


@callback
def _remove_block_balancing_sensors(hass: HomeAssistant, entry: BacsConfigEntry) -> None:
    """Earlier versions had a balancing binary sensor per block: take them out of the
    registry instead of leaving thousands of "no longer provided" entities."""
    registry = er.async_get(hass)
    prefix = f"{DeviceFamily.BATTERY_MODULE.value}-"
    for ent in er.async_entries_for_config_entry(registry, entry.entry_id):
        if (
            ent.domain == "binary_sensor"
            and ent.unique_id.startswith(prefix)
            and ent.unique_id.endswith("-balancing")
        ):
            registry.async_remove(ent.entity_id)


async def async_setup_entry(
    hass: HomeAssistant, entry: BacsConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    _remove_block_balancing_sensors(hass, entry)
    async_setup_dynamic(entry.runtime_data.coordinator, async_add_entities, _entities)
