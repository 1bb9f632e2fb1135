"""Config and reconfigure flows (the options flow is in options_flow.py).

The user picks a connection kind (serial battery bus, TCP gateway, a GENEREX web manager, a
BACS appliance on the network, or the built-in simulator to try it without hardware). Every
path reads what is there before anything is created, then shows what was found. This class
holds the steps; what each path knows is in flow_connection.py (the connection forms and the
bus test), flow_strings.py (after a scan), flow_generex.py and config_flow_remote.py.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
)
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.selector import SelectOptionDict
from homeassistant.helpers.service_info.usb import UsbServiceInfo

from . import bus as bus_helpers
from .config_flow_remote import (
    RemoteSummary,
    async_probe_remote,
    remote_data,
    remote_schema,
    remote_unique_id,
    without_password,
)
from .const import (
    CONF_BAUDRATE,
    CONF_KIND,
    CONF_PARITY,
    CONF_PORT_PATH,
    CONF_URL,
    DOMAIN,
    KIND_GENEREX,
    KIND_REMOTE,
    KIND_SERIAL,
    KIND_SIM,
    KIND_TCP,
)
from .flow_connection import (
    FLOW_PLACEHOLDERS,
    SERIAL_SETTINGS,
    async_check_sim_control,
    async_try_connection,
    connection_data,
    connection_schema,
    connection_url,
    list_serial_ports,
    valid_input,
)
from .flow_fields import entry_name, name_field
from .flow_generex import (
    GenerexSummary,
    async_probe_generex,
    generex_confirm_schema,
    generex_options,
)
from .flow_strings import strings_options, strings_placeholders, strings_schema
from .options_flow import BacsOptionsFlow


class BacsConfigFlow(ConfigFlow, domain=DOMAIN):
    VERSION = 2
    MINOR_VERSION = 1

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._summary: bus_helpers.ScanSummary | None = None
        self._usb_name = ""
        self._generex: GenerexSummary | None = None
        self._remote: RemoteSummary | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry[Any]) -> BacsOptionsFlow:
        return BacsOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return self.async_show_menu(
            step_id="user",
            menu_options=[KIND_SERIAL, KIND_TCP, KIND_GENEREX, KIND_REMOTE, KIND_SIM],
        )

    async def async_step_serial(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return await self._async_connection_step(KIND_SERIAL, user_input)

    async def async_step_tcp(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return await self._async_connection_step(KIND_TCP, user_input)

    async def async_step_simulator(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_connection_step(KIND_SIM, user_input)

    async def _async_connection_step(
        self, kind: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        placeholders = dict(FLOW_PLACEHOLDERS)
        if user_input is not None and valid_input(kind, user_input, errors):
            data = await self._async_connection_data(kind, user_input)
            self._abort_if_connection_configured(data)
            summary = None
            if await async_check_sim_control(data, errors):
                summary = await async_try_connection(data, errors, placeholders)
            if summary is not None:
                await self.async_set_unique_id(
                    summary.hardware_id or bus_helpers.connection_id(data)
                )
                self._abort_if_unique_id_configured()
                self._data, self._summary = data, summary
                return await self.async_step_strings()
        schema = self.add_suggested_values_to_schema(
            connection_schema(kind, await self._async_ports(kind), self.show_advanced_options),
            user_input or {},
        )
        return self.async_show_form(
            step_id=kind, data_schema=schema, errors=errors, description_placeholders=placeholders
        )

    async def _async_connection_data(self, kind: str, user_input: dict[str, Any]) -> dict[str, Any]:
        """The form's entry data, a serial port by its stable /dev/serial/by-id path."""
        data = connection_data(kind, user_input)
        if kind == KIND_SERIAL:
            data[CONF_PORT_PATH] = await self.hass.async_add_executor_job(
                bus_helpers.stable_port_path, data[CONF_PORT_PATH]
            )
        return data

    async def _async_ports(self, kind: str) -> list[SelectOptionDict]:
        """The serial ports to pick from (none for the other kinds)."""
        if kind != KIND_SERIAL:
            return []
        return await self.hass.async_add_executor_job(list_serial_ports)

    def _abort_if_connection_configured(self, data: dict[str, Any]) -> None:
        """The same port, gateway or simulator as an existing entry (its bus is busy with
        that entry, so a probe could not even read the hardware)."""
        wanted = bus_helpers.connection_id(data)
        for entry in self._async_current_entries(include_ignore=False):
            if CONF_KIND in entry.data and bus_helpers.connection_id(dict(entry.data)) == wanted:
                raise AbortFlow("already_configured")

    def _taken_names(self) -> set[str]:
        return {entry.title for entry in self._async_current_entries()}

    def _taken_by_another(self, entry: ConfigEntry[Any], unique_id: str) -> bool:
        """Whether another entry than ``entry`` has ``unique_id`` (a reconfigure may not
        make two entries of one bus)."""
        other = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, unique_id)
        return other is not None and other.entry_id != entry.entry_id

    async def async_step_generex(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A GENEREX WEB-MANAGER / CS141: read once (Modbus and SNMP), then confirm."""
        errors: dict[str, str] = {}
        if user_input is not None and valid_input(KIND_GENEREX, user_input, errors):
            data = connection_data(KIND_GENEREX, user_input)
            await self.async_set_unique_id(bus_helpers.connection_id(data))
            self._abort_if_unique_id_configured()
            summary = None
            if await async_check_sim_control(data, errors):
                summary = await async_probe_generex(data, errors)
            if summary is not None:
                self._data, self._generex = data, summary
                return await self.async_step_generex_confirm()
        schema = self.add_suggested_values_to_schema(
            connection_schema(KIND_GENEREX, [], self.show_advanced_options), user_input or {}
        )
        return self.async_show_form(step_id=KIND_GENEREX, data_schema=schema, errors=errors)

    async def async_step_generex_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """What the web manager reported: strings, modules; a name, and the poll interval."""
        summary = self._generex
        assert summary is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            name = entry_name(user_input, errors)
            if not errors:
                data = {**self._data, CONF_URL: connection_url(self._data)}
                return self.async_create_entry(
                    title=name, data=data, options=generex_options(user_input)
                )
        schema = generex_confirm_schema(self._data, self._taken_names())
        return self.async_show_form(
            step_id="generex_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders=summary.placeholders(),
        )

    async def async_step_remote(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """A BACS appliance (bacs run) elsewhere: its broker and site, probed for its
        retained snapshot, then confirmed."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = remote_data(user_input, errors)
            if data is not None:
                await self.async_set_unique_id(remote_unique_id(data))
                self._abort_if_unique_id_configured()
                summary = await async_probe_remote(data, errors)
                if summary is not None:
                    self._data, self._remote = data, summary
                    return await self.async_step_remote_confirm()
        return self.async_show_form(
            step_id=KIND_REMOTE,
            data_schema=self.add_suggested_values_to_schema(
                remote_schema(), without_password(user_input or {})
            ),
            errors=errors,
        )

    async def async_step_remote_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """What the appliance publishes, whether it also sends MQTT discovery; a name."""
        summary = self._remote
        assert summary is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            name = entry_name(user_input, errors)
            if not errors:
                return self.async_create_entry(title=name, data=self._data, options={})
        schema = vol.Schema(name_field(self._data, self._taken_names()))
        return self.async_show_form(
            step_id="remote_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders=summary.placeholders(self._data),
        )

    async def async_step_usb(self, discovery_info: UsbServiceInfo) -> ConfigFlowResult:
        """A known RS-485 adapter was plugged in."""
        port = await self.hass.async_add_executor_job(
            bus_helpers.stable_port_path, discovery_info.device
        )
        self._data = {CONF_KIND: KIND_SERIAL, CONF_PORT_PATH: port}
        self._abort_if_connection_configured(self._data)
        self._usb_name = discovery_info.description or discovery_info.device
        self.context["title_placeholders"] = {"name": self._usb_name}
        return await self.async_step_usb_confirm()

    async def async_step_usb_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        placeholders = {
            **FLOW_PLACEHOLDERS,
            "name": self._usb_name,
            "port": self._data[CONF_PORT_PATH],
        }
        if user_input is not None:
            data = {
                **self._data,
                CONF_BAUDRATE: int(user_input[CONF_BAUDRATE]),
                CONF_PARITY: user_input[CONF_PARITY],
            }
            summary = await async_try_connection(data, errors, placeholders)
            if summary is not None:
                # The same modules behind an adapter that moved: the entry follows it.
                await self.async_set_unique_id(
                    summary.hardware_id or bus_helpers.connection_id(data)
                )
                self._abort_if_unique_id_configured(
                    updates={**data, CONF_URL: connection_url(data)}
                )
                self._data, self._summary = data, summary
                return await self.async_step_strings()
        return self.async_show_form(
            step_id="usb_confirm",
            data_schema=vol.Schema(SERIAL_SETTINGS),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_strings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """What the scan found, and how many strings the blocks form (split in unit order)."""
        summary = self._summary
        assert summary is not None
        errors: dict[str, str] = {}
        if user_input is not None:
            name = entry_name(user_input, errors)
            options = strings_options(user_input, summary, errors)
            if not errors:
                data = {**self._data, CONF_URL: connection_url(self._data)}
                return self.async_create_entry(title=name, data=data, options=options)
        schema = strings_schema(summary, self._data, self._taken_names())
        return self.async_show_form(
            step_id="strings",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders=strings_placeholders(summary),
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the connection (port, gateway address, baud rate) of an existing bus."""
        entry = self._get_reconfigure_entry()
        kind = entry.data[CONF_KIND]
        errors: dict[str, str] = {}
        placeholders = dict(FLOW_PLACEHOLDERS)
        if kind == KIND_REMOTE:
            return await self._async_reconfigure_remote(entry, user_input)
        if user_input is not None and valid_input(kind, user_input, errors):
            data = await self._async_connection_data(kind, user_input)
            if bus_helpers.connection_id(data) != bus_helpers.connection_id(dict(entry.data)):
                self._abort_if_connection_configured(data)
            if kind == KIND_GENEREX:
                return await self._async_reconfigure_generex(entry, data, errors)
            # This entry's own bus is open (a serial port is locked): let go of it for the probe.
            await self.hass.config_entries.async_unload(entry.entry_id)
            summary = await async_try_connection(data, errors, placeholders)
            if summary is None:
                await self.hass.config_entries.async_setup(entry.entry_id)
            else:
                unique_id = summary.hardware_id or bus_helpers.connection_id(data)
                if self._taken_by_another(entry, unique_id):
                    await self.hass.config_entries.async_setup(entry.entry_id)
                    return self.async_abort(reason="already_configured")
                return self.async_update_reload_and_abort(
                    entry,
                    unique_id=unique_id,
                    data={**data, CONF_URL: connection_url(data)},
                )
        suggested = user_input or {
            k: str(v) if k == CONF_BAUDRATE else v for k, v in entry.data.items()
        }
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                connection_schema(kind, await self._async_ports(kind), self.show_advanced_options),
                suggested,
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _async_reconfigure_generex(
        self, entry: ConfigEntry[Any], data: dict[str, Any], errors: dict[str, str]
    ) -> ConfigFlowResult:
        """A web manager is read, never owned: probe it while the entry keeps running."""
        unique_id = bus_helpers.connection_id(data)
        if self._taken_by_another(entry, unique_id):
            return self.async_abort(reason="already_configured")
        if await async_probe_generex(data, errors) is None:
            schema = self.add_suggested_values_to_schema(
                connection_schema(KIND_GENEREX, [], self.show_advanced_options), data
            )
            return self.async_show_form(step_id="reconfigure", data_schema=schema, errors=errors)
        return self.async_update_reload_and_abort(
            entry, unique_id=unique_id, data={**data, CONF_URL: connection_url(data)}
        )

    async def _async_reconfigure_remote(
        self, entry: ConfigEntry[Any], user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Another broker, credentials or site: probed while the entry keeps reading. An
        empty password field keeps the stored one."""
        errors: dict[str, str] = {}
        if user_input is not None:
            given = dict(user_input)
            if not given.get("password") and given.get("username") == entry.data.get("username"):
                given["password"] = entry.data.get("password")
            data = remote_data(given, errors)
            if data is not None:
                unique_id = remote_unique_id(data)
                if self._taken_by_another(entry, unique_id):
                    return self.async_abort(reason="already_configured")
                if await async_probe_remote(data, errors) is not None:
                    return self.async_update_reload_and_abort(entry, unique_id=unique_id, data=data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                remote_schema(), without_password(user_input or entry.data)
            ),
            errors=errors,
        )
