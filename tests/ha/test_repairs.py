"""Repairs: devices that stopped answering; a vanished serial port with its fix flow."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from serial.tools.list_ports_common import ListPortInfo

from bacs_core.bus import open_transport
from bacs_core.sim.room import Fault, FaultKind
from custom_components.bacs import bus as bus_helpers
from custom_components.bacs.const import DOMAIN

from .conftest import SIM_URL, cycle, make_entry, room, setup

GONE = "/dev/serial/by-id/usb-FTDI_gone-if00-port0"
SERIAL = {
    "kind": "serial",
    "port": GONE,
    "baudrate": 19200,
    "parity": "none",
    "url": f"serial://{GONE}?baudrate=19200&parity=N",
}


@pytest.fixture
def serial_on_sim() -> Iterator[None]:
    """Serial URLs served by the simulator; the port's existence is still the real check."""
    real = bus_helpers.make_transport

    def make(url: str) -> Any:
        return open_transport(SIM_URL) if url.startswith("serial://") else real(url)

    with patch.object(bus_helpers, "make_transport", side_effect=make):
        yield


async def test_devices_not_answering(hass: HomeAssistant, loaded_entry: Any) -> None:
    issues = ir.async_get(hass)
    issue_id = f"devices_not_answering_{loaded_entry.entry_id}"
    sim = room(loaded_entry)
    sim.inject(Fault(FaultKind.DEAD, 1, 3))
    await cycle(hass, loaded_entry, 4)
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders == {
        "title": "BACS test",
        "count": "1",
        "devices": "bus1/3",
    }
    assert hass.states.get("sensor.string_1_block_3_voltage").state == "unavailable"
    sim.buses[0].dead.clear()
    await cycle(hass, loaded_entry)
    assert issues.async_get_issue(DOMAIN, issue_id) is None


async def test_many_devices_not_answering(hass: HomeAssistant, loaded_entry: Any) -> None:
    sim = room(loaded_entry)
    for string in (1, 2):
        for block in (1, 2, 3, 4):
            sim.inject(Fault(FaultKind.DEAD, string, block))
    sim.buses[0].dead.update({9, 10, 11})
    await cycle(hass, loaded_entry, 4)
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, f"devices_not_answering_{loaded_entry.entry_id}"
    )
    assert issue.translation_placeholders["count"] == "11"
    assert issue.translation_placeholders["devices"].endswith(" …")


async def test_port_vanishes_at_runtime_and_is_fixed(
    hass: HomeAssistant, serial_on_sim: None
) -> None:
    entry = await setup(hass, make_entry(data=SERIAL, unique_id=f"serial:{GONE}"))
    issues = ir.async_get(hass)
    issue_id = f"port_missing_{entry.entry_id}"
    hardware = entry.unique_id  # the relay module's serial, not the port
    assert hardware == f"relay-{room(entry).strings[0].relay.serial}"
    room(entry).buses[0].faults.vanished_until = 1e12  # unplugged: the node is gone too
    await cycle(hass, entry, 2)
    await hass.async_block_till_done()
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.is_fixable
    # The fix flow: the adapter is back, on another port.
    master, slave = os.openpty()
    new_port = os.ttyname(slave)
    try:
        assert await async_setup_component(hass, "repairs", {})
        flows = hass.data["repairs"]["flow_manager"]
        ports = [ListPortInfo(new_port, skip_link_detection=True)]
        with patch("serial.tools.list_ports.comports", return_value=ports):
            result = await flows.async_init(DOMAIN, data={"issue_id": issue_id})
            assert result["type"] is FlowResultType.FORM
            assert result["step_id"] == "select_port"
            assert result["description_placeholders"] == {"port": GONE}
            with patch.object(bus_helpers, "make_transport", side_effect=open_transport):
                result = await flows.async_configure(result["flow_id"], {"port": "/dev/nope"})
                assert result["errors"] == {"base": "cannot_connect"}
                result = await flows.async_configure(result["flow_id"], {"port": new_port})
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        assert entry.data["port"] == new_port
        assert entry.data["url"] == f"serial://{new_port}?baudrate=19200&parity=N"
        assert entry.unique_id == hardware
        assert entry.state is ConfigEntryState.LOADED
        assert issues.async_get_issue(DOMAIN, issue_id) is None
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        os.close(master)
        os.close(slave)


async def test_port_issue_cleared_when_bus_returns(
    hass: HomeAssistant, serial_on_sim: None
) -> None:
    entry = await setup(hass, make_entry(data=SERIAL, unique_id=f"serial:{GONE}"))
    bus = room(entry).buses[0]
    bus.faults.vanished_until = 1e12
    await cycle(hass, entry, 2)
    await hass.async_block_till_done()
    issue_id = f"port_missing_{entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    bus.faults.vanished_until = -1.0
    import asyncio

    for _ in range(100):
        await cycle(hass, entry)
        if entry.runtime_data.coordinator.index.bus_connected["bus1"]:
            break
        await asyncio.sleep(0.05)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_fix_flow_for_removed_entry(hass: HomeAssistant) -> None:
    from custom_components.bacs.repairs import async_create_fix_flow

    flow = await async_create_fix_flow(hass, "port_missing_x", {"entry_id": "gone"})
    flow.hass = hass
    result = await flow.async_step_init()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_removed"


async def test_sim_entry_has_no_port_issue(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    room(entry).buses[0].faults.vanished_until = 1e12
    await cycle(hass, entry, 2)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"port_missing_{entry.entry_id}") is None
    await hass.config_entries.async_unload(entry.entry_id)
