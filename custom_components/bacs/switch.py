"""Switches: relay outputs a user wired to something of their own (opt-in: disabled by
default, in the configuration category so Assist does not take them, admin only), and
equalization on/off. A breaker's trip relay is never a switch: tripping and resetting are the
Trip breaker / Reset breaker buttons and actions, which check who asks and whether it is safe.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from bacs_core.snapshot import Capability, DeviceRef

from .const import DOMAIN
from .coordinator import BacsConfigEntry, BacsCoordinator
from .entity import BacsEntity, BusDeviceEntity, HubEntity, async_setup_dynamic, new_targets
from .errors import async_require_admin, bacs_command

PARALLEL_UPDATES = 1  # one command at a time: the bus has one owner


class RelaySwitch(BusDeviceEntity, SwitchEntity):
    """One relay output that is not a breaker's trip relay (on = energised)."""

    def __init__(self, coordinator: BacsCoordinator, ref: DeviceRef, channel: int) -> None:
        super().__init__(
            coordinator,
            SwitchEntityDescription(
                key=f"relay_{channel}",
                translation_key="relay",
                translation_placeholders={"channel": str(channel)},
                entity_category=EntityCategory.CONFIG,
                entity_registry_enabled_default=False,
            ),
            ref,
        )
        self.channel = channel

    @property
    def _breaker(self) -> bool:
        """Whether the trip configuration made this output a breaker's trip relay since."""
        relay = self.coordinator.index.relays.get(self.ref)
        return relay is not None and self.channel in relay.breaker_channels

    @property
    def available(self) -> bool:
        return super().available and not self._breaker

    @property
    def is_on(self) -> bool | None:
        relay = self.coordinator.index.relays.get(self.ref)
        if relay is None or len(relay.relays) < self.channel:
            return None
        return relay.relays[self.channel - 1]

    def state_key(self) -> Any:
        return (self.available, self.is_on) if self.available else None

    @bacs_command
    async def _set(self, on: bool) -> None:
        await async_require_admin(self.hass, self._context)
        if self._breaker:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="breaker_relay_not_a_switch"
            )
        await self.coordinator.manager.set_relay(self.ref, self.channel, on)

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._set(False)


class EqualizationSwitch(HubEntity, SwitchEntity):
    """Equalization on/off; stored in the options so it survives a restart."""

    def __init__(self, coordinator: BacsCoordinator) -> None:
        super().__init__(
            coordinator,
            SwitchEntityDescription(
                key="equalization",
                translation_key="equalization",
                entity_category=EntityCategory.CONFIG,
            ),
        )

    @property
    def is_on(self) -> bool:
        return self.coordinator.data.equalization_enabled

    def state_key(self) -> Any:
        return (self.available, self.is_on)

    @bacs_command  # a remote appliance may not take it (its site file decides)
    async def _set(self, on: bool) -> None:
        entry = self.coordinator.config_entry
        equalization = {**entry.options.get("equalization", {}), "enabled": on}
        await self.coordinator.manager.set_equalization(on)
        self.hass.config_entries.async_update_entry(
            entry, options={**entry.options, "equalization": equalization}
        )

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._set(False)


def _entities(coordinator: BacsCoordinator, known: set[Any]) -> list[BacsEntity]:
    out: list[BacsEntity] = []
    if "hub" not in known:
        known.add("hub")
        if coordinator.can(Capability.EQUALIZE):
            out.append(EqualizationSwitch(coordinator))
    if not coordinator.can(Capability.RELAYS):
        return out
    for ref in new_targets(known, coordinator.index.relays):
        relay = coordinator.index.relays[ref]
        out += [
            RelaySwitch(coordinator, ref, n)
            for n in range(1, len(relay.relays) + 1)
            if n not in relay.breaker_channels
        ]
    return out


async def async_setup_entry(
    hass: HomeAssistant, entry: BacsConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    async_setup_dynamic(entry.runtime_data.coordinator, async_add_entities, _entities)
