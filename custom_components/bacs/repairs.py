"""Repairs: the breaker trip as a repair issue and a notification, and the flow for a serial
port that vanished (pick where the adapter is now).

A latched trip, a trip whose breaker did not open, and a trip state the manager could not
restore each raise a repair issue and a persistent notification that stay until the condition
clears (a person resets the trip); each change is logged at WARNING or above.
"""

from __future__ import annotations

import logging
from typing import Any

import voluptuous as vol
from homeassistant import data_entry_flow
from homeassistant.components import persistent_notification
from homeassistant.components.repairs import RepairsFlow
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)

from bacs_core.bus.errors import BusConnectionError
from bacs_core.snapshot import SystemSnapshot, TripState

from . import bus as bus_helpers
from .alarm_summary import safety_line
from .const import (
    CONF_PORT_PATH,
    CONF_URL,
    DOMAIN,
    ISSUE_TRIP_FAILED,
    ISSUE_TRIP_STATE_UNKNOWN,
    ISSUE_TRIPPED,
)
from .flow_connection import connection_url, list_serial_ports

_LOGGER = logging.getLogger(__name__)

# Trip state -> (issue, severity, log level, notification title)
_SAFETY_ISSUES: dict[TripState, tuple[str, ir.IssueSeverity, int, str]] = {
    TripState.TRIPPED: (
        ISSUE_TRIPPED,
        ir.IssueSeverity.ERROR,
        logging.WARNING,
        "Battery breaker tripped",
    ),
    TripState.FAILED: (
        ISSUE_TRIP_FAILED,
        ir.IssueSeverity.CRITICAL,
        logging.ERROR,
        "Battery breaker DID NOT OPEN",
    ),
    TripState.UNKNOWN: (
        ISSUE_TRIP_STATE_UNKNOWN,
        ir.IssueSeverity.CRITICAL,
        logging.WARNING,
        "Battery breaker trip state unknown",
    ),
}


def safety_issue_id(issue: str, entry_id: str) -> str:
    return f"{issue}_{entry_id}"


def notification_id(entry_id: str) -> str:
    return f"{DOMAIN}_safety_{entry_id}"


class SafetyNotices:
    """Follows the manager's trip state: one issue and one notification for the condition
    that stands, removed when it clears; a log line at each change."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry[Any]) -> None:
        self.hass = hass
        self.entry = entry
        self._state: TripState | None = None

    @callback
    def update(self, snap: SystemSnapshot | None) -> None:
        if snap is None:
            return
        state = snap.safety.trip_state
        if state == self._state:
            return
        before, self._state = self._state, state
        entry_id = self.entry.entry_id
        title = self.entry.title
        reason = snap.safety.reason or "no reason recorded"
        for trip_state, (issue, *_rest) in _SAFETY_ISSUES.items():
            if trip_state is not state:
                ir.async_delete_issue(self.hass, DOMAIN, safety_issue_id(issue, entry_id))
        spec = _SAFETY_ISSUES.get(state)
        if spec is None:
            persistent_notification.async_dismiss(self.hass, notification_id(entry_id))
            if before is not None and before in _SAFETY_ISSUES:
                _LOGGER.warning("%s: breaker trip %s (was %s)", title, state.value, before.value)
            return
        issue, severity, level, heading = spec
        _LOGGER.log(level, "%s: %s", title, safety_line(snap.safety))
        tripped_at = snap.safety.tripped_at
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            safety_issue_id(issue, entry_id),
            is_fixable=False,
            is_persistent=False,
            severity=severity,
            translation_key=issue,
            translation_placeholders={
                "title": title,
                "reason": reason,
                "since": tripped_at.isoformat(timespec="seconds") if tripped_at else "?",
            },
        )
        persistent_notification.async_create(
            self.hass,
            f"{title}: {safety_line(snap.safety)}.\n\n{_ADVICE[state]}",
            title=heading,
            notification_id=notification_id(entry_id),
        )


_ADVICE = {
    TripState.TRIPPED: (
        "The trip stays latched until a person resets it (the Reset breaker button or the "
        "bacs.reset_breaker action), which the manager refuses while a runaway stands."
    ),
    TripState.FAILED: (
        "The trip relay was commanded but the breaker did not report open. Open the battery "
        "breaker by hand and keep people away from the battery room."
    ),
    TripState.UNKNOWN: (
        "The manager could not read its saved state, so it cannot tell whether a trip was "
        "latched. Check the breaker and the batteries, then reset the trip once it is safe."
    ),
}


@callback
def async_delete_safety_issues(hass: HomeAssistant, entry_id: str) -> None:
    for issue, *_rest in _SAFETY_ISSUES.values():
        ir.async_delete_issue(hass, DOMAIN, safety_issue_id(issue, entry_id))
    persistent_notification.async_dismiss(hass, notification_id(entry_id))


class PortMissingRepairFlow(RepairsFlow):
    """The stored /dev/serial/by-id path is gone; test a new one, then reload the entry."""

    def __init__(self, entry_id: str) -> None:
        self.entry_id = entry_id

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        return await self.async_step_select_port()

    async def async_step_select_port(
        self, user_input: dict[str, str] | None = None
    ) -> data_entry_flow.FlowResult:
        entry = self.hass.config_entries.async_get_entry(self.entry_id)
        if entry is None:
            return self.async_abort(reason="entry_removed")
        errors: dict[str, str] = {}
        if user_input is not None:
            path = await self.hass.async_add_executor_job(
                bus_helpers.stable_port_path, user_input[CONF_PORT_PATH].strip()
            )
            data = {**entry.data, CONF_PORT_PATH: path}
            url = connection_url(data)
            try:
                await bus_helpers.async_check_port(url)
            except BusConnectionError:
                errors["base"] = "cannot_connect"
            else:
                # The unique id is the bus's hardware: a new port does not change it.
                self.hass.config_entries.async_update_entry(entry, data={**data, CONF_URL: url})
                self.hass.config_entries.async_schedule_reload(entry.entry_id)
                return self.async_create_entry(data={})
        ports = await self.hass.async_add_executor_job(list_serial_ports)
        return self.async_show_form(
            step_id="select_port",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_PORT_PATH): SelectSelector(
                        SelectSelectorConfig(
                            options=ports, custom_value=True, mode=SelectSelectorMode.DROPDOWN
                        )
                    )
                }
            ),
            errors=errors,
            description_placeholders={"port": entry.data[CONF_PORT_PATH]},
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, Any] | None
) -> RepairsFlow:
    assert data is not None
    return PortMissingRepairFlow(str(data["entry_id"]))
