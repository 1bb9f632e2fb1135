"""Diagnostics for a bug report: the manager's own summary plus the latest snapshot, with
serial numbers and hosts redacted: by key, and wherever else they appear in a text (the entry
title of older entries carries the host or the adapter's USB serial number; messages name
devices)."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime
from enum import Enum
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from bacs_core.bus.url import parse_bus_url
from bacs_core.generex.url import parse_generex_url
from bacs_core.source import is_generex_url, is_remote_url

from .const import CONF_COMMUNITY, CONF_HOST, CONF_PORT_PATH, CONF_SIM_CONTROL, CONF_URL
from .coordinator import BacsConfigEntry

TO_REDACT = {
    CONF_HOST,
    CONF_USERNAME,  # a remote appliance's broker
    CONF_PASSWORD,
    CONF_COMMUNITY,
    CONF_PORT_PATH,
    CONF_SIM_CONTROL,  # a host, like CONF_HOST
    CONF_URL,
    "serial",
    "serial_number",
    "identifiers",
    "title",
    "unique_id",
}
REDACTED = "**REDACTED**"


def _secrets(entry: BacsConfigEntry) -> re.Pattern[str] | None:
    """Every text that identifies the installation: host, port path (a by-id name holds the
    adapter's serial number), the title, the entry's unique id and the devices' serials."""
    texts = {entry.title, entry.unique_id or ""}
    for key in (CONF_HOST, CONF_PORT_PATH, CONF_COMMUNITY, CONF_USERNAME, CONF_PASSWORD):
        value = str(entry.data.get(key) or "")
        texts.update({value, value.rsplit("/", 1)[-1]})
    runtime = getattr(entry, "runtime_data", None)
    if runtime is not None:
        texts.update(str(info.serial) for info in runtime.coordinator.index.infos.values())
    words = sorted((t for t in texts if len(t) >= 3), key=len, reverse=True)
    if not words:
        return None
    return re.compile("|".join(rf"(?<![\w]){re.escape(w)}(?![\w])" for w in words))


def _scrub(value: Any, secrets: re.Pattern[str] | None) -> Any:
    if secrets is None:
        return value
    if isinstance(value, str):
        return secrets.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Snapshots are frozen dataclasses with enums and datetimes: make them JSON-safe."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):  # e.g. the source's capabilities
        return sorted(str(_plain(v)) for v in value)
    return value


def _redacted_url(url: str) -> str:
    """The connection without host, port path or SNMP community."""
    if is_generex_url(url):
        return parse_generex_url(url).redacted()
    if is_remote_url(url):  # broker, user and site of a remote appliance
        return f"{url.split('://', 1)[0]}://**REDACTED**"
    if url.startswith("serial"):
        return "serial://**REDACTED**"
    return parse_bus_url(url).redacted()


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: BacsConfigEntry
) -> dict[str, Any]:
    runtime = entry.runtime_data
    snapshot = runtime.coordinator.data
    diagnostics = {
        "entry": {
            "title": REDACTED,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "bus": _redacted_url(runtime.url),
            "options": dict(entry.options),
        },
        "manager": async_redact_data(runtime.manager.diagnostics(), TO_REDACT),
        "snapshot": async_redact_data(_plain(snapshot), TO_REDACT),
    }
    return dict(_scrub(diagnostics, _secrets(entry)))


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: BacsConfigEntry, device: dr.DeviceEntry
) -> dict[str, Any]:
    """One device: its registry facts and its part of the latest snapshot."""
    from .coordinator import device_identifier

    index = runtime_index = entry.runtime_data.coordinator.index
    part: Any = None
    for ref, info in runtime_index.infos.items():
        if device_identifier(info) in device.identifiers:
            part = (
                index.modules.get(ref)
                or index.sensors.get(ref)
                or index.relays.get(ref)
                or index.environment.get(ref)
            )
            break
    redacted = async_redact_data(
        {
            "device": {
                "name": device.name,
                "model": device.model,
                "sw_version": device.sw_version,
                "serial_number": device.serial_number,
            },
            "snapshot": _plain(part),
        },
        TO_REDACT,
    )
    return dict(_scrub(redacted, _secrets(entry)))
