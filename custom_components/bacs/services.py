"""Actions: registered once in async_setup, validated, failing with translated errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr

from bacs_core.bus.errors import BusError
from bacs_core.manager import Manager, SafetyRefusedError
from bacs_core.model import DeviceFamily
from bacs_core.snapshot import DeviceRef

from .const import (
    ATTR_ALARM_KEY,
    ATTR_CONFIG_ENTRY_ID,
    ATTR_DEVICE_ID,
    ATTR_REASON,
    DOMAIN,
    SERVICE_ACKNOWLEDGE,
    SERVICE_IDENTIFY,
    SERVICE_MEASURE,
    SERVICE_RESET,
    SERVICE_TRIP,
)
from .coordinator import BacsConfigEntry, device_identifier

ENTRY_SCHEMA = vol.Schema({vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string})
ACK_SCHEMA = ENTRY_SCHEMA.extend({vol.Optional(ATTR_ALARM_KEY): cv.string})
TRIP_SCHEMA = ENTRY_SCHEMA.extend(
    {vol.Optional(ATTR_REASON, default="manual trip"): vol.All(cv.string, vol.Length(1, 200))}
)
DEVICE_SCHEMA = vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string})


def _entry(hass: HomeAssistant, entry_id: str) -> BacsConfigEntry:
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"title": entry.title},
        )
    return cast(BacsConfigEntry, entry)


def _device(
    hass: HomeAssistant, device_id: str, family: DeviceFamily | None
) -> tuple[Manager, DeviceRef]:
    """The manager and bus address behind a device of this integration."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="device_not_found",
            translation_placeholders={"device_id": device_id},
        )
    for entry_id in device.config_entries:
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            continue
        entry = _entry(hass, entry_id)
        for ref, info in entry.runtime_data.coordinator.index.infos.items():
            if device_identifier(info) in device.identifiers:
                if family is not None and info.kind.family is not family:
                    raise ServiceValidationError(
                        translation_domain=DOMAIN,
                        translation_key="not_a_module",
                        translation_placeholders={"device": device.name or device_id},
                    )
                return entry.runtime_data.manager, ref
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="device_not_on_bus",
        translation_placeholders={"device": device.name or device_id},
    )


async def _run(command: Awaitable[Any]) -> Any:
    """Bus failures become a translated HomeAssistantError (the action did not happen)."""
    try:
        return await command
    except BusError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_failed",
            translation_placeholders={"error": str(err)},
        ) from err


async def _acknowledge(call: ServiceCall) -> dict[str, Any] | None:
    entry = _entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    key = call.data.get(ATTR_ALARM_KEY)
    manager = entry.runtime_data.manager
    snap = manager.snapshot
    if key is not None and (snap is None or key not in {a.key for a in snap.alarms}):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_alarm",
            translation_placeholders={"key": key},
        )
    count = await manager.acknowledge(key)
    return {"acknowledged": count}


async def _trip(call: ServiceCall) -> None:
    entry = _entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    manager = entry.runtime_data.manager
    if not manager.safety.breakers:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_trip_relay")
    await _run(manager.trip(call.data[ATTR_REASON]))


async def _reset(call: ServiceCall) -> None:
    entry = _entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    try:
        await _run(entry.runtime_data.manager.reset_trip())
    except SafetyRefusedError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="reset_refused",
            translation_placeholders={"reason": str(err)},
        ) from err


async def _measure(call: ServiceCall) -> None:
    manager, ref = _device(call.hass, call.data[ATTR_DEVICE_ID], DeviceFamily.BATTERY_MODULE)
    await _run(manager.measure_resistance(ref))


async def _identify(call: ServiceCall) -> None:
    manager, ref = _device(call.hass, call.data[ATTR_DEVICE_ID], None)
    await _run(manager.identify(ref))


type Handler = Callable[[ServiceCall], Coroutine[Any, Any, dict[str, Any] | None]]

SERVICES: dict[str, tuple[Handler, vol.Schema]] = {
    SERVICE_ACKNOWLEDGE: (_acknowledge, ACK_SCHEMA),
    SERVICE_TRIP: (_trip, TRIP_SCHEMA),
    SERVICE_RESET: (_reset, ENTRY_SCHEMA),
    SERVICE_MEASURE: (_measure, DEVICE_SCHEMA),
    SERVICE_IDENTIFY: (_identify, DEVICE_SCHEMA),
}


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    from homeassistant.core import SupportsResponse

    for name, (handler, schema) in SERVICES.items():
        hass.services.async_register(
            DOMAIN,
            name,
            handler,
            schema=schema,
            supports_response=SupportsResponse.OPTIONAL
            if name == SERVICE_ACKNOWLEDGE
            else SupportsResponse.NONE,
        )
