"""The appliance's site file (YAML): the manager's settings, validated by the same schema as
Home Assistant's options, plus the sections of its consumers (``mqtt:``, ``gateway:``) and the
site's name.

A site is either a bus of our modules (active: equalization, trip) or one installed GENEREX
WEB-MANAGER / CS141 named by a ``generex://`` URL (passive: read, never written, our alarm rules
on its readings). For the latter, every setting only an active source can use is refused with
its line, rather than accepted and silently ignored.

Errors name the file, the line and the field (``site.yaml:12: buses[0].url: …``): the YAML
is composed with PyYAML's marks, and the path of a voluptuous error is walked back to its node.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from ..bus.url import Scheme, parse_bus_url
from ..manager.config import CONFIG_SCHEMA, ConfigError, ManagerConfig, validate_config
from ..source import is_generex_url
from . import history_run

SITE_SCHEMA = vol.Schema(
    {
        vol.Optional("name", default="Battery room"): vol.All(str, vol.Length(min=1, max=64)),
        vol.Optional("id"): vol.Match(
            r"^[A-Za-z0-9_-]{1,64}$", msg="letters, digits, - or _ (one MQTT topic level)"
        ),
    }
)


def _mqtt(data: Any) -> Any:
    from ..mqtt.config import mqtt_settings

    if not isinstance(data, dict):
        raise vol.Invalid("expected a mapping (host:, port:, …)")
    settings = mqtt_settings(data)
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        raise vol.Invalid("needs paho-mqtt: pip install 'bacs-core[mqtt]'") from None
    return settings


def _gateway(data: Any) -> Any:
    from ..gateway.site import gateway_section

    return gateway_section(data)


# Consumer sections a site file may hold, each with its validator (vol.Invalid with a path).
SECTIONS: dict[str, Callable[[Any], Any]] = {
    "mqtt": _mqtt,
    "gateway": _gateway,
    # The battery history and its UPS link (bacs_core/cli/history_run.py, docs/appliance.md).
    "history": history_run.history_settings,
    "ups": history_run.ups_section,
}

# Settings a read-only GENEREX source cannot use, and why (the message after the field).
GENEREX_REFUSED = {
    "equalization": "a GENEREX system is read-only: it equalizes (or not) by itself",
    "trip": "a GENEREX system is read-only: nothing here can open its breaker",
    "runaway": "the thermal-runaway trip needs our own modules and relay; a GENEREX system "
    "is read-only",
    "strings": "the CS141 assigns its modules to strings itself",
    "string_count": "the CS141 reports its own strings",
    "block_counts": "the CS141 assigns its modules to strings itself (evenly, ascending id)",
    "capacity_ah": "not used for a GENEREX system (the CS141 keeps its own capacity setting)",
}
GENEREX_BUS_REFUSED = {
    "timeout": "set it in the URL: generex://HOST?timeout=2",
    "retries": "a GENEREX source retries busy answers itself; remove this",
}
GENEREX_MQTT_COMMANDS = frozenset({"acknowledge"})  # what a read-only source can carry out


class SiteConfigError(ConfigError):
    """One line for the person who wrote the file: file, line, field, what is wrong."""


@dataclass(frozen=True, slots=True)
class SiteConfig:
    path: Path
    name: str
    site_id: str
    manager: ManagerConfig
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def generex(self) -> bool:
        """A read-only GENEREX WEB-MANAGER / CS141 (``generex://``), not a bus of ours."""
        return any(is_generex_url(b.url) for b in self.manager.buses)

    @property
    def simulated(self) -> bool:
        return not self.generex and all(
            parse_bus_url(b.url).scheme is Scheme.SIM for b in self.manager.buses
        )


def slug(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_-]+", "-", name.strip().lower()).strip("-")
    return text[:64] or "site"


def load_site(path: str | Path) -> SiteConfig:
    """Read and validate a site file; raises SiteConfigError (one clear line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SiteConfigError(f"{path}: cannot read: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise SiteConfigError(f"{path}: not UTF-8 text ({err.reason})") from None
    return parse_site(text, path)


def parse_site(text: str, path: Path) -> SiteConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise SiteConfigError(f"{path}{line}: not valid YAML: {err.problem or err}") from None
    except yaml.YAMLError as err:
        raise SiteConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or node is None:
        raise SiteConfigError(f"{path}: expected a mapping of settings (buses:, mqtt:, …)")
    _no_duplicates(node, path)

    def fail(where: list[Any], message: str) -> SiteConfigError:
        line = _line(node, where)
        field_path = _path_text(where)
        prefix = f"{path}:{line}" if line else str(path)
        return SiteConfigError(
            f"{prefix}: {field_path}: {message}" if where else f"{prefix}: {message}"
        )

    site_raw = data.pop("site", None) or {}
    try:
        site = SITE_SCHEMA(site_raw)
    except vol.Invalid as err:
        e = _first(err)
        raise fail(["site", *e.path], e.msg) from None
    sections: dict[str, Any] = {}
    for key, validator in SECTIONS.items():
        if key in data:
            raw = data.pop(key)
            try:
                sections[key] = validator(raw)
            except vol.Invalid as err:
                e = _first(err)
                raise fail([key, *e.path], e.msg) from None
    if "storage_path" in data:
        raise fail(["storage_path"], "the appliance keeps its state in --state-dir; remove this")
    _check_generex(data, sections, fail)
    try:
        CONFIG_SCHEMA(dict(data))
    except vol.Invalid as err:
        e = _first(err)
        raise fail(list(e.path), e.msg) from None
    try:
        manager = validate_config(data)
    except ConfigError as err:
        # The checks after the schema name their field first: "trip.breakers: …".
        message = str(err)
        m = re.match(r"^([A-Za-z_][\w.]*): (.*)$", message)
        if m:
            raise fail(m.group(1).split("."), m.group(2)) from None
        raise SiteConfigError(f"{path}: {message}") from None
    return SiteConfig(
        path=path,
        name=site["name"],
        site_id=site.get("id") or slug(site["name"]),
        manager=manager,
        sections=sections,
    )


def _check_generex(
    data: dict[str, Any],
    sections: dict[str, Any],
    fail: Callable[[list[Any], str], SiteConfigError],
) -> None:
    """A ``generex://`` source stands alone and takes no setting only our buses can use."""
    buses = data.get("buses")
    if not isinstance(buses, list):
        return
    urls = [str(b.get("url", "")) if isinstance(b, dict) else "" for b in buses]
    generex = [i for i, url in enumerate(urls) if is_generex_url(url)]
    if not generex:
        return
    if len(buses) > 1:
        raise fail(
            ["buses", 1],
            "a generex:// source is read on its own: one site file per GENEREX system, "
            "not beside other buses",
        )
    for key, why in GENEREX_BUS_REFUSED.items():
        if key in buses[0]:
            raise fail(["buses", 0, key], why)
    for key, why in GENEREX_REFUSED.items():
        if key in data:
            raise fail([key], f"{why}; remove this for a generex:// source")
    mqtt = sections.get("mqtt")
    if mqtt is not None:
        for command in sorted(mqtt.commands - GENEREX_MQTT_COMMANDS):
            raise fail(
                ["mqtt", "commands", command],
                "a GENEREX system is read-only: only acknowledge can be offered",
            )


def _first(err: vol.Invalid) -> vol.Invalid:
    if isinstance(err, vol.MultipleInvalid) and err.errors:
        first: vol.Invalid = err.errors[0]
        return first
    return err


def _path_text(where: list[Any]) -> str:
    out = ""
    for p in where:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _line(node: yaml.Node, where: list[Any]) -> int:
    """The line of the deepest node the path reaches (1-based)."""
    current = node
    line: int | None = None
    for p in where:
        found = None
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if key.value == str(p):
                    found = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(current, yaml.SequenceNode)
            and isinstance(p, int)
            and 0 <= p < len(current.value)
        ):
            found = current.value[p]
            line = found.start_mark.line + 1
        if found is None:
            break
        current = found
    if line is None:
        line = current.start_mark.line + 1
    return line


def _no_duplicates(node: yaml.Node, path: Path) -> None:
    """PyYAML keeps the last of two equal keys silently; a site file says it once."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise SiteConfigError(
                        f"{path}:{line}: {key.value}: given twice (first on line {seen[key.value]})"
                    )
                seen[key.value] = line
            _no_duplicates(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _no_duplicates(item, path)
