"""Diagnostics: the manager's summary and the latest snapshot, serials and hosts redacted."""

from __future__ import annotations

import json

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bacs.const import DOMAIN
from custom_components.bacs.diagnostics import (
    async_get_config_entry_diagnostics,
    async_get_device_diagnostics,
)

from .conftest import SIM_DATA, cycle, make_entry, room, setup


async def test_entry_diagnostics(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    await cycle(hass, loaded_entry)
    diag = await async_get_config_entry_diagnostics(hass, loaded_entry)
    text = json.dumps(diag)  # JSON-safe
    serial = str(room(loaded_entry).strings[0].modules[0].serial)
    assert serial not in text
    assert diag["entry"]["data"]["url"] == "**REDACTED**"
    assert diag["entry"]["options"]["string_count"] == 2
    assert diag["manager"]["config"]["string_count"] == 2
    assert diag["snapshot"]["status"] == "ok"
    module = diag["snapshot"]["strings"][0]["modules"][0]
    assert module["info"]["serial"] == "**REDACTED**"
    assert module["voltage"]["quality"] == "ok"


async def test_tcp_host_is_redacted(hass: HomeAssistant) -> None:
    from unittest.mock import patch

    from bacs_core.bus import open_transport
    from custom_components.bacs import bus as bus_helpers

    data = {
        "kind": "tcp",
        "host": "gw.example",
        "tcp_port": 502,
        "framing": "modbus_tcp",
        "url": "tcp://gw.example:502",
    }
    with patch.object(bus_helpers, "make_transport", return_value=open_transport(SIM_DATA["url"])):
        # Titled as entries made before the name field were.
        entry = make_entry(data=data, unique_id="tcp:gw.example:502", title="BACS gw.example")
        entry = await setup(hass, entry)
    diag = await async_get_config_entry_diagnostics(hass, entry)
    assert "gw.example" not in json.dumps(diag)
    assert diag["entry"]["title"] == "**REDACTED**"
    hub = dr.async_get(hass).async_get_device({(DOMAIN, entry.entry_id)})
    device_diag = await async_get_device_diagnostics(hass, entry, hub)
    assert "gw.example" not in json.dumps(device_diag)
    assert diag["entry"]["bus"] == "tcp://**REDACTED**:502"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_serial_port_is_redacted(hass: HomeAssistant) -> None:
    from unittest.mock import patch

    from bacs_core.bus import open_transport
    from custom_components.bacs import bus as bus_helpers

    data = {
        "kind": "serial",
        "port": "/dev/serial/by-id/usb-FTDI_A50285BI",
        "baudrate": 19200,
        "parity": "none",
        "url": "serial:///dev/serial/by-id/usb-FTDI_A50285BI?baudrate=19200&parity=N",
    }
    with patch.object(bus_helpers, "make_transport", return_value=open_transport(SIM_DATA["url"])):
        entry = make_entry(data=data, unique_id="serial:x", title="BACS usb-FTDI_A50285BI")
        entry = await setup(hass, entry)
    diag = await async_get_config_entry_diagnostics(hass, entry)
    assert "A50285BI" not in json.dumps(diag)
    # Serial numbers are gone wherever they appear, not only under their keys.
    serials = {str(i.serial) for i in entry.runtime_data.coordinator.index.infos.values()}
    text = json.dumps(diag)
    assert not [s for s in serials if s in text]
    assert entry.unique_id not in text
    await hass.config_entries.async_unload(entry.entry_id)


async def test_device_diagnostics(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    module = room(loaded_entry).strings[0].modules[0]
    device = dr.async_get(hass).async_get_device({(DOMAIN, f"battery_module-{module.serial}")})
    diag = await async_get_device_diagnostics(hass, loaded_entry, device)
    assert diag["device"]["serial_number"] == "**REDACTED**"
    assert diag["device"]["model"] == "C20"
    assert diag["snapshot"]["position"] == 1
    assert str(module.serial) not in json.dumps(diag)
    hub = dr.async_get(hass).async_get_device({(DOMAIN, loaded_entry.entry_id)})
    assert (await async_get_device_diagnostics(hass, loaded_entry, hub))["snapshot"] is None
