"""Config, options and reconfigure flows.

The user picks a connection kind (serial battery bus, TCP gateway, or the built-in simulator
to try it without hardware). Every path opens the bus and scans it before anything is
created, then shows what was found and how the blocks will be split into strings.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_NAME
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow, section
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
from bacs_core.manager import ConfigError, validate_config
from bacs_core.manager.config import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN, RUNAWAY_SCHEMA
from bacs_core.manager.equalization import TargetMode
from bacs_core.manager.safety import LostBusPolicy
from bacs_core.manager.thresholds import thresholds_for
from bacs_core.model import RELAY_CHANNELS, Chemistry

from . import bus as bus_helpers
from .const import (
    BUS_ID,
    CONF_BAUDRATE,
    CONF_FRAMING,
    CONF_HOST,
    CONF_KIND,
    CONF_PARITY,
    CONF_PORT_PATH,
    CONF_SIM_BLOCKS,
    CONF_SIM_NAME,
    CONF_SIM_STRINGS,
    CONF_TCP_PORT,
    CONF_URL,
    DEFAULT_BAUDRATE,
    DEFAULT_POLL_INTERVAL,
    DOMAIN,
    FRAMING_RTU,
    FRAMING_TCP,
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

_LOGGER = logging.getLogger(__name__)

TRIP_NONE = "none"
TRIP_AUTO = "auto"


class Field:
    """A number in a form: its unit and the range the form accepts (bacs_core's where it has
    one), both shown to the user; a value outside gets an error that says the range."""

    def __init__(self, low: float, high: float, step: float, unit: str | None = None) -> None:
        self.low, self.high, self.step, self.unit = low, high, step, unit

    def selector(self) -> NumberSelector:
        """No min/max on the selector: the step checks them and says the range in its error
        (a selector's own refusal says only "too small")."""
        config = NumberSelectorConfig(step=self.step, mode=NumberSelectorMode.BOX)
        if self.unit is not None:
            config["unit_of_measurement"] = self.unit
        return NumberSelector(config)

    def accepts(self, value: Any) -> bool:
        try:
            return self.low <= float(value) <= self.high
        except (TypeError, ValueError):
            return False


# Alarm thresholds in the form: (group, bound) in bacs_core's Thresholds, and the field.
THRESHOLD_FIELDS: dict[str, tuple[str, str, Field]] = {
    "cell_voltage_alarm_high": ("cell_voltage", "alarm_high", Field(0.5, 5.0, 0.005, "V")),
    "cell_voltage_warning_high": ("cell_voltage", "warning_high", Field(0.5, 5.0, 0.005, "V")),
    "cell_voltage_warning_low": ("cell_voltage", "warning_low", Field(0.5, 5.0, 0.005, "V")),
    "cell_voltage_alarm_low": ("cell_voltage", "alarm_low", Field(0.5, 5.0, 0.005, "V")),
    "cell_deviation_alarm_high": ("cell_deviation", "alarm_high", Field(0, 1, 0.001, "V")),
    "cell_deviation_warning_high": ("cell_deviation", "warning_high", Field(0, 1, 0.001, "V")),
    "cell_deviation_warning_low": ("cell_deviation", "warning_low", Field(-1, 0, 0.001, "V")),
    "cell_deviation_alarm_low": ("cell_deviation", "alarm_low", Field(-1, 0, 0.001, "V")),
    "temperature_warning_high": ("temperature", "warning_high", Field(-20, 90, 0.5, "°C")),
    "temperature_alarm_high": ("temperature", "alarm_high", Field(-20, 90, 0.5, "°C")),
    "resistance_warning_high": (
        "resistance_vs_baseline",
        "warning_high",
        Field(100, 500, 1, "%"),
    ),
    "resistance_alarm_high": ("resistance_vs_baseline", "alarm_high", Field(100, 500, 1, "%")),
    "hydrogen_warning_high": ("hydrogen", "warning_high", Field(0, 40000, 100, "ppm")),
    "hydrogen_alarm_high": ("hydrogen", "alarm_high", Field(0, 40000, 100, "ppm")),
}
PERCENT_OF_BASELINE = {"resistance_vs_baseline"}  # stored as a ratio, shown in %

# The other numbers of the options form, by section ("" = top level).
OPTION_FIELDS: dict[tuple[str, str], Field] = {
    ("", OPT_POLL_INTERVAL): Field(POLL_INTERVAL_MIN, POLL_INTERVAL_MAX, 1, "s"),
    ("", OPT_STRING_COUNT): Field(1, 64, 1),
    ("", OPT_CAPACITY): Field(1, 20000, 1, "Ah"),
    ("equalization", "float_voltage_per_cell"): Field(1.2, 4.3, 0.005, "V"),
    ("equalization", "float_voltage"): Field(1, 20, 0.01, "V"),
    ("trip", "channel"): Field(1, RELAY_CHANNELS, 1),
    ("trip", "input"): Field(1, RELAY_CHANNELS, 1),
    ("trip", "pre_trip_delay"): Field(0, 3600, 1, "s"),
    **{("thresholds", name): field for name, (_g, _b, field) in THRESHOLD_FIELDS.items()},
}


def range_placeholders() -> dict[str, str]:
    """``{poll_interval_range}`` and friends for the errors and field descriptions."""
    out: dict[str, str] = {}
    for (_section, name), field in OPTION_FIELDS.items():
        unit = f" {field.unit}" if field.unit else ""
        out[f"{name}_range"] = f"{field.low:g} to {field.high:g}{unit}"
    return out


def range_errors(form: Mapping[str, Any]) -> dict[str, str]:
    """``{field: "<field>_range"}`` for every number outside its range."""
    errors: dict[str, str] = {}
    for (section_name, name), field in OPTION_FIELDS.items():
        values = form.get(section_name, {}) if section_name else form
        value = values.get(name)
        if value is None and (section_name, name) in OPTIONAL_NUMBERS:
            continue
        if not field.accepts(value):
            errors[name] = f"{name}_range"
    return errors


OPTIONAL_NUMBERS = {
    ("equalization", "float_voltage"),
    *(("thresholds", name) for name in THRESHOLD_FIELDS),
}


def detection_time(options: Mapping[str, Any]) -> tuple[float, float]:
    """Worst case, in s, from a runaway's start to its confirmation, and to the trip: it is
    seen at the next cycle and confirmed over ``confirm_cycles`` cycles."""
    interval = float(options.get(OPT_POLL_INTERVAL, DEFAULT_POLL_INTERVAL))
    confirm = int(RUNAWAY_SCHEMA(dict(options.get("runaway", {})))["confirm_cycles"])
    delay = float(options.get("trip", {}).get("pre_trip_delay", 0.0))
    return confirm * interval, confirm * interval + delay


def _number(low: float, high: float, step: float = 1, unit: str | None = None) -> NumberSelector:
    config = NumberSelectorConfig(min=low, max=high, step=step, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


def _select(options: list[str], key: str) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(options=options, translation_key=key, mode=SelectSelectorMode.DROPDOWN)
    )


SERIAL_SETTINGS = {
    vol.Required(CONF_BAUDRATE, default=str(DEFAULT_BAUDRATE)): SelectSelector(
        SelectSelectorConfig(options=[str(b) for b in BAUD_RATES], mode=SelectSelectorMode.DROPDOWN)
    ),
    vol.Required(CONF_PARITY, default="none"): _select(list(PARITY_CODES), "parity"),
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


def _connection_schema(kind: str, ports: list[SelectOptionDict]) -> vol.Schema:
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
                vol.Required(CONF_FRAMING, default=FRAMING_TCP): _select(
                    [FRAMING_TCP, FRAMING_RTU], "framing"
                ),
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
    return not errors


def parse_block_counts(text: str | None, strings: int, modules: int | None) -> list[int]:
    """ "32, 31" → [32, 31]; empty → [] (split evenly). ValueError when it does not fit: one
    positive count per string, adding up to the modules found (when that is known)."""
    if not text or not text.strip():
        return []
    counts = [int(part) for part in re.split(r"[,\s;]+", text.strip()) if part]
    if len(counts) != strings or min(counts) < 1:
        raise ValueError("one positive count per string")
    if modules is not None and sum(counts) != modules:
        raise ValueError("the counts must add up to the modules found")
    return counts


def _connection_data(kind: str, user_input: dict[str, Any]) -> dict[str, Any]:
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


class BacsConfigFlow(ConfigFlow, domain=DOMAIN):
    VERSION = 2
    MINOR_VERSION = 1

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._summary: bus_helpers.ScanSummary | None = None
        self._usb_name = ""

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry[Any]) -> BacsOptionsFlow:
        return BacsOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        return self.async_show_menu(step_id="user", menu_options=[KIND_SERIAL, KIND_TCP, KIND_SIM])

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
            _connection_schema(kind, ports), user_input or {}
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
                vol.Required(OPT_CHEMISTRY, default=Chemistry.VRLA.value): _select(
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
                _connection_schema(kind, ports), suggested
            ),
            errors=errors,
            description_placeholders=placeholders,
        )


def _relay_choices(entry: ConfigEntry[Any]) -> list[str]:
    choices = [TRIP_NONE, TRIP_AUTO]
    runtime = getattr(entry, "runtime_data", None)
    if runtime is not None:
        choices += [str(ref) for ref in sorted(runtime.coordinator.index.relays, key=str)]
    current = _current_relay(entry.options)
    if current not in choices:
        choices.append(current)
    return choices


def _current_relay(options: Mapping[str, Any]) -> str:
    trip = options.get("trip", {})
    if trip.get("breakers"):
        return str(trip["breakers"][0]["relay"])
    return TRIP_AUTO if trip.get("auto") else TRIP_NONE


def _form_defaults(options: dict[str, Any]) -> dict[str, Any]:
    chemistry = Chemistry(options.get(OPT_CHEMISTRY, Chemistry.VRLA.value))
    thresholds = thresholds_for(chemistry, options.get("thresholds") or None)
    eq = options.get("equalization", {})
    trip = options.get("trip", {})
    breaker = (trip.get("breakers") or [{}])[0]
    values: dict[str, Any] = {
        OPT_POLL_INTERVAL: options.get(OPT_POLL_INTERVAL, DEFAULT_POLL_INTERVAL),
        OPT_STRING_COUNT: options.get(OPT_STRING_COUNT, 1),
        OPT_BLOCK_COUNTS: ", ".join(str(c) for c in options.get(OPT_BLOCK_COUNTS, [])),
        OPT_CAPACITY: options.get(OPT_CAPACITY, 100.0),
        OPT_CHEMISTRY: chemistry.value,
        "latch_alarms": options.get("latch_alarms", True),
        "equalization": {
            "enabled": eq.get("enabled", True),
            "target": eq.get("target", TargetMode.STRING_SHARE.value),
            "float_voltage_per_cell": eq.get("float_voltage_per_cell", 2.27),
        },
        "thresholds": {
            name: _shown(group, getattr(getattr(thresholds, group), bound))
            for name, (group, bound, _field) in THRESHOLD_FIELDS.items()
        },
        "trip": {
            "relay": _current_relay(options),
            "channel": breaker.get("channel", 1),
            "input": breaker.get("input", 1),
            "pre_trip_delay": trip.get("pre_trip_delay", 0.0),
            "lost_bus_policy": trip.get("lost_bus_policy", LostBusPolicy.HOLD.value),
        },
    }
    if eq.get("float_voltage") is not None:
        values["equalization"]["float_voltage"] = eq["float_voltage"]
    return values


def _shown(group: str, value: float | None) -> float | None:
    """A stored threshold as the form shows it (a resistance ratio as % of its baseline)."""
    if value is None or group not in PERCENT_OF_BASELINE:
        return value
    return round(value * 100, 1)


def _stored(group: str, value: float) -> float:
    return value / 100 if group in PERCENT_OF_BASELINE else value


def options_from_form(form: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """The bacs_core configuration dict from the options form (thresholds only where they
    differ from the chemistry's defaults, so a chemistry change brings its own)."""
    chemistry = Chemistry(form[OPT_CHEMISTRY])
    defaults = thresholds_for(chemistry)
    thresholds: dict[str, dict[str, float]] = {}
    for name, (group, bound, _field) in THRESHOLD_FIELDS.items():
        value = form["thresholds"].get(name)
        default = getattr(getattr(defaults, group), bound)
        if value is not None and value != _shown(group, default):
            thresholds.setdefault(group, {})[bound] = _stored(group, float(value))
    eq_form = form["equalization"]
    equalization: dict[str, Any] = {
        "enabled": bool(eq_form["enabled"]),
        "target": eq_form["target"],
        "float_voltage_per_cell": float(eq_form["float_voltage_per_cell"]),
    }
    if eq_form.get("float_voltage") is not None:
        equalization["float_voltage"] = float(eq_form["float_voltage"])
    trip_form = form["trip"]
    trip: dict[str, Any] = {
        "auto": trip_form["relay"] == TRIP_AUTO,
        "pre_trip_delay": float(trip_form["pre_trip_delay"]),
        "lost_bus_policy": trip_form["lost_bus_policy"],
    }
    if trip_form["relay"] not in (TRIP_AUTO, TRIP_NONE):
        trip["breakers"] = [
            {
                "relay": trip_form["relay"],
                "channel": int(trip_form["channel"]),
                "input": int(trip_form["input"]),
            }
        ]
    options = {
        key: value
        for key, value in previous.items()
        if key not in ("thresholds", "equalization", "trip")
    }
    options.update(
        {
            OPT_POLL_INTERVAL: float(form[OPT_POLL_INTERVAL]),
            OPT_STRING_COUNT: int(form[OPT_STRING_COUNT]),
            OPT_CAPACITY: float(form[OPT_CAPACITY]),
            OPT_CHEMISTRY: chemistry.value,
            "latch_alarms": bool(form["latch_alarms"]),
            "equalization": equalization,
            "trip": trip,
        }
    )
    if thresholds:
        options["thresholds"] = thresholds
    return options


def _options_schema(relays: list[str]) -> vol.Schema:
    def number(section_name: str, name: str) -> NumberSelector:
        return OPTION_FIELDS[(section_name, name)].selector()

    def required(section_name: str, names: list[str]) -> dict[Any, Any]:
        return {vol.Required(name): number(section_name, name) for name in names}

    return vol.Schema(
        {
            vol.Required(OPT_POLL_INTERVAL): number("", OPT_POLL_INTERVAL),
            vol.Required(OPT_STRING_COUNT): number("", OPT_STRING_COUNT),
            vol.Optional(OPT_BLOCK_COUNTS): TextSelector(),
            vol.Required(OPT_CAPACITY): number("", OPT_CAPACITY),
            vol.Required(OPT_CHEMISTRY): _select([c.value for c in Chemistry], "chemistry"),
            vol.Required("latch_alarms"): BooleanSelector(),
            vol.Required("equalization"): section(
                vol.Schema(
                    {
                        vol.Required("enabled"): BooleanSelector(),
                        vol.Required("target"): _select([t.value for t in TargetMode], "target"),
                        **required("equalization", ["float_voltage_per_cell"]),
                        vol.Optional("float_voltage"): number("equalization", "float_voltage"),
                    }
                ),
                {"collapsed": False},
            ),
            vol.Required("thresholds"): section(
                vol.Schema(
                    {vol.Optional(name): number("thresholds", name) for name in THRESHOLD_FIELDS}
                ),
                {"collapsed": True},
            ),
            vol.Required("trip"): section(
                vol.Schema(
                    {
                        vol.Required("relay"): SelectSelector(
                            SelectSelectorConfig(
                                options=relays,
                                translation_key="trip_relay",
                                mode=SelectSelectorMode.DROPDOWN,
                            )
                        ),
                        **required("trip", ["channel", "input", "pre_trip_delay"]),
                        vol.Required("lost_bus_policy"): _select(
                            [p.value for p in LostBusPolicy], "lost_bus_policy"
                        ),
                    }
                ),
                {"collapsed": False},
            ),
        }
    )


class BacsOptionsFlow(OptionsFlow):
    """The manager's configuration, validated by bacs_core's own schema."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self.config_entry
        errors: dict[str, str] = {}
        placeholders = {"error": "", **range_placeholders()}
        shown: Mapping[str, Any] = entry.options
        if user_input is not None:
            errors = range_errors(user_input)
        if user_input is not None and not errors:
            options = options_from_form(user_input, dict(entry.options))
            shown = options
            options.pop(OPT_BLOCK_COUNTS, None)
            runtime = getattr(entry, "runtime_data", None)
            modules = len(runtime.coordinator.index.modules) if runtime is not None else None
            try:
                counts = parse_block_counts(
                    user_input.get(OPT_BLOCK_COUNTS), options[OPT_STRING_COUNT], modules
                )
            except ValueError:
                errors[OPT_BLOCK_COUNTS] = "block_counts_invalid"
            else:
                if counts:
                    options[OPT_BLOCK_COUNTS] = counts
                try:
                    validate_config(
                        {**options, "buses": [{"id": BUS_ID, "url": entry.data[CONF_URL]}]}
                    )
                except ConfigError as err:
                    errors["base"] = "invalid_config"
                    placeholders["error"] = str(err)
                else:
                    return self.async_create_entry(data=options)
        detection, trip = detection_time(shown)
        placeholders["detection"] = f"{detection:g}"
        placeholders["trip_time"] = f"{trip:g}"
        placeholders["poll_interval"] = f"{float(shown.get(OPT_POLL_INTERVAL, 10.0)):g}"
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                _options_schema(_relay_choices(entry)),
                user_input or _form_defaults(dict(entry.options)),
            ),
            errors=errors,
            description_placeholders=placeholders,
        )
