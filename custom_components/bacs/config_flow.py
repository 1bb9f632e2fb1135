"""Config and reconfigure flows (the options flow is in options_flow.py).

The user picks a connection kind (serial battery bus, TCP gateway, or the built-in simulator
to try it without hardware). Every path opens the bus and scans it before anything is
created, then shows what was found and how the blocks will be split into strings.
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
)
from homeassistant.const import CONF_NAME
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)
from homeassistant.helpers.service_info.usb import UsbServiceInfo

from bacs_core.bus import BusUrlError
from bacs_core.bus.errors import BusConnectionError, BusError, PortBusyError
from bacs_core.bus.url import BAUD_RATES
from bacs_core.generex.adapter import GenerexAdapter, GenerexUnreachableError
from bacs_core.generex.url import GenerexUrlError, parse_generex_url
from bacs_core.manager.config import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN
from bacs_core.model import Chemistry
from bacs_core.sim.clock import SimClockError

from . import bus as bus_helpers
from .const import (
    CONF_BAUDRATE,
    CONF_COMMUNITY,
    CONF_FRAMING,
    CONF_HOST,
    CONF_KIND,
    CONF_PARITY,
    CONF_PORT_PATH,
    CONF_SIM_BLOCKS,
    CONF_SIM_CONTROL,
    CONF_SIM_NAME,
    CONF_SIM_STRINGS,
    CONF_SNMP_PORT,
    CONF_TCP_PORT,
    CONF_UNIT,
    CONF_URL,
    DEFAULT_BAUDRATE,
    DEFAULT_POLL_INTERVAL,
    DOMAIN,
    FRAMING_RTU,
    FRAMING_TCP,
    KIND_GENEREX,
    KIND_SERIAL,
    KIND_SIM,
    KIND_TCP,
    OPT_BLOCK_COUNTS,
    OPT_CAPACITY,
    OPT_CHEMISTRY,
    OPT_POLL_INTERVAL,
    OPT_STRING_COUNT,
    PARITY_CODES,
)
from .options_flow import BacsOptionsFlow, dropdown, parse_block_counts

_LOGGER = logging.getLogger(__name__)


def _number(low: float, high: float, step: float = 1, unit: str | None = None) -> NumberSelector:
    config = NumberSelectorConfig(min=low, max=high, step=step, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


SERIAL_SETTINGS = {
    vol.Required(CONF_BAUDRATE, default=str(DEFAULT_BAUDRATE)): SelectSelector(
        SelectSelectorConfig(options=[str(b) for b in BAUD_RATES], mode=SelectSelectorMode.DROPDOWN)
    ),
    vol.Required(CONF_PARITY, default="none"): dropdown(list(PARITY_CODES), "parity"),
}


def list_serial_ports() -> list[SelectOptionDict]:
    """Ports for the picker, by their stable /dev/serial/by-id path (executor)."""
    from serial.tools import list_ports

    options: list[SelectOptionDict] = []
    for port in list_ports.comports():
        path = bus_helpers.stable_port_path(port.device)
        label = path
        if port.vid is not None and port.pid is not None:
            label = (
                f"{path} ({port.manufacturer or port.description}, {port.vid:04X}:{port.pid:04X})"
            )
        options.append(SelectOptionDict(value=path, label=label))
    return options


def _connection_schema(
    kind: str, ports: list[SelectOptionDict], advanced: bool = False
) -> vol.Schema:
    """The connection form; in advanced mode a network bus may name the control channel of the
    `bacs simulate --speed N` behind it (the manager then runs on the simulator's clock)."""
    schema = _base_connection_schema(kind, ports)
    if advanced and kind in (KIND_TCP, KIND_GENEREX):
        schema = schema.extend({vol.Optional(CONF_SIM_CONTROL): TextSelector()})
    return schema


def _base_connection_schema(kind: str, ports: list[SelectOptionDict]) -> vol.Schema:
    if kind == KIND_SERIAL:
        return vol.Schema(
            {
                vol.Required(CONF_PORT_PATH): SelectSelector(
                    SelectSelectorConfig(
                        options=ports, custom_value=True, mode=SelectSelectorMode.DROPDOWN
                    )
                ),
                **SERIAL_SETTINGS,
            }
        )
    if kind == KIND_TCP:
        return vol.Schema(
            {
                vol.Required(CONF_HOST): TextSelector(),
                vol.Required(CONF_TCP_PORT, default=502): _number(1, 65535),
                vol.Required(CONF_FRAMING, default=FRAMING_TCP): dropdown(
                    [FRAMING_TCP, FRAMING_RTU], "framing"
                ),
            }
        )
    if kind == KIND_GENEREX:
        return vol.Schema(
            {
                vol.Required(CONF_HOST): TextSelector(),
                vol.Required(CONF_TCP_PORT, default=502): _number(1, 65535),
                vol.Required(CONF_UNIT, default=1): _number(0, 255),
                vol.Required(CONF_SNMP_PORT, default=161): _number(0, 65535),
                vol.Required(CONF_COMMUNITY, default="public"): TextSelector(),
            }
        )
    return vol.Schema(
        {
            vol.Required(CONF_SIM_NAME, default="demo"): TextSelector(),
            vol.Required(CONF_SIM_STRINGS, default=2): _number(1, 16),
            vol.Required(CONF_SIM_BLOCKS, default=16): _number(1, 64),
        }
    )


SIM_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _valid_input(kind: str, user_input: dict[str, Any], errors: dict[str, str]) -> bool:
    """Checks a selector cannot express (the form schema must stay serialisable for the UI)."""
    if kind == KIND_SIM and not SIM_NAME.fullmatch(str(user_input.get(CONF_SIM_NAME, ""))):
        errors[CONF_SIM_NAME] = "invalid_name"
    try:
        bus_helpers.sim_clock(user_input)
    except ValueError:
        errors[CONF_SIM_CONTROL] = "invalid_sim_control"
    if kind == KIND_GENEREX:
        if not str(user_input.get(CONF_HOST, "")).strip():
            errors[CONF_HOST] = "host_required"
        elif not str(user_input.get(CONF_COMMUNITY, "")).strip():
            errors[CONF_COMMUNITY] = "community_required"
        else:
            try:
                parse_generex_url(bus_helpers.build_url(_connection_data(kind, user_input)))
            except GenerexUrlError:
                errors[CONF_HOST] = "invalid_host"
    return not errors


def _connection_data(kind: str, user_input: dict[str, Any]) -> dict[str, Any]:
    data = _base_connection_data(kind, user_input)
    control = str(user_input.get(CONF_SIM_CONTROL) or "").strip()
    if control and kind in (KIND_TCP, KIND_GENEREX):
        data[CONF_SIM_CONTROL] = control
    return data


async def async_check_sim_control(data: dict[str, Any], errors: dict[str, str]) -> bool:
    """Test before configure: the simulator's control channel answers with its time."""
    clock = bus_helpers.sim_clock(data)
    if clock is None:
        return True
    try:
        await clock.start()
    except SimClockError as err:
        _LOGGER.debug("simulator control: %s", err)
        errors[CONF_SIM_CONTROL] = "sim_control_unreachable"
        return False
    finally:
        await clock.stop()
    return True


def _base_connection_data(kind: str, user_input: dict[str, Any]) -> dict[str, Any]:
    if kind == KIND_SERIAL:
        return {
            CONF_KIND: kind,
            CONF_PORT_PATH: user_input[CONF_PORT_PATH].strip(),
            CONF_BAUDRATE: int(user_input[CONF_BAUDRATE]),
            CONF_PARITY: user_input[CONF_PARITY],
        }
    if kind == KIND_TCP:
        return {
            CONF_KIND: kind,
            CONF_HOST: user_input[CONF_HOST].strip(),
            CONF_TCP_PORT: int(user_input[CONF_TCP_PORT]),
            CONF_FRAMING: user_input[CONF_FRAMING],
        }
    if kind == KIND_GENEREX:
        return {
            CONF_KIND: kind,
            CONF_HOST: str(user_input[CONF_HOST]).strip(),
            CONF_TCP_PORT: int(user_input[CONF_TCP_PORT]),
            CONF_UNIT: int(user_input[CONF_UNIT]),
            CONF_SNMP_PORT: int(user_input[CONF_SNMP_PORT]),
            CONF_COMMUNITY: str(user_input[CONF_COMMUNITY]).strip(),
        }
    return {
        CONF_KIND: kind,
        CONF_SIM_NAME: user_input[CONF_SIM_NAME],
        CONF_SIM_STRINGS: int(user_input[CONF_SIM_STRINGS]),
        CONF_SIM_BLOCKS: int(user_input[CONF_SIM_BLOCKS]),
    }


def _default_name(data: dict[str, Any], taken: set[str]) -> str:
    """A name for the entry (and its hub device, so its entities): the user's to change; it
    never carries the host or the adapter's serial number."""
    base = f"Simulator {data[CONF_SIM_NAME]}" if data[CONF_KIND] == KIND_SIM else "Battery room"
    if data[CONF_KIND] == KIND_GENEREX:
        base = "GENEREX BACS"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base} {n}"
    return name


def connection_url(data: dict[str, Any]) -> str:
    url = bus_helpers.build_url(data)
    if data[CONF_KIND] == KIND_SIM:  # distinct serial numbers per simulated room
        url += f"&seed={zlib.crc32(data[CONF_SIM_NAME].encode()) % 997 + 1}"
    return url


async def async_try_connection(
    data: dict[str, Any], errors: dict[str, str], placeholders: dict[str, str]
) -> bus_helpers.ScanSummary | None:
    """Test before configure: open, scan, close. Fills ``errors`` and returns None on failure.
    The advice fits the link: baud rate and parity for a serial bus, framing and the
    gateway's own serial settings for a gateway."""
    tcp = data[CONF_KIND] == KIND_TCP
    try:
        summary = await bus_helpers.async_probe(connection_url(data))
    except PortBusyError as err:
        errors["base"] = "port_busy"
        placeholders["port"] = err.port
        placeholders["owner"] = err.owner or "another program"
        return None
    except bus_helpers.SilentBusError as err:
        errors["base"] = "silent_tcp" if tcp else "silent_serial"
        placeholders["units"] = str(err.units)
        placeholders["seconds"] = f"{err.seconds:g}"
        return None
    except (BusConnectionError, BusUrlError) as err:
        _LOGGER.debug("cannot connect: %s", err)
        errors["base"] = "cannot_connect"
        return None
    except BusError as err:
        _LOGGER.debug("scan failed: %s", err)
        errors["base"] = "cannot_connect"
        return None
    if summary.empty:
        errors["base"] = "no_devices_found_tcp" if tcp else "no_devices_found"
        return None
    return summary


FLOW_PLACEHOLDERS = {"port": "", "owner": "", "units": "", "seconds": ""}


@dataclass(frozen=True, slots=True)
class GenerexSummary:
    """What the probe of a GENEREX web manager found (the adapter's one read)."""

    strings: int
    modules: int
    modules_lost: int
    modbus: bool
    snmp: bool
    notes: tuple[str, ...]


async def async_probe_generex(
    data: dict[str, Any], errors: dict[str, str]
) -> GenerexSummary | None:
    """Read the web manager once, as ``bacs probe`` does; fills ``errors`` on failure."""
    url = parse_generex_url(connection_url(data))
    adapter = GenerexAdapter(url)
    try:
        readings = await adapter.read()
    except GenerexUnreachableError as err:
        _LOGGER.debug("GENEREX probe: %s", err)
        errors["base"] = "generex_unreachable"
        return None
    finally:
        await adapter.close()
    if not readings.modules:  # the module table is SNMP's: none without it
        errors["base"] = "generex_no_modules" if readings.modbus_ok else "generex_not_bacs"
        return None
    return GenerexSummary(
        strings=len(readings.strings),
        modules=len(readings.modules),
        modules_lost=sum(1 for r in readings.modules if r.lost),
        modbus=readings.modbus_ok,
        snmp=readings.snmp_ok,
        notes=readings.notes,
    )


class BacsConfigFlow(ConfigFlow, domain=DOMAIN):
    VERSION = 2
    MINOR_VERSION = 1

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._summary: bus_helpers.ScanSummary | None = None
        self._usb_name = ""
        self._generex: GenerexSummary | None = None

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry[Any]) -> BacsOptionsFlow:
        return BacsOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return self.async_show_menu(
            step_id="user", menu_options=[KIND_SERIAL, KIND_TCP, KIND_GENEREX, KIND_SIM]
        )

    async def _async_connection_step(
        self, kind: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        placeholders = dict(FLOW_PLACEHOLDERS)
        if user_input is not None and _valid_input(kind, user_input, errors):
            data = _connection_data(kind, user_input)
            if kind == KIND_SERIAL:
                data[CONF_PORT_PATH] = await self.hass.async_add_executor_job(
                    bus_helpers.stable_port_path, data[CONF_PORT_PATH]
                )
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
        ports: list[SelectOptionDict] = []
        if kind == KIND_SERIAL:
            ports = await self.hass.async_add_executor_job(list_serial_ports)
        schema = self.add_suggested_values_to_schema(
            _connection_schema(kind, ports, self.show_advanced_options), user_input or {}
        )
        return self.async_show_form(
            step_id=kind, data_schema=schema, errors=errors, description_placeholders=placeholders
        )

    def _abort_if_connection_configured(self, data: dict[str, Any]) -> None:
        """The same port, gateway or simulator as an existing entry (its bus is busy with
        that entry, so a probe could not even read the hardware)."""
        wanted = bus_helpers.connection_id(data)
        for entry in self._async_current_entries(include_ignore=False):
            if CONF_KIND in entry.data and bus_helpers.connection_id(dict(entry.data)) == wanted:
                raise AbortFlow("already_configured")

    async def async_step_serial(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return await self._async_connection_step(KIND_SERIAL, user_input)

    async def async_step_tcp(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return await self._async_connection_step(KIND_TCP, user_input)

    async def async_step_generex(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A GENEREX WEB-MANAGER / CS141: read once (Modbus and SNMP), then confirm."""
        errors: dict[str, str] = {}
        if user_input is not None and _valid_input(KIND_GENEREX, user_input, errors):
            data = _connection_data(KIND_GENEREX, user_input)
            await self.async_set_unique_id(bus_helpers.connection_id(data))
            self._abort_if_unique_id_configured()
            summary = None
            if await async_check_sim_control(data, errors):
                summary = await async_probe_generex(data, errors)
            if summary is not None:
                self._data, self._generex = data, summary
                return await self.async_step_generex_confirm()
        schema = self.add_suggested_values_to_schema(
            _connection_schema(KIND_GENEREX, [], self.show_advanced_options), user_input or {}
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
            name = str(user_input[CONF_NAME]).strip()
            if not name:
                errors[CONF_NAME] = "name_required"
            else:
                options = {
                    OPT_POLL_INTERVAL: float(user_input[OPT_POLL_INTERVAL]),
                    OPT_CHEMISTRY: user_input[OPT_CHEMISTRY],
                }
                data = {**self._data, CONF_URL: connection_url(self._data)}
                return self.async_create_entry(title=name, data=data, options=options)
        taken = {entry.title for entry in self._async_current_entries()}
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME, default=_default_name(self._data, taken)): TextSelector(),
                vol.Required(OPT_POLL_INTERVAL, default=DEFAULT_POLL_INTERVAL): _number(
                    POLL_INTERVAL_MIN, POLL_INTERVAL_MAX, 1, "s"
                ),
                vol.Required(OPT_CHEMISTRY, default=Chemistry.VRLA.value): dropdown(
                    [c.value for c in Chemistry], "chemistry"
                ),
            }
        )
        protocols = " + ".join(
            p for p, ok in (("Modbus", summary.modbus), ("SNMP", summary.snmp)) if ok
        )
        return self.async_show_form(
            step_id="generex_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders={
                "strings": str(summary.strings),
                "modules": str(summary.modules),
                "lost": str(summary.modules_lost),
                "protocols": protocols,
                "notes": "; ".join(summary.notes[:3]) or "none",
            },
        )

    async def async_step_simulator(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_connection_step(KIND_SIM, user_input)

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
            count = int(user_input[OPT_STRING_COUNT])
            name = str(user_input[CONF_NAME]).strip()
            if not name:
                errors[CONF_NAME] = "name_required"
            options = {
                OPT_STRING_COUNT: count,
                OPT_CAPACITY: float(user_input[OPT_CAPACITY]),
                OPT_CHEMISTRY: user_input[OPT_CHEMISTRY],
                OPT_POLL_INTERVAL: DEFAULT_POLL_INTERVAL,
                "trip": {"auto": bool(user_input["auto_trip"])},
            }
            try:
                counts = parse_block_counts(
                    user_input.get(OPT_BLOCK_COUNTS), count, summary.modules
                )
            except ValueError:
                errors[OPT_BLOCK_COUNTS] = "block_counts_invalid"
            else:
                if counts:
                    options[OPT_BLOCK_COUNTS] = counts
            if not errors:
                data = {**self._data, CONF_URL: connection_url(self._data)}
                return self.async_create_entry(title=name, data=data, options=options)
        taken = {entry.title for entry in self._async_current_entries()}
        default_strings = max(1, min(summary.current_sensors or 1, summary.modules or 1))
        schema = vol.Schema(
            {
                vol.Required(CONF_NAME, default=_default_name(self._data, taken)): TextSelector(),
                vol.Required(OPT_STRING_COUNT, default=default_strings): _number(
                    1, max(1, min(64, summary.modules))
                ),
                vol.Required(OPT_CAPACITY, default=100): _number(1, 20000, 1, "Ah"),
                vol.Required(OPT_CHEMISTRY, default=Chemistry.VRLA.value): dropdown(
                    [c.value for c in Chemistry], "chemistry"
                ),
                vol.Optional(OPT_BLOCK_COUNTS): TextSelector(),
                vol.Required("auto_trip", default=summary.relays > 0): BooleanSelector(),
            }
        )
        return self.async_show_form(
            step_id="strings",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders={
                "modules": str(summary.modules),
                "current_sensors": str(summary.current_sensors),
                "relays": str(summary.relays),
                "environment": str(summary.environment),
                "per_string": str(summary.modules // default_strings),
            },
        )

    async def _async_reconfigure_generex(
        self, entry: ConfigEntry[Any], data: dict[str, Any], errors: dict[str, str]
    ) -> ConfigFlowResult:
        """A web manager is read, never owned: probe it while the entry keeps running."""
        unique_id = bus_helpers.connection_id(data)
        other = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, unique_id)
        if other is not None and other.entry_id != entry.entry_id:
            return self.async_abort(reason="already_configured")
        if await async_probe_generex(data, errors) is None:
            schema = self.add_suggested_values_to_schema(
                _connection_schema(KIND_GENEREX, [], self.show_advanced_options), data
            )
            return self.async_show_form(step_id="reconfigure", data_schema=schema, errors=errors)
        return self.async_update_reload_and_abort(
            entry, unique_id=unique_id, data={**data, CONF_URL: connection_url(data)}
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the connection (port, gateway address, baud rate) of an existing bus."""
        entry = self._get_reconfigure_entry()
        kind = entry.data[CONF_KIND]
        errors: dict[str, str] = {}
        placeholders = dict(FLOW_PLACEHOLDERS)
        if user_input is not None and _valid_input(kind, user_input, errors):
            data = _connection_data(kind, user_input)
            if kind == KIND_SERIAL:
                data[CONF_PORT_PATH] = await self.hass.async_add_executor_job(
                    bus_helpers.stable_port_path, data[CONF_PORT_PATH]
                )
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
                other = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, unique_id)
                if other is not None and other.entry_id != entry.entry_id:
                    await self.hass.config_entries.async_setup(entry.entry_id)
                    return self.async_abort(reason="already_configured")
                return self.async_update_reload_and_abort(
                    entry,
                    unique_id=unique_id,
                    data={**data, CONF_URL: connection_url(data)},
                )
        ports: list[SelectOptionDict] = []
        if kind == KIND_SERIAL:
            ports = await self.hass.async_add_executor_job(list_serial_ports)
        suggested = user_input or {
            k: str(v) if k == CONF_BAUDRATE else v for k, v in entry.data.items()
        }
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _connection_schema(kind, ports, self.show_advanced_options), suggested
            ),
            errors=errors,
            description_placeholders=placeholders,
        )
