"""Buttons on the manager: scan the bus for new devices, acknowledge all alarms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from bacs_core.manager import Manager

from .coordinator import BacsConfigEntry, BacsCoordinator
from .entity import BacsEntity, HubEntity, async_setup_dynamic

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BacsButtonEntityDescription(ButtonEntityDescription):
    press_fn: Callable[[Manager], Awaitable[Any]]


async def _rescan(manager: Manager) -> None:
    """Scan, then run a cycle so new devices (and their entities) appear at once."""
    await manager.rescan()
    await manager.poll_once()


HUB_BUTTONS = (
    BacsButtonEntityDescription(
        key="rescan",
        translation_key="rescan",
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda m: _rescan(m),
    ),
    BacsButtonEntityDescription(
        key="acknowledge",
        translation_key="acknowledge",
        press_fn=lambda m: m.acknowledge(None),
    ),
)


class HubButton(HubEntity, ButtonEntity):
    entity_description: BacsButtonEntityDescription

    async def async_press(self) -> None:
        await self.entity_description.press_fn(self.coordinator.manager)


def _entities(coordinator: BacsCoordinator, known: set[Any]) -> list[BacsEntity]:
    if "hub" in known:
        return []
    known.add("hub")
    return [HubButton(coordinator, d) for d in HUB_BUTTONS]


async def async_setup_entry(
    hass: HomeAssistant, entry: BacsConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    async_setup_dynamic(entry.runtime_data.coordinator, async_add_entities, _entities)
