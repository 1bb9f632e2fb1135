"""The logbook: Home Assistant's own, over its recorder, with the integration on the simulator."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial
from http import HTTPStatus
from typing import Any

import pytest
from homeassistant.components.recorder import Recorder, history
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from bacs_core.sim.room import Fault, FaultKind
from bacs_core.snapshot import BalancingState
from custom_components.bacs.const import DOMAIN

from .conftest import cycle, make_entry, room, setup
from .test_alarms import HUB_ALARMS, WARM


@pytest.fixture
async def mock_recorder_before_hass(async_test_recorder: Any) -> None:
    """The recorder's database is prepared before Home Assistant starts (as core's tests do)."""


async def test_logbook_describes_events_and_leaves_balancing_out(
    recorder_mock: Recorder, hass: HomeAssistant, hass_client: Any
) -> None:
    """Home Assistant's logbook over its recorder: our events in words, no shunt on/off."""
    assert await async_setup_component(hass, "logbook", {})
    start = dt_util.utcnow()
    entry = await setup(hass, make_entry(options=WARM))
    await cycle(hass, entry, 3)
    room(entry).inject(Fault(FaultKind.DEAD, 1, 3))
    await cycle(hass, entry, 4)
    # Shunts switching on and off in string 2 (a snapshot as the equalizer makes them).
    coordinator = entry.runtime_data.coordinator
    for on in (True, False, True):
        snap = coordinator.data
        string = snap.strings[1]
        state = BalancingState.ACTIVE if on else BalancingState.IDLE
        modules = tuple(replace(m, balancing=state) for m in string.modules)
        strings = (snap.strings[0], replace(string, modules=modules, balancing_active=on))
        coordinator.handle_snapshot(replace(snap, strings=strings))
        await hass.async_block_till_done()
    await hass.services.async_call(
        DOMAIN, "trip_breaker", {"config_entry_id": entry.entry_id, "reason": "smoke"},
        blocking=True,
    )  # fmt: skip
    await cycle(hass, entry, 2)
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)
    client = await hass_client()
    response = await client.get(
        f"/api/logbook/{start.isoformat()}",
        params={"end_time": (dt_util.utcnow() + timedelta(minutes=1)).isoformat()},
    )
    assert response.status == HTTPStatus.OK
    entries = await response.json()
    described = [e for e in entries if e.get("domain") == DOMAIN]
    messages = [f"{e['name']} {e['message']}" for e in described]
    assert "String 1 block 3 raised an alarm: does not answer" in messages, messages
    trip = "BACS test TRIPPED the battery breaker: breaker trip, every string: manual: smoke"
    assert trip in messages, messages
    # Balancing: the string's sensor, once per change; nothing per block.
    balancing = [e["entity_id"] for e in entries if "balanc" in (e.get("entity_id") or "")]
    assert set(balancing) == {"binary_sensor.string_2_balancing"} and len(balancing) >= 3
    # The alarm list is shown, not recorded.
    recorded = await recorder_mock.async_add_executor_job(
        partial(
            history.get_significant_states,
            hass,
            start,
            None,
            [HUB_ALARMS],
            significant_changes_only=False,
        )
    )
    assert recorded[HUB_ALARMS]
    assert all("alarms" not in s.attributes for s in recorded[HUB_ALARMS])
    assert all("warning_count" in s.attributes for s in recorded[HUB_ALARMS])
    await hass.config_entries.async_unload(entry.entry_id)
