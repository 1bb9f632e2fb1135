"""Faults inside Home Assistant: a restart while tripped, and a damaged store (issue 8).

Each reload builds a new simulated room from the sim:// URL (relays off, breakers closed), as
if the relay module had lost power with Home Assistant: the latch must come back from the
store and be applied to the relays again. A store that cannot be read gives the trip state
"unknown" (shown as state_unknown) and a critical alarm, never "armed".
"""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bacs.const import DOMAIN

from .conftest import cycle, make_entry, room, setup

LATCHED = ("tripped", "failed", "state_unknown")  # Home Assistant shows UNKNOWN so


async def _trip(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await hass.services.async_call(
        DOMAIN, "trip_breaker", {"config_entry_id": entry.entry_id, "reason": "test"}, blocking=True
    )
    for _ in range(3):
        room(entry).step(0.5)
        await cycle(hass, entry)
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "tripped"


def _relay_energised(entry: MockConfigEntry) -> bool:
    return bool(room(entry).string(1).relay.relays[0])


async def test_restart_while_tripped_keeps_the_latch(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry())
    await _trip(hass, entry)
    for _ in range(2):  # two restarts in a row
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        for _ in range(3):
            room(entry).step(0.5)
            await cycle(hass, entry)
        assert hass.states.get("sensor.bacs_test_breaker_trip").state in LATCHED
        assert _relay_energised(entry)  # the trip applied to the new room's relay again
    await hass.config_entries.async_unload(entry.entry_id)


def _damage(hass_storage: dict[str, Any], key: str, how: str) -> None:
    if how == "not_an_object":
        hass_storage[key]["data"] = "garbage"
    elif how == "wrong_types":
        data = hass_storage[key]["data"]
        data["safety"] = {"state": 7, "tripped_at": [], "reason": {"a": 1}}
        data["alarms"] = "none"
    elif how == "safety_missing":
        hass_storage[key]["data"].pop("safety", None)


@pytest.mark.parametrize("how", ["not_an_object", "wrong_types", "safety_missing"])
async def test_damaged_store_never_releases_the_latch(
    hass: HomeAssistant, hass_storage: dict[str, Any], how: str
) -> None:
    entry = await setup(hass, make_entry())
    await _trip(hass, entry)
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    key = f"{DOMAIN}.{entry.entry_id}"
    assert key in hass_storage
    _damage(hass_storage, key, how)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    for _ in range(2):
        room(entry).step(0.5)
        await cycle(hass, entry)
    assert hass.states.get("sensor.bacs_test_breaker_trip").state in LATCHED
    await hass.config_entries.async_unload(entry.entry_id)
