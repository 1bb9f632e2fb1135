"""The config flow's "BACS appliance on the network" path: the broker, the site, a probe.

The appliance (``bacs run`` with ``mqtt: {snapshot: true}``) runs the manager and the trip
beside the batteries; this entry reads it through its MQTT broker with bacs_core's
RemoteSource (our own paho client, not Home Assistant's MQTT integration: that one may not be
set up, may point at another broker, and bacs_core cannot import it). The probe connects and
waits for the appliance's retained snapshot, so a wrong site, a missing ``snapshot: true`` or
bad credentials are named before anything is created.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import voluptuous as vol
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from bacs_core.manager import validate_config
from bacs_core.remote.source import RemoteSource, RemoteUnavailableError
from bacs_core.remote.url import RemoteUrlError, parse_remote_url, remote_url

from .const import (
    BUS_ID,
    CONF_HOST,
    CONF_KIND,
    CONF_SITE,
    CONF_TCP_PORT,
    CONF_TLS,
    CONF_TOPIC_PREFIX,
    CONF_URL,
    KIND_REMOTE,
)

_LOGGER = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 10.0
_LEVEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64})*$")
# RemoteSource.problem → the form's error key
PROBLEM_ERRORS = {
    "refused": "remote_refused",
    "unreachable": "remote_unreachable",
    "bad_snapshot": "remote_bad_snapshot",
    "no_snapshot": "remote_no_snapshot",
    "no_site": "remote_no_site",
}


def remote_schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST): TextSelector(),
            vol.Required(CONF_TCP_PORT, default=1883): NumberSelector(
                NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
            ),
            vol.Required(CONF_TLS, default=False): BooleanSelector(),
            vol.Optional(CONF_USERNAME): TextSelector(),
            vol.Optional(CONF_PASSWORD): TextSelector(
                TextSelectorConfig(type=TextSelectorType.PASSWORD)
            ),
            vol.Required(CONF_TOPIC_PREFIX, default="bacs"): TextSelector(),
            vol.Required(CONF_SITE): TextSelector(),
        }
    )


def remote_data(user_input: dict[str, Any], errors: dict[str, str]) -> dict[str, Any] | None:
    """entry.data for the form's input (the URL without the password, which is kept apart
    and out of diagnostics), or None with ``errors`` filled."""
    host = str(user_input.get(CONF_HOST, "")).strip()
    prefix = str(user_input.get(CONF_TOPIC_PREFIX, "")).strip().strip("/")
    site = str(user_input.get(CONF_SITE, "")).strip()
    username = str(user_input.get(CONF_USERNAME) or "").strip() or None
    password = user_input.get(CONF_PASSWORD) or None
    if not host:
        errors[CONF_HOST] = "host_required"
    if not _PREFIX.match(prefix):
        errors[CONF_TOPIC_PREFIX] = "invalid_topic"
    if not _LEVEL.match(site):
        errors[CONF_SITE] = "invalid_topic"
    if password and not username:
        errors[CONF_USERNAME] = "username_required"
    if errors:
        return None
    tls = bool(user_input.get(CONF_TLS))
    port = int(user_input[CONF_TCP_PORT])
    url = remote_url(host, port, prefix, site, username=username, tls=tls)
    try:
        parse_remote_url(url)
    except RemoteUrlError:
        errors[CONF_HOST] = "invalid_host"
        return None
    return {
        CONF_KIND: KIND_REMOTE,
        CONF_HOST: host,
        CONF_TCP_PORT: port,
        CONF_TLS: tls,
        CONF_USERNAME: username,
        CONF_PASSWORD: password,
        CONF_TOPIC_PREFIX: prefix,
        CONF_SITE: site,
        CONF_URL: url,
    }


def remote_unique_id(data: dict[str, Any]) -> str:
    """One entry per appliance: its site under its topic prefix (whichever broker)."""
    return f"appliance:{data[CONF_TOPIC_PREFIX]}/{data[CONF_SITE]}"


def open_remote(data: dict[str, Any], **kw: Any) -> RemoteSource:
    url = data[CONF_URL]
    config = validate_config({"buses": [{"id": BUS_ID, "url": url}]})
    return RemoteSource(parse_remote_url(url, password=data.get(CONF_PASSWORD)), config, **kw)


@dataclass(frozen=True, slots=True)
class RemoteSummary:
    """What the probe saw in the appliance's retained snapshot."""

    strings: int
    modules: int
    trip_state: str
    online: bool
    commands: tuple[str, ...]
    discovery: bool  # the appliance also publishes Home Assistant MQTT discovery


async def async_probe_remote(data: dict[str, Any], errors: dict[str, str]) -> RemoteSummary | None:
    """Connect, wait for the snapshot, disconnect; fills ``errors`` on failure."""
    source = open_remote(data, start_timeout=PROBE_TIMEOUT_S)
    try:
        await source.start()
    except RemoteUnavailableError as err:
        _LOGGER.debug("remote appliance probe: %s", err)
        errors["base"] = PROBLEM_ERRORS.get(err.problem or "", "remote_unreachable")
        return None
    try:
        snap = source.snapshot
        assert snap is not None
        return RemoteSummary(
            strings=len(snap.strings),
            modules=sum(len(s.modules) for s in snap.strings),
            trip_state=snap.safety.trip_state.value,
            online=source.appliance_online is not False,
            commands=tuple(sorted(source.commands)),
            discovery=source.discovery_seen,
        )
    finally:
        await source.stop()
