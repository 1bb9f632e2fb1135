"""``mqtt://`` and ``mqtts://``: where a remote BACS appliance publishes.

``mqtt://[user[:password]@]broker[:port]/<topic prefix>/<site id>[?ca=/path/ca.pem&insecure=1]``
— the last path level is the site id, the levels before it the appliance's ``topic_prefix``
(``bacs`` by default), so ``mqtt://broker.lan/bacs/shelter-17`` reads what
``bacs run`` publishes under ``bacs/shelter-17/…``. ``mqtts://`` is TLS (port 8883 unless
given), checked against the system's trust store or ``ca``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

SCHEMES = ("mqtt", "mqtts")
_LEVEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class RemoteUrlError(ValueError):
    """A malformed ``mqtt://`` address; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class RemoteAddress:
    host: str
    port: int
    prefix: str  # the appliance's topic_prefix, e.g. "bacs"
    site: str  # its site id, one topic level
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_certs: str | None = None  # None: the system's trust store
    insecure: bool = False  # skip the host name check (do not)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}"

    def url(self) -> str:
        """The address again, without the password (for titles, logs and diagnostics)."""
        user = f"{self.username}@" if self.username else ""
        query = []
        if self.ca_certs:
            query.append(f"ca={self.ca_certs}")
        if self.insecure:
            query.append("insecure=1")
        tail = f"?{'&'.join(query)}" if query else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{user}{self.host}:{self.port}/{self.base}{tail}"


def is_remote_url(url: str) -> bool:
    return url.strip().lower().split("://", 1)[0] in SCHEMES and "://" in url


def remote_url(
    host: str,
    port: int,
    prefix: str,
    site: str,
    *,
    username: str | None = None,
    tls: bool = False,
    ca_certs: str | None = None,
    insecure: bool = False,
) -> str:
    """The URL for these settings (no password: it is kept apart from the URL)."""
    return RemoteAddress(
        host, port, prefix, site, username, None, tls, ca_certs or None, insecure
    ).url()


def parse_remote_url(url: str, *, password: str | None = None) -> RemoteAddress:
    """``password`` (kept out of the URL, e.g. in a config entry's data) wins over one in it."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port_given = parts.port
    except ValueError as err:
        raise RemoteUrlError(f"{url!r}: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise RemoteUrlError(f"{url!r}: use mqtt:// or mqtts://")
    host = parts.hostname
    if not host:
        raise RemoteUrlError(f"{url!r}: no broker host")
    levels = [p for p in parts.path.split("/") if p]
    if len(levels) < 2:
        raise RemoteUrlError(
            f"{url!r}: give the topic prefix and the site id, e.g. mqtt://broker/bacs/site-1"
        )
    for level in levels:
        if not _LEVEL.match(level):
            raise RemoteUrlError(f"{url!r}: {level!r} is not a topic level (letters, digits, - _)")
    query = parse_qs(parts.query)
    unknown = set(query) - {"ca", "insecure"}
    if unknown:
        raise RemoteUrlError(f"{url!r}: unknown option(s) {', '.join(sorted(unknown))}")
    insecure_text = query.get("insecure", ["0"])[-1].lower()
    if insecure_text not in _TRUE | _FALSE:
        raise RemoteUrlError(f"{url!r}: insecure must be 0 or 1")
    tls = scheme == "mqtts"
    ca = query.get("ca", [None])[-1]
    if (ca or insecure_text in _TRUE) and not tls:
        raise RemoteUrlError(f"{url!r}: ca and insecure need mqtts://")
    return RemoteAddress(
        host=host,
        port=port_given or (8883 if tls else 1883),
        prefix="/".join(levels[:-1]),
        site=levels[-1],
        username=unquote(parts.username) if parts.username else None,
        password=password
        if password is not None
        else (unquote(parts.password) if parts.password else None),
        tls=tls,
        ca_certs=ca,
        insecure=insecure_text in _TRUE,
    )
