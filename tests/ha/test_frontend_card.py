"""The battery-room card ships with the integration: served by Home Assistant's HTTP server at
a URL that changes with its content, and loaded by every dashboard as an extra module."""

from __future__ import annotations

import hashlib
from unittest.mock import patch

from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.bacs.card import CARD_FILE, CARD_URL, DATA_CARD_URL, async_register_card
from custom_components.bacs.const import DOMAIN

from .conftest import make_entry, setup

VERSION = hashlib.sha256(CARD_FILE.read_bytes()).hexdigest()[:12]


async def test_the_card_is_served_and_loaded_by_every_dashboard(
    hass: HomeAssistant, hass_client_no_auth: ClientSessionGenerator
) -> None:
    assert await async_setup_component(hass, "frontend", {})
    await setup(hass, make_entry())
    url = f"{CARD_URL}?v={VERSION}"
    assert hass.data[DATA_CARD_URL] == url
    assert url in hass.data[DATA_EXTRA_MODULE_URL].urls
    client = await hass_client_no_auth()  # a module the login page's app loads: no token
    answer = await client.get(url)
    assert answer.status == 200
    assert answer.content_type in ("application/javascript", "text/javascript")
    assert (await answer.read()) == CARD_FILE.read_bytes()
    assert "max-age" in answer.headers.get("Cache-Control", "")  # the version busts it
    # Home Assistant's page for the browser names the module.
    with patch("homeassistant.components.onboarding.async_is_onboarded", return_value=True):
        page = await client.get("/")
    assert page.status == 200
    assert url in await page.text()
    # Only the frontend folder is served, not the integration's code beside it.
    for other in ("card.py", "manifest.json", "frontend/bacs-battery-room-card.js"):
        assert (await client.get(f"/bacs_static/{other}")).status == 404


async def test_registered_once_whatever_the_number_of_entries(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, "frontend", {})
    await setup(hass, make_entry())
    await setup(
        hass,
        make_entry(unique_id="sim:other", entry_id="01JBACSOTHERENTRY000000000"),
    )
    assert hass.data[DATA_EXTRA_MODULE_URL].urls == {f"{CARD_URL}?v={VERSION}"}
    assert await async_register_card(hass) == f"{CARD_URL}?v={VERSION}"  # again: no error
    assert len(hass.config_entries.async_entries(DOMAIN)) == 2


async def test_without_a_frontend_the_card_is_only_served(
    hass: HomeAssistant, hass_client_no_auth: ClientSessionGenerator
) -> None:
    """A headless Home Assistant (no frontend): the integration sets up all the same."""
    await setup(hass, make_entry())
    assert "frontend" not in hass.config.components
    assert DATA_EXTRA_MODULE_URL not in hass.data
    client = await hass_client_no_auth()
    answer = await client.get(hass.data[DATA_CARD_URL])
    assert answer.status == 200
