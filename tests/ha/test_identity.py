"""Identity by serial number: a module replaced at the same address is a new device (the old
one offered for removal), a re-addressed module keeps its device and entities, entries are
known by their bus's hardware (migrated from the connection string), blocks sort naturally."""

from __future__ import annotations

import logging

import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bacs import async_remove_config_entry_device
from custom_components.bacs.const import DOMAIN

from .conftest import OPTIONS, SIM_DATA, cycle, make_entry, room, setup


async def _rescan(hass: HomeAssistant) -> None:
    await hass.services.async_call(
        "button", "press", {"entity_id": "button.bacs_test_scan_bus_for_new_devices"}, blocking=True
    )
    await hass.async_block_till_done()


def _module_device(hass: HomeAssistant, serial: int) -> dr.DeviceEntry | None:
    return dr.async_get(hass).async_get_device({(DOMAIN, f"battery_module-{serial}")})


async def test_module_replaced_at_the_same_address(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    entities = er.async_get(hass)
    module = room(loaded_entry).strings[0].modules[2]  # string 1 block 3, unit 3
    old_serial = module.serial
    old_device = _module_device(hass, old_serial)
    assert old_device is not None
    old_voltage = entities.async_get_entity_id(
        "sensor", DOMAIN, f"battery_module-{old_serial}-voltage"
    )
    assert old_voltage == "sensor.string_1_block_3_voltage"
    # Another module is wired in at the same address.
    module.serial = 990001
    await _rescan(hass)
    await cycle(hass, loaded_entry)
    new_device = _module_device(hass, 990001)
    assert new_device is not None
    assert new_device.id != old_device.id
    assert new_device.serial_number == "990001"
    new_voltage = entities.async_get_entity_id("sensor", DOMAIN, "battery_module-990001-voltage")
    assert new_voltage is not None
    assert hass.states.get(new_voltage).state not in (STATE_UNAVAILABLE, "unknown")
    # The old module's entities no longer show the new module's values ...
    assert hass.states.get(old_voltage).state == STATE_UNAVAILABLE
    # ... and its device is offered for removal; the new one is not.
    old_device = _module_device(hass, old_serial)
    assert old_device is not None
    assert await async_remove_config_entry_device(hass, loaded_entry, old_device)
    assert not await async_remove_config_entry_device(hass, loaded_entry, new_device)
    dr.async_get(hass).async_update_device(
        old_device.id, remove_config_entry_id=loaded_entry.entry_id
    )
    await hass.async_block_till_done()
    assert _module_device(hass, old_serial) is None
    assert entities.async_get(old_voltage) is None


async def test_module_readdressed_keeps_its_device_and_entities(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    entities = er.async_get(hass)
    bus = room(loaded_entry).buses[0]
    module = room(loaded_entry).strings[0].modules[2]
    device = _module_device(hass, module.serial)
    assert device is not None
    before = {e.entity_id for e in er.async_entries_for_device(entities, device.id)}
    # The module is given another address (3 → 40).
    del bus.devices[module.unit]
    module.unit = 40
    bus.devices[40] = module
    await _rescan(hass)
    await cycle(hass, loaded_entry, 4)  # the old address stops counting as online
    assert _module_device(hass, module.serial).id == device.id
    after = {e.entity_id for e in er.async_entries_for_device(entities, device.id)}
    assert after == before
    index = loaded_entry.runtime_data.coordinator.index
    assert index.by_identity[f"battery_module-{module.serial}"].unit == 40
    voltage = entities.async_get_entity_id(
        "sensor", DOMAIN, f"battery_module-{module.serial}-voltage"
    )
    assert hass.states.get(voltage).state not in (STATE_UNAVAILABLE, "unknown")
    # Its old address, silent now, is not reported as a device that stopped answering.
    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, f"devices_not_answering_{loaded_entry.entry_id}") is None
    # No second entity with the same unique id was attempted.
    assert "already exists" not in caplog.text
    assert "does not generate unique IDs" not in caplog.text
    # Present on the bus: not offered for removal.
    assert not await async_remove_config_entry_device(hass, loaded_entry, device)


async def test_legacy_entry_migrates(hass: HomeAssistant) -> None:
    """Version 1: known by its connection string, a poll interval of an hour."""
    entry = await setup(
        hass,
        make_entry(options={**OPTIONS, "poll_interval": 3600.0}, unique_id="sim:test", version=1),
    )
    assert entry.version == 2
    assert entry.options["poll_interval"] == 60.0
    assert entry.runtime_data.manager.config.poll_interval == 60.0
    assert entry.unique_id == f"relay-{room(entry).strings[0].relay.serial}"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_fast_legacy_poll_interval_is_raised(hass: HomeAssistant) -> None:
    entry = await setup(
        hass, make_entry(options={**OPTIONS, "poll_interval": 0.5}, unique_id="sim:test", version=1)
    )
    assert entry.options["poll_interval"] == 1.0
    await hass.config_entries.async_unload(entry.entry_id)


async def test_hardware_id_already_taken_keeps_the_legacy_id(hass: HomeAssistant) -> None:
    first = await setup(hass, make_entry())
    hardware = first.unique_id
    await hass.config_entries.async_unload(first.entry_id)
    other = make_entry(unique_id="sim:other", version=1)
    other.add_to_hass(hass)
    assert await hass.config_entries.async_setup(other.entry_id)
    await hass.async_block_till_done()
    assert other.unique_id == "sim:other"  # never two entries with one unique id
    assert hardware.startswith("relay-")
    await hass.config_entries.async_unload(other.entry_id)


async def test_newer_entry_version_is_not_guessed(hass: HomeAssistant) -> None:
    from homeassistant.config_entries import ConfigEntryState

    entry = make_entry(version=3)
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR


async def test_blocks_sort_naturally(hass: HomeAssistant) -> None:
    """Home Assistant's device and entity lists sort names as text: positions are padded."""
    url = "sim://long?strings=1&blocks=12&speed=0&settle_days=0&seed=5"
    data = {**SIM_DATA, "name": "long", "strings": 1, "blocks": 12, "url": url}
    entry = await setup(
        hass, make_entry(data=data, options={**OPTIONS, "string_count": 1}, unique_id="sim:long")
    )
    names = [
        d.name
        for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
        if d.model != "Battery string" and d.name and " block " in d.name
    ]
    assert len(names) == 12
    assert sorted(names) == [f"String 1 block {n:02d}" for n in range(1, 13)]
    assert hass.states.get("sensor.string_1_block_02_voltage") is not None
    await hass.config_entries.async_unload(entry.entry_id)
