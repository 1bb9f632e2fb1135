"""Repair flow for a serial port that vanished: pick where the adapter is now."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)

from bacs_core.bus.errors import BusConnectionError

from . import bus as bus_helpers
from .config_flow import connection_url, list_serial_ports
from .const import CONF_PORT_PATH, CONF_URL


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
