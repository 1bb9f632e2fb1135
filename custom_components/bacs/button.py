"""Buttons on the manager: trip and reset the breaker, acknowledge alarms, scan the bus.

Trip and reset are buttons, never switches: a toggle on a dashboard or "turn on all switches"
must not open a battery breaker. They sit in the configuration category (so no assistant
takes them by default, even with "expose new entities" on), are for administrators only,
and run the same checks as the actions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from bacs_core.manager import Manager
from bacs_core.snapshot import Capability
from bacs_core.source import Source

from .coordinator import BacsConfigEntry, BacsCoordinator
from .entity import BacsEntity, HubEntity, async_setup_dynamic
from .errors import async_require_admin, async_run_command
from .services import async_acknowledge, async_reset, async_trip

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class BacsButtonEntityDescription(ButtonEntityDescription):
    press_fn: Callable[[Source, str], Awaitable[Any]]  # (source, who pressed it)
    capability: Capability  # the source must have it (snapshot.capabilities)
    admin_only: bool = True
    needs_breaker: bool = False  # available only while a trip relay is configured


def trip_relays(source: Source) -> int:
    """How many breakers the source can trip (0 for a read-only source). A remote
    appliance's are the breaker channels its relay modules report."""
    if isinstance(source, Manager):
        return len(source.safety.breakers)
    snap = source.snapshot
    if snap is None or Capability.TRIP not in source.capabilities:
        return 0
    return sum(len(r.breaker_channels) for r in snap.relays)


async def _rescan(manager: Source) -> None:
    """Scan, then run a cycle so new devices (and their entities) appear at once."""
    await manager.rescan()
    await manager.poll_once()


HUB_BUTTONS = (
    BacsButtonEntityDescription(
        key="trip",
        translation_key="trip",
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda m, who: async_trip(m, f"Trip breaker button pressed by {who}"),
        capability=Capability.TRIP,
        needs_breaker=True,
    ),
    BacsButtonEntityDescription(
        key="reset",
        translation_key="reset",
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda m, _who: async_reset(m),
        capability=Capability.TRIP,
        needs_breaker=True,
    ),
    BacsButtonEntityDescription(
        key="acknowledge",
        translation_key="acknowledge",
        press_fn=lambda m, _who: async_acknowledge(m, None),
        capability=Capability.ACKNOWLEDGE,
    ),
    BacsButtonEntityDescription(
        key="rescan",
        translation_key="rescan",
        entity_category=EntityCategory.CONFIG,
        press_fn=lambda m, _who: async_run_command(_rescan(m)),
        capability=Capability.RESCAN,
        admin_only=False,  # reads the bus only
    ),
)


class HubButton(HubEntity, ButtonEntity):
    entity_description: BacsButtonEntityDescription

    @property
    def available(self) -> bool:
        if self.entity_description.needs_breaker and not trip_relays(self.coordinator.manager):
            return False
        return super().available

    async def async_press(self) -> None:
        if self.entity_description.admin_only:
            await async_require_admin(self.hass, self._context)
        await self.entity_description.press_fn(self.coordinator.manager, await self._who())

    async def _who(self) -> str:
        """Who pressed it, for the trip's recorded reason."""
        user_id = self._context.user_id if self._context else None
        user = await self.hass.auth.async_get_user(user_id) if user_id else None
        return user.name or user.id if user else "an automation"


def _entities(coordinator: BacsCoordinator, known: set[Any]) -> list[BacsEntity]:
    if "hub" in known:
        return []
    known.add("hub")
    return [HubButton(coordinator, d) for d in HUB_BUTTONS if coordinator.can(d.capability)]


async def async_setup_entry(
    hass: HomeAssistant, entry: BacsConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    async_setup_dynamic(entry.runtime_data.coordinator, async_add_entities, _entities)
