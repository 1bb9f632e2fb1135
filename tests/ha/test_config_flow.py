"""Every config-flow path: the connection menu, test before create, errors and recovery,
USB discovery, reconfigure and the options flow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_USB, SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.usb import UsbServiceInfo
from serial.tools.list_ports_common import ListPortInfo

from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Room, RoomConfig
from bacs_core.snapshot import TripScope
from custom_components.bacs import bus as bus_helpers
from custom_components.bacs.const import DOMAIN

from .conftest import OPTIONS, SIM_DATA, make_entry, setup

TRANSLATIONS = json.loads(
    (Path(__file__).parents[2] / "custom_components/bacs/translations/en.json").read_text()
)

pytestmark = pytest.mark.usefixtures("mock_ports")


def sim_transport(devices: bool = True) -> LoopbackTransport:
    room = Room(RoomConfig(strings=2, blocks=4, settle_days=0))
    if not devices:
        room.buses[0].devices.clear()
    return LoopbackTransport(room)


@pytest.fixture
def mock_ports(tmp_path: Path) -> Iterator[list[ListPortInfo]]:
    """One FTDI adapter in the port list (pyserial's enumeration is the host's, not ours)."""
    port = ListPortInfo("/dev/ttyUSB7", skip_link_detection=True)
    port.vid, port.pid = 0x0403, 0x6001
    port.manufacturer = "FTDI"
    ports = [port, ListPortInfo("/dev/ttyS0", skip_link_detection=True)]
    with patch("serial.tools.list_ports.comports", return_value=ports):
        yield ports


@pytest.fixture
def serial_on_sim() -> Iterator[None]:
    """A serial URL served by the in-process simulator (a real scan over a pty of 247 units
    would cost 25 s of timeouts)."""
    real = bus_helpers.make_transport

    def make(url: str) -> Any:
        return sim_transport() if url.startswith("serial://") else real(url)

    with patch.object(bus_helpers, "make_transport", side_effect=make):
        yield


async def _menu(hass: HomeAssistant, choice: str) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["serial", "tcp", "generex", "remote", "simulator"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": choice}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == choice
    return result


def _suggested(result: dict[str, Any]) -> dict[str, Any]:
    return {
        str(k): (k.description or {}).get("suggested_value", k.default())
        if callable(k.default)
        else (k.description or {}).get("suggested_value")
        for k in result["data_schema"].schema
    }


async def _finish(hass: HomeAssistant, result: dict[str, Any], **strings: Any) -> dict[str, Any]:
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "strings"
    form = {
        "name": "UPS room",
        "string_count": 2,
        "capacity_ah": 150,
        "chemistry": "vrla",
        "auto_trip": True,
    }
    return await hass.config_entries.flow.async_configure(result["flow_id"], form | strings)


async def test_simulator_creates_entry(hass: HomeAssistant) -> None:
    result = await _menu(hass, "simulator")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "demo", "strings": 2, "blocks": 4}
    )
    assert result["description_placeholders"] == {
        "modules": "8",
        "current_sensors": "2",
        "relays": "1",
        "environment": "1",
        "per_string": "4",
    }
    assert _suggested(result)["name"] == "Simulator demo"
    result = await _finish(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "UPS room"
    entry = result["result"]
    assert entry.data["url"].startswith("sim://demo?strings=2&blocks=4&speed=1&seed=")
    assert entry.options == {
        "string_count": 2,
        "capacity_ah": 150.0,
        "chemistry": "vrla",
        "poll_interval": 10.0,
        "trip": {"auto": True},
    }
    await hass.async_block_till_done()
    assert entry.runtime_data.manager.snapshot is not None
    # Known by its hardware (the relay module's serial), not by its connection.
    relay = entry.runtime_data.coordinator.index.relays
    assert entry.unique_id == f"relay-{next(iter(relay.values())).info.serial}"
    # Entities are named after the name given.
    assert hass.states.get("sensor.ups_room_status") is not None
    # The same bus cannot be added twice.
    result = await _menu(hass, "simulator")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "demo", "strings": 1, "blocks": 2}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_simulator_name_is_checked(hass: HomeAssistant) -> None:
    result = await _menu(hass, "simulator")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "my room!", "strings": 1, "blocks": 2}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"name": "invalid_name"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "my-room", "strings": 1, "blocks": 2}
    )
    assert result["step_id"] == "strings"


async def test_strings_of_unequal_length(hass: HomeAssistant) -> None:
    result = await _menu(hass, "simulator")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "uneven", "strings": 2, "blocks": 4}
    )
    for bad in ("4", "5, x", "5, 4", "8, 0"):  # one count per string, adding up to 8 modules
        result = await _finish(hass, result, block_counts=bad)
        assert result["type"] is FlowResultType.FORM, bad
        assert result["errors"] == {"block_counts": "block_counts_invalid"}
    result = await _finish(hass, result, block_counts="5 3")
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.options["block_counts"] == [5, 3]
    await hass.async_block_till_done()
    snap = entry.runtime_data.manager.snapshot
    assert [len(s.modules) for s in snap.strings] == [5, 3]
    # The options change it (and reload: the blocks' devices change their names).
    result = await hass.config_entries.options.async_init(entry.entry_id)
    values = {
        str(k): (k.description or {}).get("suggested_value") for k in result["data_schema"].schema
    }
    assert values["block_counts"] == "5, 3"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], _options_form(block_counts="6, 3")
    )
    assert result["errors"] == {"block_counts": "block_counts_invalid"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], _options_form(block_counts="2,6")
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    snap = entry.runtime_data.manager.snapshot
    assert [len(s.modules) for s in snap.strings] == [2, 6]
    result = await hass.config_entries.options.async_init(entry.entry_id)
    await hass.config_entries.options.async_configure(result["flow_id"], _options_form())
    await hass.async_block_till_done()
    assert "block_counts" not in entry.options  # empty: split evenly again
    assert [len(s.modules) for s in entry.runtime_data.manager.snapshot.strings] == [4, 4]
    await hass.config_entries.async_unload(entry.entry_id)


async def test_no_devices_found_then_recover(hass: HomeAssistant) -> None:
    result = await _menu(hass, "simulator")
    with patch.object(bus_helpers, "make_transport", return_value=sim_transport(False)):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"name": "empty", "strings": 1, "blocks": 1}
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "silent_serial"}
    assert result["description_placeholders"]["units"] == "16"
    with patch.object(bus_helpers, "make_transport", return_value=sim_transport()):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"name": "empty", "strings": 1, "blocks": 1}
        )
    with patch("custom_components.bacs.async_setup_entry", return_value=True):
        result = await _finish(hass, result, auto_trip=False)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].options["trip"] == {"auto": False}


async def test_serial_missing_port_then_success(
    hass: HomeAssistant, tmp_path: Path, serial_on_sim: None
) -> None:
    result = await _menu(hass, "serial")
    options = result["data_schema"].schema["port"].config["options"]
    assert options[0] == {"value": "/dev/ttyUSB7", "label": "/dev/ttyUSB7 (FTDI, 0403:6001)"}
    assert options[1] == {"value": "/dev/ttyS0", "label": "/dev/ttyS0"}
    # A port that does not exist: the real probe fails.
    with patch.object(bus_helpers, "make_transport", side_effect=bus_helpers.open_transport):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {"port": "/dev/serial/by-id/usb-gone", "baudrate": "19200", "parity": "none"},
        )
    assert result["errors"] == {"base": "cannot_connect"}
    # A device node is stored as its stable by-id link.
    node = tmp_path / "ttyUSB7"
    node.touch()
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-FTDI_FT232R_A50285BI-if00-port0").symlink_to(node)
    with patch.object(bus_helpers, "BY_ID_DIR", by_id):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"port": str(node), "baudrate": "38400", "parity": "even"}
        )
    with patch("custom_components.bacs.async_setup_entry", return_value=True):
        result = await _finish(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    link = str(by_id / "usb-FTDI_FT232R_A50285BI-if00-port0")
    assert result["result"].unique_id.startswith("relay-")
    assert result["result"].data["url"] == f"serial://{link}?baudrate=38400&parity=E"
    assert result["title"] == "UPS room"


async def test_serial_busy_port_names_owner(
    hass: HomeAssistant, busy_port: tuple[str, int]
) -> None:
    path, pid = busy_port
    result = await _menu(hass, "serial")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"port": path, "baudrate": "19200", "parity": "none"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "port_busy"}
    assert result["description_placeholders"]["port"] == path
    assert f"(pid {pid})" in result["description_placeholders"]["owner"]


async def test_tcp_cannot_connect_then_success(hass: HomeAssistant, socket_enabled: None) -> None:
    result = await _menu(hass, "tcp")
    # Nothing listens on port 1 of the loopback: the real pymodbus connect fails.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "tcp_port": 1, "framing": "modbus_tcp"}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    with patch.object(bus_helpers, "make_transport", return_value=sim_transport()) as made:
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {"host": "Gateway.local", "tcp_port": 4001, "framing": "rtu_over_tcp"},
        )
    assert made.call_args.args == ("rtu+tcp://Gateway.local:4001",)
    with patch("custom_components.bacs.async_setup_entry", return_value=True):
        result = await _finish(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id.startswith("relay-")
    assert result["result"].data["host"] == "Gateway.local"
    assert result["title"] == "UPS room"


async def test_bad_url_is_cannot_connect(hass: HomeAssistant) -> None:
    result = await _menu(hass, "tcp")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "bad host", "tcp_port": 502, "framing": "modbus_tcp"}
    )
    assert result["errors"] == {"base": "cannot_connect"}


async def test_scan_error_is_cannot_connect(hass: HomeAssistant) -> None:
    from bacs_core.bus.errors import BusError

    result = await _menu(hass, "simulator")
    with patch.object(bus_helpers, "async_probe", side_effect=BusError("garbled")):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"name": "x", "strings": 1, "blocks": 1}
        )
    assert result["errors"] == {"base": "cannot_connect"}


USB = UsbServiceInfo(
    device="/dev/ttyUSB7",
    vid="0403",
    pid="6001",
    serial_number="A50285BI",
    manufacturer="FTDI",
    description="FT232R USB UART",
)


async def test_usb_discovery(hass: HomeAssistant, serial_on_sim: None) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USB}, data=USB
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "usb_confirm"
    assert result["description_placeholders"]["name"] == "FT232R USB UART"
    with patch.object(bus_helpers, "make_transport", return_value=sim_transport(False)):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"baudrate": "19200", "parity": "none"}
        )
    assert result["errors"] == {"base": "silent_serial"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"baudrate": "9600", "parity": "odd"}
    )
    with patch("custom_components.bacs.async_setup_entry", return_value=True):
        result = await _finish(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].data["url"] == "serial:///dev/ttyUSB7?baudrate=9600&parity=O"
    # Plugged in again: already configured.
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USB}, data=USB
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    taken = {**SIM_DATA, "name": "taken", "url": "sim://taken?strings=1&blocks=2&speed=1"}
    other = make_entry(data=taken, unique_id="relay-1")
    other.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    # Another entry already has this bus.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "taken", "strings": 1, "blocks": 2}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    result = await entry.start_reconfigure_flow(hass)
    with patch.object(bus_helpers, "make_transport", return_value=sim_transport(False)):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"name": "test", "strings": 2, "blocks": 4}
        )
    assert result["errors"] == {"base": "silent_serial"}
    # Unloaded for the probe, set up again on its old bus (empty here, hence a retry).
    assert entry.state is ConfigEntryState.SETUP_RETRY
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "renamed", "strings": 1, "blocks": 3}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    relay = entry.runtime_data.coordinator.index.relays
    assert entry.unique_id == f"relay-{next(iter(relay.values())).info.serial}"
    assert entry.data["url"].startswith("sim://renamed?strings=1&blocks=3")
    assert entry.state.recoverable
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_serial(hass: HomeAssistant, serial_on_sim: None) -> None:
    data = {
        "kind": "serial",
        "port": "/dev/ttyUSB7",
        "baudrate": 19200,
        "parity": "none",
        "url": "serial:///dev/ttyUSB7?baudrate=19200&parity=N",
    }
    entry = make_entry(data=data, unique_id="serial:/dev/ttyUSB7")
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    schema = result["data_schema"]
    suggested = {str(k): k.description["suggested_value"] for k in schema.schema}
    assert suggested == {"port": "/dev/ttyUSB7", "baudrate": "19200", "parity": "none"}
    with patch("custom_components.bacs.async_setup_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"port": "/dev/ttyUSB7", "baudrate": "115200", "parity": "none"}
        )
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["url"] == "serial:///dev/ttyUSB7?baudrate=115200&parity=N"
    assert entry.unique_id.startswith("relay-")


def _options_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "poll_interval": 60,
        "string_count": 2,
        "capacity_ah": 100,
        "chemistry": "vrla",
        "latch_alarms": True,
        "equalization": {"enabled": True, "target": "string_share", "float_voltage_per_cell": 2.27},
        "thresholds": {
            "cell_voltage_alarm_high": 2.40,
            "cell_voltage_warning_high": 2.35,
            "cell_voltage_warning_low": 2.20,
            "cell_voltage_alarm_low": 2.15,
            "temperature_warning_high": 35.0,
            "temperature_alarm_high": 45.0,
        },
        "trip": {
            "relay": "auto",
            "channel": 1,
            "input": 1,
            "pre_trip_delay": 0,
            "scope": "string",
            "lost_bus_policy": "hold",
        },
    }
    for key, value in changes.items():
        if isinstance(value, dict):
            form[key] = form[key] | value
        else:
            form[key] = value
    return form


async def test_options_flow(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    manager = entry.runtime_data.manager
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    relay_selector = result["data_schema"].schema["trip"].schema.schema["relay"]
    assert relay_selector.config["options"] == ["none", "auto", "bus1/11"]
    # bacs_core's own schema refuses a warning above the alarm.
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], _options_form(thresholds={"cell_voltage_warning_high": 2.5})
    )
    assert result["errors"] == {"base": "invalid_config"}
    assert "cell_voltage" in result["description_placeholders"]["error"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        _options_form(
            equalization={"enabled": False, "float_voltage": 13.5},
            thresholds={"temperature_alarm_high": 50.0},
            trip={"relay": "bus1/11", "channel": 2, "input": 2, "pre_trip_delay": 30},
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options["thresholds"] == {"temperature": {"alarm_high": 50.0}}
    assert entry.options["trip"]["breakers"] == [{"relay": "bus1/11", "channel": 2, "input": 2}]
    # Applied live, without a reload.
    assert entry.runtime_data.manager is manager
    assert manager.config.thresholds.temperature.alarm_high == 50.0
    assert manager.config.float_voltage == 13.5
    assert manager.config.trip.pre_trip_delay == 30
    # The form shows what is stored.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    values = {
        str(k): k.description["suggested_value"]
        for k in result["data_schema"].schema["trip"].schema.schema
    }
    assert values["relay"] == "bus1/11"
    assert values["channel"] == 2
    assert values["scope"] == "string"
    # What a runaway trips: its own string (the default) or every string, applied live.
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], _options_form(trip={"relay": "auto", "scope": "all"})
    )
    await hass.async_block_till_done()
    assert entry.options["trip"]["scope"] == "all"
    assert manager.config.trip.scope is TripScope.ALL
    assert (await manager.poll_once()).safety.scope is TripScope.ALL
    result = await hass.config_entries.options.async_init(entry.entry_id)
    values = {
        str(k): k.description["suggested_value"]
        for k in result["data_schema"].schema["trip"].schema.schema
    }
    assert values["scope"] == "all"
    # A new poll interval reloads (the manager's loop reads it once).
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], _options_form(poll_interval=30)
    )
    await hass.async_block_till_done()
    assert entry.runtime_data.manager is not manager
    assert entry.runtime_data.manager.config.poll_interval == 30
    await hass.config_entries.async_unload(entry.entry_id)


async def test_options_keep_a_relay_not_on_the_bus(hass: HomeAssistant) -> None:
    options = {
        "string_count": 2,
        "poll_interval": 60.0,
        "trip": {"breakers": [{"relay": "bus1/99", "channel": 1, "input": 1}]},
    }
    entry = await setup(hass, make_entry(options=options))
    result = await hass.config_entries.options.async_init(entry.entry_id)
    relay_selector = result["data_schema"].schema["trip"].schema.schema["relay"]
    assert relay_selector.config["options"] == ["none", "auto", "bus1/11", "bus1/99"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        _options_form(trip={"relay": "none"}, chemistry="flooded"),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options["trip"] == {
        "auto": False,
        "pre_trip_delay": 0.0,
        "scope": "string",
        "lost_bus_policy": "hold",
    }
    await hass.async_block_till_done()
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
async def silent_gateway(socket_enabled: None) -> Any:
    """A TCP port that accepts connections and never answers (a wrong port, or a serial
    server whose serial side is dead)."""
    import asyncio

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(256):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("framing", ["modbus_tcp", "rtu_over_tcp"])
async def test_silent_gateway_gets_gateway_advice(
    hass: HomeAssistant, silent_gateway: int, framing: str
) -> None:
    """Not baud-rate advice, and after 16 silent units (about 2.4 s), not 247 (37 s)."""
    result = await _menu(hass, "tcp")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"host": "127.0.0.1", "tcp_port": silent_gateway, "framing": framing}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "silent_tcp"}
    assert result["description_placeholders"]["units"] == "16"
    assert result["description_placeholders"]["seconds"] == "2.4"
    text = TRANSLATIONS["config"]["error"]["silent_tcp"]
    assert "baud" not in text
    assert "gateway" in text


def _options(result: dict[str, Any]) -> dict[str, Any]:
    return {str(k): k for k in result["data_schema"].schema}


async def test_options_say_the_range_and_the_unit(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(options={**OPTIONS, "poll_interval": 10}))
    result = await hass.config_entries.options.async_init(entry.entry_id)
    placeholders = result["description_placeholders"]
    # The worst-case detection time for the interval set (2 confirming cycles of 10 s).
    assert placeholders["poll_interval"] == "10"
    assert placeholders["detection"] == "20"
    assert placeholders["poll_interval_range"] == "1 to 60 s"
    assert placeholders["hydrogen_alarm_high_range"] == "0 to 40000 ppm"
    # Every number shows its unit.
    schema = result["data_schema"].schema
    assert schema["poll_interval"].config["unit_of_measurement"] == "s"
    thresholds = schema["thresholds"].schema.schema
    units = {str(k): v.config.get("unit_of_measurement") for k, v in thresholds.items()}
    assert units["hydrogen_alarm_high"] == "ppm"
    assert units["resistance_alarm_high"] == "%"
    assert units["cell_deviation_alarm_high"] == "V"
    assert units["temperature_alarm_high"] == "°C"
    assert all(units.values())
    # Out of range: the error names the range (the poll interval and a threshold at once).
    for interval in (0.5, 3600):
        result = await hass.config_entries.options.async_configure(
            result["flow_id"],
            _options_form(poll_interval=interval, thresholds={"hydrogen_alarm_high": 50000}),
        )
        assert result["errors"] == {
            "poll_interval": "poll_interval_range",
            "hydrogen_alarm_high": "hydrogen_alarm_high_range",
        }
    text = TRANSLATIONS["options"]["error"]["poll_interval_range"]
    assert "{poll_interval_range}" in text
    # The detection time follows the interval the user typed.
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        _options_form(poll_interval=30, thresholds={"cell_voltage_warning_high": 2.5}),
    )
    assert result["errors"] == {"base": "invalid_config"}
    assert result["description_placeholders"]["detection"] == "60"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_options_new_thresholds(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    result = await hass.config_entries.options.async_init(entry.entry_id)
    suggested = {
        str(k): k.description["suggested_value"]
        for k in result["data_schema"].schema["thresholds"].schema.schema
    }
    assert suggested["resistance_alarm_high"] == 150.0  # % of the baseline (ratio 1.5)
    assert suggested["hydrogen_alarm_high"] == 10000.0
    assert suggested["cell_deviation_alarm_low"] == -0.04
    assert suggested["deviation_grace"] == 6.0  # hours (6 h by default)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        _options_form(thresholds={**suggested, "deviation_grace": 200}),
    )
    assert result["errors"] == {"deviation_grace": "deviation_grace_range"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        _options_form(
            thresholds={
                **suggested,
                "resistance_alarm_high": 140,
                "hydrogen_warning_high": 2000,
                "cell_deviation_alarm_high": 0.07,
                "deviation_grace": 1.5,
            }
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options["thresholds"] == {
        "resistance_vs_baseline": {"alarm_high": 1.4},
        "hydrogen": {"warning_high": 2000.0},
        "cell_deviation": {"alarm_high": 0.07},
        "deviation_grace": 5400.0,
    }
    thresholds = entry.runtime_data.manager.config.thresholds
    assert thresholds.deviation_grace == 5400.0
    assert thresholds.resistance_vs_baseline.alarm_high == 1.4
    assert thresholds.hydrogen.warning_high == 2000.0
    assert thresholds.cell_deviation.alarm_high == 0.07
    await hass.config_entries.async_unload(entry.entry_id)


def test_every_range_error_and_placeholder_exists() -> None:
    from custom_components.bacs.options_flow import OPTION_FIELDS, range_placeholders

    placeholders = range_placeholders()
    errors = TRANSLATIONS["options"]["error"]
    for _section, name in OPTION_FIELDS:
        assert errors[f"{name}_range"] == f"Allowed: {{{name}_range}}."
        assert f"{name}_range" in placeholders


async def test_usb_adapter_moved_updates_its_entry(
    hass: HomeAssistant, serial_on_sim: None
) -> None:
    """The same modules behind an adapter that now has another path: the entry follows."""
    summary = await bus_helpers.async_probe("serial:///dev/ttyUSB3?baudrate=19200&parity=N")
    hardware = summary.hardware_id
    assert hardware is not None and hardware.startswith("relay-")
    old = {
        "kind": "serial",
        "port": "/dev/ttyUSB3",
        "baudrate": 19200,
        "parity": "none",
        "url": "serial:///dev/ttyUSB3?baudrate=19200&parity=N",
    }
    entry = make_entry(data=old, unique_id=hardware)
    entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USB}, data=USB
    )
    with patch("custom_components.bacs.async_setup_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"baudrate": "19200", "parity": "none"}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data["port"] == "/dev/ttyUSB7"
    assert entry.data["url"] == "serial:///dev/ttyUSB7?baudrate=19200&parity=N"


async def test_reconfigure_onto_another_entrys_bus(hass: HomeAssistant) -> None:
    """The new connection reaches modules another entry already has: refused after the
    probe, and this entry is set up again on its own bus."""
    entry = await setup(hass, make_entry())
    summary = await bus_helpers.async_probe("sim://other?strings=1&blocks=2&speed=1&seed=7")
    other = make_entry(
        data={**SIM_DATA, "name": "elsewhere", "url": "sim://elsewhere?strings=1&blocks=2"},
        unique_id=summary.hardware_id,
    )
    other.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    with patch.object(
        bus_helpers,
        "make_transport",
        side_effect=lambda url: bus_helpers.open_transport(
            "sim://other?strings=1&blocks=2&speed=1&seed=7"
        ),
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"name": "other", "strings": 1, "blocks": 2}
        )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data == SIM_DATA
    await hass.config_entries.async_unload(entry.entry_id)


async def test_name_is_suggested_and_required(hass: HomeAssistant) -> None:
    taken = {**SIM_DATA, "name": "x", "url": "sim://x?strings=1&blocks=1"}
    make_entry(data=taken, unique_id="relay-1", title="Simulator named").add_to_hass(hass)
    result = await _menu(hass, "simulator")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"name": "named", "strings": 1, "blocks": 2}
    )
    assert _suggested(result)["name"] == "Simulator named 2"  # not the other entry's name
    result = await _finish(hass, result, name="  ")
    assert result["errors"] == {"name": "name_required"}
    with patch("custom_components.bacs.async_setup_entry", return_value=True):
        result = await _finish(hass, result, name="Shelter 4")
    assert result["title"] == "Shelter 4"
