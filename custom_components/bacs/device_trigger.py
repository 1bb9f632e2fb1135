"""Device triggers: UI automations can start from "thermal runaway detected", "breaker
tripped", "block alarm raised" and the like. They ride on the ``bacs_event`` bus events."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.homeassistant.triggers import event as event_trigger
from homeassistant.const import (
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_EVENT_DATA,
    CONF_PLATFORM,
    CONF_TYPE,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from bacs_core.events import EventType
from bacs_core.model import DeviceFamily
from bacs_core.snapshot import Capability

from .const import DOMAIN, EVENT_BACS

HUB = "hub"
STRING = "string"
MODULE = "module"
OTHER = "other"

TRIGGERS: dict[str, tuple[EventType, ...]] = {
    HUB: (
        EventType.RUNAWAY_PRE_ALERT,
        EventType.RUNAWAY_DETECTED,
        EventType.TRIP_COUNTDOWN,
        EventType.TRIPPED,
        EventType.TRIP_FAILED,
        EventType.TRIP_RESET,
        EventType.ALARM_RAISED,
        EventType.ALARM_ESCALATED,
        EventType.ALARM_CLEARED,
        EventType.BUS_LOST,
        EventType.BUS_RESTORED,
        EventType.DEVICE_LOST,
        EventType.DEVICE_ADDED,
    ),
    STRING: (
        EventType.ALARM_RAISED,
        EventType.ALARM_ESCALATED,
        EventType.ALARM_CLEARED,
        EventType.CHARGE_STATE_CHANGED,
        EventType.BALANCING_STARTED,
        EventType.BALANCING_FINISHED,
    ),
    MODULE: (
        EventType.ALARM_RAISED,
        EventType.ALARM_ESCALATED,
        EventType.ALARM_CLEARED,
        EventType.DEVICE_LOST,
        EventType.DEVICE_FOUND,
        EventType.OUT_OF_EQUALIZATION_RANGE,
    ),
    OTHER: (
        EventType.ALARM_RAISED,
        EventType.ALARM_ESCALATED,
        EventType.ALARM_CLEARED,
        EventType.DEVICE_LOST,
        EventType.DEVICE_FOUND,
    ),
}
TRIGGER_TYPES = {t.value for types in TRIGGERS.values() for t in types}
# Events only a source with the capability announces: a read-only source (a GENEREX web
# manager) offers no trigger that could never fire.
NEEDS: dict[EventType, Capability] = {
    EventType.RUNAWAY_PRE_ALERT: Capability.RUNAWAY_DETECTION,
    EventType.RUNAWAY_DETECTED: Capability.RUNAWAY_DETECTION,
    EventType.TRIP_COUNTDOWN: Capability.TRIP,
    EventType.TRIPPED: Capability.TRIP,
    EventType.TRIP_FAILED: Capability.TRIP,
    EventType.TRIP_RESET: Capability.TRIP,
    EventType.BALANCING_STARTED: Capability.EQUALIZE,
    EventType.BALANCING_FINISHED: Capability.EQUALIZE,
    EventType.OUT_OF_EQUALIZATION_RANGE: Capability.EQUALIZE,
    EventType.DEVICE_ADDED: Capability.RESCAN,
}

TRIGGER_SCHEMA = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {vol.Required(CONF_TYPE): vol.In(sorted(TRIGGER_TYPES))}
)


def _role(device: dr.DeviceEntry | None) -> str | None:
    if device is None:
        return None
    for domain, ident in device.identifiers:
        if domain != DOMAIN:
            continue
        if "-string-" in ident:
            return STRING
        if ident.startswith(f"{DeviceFamily.BATTERY_MODULE.value}-"):
            return MODULE
        if any(ident.startswith(f"{f.value}-") for f in DeviceFamily):
            return OTHER
        return HUB
    return None


def _capabilities(hass: HomeAssistant, device: dr.DeviceEntry) -> frozenset[Capability] | None:
    """The capabilities of the source behind a device (None while no entry of it is loaded)."""
    for entry_id in device.config_entries:
        entry = hass.config_entries.async_get_entry(entry_id)
        runtime = getattr(entry, "runtime_data", None) if entry and entry.domain == DOMAIN else None
        if runtime is not None:
            caps: frozenset[Capability] = runtime.manager.capabilities
            return caps
    return None


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    device = dr.async_get(hass).async_get(device_id)
    role = _role(device)
    if role is None or device is None:
        return []
    caps = _capabilities(hass, device)
    return [
        {CONF_PLATFORM: "device", CONF_DOMAIN: DOMAIN, CONF_DEVICE_ID: device_id, CONF_TYPE: t}
        for t in TRIGGERS[role]
        if caps is None or t not in NEEDS or NEEDS[t] in caps
    ]


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """The hub's triggers fire for events anywhere on its bus; others for their own."""
    role = _role(dr.async_get(hass).async_get(config[CONF_DEVICE_ID]))
    key = "hub_device_id" if role == HUB else "device_id"
    event_config = event_trigger.TRIGGER_SCHEMA(
        {
            CONF_PLATFORM: "event",
            event_trigger.CONF_EVENT_TYPE: EVENT_BACS,
            CONF_EVENT_DATA: {key: config[CONF_DEVICE_ID], "type": config[CONF_TYPE]},
        }
    )
    return await event_trigger.async_attach_trigger(
        hass, event_config, action, trigger_info, platform_type="device"
    )
