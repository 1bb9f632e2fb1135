"""The device tree and every entity (snapshot), write-on-change, switches, number, buttons."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from .conftest import (
    HOT_OPTIONS,
    cycle,
    discharge_with_an_aged_block,
    heat_until_tripped,
    make_entry,
    room,
    setup,
)

ENTITY_FIELDS = (
    "unique_id",
    "translation_key",
    "original_device_class",
    "unit_of_measurement",
    "entity_category",
    "disabled_by",
)


def _tree(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """Devices and entities in a form that is the same on every Home Assistant version."""
    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    by_id = {d.id: d for d in dr.async_entries_for_config_entry(devices, entry.entry_id)}
    out: dict[str, Any] = {}
    for device in sorted(by_id.values(), key=lambda d: d.name or ""):
        via = by_id.get(device.via_device_id) if device.via_device_id else None
        ents = {}
        for e in sorted(
            er.async_entries_for_device(entities, device.id, include_disabled_entities=True),
            key=lambda e: e.entity_id,
        ):
            state = hass.states.get(e.entity_id)
            ents[e.entity_id] = {
                **{f: str(getattr(e, f)) if getattr(e, f) else None for f in ENTITY_FIELDS},
                "options": e.options.get("sensor", {}).get("suggested_display_precision"),
                "state": state.state if state else None,
                "attributes": {
                    k: v
                    for k, v in sorted(state.attributes.items())
                    # An image's access token (and its picture's address) is new every run.
                    if k not in ("friendly_name", "icon", "access_token", "entity_picture")
                }
                if state
                else None,
            }
        out[device.name or device.id] = {
            "model": device.model,
            "model_id": device.model_id,
            "manufacturer": device.manufacturer,
            "serial_number": device.serial_number,
            "sw_version": device.sw_version if device.model != "BACS manager" else "(library)",
            "via": via.name if via else None,
            "entities": ents,
        }
    return out


async def test_device_tree_and_entities(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    await cycle(hass, loaded_entry)
    assert _tree(hass, loaded_entry) == snapshot


async def test_writes_only_on_visible_change(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    await cycle(hass, loaded_entry, 20)  # the link-quality window fills up
    entity_id = "sensor.string_1_block_1_voltage"
    written: list[str] = []
    hass.bus.async_listen("state_changed", lambda e: written.append(e.data["entity_id"]))
    await cycle(hass, loaded_entry, 3)  # nothing moves in a room at speed 0
    assert written == [], written
    module = room(loaded_entry).strings[0].modules[0]
    module.voltage += 0.001  # below the display precision (0.01 V)
    await cycle(hass, loaded_entry)
    assert entity_id not in written
    module.voltage += 0.02
    await cycle(hass, loaded_entry)
    assert written.count(entity_id) == 1
    assert float(hass.states.get(entity_id).state) == pytest.approx(module.voltage, abs=0.001)


async def test_block_voltages_attribute_is_unrecorded(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    entities = er.async_get(hass)
    entity_id = "sensor.string_1_block_voltages"
    assert entities.async_get(entity_id).disabled_by is er.RegistryEntryDisabler.INTEGRATION
    entities.async_update_entity(entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    await cycle(hass, loaded_entry)
    state = hass.states.get(entity_id)
    assert state.state == "4"
    assert len(state.attributes["voltages"]) == 4
    platform = hass.data["entity_components"]["sensor"].get_entity(entity_id)
    assert "voltages" in platform._state_info.get("unrecorded_attributes", set()) or (
        "*" in platform._unrecorded_attributes or "all" in platform._unrecorded_attributes
    )


async def test_equalization_switch_and_float_voltage(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    manager = loaded_entry.runtime_data.manager
    assert hass.states.get("switch.bacs_test_equalization").state == "on"
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.bacs_test_equalization"}, blocking=True
    )
    await cycle(hass, loaded_entry)
    assert hass.states.get("switch.bacs_test_equalization").state == "off"
    assert loaded_entry.options["equalization"] == {"enabled": False}
    assert loaded_entry.runtime_data.manager is manager  # applied without a reload
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.bacs_test_equalization"}, blocking=True
    )
    number = "number.bacs_test_target_float_voltage"
    assert float(hass.states.get(number).state) == 13.62  # 2.27 V/cell x 6 cells
    await hass.services.async_call(
        "number", "set_value", {"entity_id": number, "value": 13.5}, blocking=True
    )
    await cycle(hass, loaded_entry)
    assert float(hass.states.get(number).state) == 13.5
    assert manager.config.float_voltage == 13.5
    assert loaded_entry.options["equalization"] == {"enabled": True, "float_voltage": 13.5}


async def test_buttons(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(options=HOT_OPTIONS))
    await heat_until_tripped(hass, entry)
    snap = entry.runtime_data.manager.snapshot
    assert snap is not None
    assert any(not a.acknowledged for a in snap.alarms)
    await hass.services.async_call(
        "button", "press", {"entity_id": "button.bacs_test_acknowledge_alarms"}, blocking=True
    )
    await cycle(hass, entry)
    assert all(a.acknowledged for a in entry.runtime_data.manager.snapshot.alarms)
    assert hass.states.get("binary_sensor.bacs_test_thermal_runaway").state == "on"
    assert hass.states.get("binary_sensor.string_1_block_2_problem").state == "on"
    assert hass.states.get("sensor.bacs_test_status").state == "tripped"
    assert hass.states.get("sensor.bacs_test_active_alarms").state != "0"
    await hass.config_entries.async_unload(entry.entry_id)
    assert hass.states.get("binary_sensor.bacs_test_thermal_runaway").state == STATE_UNAVAILABLE


async def test_weakest_block_in_a_discharge(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    entity_id = "sensor.string_1_weakest_block_in_discharge"
    assert hass.states.get(entity_id).state == STATE_UNKNOWN  # no discharge yet
    await discharge_with_an_aged_block(hass, loaded_entry)
    state = hass.states.get(entity_id)
    assert state.state == "3"
    ranking = state.attributes["ranking"]
    assert ranking[0]["block"] == 3 and ranking[0]["extra_drop_v"] > 0
    assert len(ranking) == 4
