"""``generex://HOST[:PORT]?unit=1&snmp=161&community=public&string_scale=10``: where a CS141 is.

Every option has a default and a clear error; nothing else is accepted (a typo must not be
silently ignored). The community string is a secret of sorts: :meth:`GenerexUrl.redacted` and
support dumps never show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from .cs141_map import MODBUS_PORT, Cs141Settings


class GenerexUrlError(ValueError):
    """A ``generex://`` URL that cannot be used; the message says what is wrong and how to fix."""


OPTIONS = {
    "unit": "Modbus unit id set in the CS141 web UI (Services → Modbus), default 1",
    "snmp": "SNMP UDP port, default 161; 0 = Modbus only",
    "community": "SNMP read community, default public",
    "string_scale": "raw units per V/A in the Modbus string block: 1, 10 (default), 100, 1000",
    "current_sign": "1 (default: negative = discharge, as the web UI) or -1",
    "index_base": "SNMP table index base: auto (default), 0 or 1",
    "timeout": "seconds per request, default 2",
}


@dataclass(frozen=True, slots=True)
class GenerexUrl:
    host: str
    port: int = MODBUS_PORT
    snmp_port: int = 161
    community: str = "public"
    settings: Cs141Settings = field(default_factory=Cs141Settings)
    timeout: float = 2.0

    @property
    def snmp(self) -> bool:
        return self.snmp_port > 0

    def redacted(self) -> str:
        """For dumps and diagnostics: no host and no community."""
        s = self.settings
        base = "auto" if s.index_base is None else s.index_base
        return (
            f"generex://**REDACTED**:{self.port}?unit={s.unit}&snmp={self.snmp_port}"
            f"&string_scale={s.string_scale}&current_sign={s.current_sign}&index_base={base}"
        )


def _int(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise GenerexUrlError(f"{name}={text!r}: a whole number is expected") from None
    if not low <= value <= high:
        raise GenerexUrlError(f"{name}={value}: must be {low}…{high}")
    return value


def parse_generex_url(url: str) -> GenerexUrl:
    parts = urlsplit(url.strip())
    if parts.scheme != "generex":
        raise GenerexUrlError(f"not a GENEREX URL: {url!r} (generex://HOST[:PORT]?unit=1&snmp=161)")
    if not parts.hostname:
        raise GenerexUrlError(f"{url!r}: the CS141's host name or address is missing")
    try:
        port = parts.port or MODBUS_PORT
    except ValueError:
        raise GenerexUrlError(f"{url!r}: the port must be 1…65535") from None
    if parts.path not in ("", "/"):
        raise GenerexUrlError(f"{url!r}: a GENEREX URL has no path ({parts.path!r})")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        known = ", ".join(OPTIONS)
        raise GenerexUrlError(f"unknown option {unknown[0]!r} in {url!r}; known: {known}")
    one = {k: v[-1] for k, v in query.items()}
    unit = _int("unit", one.get("unit", "1"), 0, 255)
    snmp = _int("snmp", one.get("snmp", "161"), 0, 65535)
    scale = _int("string_scale", one.get("string_scale", "10"), 1, 1000)
    sign = _int("current_sign", one.get("current_sign", "1"), -1, 1)
    base_text = one.get("index_base", "auto")
    base = None if base_text == "auto" else _int("index_base", base_text, 0, 1)
    try:
        timeout = float(one.get("timeout", "2"))
    except ValueError:
        raise GenerexUrlError("timeout: a number of seconds is expected") from None
    if not 0.05 <= timeout <= 60:
        raise GenerexUrlError("timeout must be 0.05…60 s")
    community = one.get("community", "public")
    if not community:
        raise GenerexUrlError("community must not be empty")
    try:
        settings = Cs141Settings(string_scale=scale, current_sign=sign, unit=unit, index_base=base)
    except ValueError as err:
        raise GenerexUrlError(str(err)) from None
    return GenerexUrl(parts.hostname, port, snmp, community, settings, timeout)
