"""Logbook: every ``bacs_event`` described in words, under the device it concerns.

The manager's own message already says where and what ("String 1 block 5: float voltage
12.84 V, below the 12.90 V alarm limit"); the entry adds what happened to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import LOGBOOK_ENTRY_MESSAGE, LOGBOOK_ENTRY_NAME
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN, EVENT_BACS

WHAT = {
    "alarm_raised": "raised an alarm",
    "alarm_escalated": "escalated an alarm",
    "alarm_cleared": "cleared an alarm",
    "alarm_acknowledged": "had an alarm acknowledged",
    "runaway_pre_alert": "reported a thermal-runaway pre-alert",
    "runaway_detected": "detected a THERMAL RUNAWAY",
    "trip_countdown": "started the breaker trip countdown",
    "tripped": "TRIPPED the battery breaker",
    "trip_failed": "could NOT OPEN the battery breaker",
    "trip_reset": "had the breaker trip reset",
    "balancing_started": "started balancing",
    "balancing_finished": "finished balancing",
    "out_of_equalization_range": "found a block beyond the equalizer's reach",
    "device_lost": "lost a device",
    "device_found": "found a device again",
    "device_added": "found a new device",
    "bus_lost": "lost the battery bus",
    "bus_restored": "has the battery bus back",
    "charge_state_changed": "changed charge state",
}


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, Any]]], None],
) -> None:
    registry = dr.async_get(hass)

    @callback
    def describe(event: Event) -> dict[str, Any]:
        data = event.data
        kind = str(data.get("type", ""))
        name = "Battery manager"
        for device_id in (data.get("device_id"), data.get("hub_device_id")):
            if device_id and (device := registry.async_get(device_id)):
                name = device.name_by_user or device.name or name
                break
        what = WHAT.get(kind, kind.replace("_", " "))
        message = str(data.get("message") or "")
        # The entry already starts with the name.
        message = message.removeprefix(f"{name}: ").removeprefix(f"{name} ")
        return {
            LOGBOOK_ENTRY_NAME: name,
            LOGBOOK_ENTRY_MESSAGE: f"{what}: {message}" if message else what,
        }

    async_describe_event(DOMAIN, EVENT_BACS, describe)
