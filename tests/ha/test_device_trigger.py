"""Device triggers: UI automations start from manager events."""

from __future__ import annotations

from homeassistant.components import automation
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_get_device_automations,
    async_mock_service,
)

from custom_components.bacs.const import DOMAIN
from custom_components.bacs.device_trigger import TRIGGERS

from .conftest import HOT_OPTIONS, heat_until_tripped, make_entry, room, setup


def _device(hass: HomeAssistant, ident: str) -> dr.DeviceEntry:
    device = dr.async_get(hass).async_get_device({(DOMAIN, ident)})
    assert device is not None
    return device


async def test_triggers_per_device(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    sim = room(loaded_entry)
    cases = {
        loaded_entry.entry_id: "hub",
        f"{loaded_entry.entry_id}-string-1": "string",
        f"battery_module-{sim.strings[0].modules[0].serial}": "module",
        f"relay-{sim.strings[0].relay.serial}": "other",
    }
    for ident, role in cases.items():
        device = _device(hass, ident)
        triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device.id)
        ours = [t for t in triggers if t["domain"] == DOMAIN]
        assert sorted(t["type"] for t in ours) == sorted(t.value for t in TRIGGERS[role])
        assert all(t["device_id"] == device.id for t in ours)
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    foreign = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other", "x")}
    )
    from custom_components.bacs.device_trigger import async_get_triggers

    assert await async_get_triggers(hass, foreign.id) == []


async def test_automations_fire(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(options=HOT_OPTIONS))
    calls: list[ServiceCall] = async_mock_service(hass, "test", "automation")
    hub = _device(hass, entry.entry_id)
    block = _device(hass, f"battery_module-{room(entry).strings[0].modules[1].serial}")
    quiet = _device(hass, f"battery_module-{room(entry).strings[1].modules[0].serial}")

    def auto(device: dr.DeviceEntry, kind: str, tag: str) -> dict:
        return {
            "trigger": {
                "platform": "device",
                "domain": DOMAIN,
                "device_id": device.id,
                "type": kind,
            },
            "action": {"service": "test.automation", "data": {"tag": tag}},
        }

    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                auto(hub, "runaway_detected", "runaway"),
                auto(hub, "tripped", "tripped"),
                auto(hub, "alarm_raised", "any alarm"),
                auto(block, "alarm_raised", "block alarm"),
                auto(quiet, "alarm_raised", "quiet block"),
            ]
        },
    )
    await heat_until_tripped(hass, entry)
    await hass.async_block_till_done()
    tags = {c.data["tag"] for c in calls}
    assert {"runaway", "tripped", "any alarm", "block alarm"} <= tags
    assert "quiet block" not in tags
    await hass.config_entries.async_unload(entry.entry_id)
