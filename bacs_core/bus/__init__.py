"""The battery bus: URLs, transports (pymodbus or the in-process simulator) and the client."""

from __future__ import annotations

import math
import time
from urllib.parse import parse_qs, urlsplit

from .client import BusClient, BusStats, ScanResult
from .errors import (
    BadResponseError,
    BusConnectionError,
    BusError,
    BusTimeoutError,
    DeviceExceptionError,
    DeviceMissingError,
    PortBusyError,
)
from .readings import (
    AnyReading,
    CurrentReading,
    DeviceIdentity,
    EnvironmentReading,
    ModuleReading,
    RelayReading,
)
from .transport import RegisterTransport
from .url import BusUrl, BusUrlError, Scheme, parse_bus_url


def open_transport(url: str, *, timeout: float = 0.5, retries: int = 1) -> RegisterTransport:
    """A transport for a bus URL (not yet connected). Raises BusUrlError for a bad URL."""
    parsed = parse_bus_url(url)
    if parsed.scheme is Scheme.SIM:
        from ..sim.loopback import LoopbackTransport
        from ..sim.room import room_from_url

        try:
            room = room_from_url(url)
            speed = float(parse_qs(urlsplit(url).query).get("speed", ["1"])[-1])
            if not 0 <= speed < math.inf:  # 0: the room stands still (tests)
                raise ValueError(f"speed must be a number ≥ 0, not {speed}")
        except ValueError as err:
            raise BusUrlError(f"{url!r}: {err}") from None
        return LoopbackTransport(room, 0, clock=time.monotonic, speed=speed)
    from .modbus import ModbusTransport

    return ModbusTransport(parsed, timeout=timeout, retries=retries)


__all__ = [
    "AnyReading",
    "BadResponseError",
    "BusClient",
    "BusConnectionError",
    "BusError",
    "BusStats",
    "BusTimeoutError",
    "BusUrl",
    "BusUrlError",
    "CurrentReading",
    "DeviceExceptionError",
    "DeviceIdentity",
    "DeviceMissingError",
    "EnvironmentReading",
    "ModuleReading",
    "PortBusyError",
    "RegisterTransport",
    "RelayReading",
    "ScanResult",
    "open_transport",
    "parse_bus_url",
]
