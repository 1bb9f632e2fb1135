"""Fixtures: the integration against the in-process simulator (sim://, no sockets)."""

# PHCC ships its own testing_config/custom_components package; importing ours first makes
# `custom_components.bacs` resolve to this repository's integration.
import custom_components  # noqa: F401, I001

from collections.abc import AsyncGenerator
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bacs.const import DOMAIN

# speed=0: the simulated room stands still, so values are deterministic for a seed.
SIM_URL = "sim://test?strings=2&blocks=4&speed=0&settle_days=0&seed=3"
SIM_DATA = {"kind": "simulator", "name": "test", "strings": 2, "blocks": 4, "url": SIM_URL}
OPTIONS = {"string_count": 2, "poll_interval": 3600.0, "trip": {"auto": True}}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: Any) -> None:
    """Load custom_components/bacs in every test."""


def make_entry(
    data: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    unique_id: str = "sim:test",
) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="BACS test",
        unique_id=unique_id,
        data=data or SIM_DATA,
        options=OPTIONS if options is None else options,
        version=1,
        minor_version=1,
    )


async def setup(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
async def loaded_entry(hass: HomeAssistant) -> AsyncGenerator[MockConfigEntry]:
    entry = await setup(hass, make_entry())
    yield entry
    if entry.state.recoverable:
        await hass.config_entries.async_unload(entry.entry_id)


async def cycle(hass: HomeAssistant, entry: MockConfigEntry, n: int = 1) -> None:
    """Run manager poll cycles now (the loop itself sleeps for the poll interval)."""
    for _ in range(n):
        await entry.runtime_data.manager.poll_once()
    await hass.async_block_till_done()


def room(entry: MockConfigEntry) -> Any:
    """The simulated room behind a sim:// entry (for fault injection)."""
    return entry.runtime_data.transport.room
