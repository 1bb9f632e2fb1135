"""Every action, including refusals, with translated errors; manager events on the HA bus."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.bacs.const import DOMAIN, EVENT_BACS

from .conftest import HOT_OPTIONS, cycle, heat_until_tripped, make_entry, room, setup


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any], **kw: Any) -> Any:
    return await hass.services.async_call(DOMAIN, service, data, blocking=True, **kw)


def _module_device(hass: HomeAssistant, entry: MockConfigEntry, string: int, block: int) -> str:
    serial = room(entry).strings[string - 1].modules[block - 1].serial
    device = dr.async_get(hass).async_get_device({(DOMAIN, f"battery_module-{serial}")})
    assert device is not None
    return device.id


async def test_actions_exist_without_an_entry(hass: HomeAssistant) -> None:
    from homeassistant.setup import async_setup_component

    assert await async_setup_component(hass, DOMAIN, {})
    assert set(hass.services.async_services_for_domain(DOMAIN)) == {
        "acknowledge_alarms",
        "trip_breaker",
        "reset_breaker",
        "measure_resistance",
        "identify",
        "generate_report",
        "export_history",
    }
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "trip_breaker", {"config_entry_id": "nope"})
    assert err.value.translation_key == "entry_not_found"


async def test_entry_not_loaded(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "reset_breaker", {"config_entry_id": entry.entry_id})
    assert err.value.translation_key == "entry_not_loaded"


async def test_trip_and_reset(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(options=HOT_OPTIONS))
    events = async_capture_events(hass, EVENT_BACS)
    # Nothing to reset while armed.
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "reset_breaker", {"config_entry_id": entry.entry_id})
    assert err.value.translation_key == "reset_refused"
    # A real thermal runaway trips the breaker by itself ...
    await heat_until_tripped(hass, entry)
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "tripped"
    types = [e.data["type"] for e in events]
    assert "runaway_detected" in types
    assert "tripped" in types
    raised = next(e for e in events if e.data["type"] == "alarm_raised")
    assert raised.data["device_id"] == _module_device(hass, entry, 1, 2)
    assert raised.data["device"] == "bus1/2"
    # ... and the reset is refused, with the reason, while the block is still hot.
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "reset_breaker", {"config_entry_id": entry.entry_id})
    assert err.value.translation_key == "reset_refused"
    assert "thermal-runaway condition still holds" in str(err.value)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_manual_trip_then_reset(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    entry_id = loaded_entry.entry_id
    await _call(hass, "trip_breaker", {"config_entry_id": entry_id, "reason": "smoke"})
    for _ in range(3):  # the breaker opens in the simulated room, its input reports it
        room(loaded_entry).step(0.5)
        await cycle(hass, loaded_entry)
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "tripped"
    assert hass.states.get("sensor.bacs_test_breaker").state == "open"
    await _call(hass, "reset_breaker", {"config_entry_id": entry_id})
    room(loaded_entry).step(0.5)
    await cycle(hass, loaded_entry, 2)
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "armed"


async def test_trip_without_relay(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(options={"string_count": 2, "poll_interval": 60}))
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "trip_breaker", {"config_entry_id": entry.entry_id})
    assert err.value.translation_key == "no_trip_relay"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_acknowledge(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(options=HOT_OPTIONS))
    await heat_until_tripped(hass, entry)
    snap = entry.runtime_data.manager.snapshot
    key = next(a.key for a in snap.alarms if a.key.endswith(":temperature"))
    with pytest.raises(ServiceValidationError) as err:
        await _call(
            hass, "acknowledge_alarms", {"config_entry_id": entry.entry_id, "alarm_key": "x"}
        )
    assert err.value.translation_key == "unknown_alarm"
    result = await _call(
        hass,
        "acknowledge_alarms",
        {"config_entry_id": entry.entry_id, "alarm_key": key},
        return_response=True,
    )
    assert result == {"acknowledged": 1}
    await _call(hass, "acknowledge_alarms", {"config_entry_id": entry.entry_id})
    await hass.config_entries.async_unload(entry.entry_id)


async def test_measure_and_identify(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    module = _module_device(hass, loaded_entry, 1, 3)
    sim_module = room(loaded_entry).strings[0].modules[2]
    await _call(hass, "measure_resistance", {"device_id": module})
    await _call(hass, "identify", {"device_id": module})
    assert sim_module.identify_until > sim_module.now
    relay = dr.async_get(hass).async_get_device(
        {(DOMAIN, f"relay-{room(loaded_entry).strings[0].relay.serial}")}
    )
    await _call(hass, "identify", {"device_id": relay.id})
    # Only battery modules measure their resistance.
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "measure_resistance", {"device_id": relay.id})
    assert err.value.translation_key == "not_a_module"
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "identify", {"device_id": "nope"})
    assert err.value.translation_key == "device_not_found"
    hub = dr.async_get(hass).async_get_device({(DOMAIN, loaded_entry.entry_id)})
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "identify", {"device_id": hub.id})
    assert err.value.translation_key == "device_not_on_bus"
    # A device of another integration.
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    foreign = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other", "x")}
    )
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "identify", {"device_id": foreign.id})
    assert err.value.translation_key == "device_not_on_bus"
    # The bus is gone: the command fails with a translated error.
    room(loaded_entry).buses[0].faults.vanished_until = 1e12
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "identify", {"device_id": module})
    assert err.value.translation_key == "command_failed"
