"""Setup, unload, reload, setup retries, unavailability and recovery, dynamic and stale
devices, all against the simulator."""

from __future__ import annotations

import asyncio
import logging
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from bacs_core.bus.errors import BusError
from bacs_core.manager import Manager
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from custom_components.bacs import async_remove_config_entry_device
from custom_components.bacs import bus as bus_helpers
from custom_components.bacs.const import DOMAIN

from .conftest import OPTIONS, SIM_DATA, SIM_URL, cycle, make_entry, room, setup

SERIAL_GONE = {
    "kind": "serial",
    "port": "/dev/serial/by-id/usb-gone",
    "baudrate": 19200,
    "parity": "none",
    "url": "serial:///dev/serial/by-id/usb-gone?baudrate=19200&parity=N",
}


async def test_setup_unload(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    assert entry.state is ConfigEntryState.LOADED
    transport = entry.runtime_data.transport
    assert transport.connected
    assert hass.states.get("sensor.bacs_test_status").state == "ok"
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert not transport.connected  # the port is free again
    assert hass.states.get("sensor.bacs_test_status").state == STATE_UNAVAILABLE


async def test_reload_keeps_the_trip(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    await hass.services.async_call(
        DOMAIN, "trip_breaker", {"config_entry_id": entry.entry_id, "reason": "test"}, blocking=True
    )
    await cycle(hass, entry)
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "tripped"
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.manager.safety.reason == "manual: test"
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "tripped"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_stop_event_stops_the_manager(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    with patch.object(Manager, "stop", wraps=entry.runtime_data.manager.stop) as stop:
        await hass.async_stop()
    assert stop.called


async def test_busy_port_retries(hass: HomeAssistant, busy_port: tuple[str, int]) -> None:
    path, _pid = busy_port
    data = {**SERIAL_GONE, "port": path, "url": f"serial://{path}?baudrate=19200&parity=N"}
    entry = make_entry(data=data, unique_id=f"serial:{path}")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert f"{path} is busy" in entry.reason


async def test_missing_port_retries_with_repair(hass: HomeAssistant) -> None:
    entry = make_entry(data=SERIAL_GONE, unique_id="serial:/dev/serial/by-id/usb-gone")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"port_missing_{entry.entry_id}")
    assert issue is not None
    assert issue.is_fixable
    assert issue.translation_placeholders == {"title": "BACS test", "port": SERIAL_GONE["port"]}


async def test_no_devices_retries(hass: HomeAssistant) -> None:
    empty = Room(RoomConfig(strings=1, blocks=1, settle_days=0))
    empty.buses[0].devices.clear()
    entry = make_entry()
    entry.add_to_hass(hass)
    with patch.object(bus_helpers, "make_transport", return_value=LoopbackTransport(empty)):
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "No BACS device answers on the bus" in entry.reason


async def test_invalid_options_is_an_error(hass: HomeAssistant) -> None:
    entry = make_entry(options={"poll_interval": 0})
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert "poll_interval" in entry.reason


async def test_first_cycle_failure_retries(hass: HomeAssistant) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    with patch.object(Manager, "poll_once", side_effect=BusError("no answer")):
        await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason == "Polling the battery bus failed: no answer"


async def test_bus_lost_and_back(hass: HomeAssistant, caplog: pytest.LogCaptureFixture) -> None:
    entry = await setup(hass, make_entry())
    caplog.set_level(logging.INFO, logger="custom_components.bacs")
    sim = room(entry)
    sim.inject(Fault(FaultKind.VANISH, 1, value=1e9))
    await cycle(hass, entry, 3)
    assert hass.states.get("sensor.string_1_block_1_voltage").state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.string_1_voltage").state == STATE_UNAVAILABLE
    assert hass.states.get("binary_sensor.relay_module_11_input_3").state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.bacs_test_status").state == "bus_lost"
    sim.buses[0].faults.vanished_until = -1.0
    for _ in range(100):  # the bus client reconnects after its backoff (about 0.5 s)
        await cycle(hass, entry)
        if entry.runtime_data.coordinator.index.bus_connected["bus1"]:
            break
        await asyncio.sleep(0.05)
    await cycle(hass, entry)
    assert hass.states.get("sensor.string_1_block_1_voltage").state != STATE_UNAVAILABLE
    assert hass.states.get("sensor.bacs_test_status").state == "ok"
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("custom_components")]
    assert messages.count("BACS test: the battery bus is lost") == 1
    assert messages.count("BACS test: the battery bus answers again") == 1
    await hass.config_entries.async_unload(entry.entry_id)


async def test_new_module_appears_without_reload(hass: HomeAssistant) -> None:
    data = {**SIM_DATA, "url": SIM_URL + "&fault=dead:1:3"}
    entry = await setup(hass, make_entry(data=data))
    entities = er.async_get(hass)
    sim = room(entry)
    missing = sim.strings[0].modules[2]
    uid = f"battery_module-{missing.serial}-voltage"
    assert entities.async_get_entity_id("sensor", DOMAIN, uid) is None
    sim.buses[0].dead.clear()  # wired in and answering now
    await hass.services.async_call(
        "button", "press", {"entity_id": "button.bacs_test_scan_bus_for_new_devices"}, blocking=True
    )
    await hass.async_block_till_done()
    entity_id = entities.async_get_entity_id("sensor", DOMAIN, uid)
    assert entity_id is not None
    assert hass.states.get(entity_id).state not in (STATE_UNAVAILABLE, "unknown")
    device = dr.async_get(hass).async_get_device({(DOMAIN, f"battery_module-{missing.serial}")})
    assert device is not None
    assert device.serial_number == str(missing.serial)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_stale_devices_can_be_removed(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    devices = dr.async_get(hass)
    gone = room(entry).strings[1].modules[3]
    present = room(entry).strings[0].modules[0]
    # The block is taken out: after a reload the bus no longer has it.
    hass.config_entries.async_update_entry(
        entry, data={**SIM_DATA, "url": SIM_URL + "&fault=dead:2:4"}
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    stale = devices.async_get_device({(DOMAIN, f"battery_module-{gone.serial}")})
    alive = devices.async_get_device({(DOMAIN, f"battery_module-{present.serial}")})
    hub = devices.async_get_device({(DOMAIN, entry.entry_id)})
    string = devices.async_get_device({(DOMAIN, f"{entry.entry_id}-string-1")})
    assert stale and alive and hub and string
    assert await async_remove_config_entry_device(hass, entry, stale)
    assert not await async_remove_config_entry_device(hass, entry, alive)
    assert not await async_remove_config_entry_device(hass, entry, hub)
    assert not await async_remove_config_entry_device(hass, entry, string)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_remove_entry_forgets_state(hass: HomeAssistant, hass_storage: dict) -> None:
    entry = await setup(hass, make_entry(options={**OPTIONS}))
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    key = f"bacs.{entry.entry_id}"
    assert key in hass_storage
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage
