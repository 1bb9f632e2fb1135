"""Bus URLs: where a battery bus is and how to talk to it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit


class BusUrlError(ValueError):
    """A bus URL that cannot be used; the message says what is wrong."""


class Scheme(StrEnum):
    TCP = "tcp"  # Modbus TCP (MBAP) to a gateway
    RTU_TCP = "rtu+tcp"  # RTU framing over TCP to a serial server
    SERIAL = "serial"  # RS-485 adapter
    SIM = "sim"  # the in-process simulator


_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
MAX_HOST = 253


def check_host(host: str) -> str | None:
    """Why ``host`` cannot be a host name or IP address (None when it can)."""
    if not host:
        return "a host is required"
    if len(host) > MAX_HOST:
        return f"the host name is {len(host)} characters long (at most {MAX_HOST})"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    if not all(_LABEL.match(label) for label in host.rstrip(".").split(".")):
        return f"{host!r} is not a host name or IP address"
    return None


BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
PARITIES = ("N", "E", "O")


@dataclass(frozen=True, slots=True)
class BusUrl:
    scheme: Scheme
    raw: str
    host: str = ""
    port: int = 0
    path: str = ""
    baudrate: int = 19200
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    @property
    def is_serial(self) -> bool:
        return self.scheme is Scheme.SERIAL

    def redacted(self) -> str:
        """For diagnostics: no host names or addresses."""
        if self.scheme in (Scheme.TCP, Scheme.RTU_TCP):
            return f"{self.scheme}://**REDACTED**:{self.port}"
        return self.raw


def short_repr(url: str) -> str:
    """The URL as a message quotes it: short enough for one line."""
    return repr(url if len(url) <= 60 else url[:57] + "...")


def parse_bus_url(url: str) -> BusUrl:
    try:
        parts = urlsplit(url.strip())
    except ValueError as err:  # e.g. "Invalid IPv6 URL" for tcp://[::1
        raise BusUrlError(f"{short_repr(url)}: {err}") from None
    try:
        scheme = Scheme(parts.scheme)
    except ValueError:
        raise BusUrlError(
            f"unsupported bus URL {short_repr(url)}: use tcp://host:port, rtu+tcp://host:port, "
            "serial:///dev/ttyUSB0?baudrate=19200 or sim://demo"
        ) from None
    if scheme is Scheme.SIM:
        return BusUrl(scheme, url)
    if scheme in (Scheme.TCP, Scheme.RTU_TCP):
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise BusUrlError(f"{short_repr(url)}: the port must be a number 1..65535")
        if problem := check_host(parts.hostname or ""):
            raise BusUrlError(f"{short_repr(url)}: {problem}")
        if parts.query or parts.path not in ("", "/"):
            raise BusUrlError(f"{short_repr(url)}: write {scheme}://host:port (no path or options)")
        if port is None:
            port = 502 if scheme is Scheme.TCP else 4001
        return BusUrl(scheme, url, host=parts.hostname or "", port=port)
    if not parts.path or parts.netloc:
        raise BusUrlError(
            f"{short_repr(url)}: write serial:///dev/ttyUSB0 (three slashes, a device path)"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"baudrate", "parity", "stopbits", "bytesize"}
    if unknown:
        raise BusUrlError(f"{short_repr(url)}: unknown option(s) {', '.join(sorted(unknown))}")
    try:
        baudrate = int(query.get("baudrate", "19200"))
        stopbits = int(query.get("stopbits", "1"))
        bytesize = int(query.get("bytesize", "8"))
    except ValueError:
        raise BusUrlError(
            f"{short_repr(url)}: baudrate, stopbits and bytesize are numbers"
        ) from None
    parity = query.get("parity", "N").upper()
    if baudrate not in BAUD_RATES:
        raise BusUrlError(f"{short_repr(url)}: baud rate {baudrate} is not one of {BAUD_RATES}")
    if parity not in PARITIES:
        raise BusUrlError(f"{short_repr(url)}: parity must be N, E or O")
    if stopbits not in (1, 2) or bytesize not in (7, 8):
        raise BusUrlError(f"{short_repr(url)}: stopbits 1 or 2, bytesize 7 or 8")
    return BusUrl(
        scheme,
        url,
        path=parts.path,
        baudrate=baudrate,
        parity=parity,
        stopbits=stopbits,
        bytesize=bytesize,
    )
