"""The ``ups:`` section of a site file: ``url: nut://HOST[:3493]/UPSNAME``, optional
credentials and the poll interval. Validated by voluptuous (errors carry the field's path)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import voluptuous as vol

NUT_PORT = 3493
_UPS_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # upsd.conf's section names


class NutUrlError(ValueError):
    """A ``nut://`` URL that cannot name one UPS."""


@dataclass(frozen=True, slots=True)
class NutSettings:
    host: str
    ups: str
    port: int = NUT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    interval_s: float = 2.0  # NUT's own upsmon polls every 5 s; 2 s catches a mains loss fast
    timeout_s: float = 5.0

    @property
    def url(self) -> str:
        return f"nut://{self.host}:{self.port}/{self.ups}"


def parse_nut_url(url: str) -> tuple[str, int, str, str | None, str | None]:
    """``nut://[USER[:PASSWORD]@]HOST[:PORT]/UPSNAME`` → host, port, ups, user, password."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "nut":
        raise NutUrlError(f"{url!r}: use nut://HOST[:3493]/UPSNAME")
    if not parts.hostname:
        raise NutUrlError(f"{url!r}: no host")
    try:
        port = parts.port or NUT_PORT
    except ValueError:
        raise NutUrlError(f"{url!r}: the port must be 1 … 65535") from None
    ups = parts.path.strip("/")
    if not ups:
        raise NutUrlError(f"{url!r}: no UPS name (nut://HOST/UPSNAME, as in upsd's ups.conf)")
    if not _UPS_NAME.match(ups):
        raise NutUrlError(f"{url!r}: {ups!r} is not a NUT UPS name")
    if parts.query or parts.fragment:
        raise NutUrlError(f"{url!r}: no ?query or #fragment here")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, ups, user, password


def _nut_url(value: Any) -> str:
    if not isinstance(value, str):
        raise vol.Invalid("expected nut://HOST[:3493]/UPSNAME")
    try:
        parse_nut_url(value)
    except NutUrlError as err:
        raise vol.Invalid(str(err)) from None
    return value


def _seconds(low: float, high: float) -> Any:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise vol.Invalid("expected a number of seconds")
        if not low <= value <= high:
            raise vol.Invalid(f"must be between {low:g} and {high:g} s")
        return float(value)

    return check


UPS_SCHEMA = vol.Schema(
    {
        vol.Required("url"): _nut_url,
        vol.Optional("username"): vol.Any(None, vol.All(str, vol.Length(min=1, max=64))),
        vol.Optional("password"): vol.Any(None, str),
        vol.Optional("password_file"): vol.Any(None, str),  # e.g. a systemd credential
        vol.Optional("interval", default=2.0): _seconds(0.5, 60.0),
        vol.Optional("timeout", default=5.0): _seconds(0.5, 60.0),
    }
)


def ups_settings(data: Any) -> NutSettings:
    """Validate the ``ups:`` section; raises vol.Invalid with the path of the bad field."""
    if not isinstance(data, dict):
        raise vol.Invalid("expected a mapping (url: nut://HOST/UPSNAME, …)")
    v = UPS_SCHEMA(data)
    host, port, ups, url_user, url_password = parse_nut_url(v["url"])
    username = v.get("username") or url_user
    password = v.get("password") if v.get("password") is not None else url_password
    if v.get("password_file"):
        if v.get("password") is not None or url_password is not None:
            raise vol.Invalid("give password or password_file, not both", path=["password_file"])
        try:
            with open(v["password_file"], encoding="utf-8") as f:
                password = f.read().strip()
        except OSError as err:
            raise vol.Invalid(f"cannot read: {err.strerror}", path=["password_file"]) from None
    if password is not None and not username:
        raise vol.Invalid("a password needs a username", path=["username"])
    return NutSettings(
        host=host,
        ups=ups,
        port=port,
        username=username,
        password=password,
        interval_s=v["interval"],
        timeout_s=v["timeout"],
    )
