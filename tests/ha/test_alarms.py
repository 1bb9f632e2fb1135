"""Alarms people can read, on the simulator: the alarm texts, problem reasons, repair issues and
notifications for the trip, log lines, balancing per string."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from homeassistant.components import persistent_notification
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bacs_core.sim.room import Fault, FaultKind
from bacs_core.snapshot import TripState
from custom_components.bacs.const import DOMAIN

from .conftest import OPTIONS, cycle, make_entry, room, setup

# Every block of the simulated room (25 °C) is above a 20 °C warning: eight warnings.
WARM = {**OPTIONS, "thresholds": {"temperature": {"warning_high": 20, "on_delay": 0}}}
HUB_ALARMS = "sensor.bacs_test_alarms"


def notifications(hass: HomeAssistant) -> dict[str, Any]:
    return persistent_notification._async_get_or_create_notifications(hass)


async def test_alarm_texts_say_what_where_and_the_value_against_its_limit(
    hass: HomeAssistant,
) -> None:
    entry = await setup(hass, make_entry(options=WARM))
    await cycle(hass, entry)
    string1 = hass.states.get("sensor.string_1_alarms")
    assert string1.state.startswith("String 1 block ")
    assert ": temperature 2" in string1.state and "°C, above the 20.0 °C warning limit" in (
        string1.state
    )
    assert string1.state.endswith("(+3 more)")
    listed = string1.attributes["alarms"]
    assert [a["string"] for a in listed] == [1, 1, 1, 1]
    assert {a["unit"] for a in listed} == {"°C"} and {a["threshold"] for a in listed} == {20.0}
    assert (string1.attributes["warning_count"], string1.attributes["alarm_count"]) == (4, 0)
    hub = hass.states.get(HUB_ALARMS)
    assert hub.state.endswith("(+7 more)") and len(hub.attributes["alarms"]) == 8
    assert hass.states.get("sensor.bacs_test_active_alarms").state == "8"  # counts that match
    # The problem sensors carry their reasons.
    problem = hass.states.get("binary_sensor.string_1_block_2_problem")
    assert problem.state == "on"
    [reason] = problem.attributes["reasons"]
    assert reason.startswith("String 1 block 2: temperature ")
    assert len(hass.states.get("binary_sensor.string_1_problem").attributes["reasons"]) == 4


async def test_no_alarms_reads_as_such(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    await cycle(hass, loaded_entry)
    assert hass.states.get(HUB_ALARMS).state == "No alarms"
    assert hass.states.get("sensor.string_2_alarms").attributes["alarms"] == []


async def test_a_new_kind_of_alarm_appears_without_a_change_here(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The texts are generic over alarm keys: a module that stops answering shows."""
    room(loaded_entry).inject(Fault(FaultKind.DEAD, 2, 3))
    await cycle(hass, loaded_entry, 4)
    text = hass.states.get("sensor.string_2_alarms").state
    assert text == "String 2 block 3 does not answer"


async def test_trip_issue_notification_and_log_until_reset(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    entry_id = loaded_entry.entry_id
    issue_id = f"breaker_tripped_{entry_id}"
    await hass.services.async_call(
        DOMAIN, "trip_breaker", {"config_entry_id": entry_id, "reason": "smoke"}, blocking=True
    )
    for _ in range(3):
        room(loaded_entry).step(0.5)
        await cycle(hass, loaded_entry)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None and issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders["reason"] == "manual: smoke"
    note = notifications(hass)[f"bacs_safety_{entry_id}"]
    assert note["title"] == "Battery breaker tripped"
    assert "Breaker tripped: manual: smoke" in note["message"]
    assert hass.states.get(HUB_ALARMS).state == "Breaker tripped: manual: smoke"
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING" and r.name.startswith("custom_components.bacs")
    ]
    assert "BACS test: Breaker tripped: manual: smoke" in warnings
    # bacs_core's manager logs it too, for any host.
    assert any(
        r.name.startswith("bacs_core") and r.levelname == "WARNING" and "smoke" in r.getMessage()
        for r in caplog.records
    )
    await hass.services.async_call(
        DOMAIN, "reset_breaker", {"config_entry_id": entry_id}, blocking=True
    )
    room(loaded_entry).step(0.5)
    await cycle(hass, loaded_entry, 2)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert f"bacs_safety_{entry_id}" not in notifications(hass)
    assert hass.states.get(HUB_ALARMS).state == "No alarms"


async def test_a_breaker_that_does_not_open_is_critical(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    entry_id = loaded_entry.entry_id
    room(loaded_entry).inject(Fault(FaultKind.BREAKER_STUCK, 1))
    await hass.services.async_call(
        DOMAIN, "trip_breaker", {"config_entry_id": entry_id, "reason": "smoke"}, blocking=True
    )
    for _ in range(6):
        room(loaded_entry).step(0.5)
        await cycle(hass, loaded_entry)
    assert loaded_entry.runtime_data.manager.safety.state is TripState.FAILED
    registry = ir.async_get(hass)
    issue = registry.async_get_issue(DOMAIN, f"breaker_trip_failed_{entry_id}")
    assert issue is not None and issue.severity is ir.IssueSeverity.CRITICAL
    assert registry.async_get_issue(DOMAIN, f"breaker_tripped_{entry_id}") is None
    assert notifications(hass)[f"bacs_safety_{entry_id}"]["title"] == (
        "Battery breaker DID NOT OPEN"
    )
    assert any(
        r.levelname == "ERROR" and "did not report open" in r.getMessage() for r in caplog.records
    )


async def test_an_unknown_trip_state_is_an_issue_until_it_clears(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The state bacs_core reports when its saved trip state was damaged."""
    coordinator = loaded_entry.runtime_data.coordinator
    snap = coordinator.data
    unknown = replace(snap, safety=replace(snap.safety, trip_state=TripState.UNKNOWN))
    coordinator.handle_snapshot(unknown)
    await hass.async_block_till_done()
    issue_id = f"trip_state_unknown_{loaded_entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    assert hass.states.get("sensor.bacs_test_breaker_trip").state == "state_unknown"
    assert hass.states.get(HUB_ALARMS).state.startswith("Breaker trip state unknown")
    coordinator.handle_snapshot(snap)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_balancing_is_one_sensor_per_string_with_its_blocks(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    await cycle(hass, loaded_entry, 3)
    registry = er.async_get(hass)
    balancing = [
        e.entity_id
        for e in er.async_entries_for_config_entry(registry, loaded_entry.entry_id)
        if e.domain == "binary_sensor" and e.unique_id.endswith("-balancing")
    ]
    assert sorted(balancing) == [
        "binary_sensor.string_1_balancing",
        "binary_sensor.string_2_balancing",
    ]
    state = hass.states.get("binary_sensor.string_1_balancing")
    snap = loaded_entry.runtime_data.coordinator.data
    active = [m.position for m in snap.strings[0].modules if m.balancing.value == "active"]
    assert state.attributes["balancing_blocks"] == active
    assert state.state == ("on" if active else "off")


async def test_old_per_block_balancing_sensors_are_removed(hass: HomeAssistant) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    registry = er.async_get(hass)
    old = registry.async_get_or_create(
        "binary_sensor", DOMAIN, "battery_module-1234-balancing", config_entry=entry
    )
    await setup(hass, entry)
    assert registry.async_get(old.entity_id) is None


async def test_alarms_standing_at_start_are_told_once(hass: HomeAssistant) -> None:
    """The manager's first cycles run before the integration's devices exist: their events
    are kept and told once the devices do, each alarm once, on its block's device."""
    from homeassistant.helpers import device_registry as dr
    from pytest_homeassistant_custom_component.common import async_capture_events

    from custom_components.bacs.const import EVENT_BACS

    events = async_capture_events(hass, EVENT_BACS)
    entry = await setup(hass, make_entry(options=WARM))
    await cycle(hass, entry, 2)
    raised = [e.data for e in events if e.data["type"] == "alarm_raised"]
    assert len(raised) == 8
    assert len({r["device"] for r in raised}) == 8  # one per block, never twice
    devices = dr.async_get(hass)
    for r in raised:
        device = devices.async_get(r["device_id"])
        assert device is not None and "block" in (device.name or "")
