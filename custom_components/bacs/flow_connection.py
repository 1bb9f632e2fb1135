"""The connection forms of the config flow (serial bus, TCP gateway, GENEREX web manager,
simulator): their schemas, the checks a selector cannot express, the entry data and URL they
give, and the bus test (open, scan, close) that comes before anything is created. The
reconfigure step and the port repair use them too."""

from __future__ import annotations

import logging
import re
import zlib
from typing import Any

import voluptuous as vol
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from bacs_core.bus import BusUrlError
from bacs_core.bus.errors import BusConnectionError, BusError, PortBusyError
from bacs_core.bus.url import BAUD_RATES
from bacs_core.generex.url import GenerexUrlError, parse_generex_url
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
    DEFAULT_BAUDRATE,
    FRAMING_RTU,
    FRAMING_TCP,
    KIND_GENEREX,
    KIND_SERIAL,
    KIND_SIM,
    KIND_TCP,
    PARITY_CODES,
)
from .flow_fields import dropdown, number

_LOGGER = logging.getLogger(__name__)

SERIAL_SETTINGS = {
    vol.Required(CONF_BAUDRATE, default=str(DEFAULT_BAUDRATE)): SelectSelector(
        SelectSelectorConfig(options=[str(b) for b in BAUD_RATES], mode=SelectSelectorMode.DROPDOWN)
    ),
    vol.Required(CONF_PARITY, default="none"): dropdown(list(PARITY_CODES), "parity"),
}
# Every placeholder the connection forms' errors may name (a form must give them all).
FLOW_PLACEHOLDERS = {"port": "", "owner": "", "units": "", "seconds": ""}
SIM_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


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


def connection_schema(
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
                vol.Required(CONF_TCP_PORT, default=502): number(1, 65535),
                vol.Required(CONF_FRAMING, default=FRAMING_TCP): dropdown(
                    [FRAMING_TCP, FRAMING_RTU], "framing"
                ),
            }
        )
    if kind == KIND_GENEREX:
        return vol.Schema(
            {
                vol.Required(CONF_HOST): TextSelector(),
                vol.Required(CONF_TCP_PORT, default=502): number(1, 65535),
                vol.Required(CONF_UNIT, default=1): number(0, 255),
                vol.Required(CONF_SNMP_PORT, default=161): number(0, 65535),
                vol.Required(CONF_COMMUNITY, default="public"): TextSelector(),
            }
        )
    return vol.Schema(
        {
            vol.Required(CONF_SIM_NAME, default="demo"): TextSelector(),
            vol.Required(CONF_SIM_STRINGS, default=2): number(1, 16),
            vol.Required(CONF_SIM_BLOCKS, default=16): number(1, 64),
        }
    )


def valid_input(kind: str, user_input: dict[str, Any], errors: dict[str, str]) -> bool:
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
                parse_generex_url(bus_helpers.build_url(connection_data(kind, user_input)))
            except GenerexUrlError:
                errors[CONF_HOST] = "invalid_host"
    return not errors


def connection_data(kind: str, user_input: dict[str, Any]) -> dict[str, Any]:
    """entry.data for the form's input (the serial port as typed: the flow makes it stable)."""
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
