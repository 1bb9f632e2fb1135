"""A damaged Home Assistant store never releases a latched trip: the manager starts with the
trip state unknown and a critical alarm, and a person confirms it with the reset action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant

from bacs_core.snapshot import Severity, TripState
from custom_components.bacs.const import DOMAIN

from .conftest import cycle, make_entry, setup

ENTRY_ID = "01JBACSSTORETEST000000000"
KEY = f"{DOMAIN}.{ENTRY_ID}"


async def _unknown_then_confirmed(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(entry_id=ENTRY_ID))
    await cycle(hass, entry)
    manager = entry.runtime_data.manager
    snap = manager.snapshot
    assert snap is not None
    assert snap.safety.trip_state is TripState.UNKNOWN
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "state_unknown"
    unknown = [a for a in snap.alarms if a.key == "safety:state_unknown"]
    assert unknown and unknown[0].severity is Severity.CRITICAL
    await hass.services.async_call(
        DOMAIN, "reset_breaker", {"config_entry_id": entry.entry_id}, blocking=True
    )
    await cycle(hass, entry)
    assert manager.safety.state is TripState.ARMED
    assert not any(a.key == "safety:state_unknown" for a in manager.snapshot.alarms)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_mistyped_store_starts_unknown(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    hass_storage[KEY] = {"version": 1, "data": {"version": 2, "safety": {"state": 5}}}
    await _unknown_then_confirmed(hass)


async def test_store_that_is_not_an_object_starts_unknown(
    hass: HomeAssistant, hass_storage: dict[str, Any]
) -> None:
    hass_storage[KEY] = {"version": 1, "data": "tripped"}
    await _unknown_then_confirmed(hass)


async def test_corrupt_store_file_set_aside_by_home_assistant_starts_unknown(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Home Assistant renames a corrupt file and answers None, as for no file at all; a file
    that was there is 'unreadable', not 'empty'."""
    hass.config.config_dir = str(tmp_path)
    path = Path(hass.config.path(".storage", KEY))
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"version": 1, "data": {"safety": {"state": "tri\xff')
    await _unknown_then_confirmed(hass)
