"""The Energy dashboard accepts a string as battery storage: Home Assistant's own validation
(homeassistant.components.energy.validate) with the real recorder and statistics."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .test_history import CHARGED, DISCHARGED, _minutes


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: Any) -> None:
    """The recorder before Home Assistant starts (it must come first), then our integration."""


async def test_the_energy_dashboard_accepts_the_strings(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A battery storage of the Energy dashboard: energy out of the battery from Energy
    discharged, into it from Energy charged. Home Assistant's own validation finds nothing."""
    from homeassistant.components.energy import data as energy_data
    from homeassistant.components.energy import validate
    from homeassistant.util import dt as dt_util
    from pytest_homeassistant_custom_component.components.recorder.common import (
        async_wait_recording_done,
        do_adhoc_statistics,
        get_start_time,
    )

    assert await async_setup_component(hass, "energy", {})
    await _minutes(hass, loaded_entry, freezer, 11)
    await async_wait_recording_done(hass)
    do_adhoc_statistics(hass, start=get_start_time(dt_util.utcnow()))
    await async_wait_recording_done(hass)
    manager = await energy_data.async_get_manager(hass)
    await manager.async_update(
        {
            "energy_sources": [
                {"type": "battery", "stat_energy_from": DISCHARGED, "stat_energy_to": CHARGED}
            ]
        }
    )
    result = (await validate.async_validate(hass)).as_dict()
    assert result["energy_sources"] == [[]], result
