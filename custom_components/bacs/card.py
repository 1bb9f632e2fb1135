"""The battery-room card, shipped with the integration: the ES modules in ``frontend/``, served
by Home Assistant's HTTP server and loaded by every dashboard as an extra module, so nobody
installs a second thing (no HACS frontend repository, no Lovelace resource to add by hand).

The URL carries a hash of the folder's modules: a new version of the card is fetched at once
(the card loads its sibling modules with the same version), while an unchanged one stays in
the browser's cache (Home Assistant serves static paths with long cache headers).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Final

from homeassistant.components.http import StaticPathConfig
from homeassistant.core import HomeAssistant
from homeassistant.util.hass_dict import HassKey

_LOGGER = logging.getLogger(__name__)

FRONTEND_DIR: Final = Path(__file__).parent / "frontend"
CARD_FILE: Final = FRONTEND_DIR / "bacs-battery-room-card.js"
URL_BASE: Final = "/bacs_static"
CARD_URL: Final = f"{URL_BASE}/bacs-battery-room-card.js"
DATA_CARD_URL: HassKey[str] = HassKey("bacs_card_url")


def card_version(directory: Path = FRONTEND_DIR) -> str:
    """12 hex digits of a SHA-256 over the folder's modules (blocking: the executor's)."""
    digest = hashlib.sha256()
    for module in sorted(directory.glob("*.js")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


async def async_register_card(hass: HomeAssistant) -> str | None:
    """Serve the card and have the frontend load it; returns the versioned URL it loads.

    Once per Home Assistant run (the integration's ``async_setup``). Without the frontend
    (a headless installation) the file is still served, only nobody is told to load it.
    """
    if DATA_CARD_URL in hass.data:
        return hass.data[DATA_CARD_URL]
    version = await hass.async_add_executor_job(card_version, FRONTEND_DIR)
    await hass.http.async_register_static_paths(
        [StaticPathConfig(URL_BASE, str(FRONTEND_DIR), cache_headers=True)]
    )
    url = f"{CARD_URL}?v={version}"
    hass.data[DATA_CARD_URL] = url
    if "frontend" not in hass.config.components:
        _LOGGER.debug("No frontend loaded: the battery-room card is served at %s only", url)
        return url
    from homeassistant.components.frontend import add_extra_js_url

    add_extra_js_url(hass, url)
    return url
