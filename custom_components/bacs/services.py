"""Actions: registered once in async_setup, validated, failing with translated errors.

Tripping, resetting and acknowledging are for administrators only: the check of
``async_register_admin_service`` (which cannot return a response), with a translated
refusal. The Trip breaker, Reset breaker and Acknowledge buttons call the same functions."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, SupportsResponse, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr

from bacs_core.manager import Manager, SafetyRefusedError
from bacs_core.model import DeviceFamily
from bacs_core.snapshot import DeviceRef

from .const import (
    ATTR_ALARM_KEY,
    ATTR_CONFIG_ENTRY_ID,
    ATTR_DEVICE_ID,
    ATTR_REASON,
    ATTR_STRING,
    DOMAIN,
    SERVICE_ACKNOWLEDGE,
    SERVICE_IDENTIFY,
    SERVICE_MEASURE,
    SERVICE_RESET,
    SERVICE_TRIP,
)
from .coordinator import BacsConfigEntry
from .errors import COMMAND_ERRORS, async_require_admin, async_run_command, translated

ENTRY_SCHEMA = vol.Schema({vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string})
ACK_SCHEMA = ENTRY_SCHEMA.extend({vol.Optional(ATTR_ALARM_KEY): cv.string})


def _string_number(value: Any) -> int:
    """A string's number: 2, 2.0 (the number selector) or "2"; never 2.5 or true."""
    if isinstance(value, bool):
        raise vol.Invalid("a string number is expected")
    number = vol.Coerce(float)(value)
    if not number.is_integer():
        raise vol.Invalid(f"a whole string number is expected, not {value!r}")
    return int(number)


# One string (relay n trips string n), or every string when left out.
STRING_FIELD = {vol.Optional(ATTR_STRING): vol.All(_string_number, vol.Range(min=1, max=64))}
TRIP_SCHEMA = ENTRY_SCHEMA.extend(
    {
        vol.Optional(ATTR_REASON, default="manual trip"): vol.All(cv.string, vol.Length(1, 200)),
        **STRING_FIELD,
    }
)
RESET_SCHEMA = ENTRY_SCHEMA.extend(STRING_FIELD)
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
    """The manager and the address a device of this integration answers at now."""
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
        index = entry.runtime_data.coordinator.index
        for domain, key in device.identifiers:
            ref = index.by_identity.get(key) if domain == DOMAIN else None
            if ref is None:
                continue
            if family is not None and index.infos[ref].kind.family is not family:
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


def _check_string(manager: Manager, string: int | None) -> None:
    snap = manager.snapshot
    known = [t.string for t in snap.safety.strings] if snap else []
    if string is not None and string not in known:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_string",
            translation_placeholders={
                "string": str(string),
                "strings": ", ".join(map(str, known)) or "none",
            },
        )


async def async_trip(manager: Manager, reason: str, string: int | None = None) -> None:
    """Open one string's breakers, or every string's, now (the action; the Trip breaker
    button trips every string)."""
    if not manager.safety.breakers:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_trip_relay")
    _check_string(manager, string)
    await async_run_command(manager.trip(reason, string))


async def async_reset(manager: Manager, string: int | None = None) -> None:
    """Release one string's trip relays, or every string's, when the manager finds it safe
    (the action; the Reset breaker button resets every string)."""
    _check_string(manager, string)
    try:
        await manager.reset_trip(string)
    except SafetyRefusedError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="reset_refused",
            translation_placeholders={"reason": str(err)},
        ) from err
    except COMMAND_ERRORS as err:
        raise translated(err) from err


async def async_acknowledge(manager: Manager, key: str | None) -> int:
    """Acknowledge one latched alarm by its key, or all (the action and the button)."""
    snap = manager.snapshot
    if key is not None and (snap is None or key not in {a.key for a in snap.alarms}):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_alarm",
            translation_placeholders={"key": key},
        )
    return await async_run_command(manager.acknowledge(key))


async def _acknowledge(call: ServiceCall) -> dict[str, Any] | None:
    await async_require_admin(call.hass, call.context)
    entry = _entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    count = await async_acknowledge(entry.runtime_data.manager, call.data.get(ATTR_ALARM_KEY))
    return {"acknowledged": count}


async def _trip(call: ServiceCall) -> None:
    await async_require_admin(call.hass, call.context)
    entry = _entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    await async_trip(entry.runtime_data.manager, call.data[ATTR_REASON], call.data.get(ATTR_STRING))


async def _reset(call: ServiceCall) -> None:
    await async_require_admin(call.hass, call.context)
    entry = _entry(call.hass, call.data[ATTR_CONFIG_ENTRY_ID])
    await async_reset(entry.runtime_data.manager, call.data.get(ATTR_STRING))


async def _measure(call: ServiceCall) -> None:
    manager, ref = _device(call.hass, call.data[ATTR_DEVICE_ID], DeviceFamily.BATTERY_MODULE)
    await async_run_command(manager.measure_resistance(ref))


async def _identify(call: ServiceCall) -> None:
    manager, ref = _device(call.hass, call.data[ATTR_DEVICE_ID], None)
    await async_run_command(manager.identify(ref))


type Handler = Callable[[ServiceCall], Coroutine[Any, Any, dict[str, Any] | None]]

SERVICES: dict[str, tuple[Handler, vol.Schema]] = {
    SERVICE_ACKNOWLEDGE: (_acknowledge, ACK_SCHEMA),
    SERVICE_TRIP: (_trip, TRIP_SCHEMA),
    SERVICE_RESET: (_reset, RESET_SCHEMA),
    SERVICE_MEASURE: (_measure, DEVICE_SCHEMA),
    SERVICE_IDENTIFY: (_identify, DEVICE_SCHEMA),
}


@callback
def async_setup_services(hass: HomeAssistant) -> None:
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
