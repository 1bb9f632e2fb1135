"""Bus URLs: where a battery bus is and how to talk to it."""

from __future__ import annotations

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


def parse_bus_url(url: str) -> BusUrl:
    parts = urlsplit(url.strip())
    try:
        scheme = Scheme(parts.scheme)
    except ValueError:
        raise BusUrlError(
            f"unsupported bus URL {url!r}: use tcp://host:port, rtu+tcp://host:port, "
            "serial:///dev/ttyUSB0?baudrate=19200 or sim://demo"
        ) from None
    if scheme is Scheme.SIM:
        return BusUrl(scheme, url)
    if scheme in (Scheme.TCP, Scheme.RTU_TCP):
        try:
            port = parts.port
        except ValueError:
            raise BusUrlError(f"{url!r}: the port must be a number 1..65535") from None
        if not parts.hostname:
            raise BusUrlError(f"{url!r}: a host is required")
        if port is None:
            port = 502 if scheme is Scheme.TCP else 4001
        return BusUrl(scheme, url, host=parts.hostname, port=port)
    if not parts.path or parts.netloc:
        raise BusUrlError(f"{url!r}: write serial:///dev/ttyUSB0 (three slashes, a device path)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"baudrate", "parity", "stopbits", "bytesize"}
    if unknown:
        raise BusUrlError(f"{url!r}: unknown option(s) {', '.join(sorted(unknown))}")
    try:
        baudrate = int(query.get("baudrate", "19200"))
        stopbits = int(query.get("stopbits", "1"))
        bytesize = int(query.get("bytesize", "8"))
    except ValueError:
        raise BusUrlError(f"{url!r}: baudrate, stopbits and bytesize are numbers") from None
    parity = query.get("parity", "N").upper()
    if baudrate not in BAUD_RATES:
        raise BusUrlError(f"{url!r}: baud rate {baudrate} is not one of {BAUD_RATES}")
    if parity not in PARITIES:
        raise BusUrlError(f"{url!r}: parity must be N, E or O")
    if stopbits not in (1, 2) or bytesize not in (7, 8):
        raise BusUrlError(f"{url!r}: stopbits 1 or 2, bytesize 7 or 8")
    return BusUrl(
        scheme,
        url,
        path=parts.path,
        baudrate=baudrate,
        parity=parity,
        stopbits=stopbits,
        bytesize=bytesize,
    )
