"""Binary sensors: problems, balancing, the thermal-runaway safety state, relay inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from bacs_core.snapshot import BalancingState

from .coordinator import BacsConfigEntry, BacsCoordinator
from .entity import (
    BacsEntity,
    BusDeviceEntity,
    HubEntity,
    StringEntity,
    async_setup_dynamic,
    new_targets,
)

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class BacsBinarySensorEntityDescription(BinarySensorEntityDescription):
    value_fn: Callable[[Any], bool | None]


MODULE_BINARY: tuple[BacsBinarySensorEntityDescription, ...] = (
    BacsBinarySensorEntityDescription(
        key="problem", device_class=BinarySensorDeviceClass.PROBLEM, value_fn=lambda m: m.problem
    ),
    BacsBinarySensorEntityDescription(
        key="balancing",
        translation_key="balancing",
        device_class=BinarySensorDeviceClass.RUNNING,
        value_fn=lambda m: m.balancing is BalancingState.ACTIVE,
    ),
)

STRING_BINARY: tuple[BacsBinarySensorEntityDescription, ...] = (
    BacsBinarySensorEntityDescription(
        key="problem", device_class=BinarySensorDeviceClass.PROBLEM, value_fn=lambda s: s.problem
    ),
    BacsBinarySensorEntityDescription(
        key="balancing",
        translation_key="balancing",
        device_class=BinarySensorDeviceClass.RUNNING,
        value_fn=lambda s: s.balancing_active,
    ),
)

HUB_BINARY: tuple[BacsBinarySensorEntityDescription, ...] = (
    BacsBinarySensorEntityDescription(
        key="thermal_runaway",
        translation_key="thermal_runaway",
        device_class=BinarySensorDeviceClass.SAFETY,
        value_fn=lambda snap: snap.safety.runaway,
    ),
    BacsBinarySensorEntityDescription(
        key="runaway_pre_alert",
        translation_key="runaway_pre_alert",
        device_class=BinarySensorDeviceClass.SAFETY,
        value_fn=lambda snap: snap.safety.pre_alert,
    ),
)


class BacsBinarySensor(BacsEntity, BinarySensorEntity):
    entity_description: BacsBinarySensorEntityDescription

    def source(self) -> Any:
        raise NotImplementedError

    @property
    def is_on(self) -> bool | None:
        src = self.source()
        return None if src is None else self.entity_description.value_fn(src)

    def state_key(self) -> Any:
        return (self.available, self.is_on) if self.available else None


class HubBinarySensor(HubEntity, BacsBinarySensor):
    def source(self) -> Any:
        return self.coordinator.data


class StringBinarySensor(StringEntity, BacsBinarySensor):
    def source(self) -> Any:
        return self.string


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
    if "hub" not in known:
        known.add("hub")
        out += [HubBinarySensor(coordinator, d) for d in HUB_BINARY]
    for i in new_targets(known, list(index.strings)):
        out += [StringBinarySensor(coordinator, d, i) for d in STRING_BINARY]
    for ref in new_targets(known, index.modules):
        out += [ModuleBinarySensor(coordinator, d, ref) for d in MODULE_BINARY]
    for ref in new_targets(known, index.relays):
        relay = index.relays[ref]
        out += [DigitalInputSensor(coordinator, ref, n) for n in range(1, len(relay.inputs) + 1)]
    return out


async def async_setup_entry(
    hass: HomeAssistant, entry: BacsConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    async_setup_dynamic(entry.runtime_data.coordinator, async_add_entities, _entities)
