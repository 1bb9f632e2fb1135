"""The ``mqtt:`` section of a site file: broker, credentials, TLS, topics and commands.

Validated by voluptuous like the manager's own settings, so one site file has one kind of
error message (the field's path) whatever part of it is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol

from ..manager.config import ConfigError

_TOPIC_WORD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64})*$")

COMMANDS = (
    "acknowledge",
    "reset_trip",
    "identify",
    "set_float_voltage",
    "trip",
    "set_equalization",
)

TLS_SCHEMA = vol.Schema(
    {
        vol.Optional("ca_certs"): vol.Any(None, str),  # None: the system's trust store
        vol.Optional("certfile"): vol.Any(None, str),  # client certificate (mutual TLS)
        vol.Optional("keyfile"): vol.Any(None, str),
        vol.Optional("insecure", default=False): bool,  # skip the host name check
    }
)

COMMANDS_SCHEMA = vol.Schema({vol.Optional(c, default=False): bool for c in COMMANDS})

MQTT_SCHEMA = vol.Schema(
    {
        vol.Required("host"): vol.All(str, vol.Length(min=1, max=253)),
        vol.Optional("port"): vol.All(int, vol.Range(1, 65535)),
        vol.Optional("username"): vol.Any(None, str),
        vol.Optional("password"): vol.Any(None, str),
        vol.Optional("password_file"): vol.Any(None, str),
        vol.Optional("client_id"): vol.Any(None, vol.All(str, vol.Length(min=1, max=64))),
        vol.Optional("keepalive", default=30): vol.All(int, vol.Range(5, 3600)),
        vol.Optional("tls", default=False): vol.Any(bool, TLS_SCHEMA),
        vol.Optional("topic_prefix", default="bacs"): vol.Match(
            _TOPIC_PREFIX, msg="letters, digits, - or _ in levels separated by /"
        ),
        vol.Optional("discovery", default=True): bool,
        vol.Optional("discovery_prefix", default="homeassistant"): vol.Match(
            _TOPIC_PREFIX, msg="letters, digits, - or _ in levels separated by /"
        ),
        vol.Optional("commands", default={}): COMMANDS_SCHEMA,
        # The integration's disabled-by-default diagnostics (each block's deviation and shunt
        # current, the poll duration): nine tenths of the traffic, so off unless asked for.
        vol.Optional("diagnostics", default=False): bool,
        # The whole snapshot on <base>/snapshot (retained, QoS 1) for Home Assistant's BACS
        # integration on a remote appliance (bacs_core/remote): off unless asked for.
        vol.Optional("snapshot", default=False): bool,
        # Alarms and trips waiting on disk for the broker; the oldest go first past this.
        vol.Optional("queue_limit", default=100000): vol.All(int, vol.Range(100, 10_000_000)),
    }
)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str | None = None
    keepalive: int = 30
    tls: TlsSettings | None = None
    topic_prefix: str = "bacs"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    commands: frozenset[str] = frozenset()
    diagnostics: bool = False
    snapshot: bool = False
    queue_limit: int = 100000


def site_id(value: Any) -> str:
    """A site's id: one MQTT topic level and part of Home Assistant's identifiers."""
    text = str(value)
    if not _TOPIC_WORD.match(text):
        raise vol.Invalid("letters, digits, - or _ (one MQTT topic level, at most 64)")
    return text


def mqtt_settings(data: dict[str, Any]) -> MqttSettings:
    """Validate the ``mqtt:`` section; raises vol.Invalid with the path of the bad field.

    ``password_file`` is read here (a secret kept out of the site file, e.g. a systemd
    credential); an unreadable file is a configuration error, not a silent empty password."""
    v = MQTT_SCHEMA(data)
    if v.get("password") is not None and v.get("password_file") is not None:
        raise vol.Invalid("give password or password_file, not both", path=["password_file"])
    password = v.get("password")
    if v.get("password_file"):
        try:
            with open(v["password_file"], encoding="utf-8") as f:
                password = f.read().strip()
        except OSError as err:
            raise vol.Invalid(f"cannot read: {err.strerror}", path=["password_file"]) from None
    if password is not None and not v.get("username"):
        raise vol.Invalid("a password needs a username", path=["username"])
    tls_raw = v["tls"]
    tls: TlsSettings | None = None
    if tls_raw is True:
        tls = TlsSettings()
    elif isinstance(tls_raw, dict):
        if tls_raw.get("keyfile") and not tls_raw.get("certfile"):
            raise vol.Invalid("a keyfile needs its certfile", path=["tls", "certfile"])
        tls = TlsSettings(
            tls_raw.get("ca_certs"),
            tls_raw.get("certfile"),
            tls_raw.get("keyfile"),
            tls_raw["insecure"],
        )
    return MqttSettings(
        host=v["host"],
        port=v.get("port") or (8883 if tls else 1883),
        username=v.get("username"),
        password=password,
        client_id=v.get("client_id"),
        keepalive=v["keepalive"],
        tls=tls,
        topic_prefix=v["topic_prefix"],
        discovery=v["discovery"],
        discovery_prefix=v["discovery_prefix"],
        commands=frozenset(c for c in COMMANDS if v["commands"][c]),
        diagnostics=v["diagnostics"],
        snapshot=v["snapshot"],
        queue_limit=v["queue_limit"],
    )


__all__ = ["COMMANDS", "ConfigError", "MqttSettings", "TlsSettings", "mqtt_settings", "site_id"]
