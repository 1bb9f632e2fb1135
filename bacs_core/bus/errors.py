"""Typed bus failures: callers tell a dead port from a silent module from a garbled frame."""

from __future__ import annotations


class BusError(Exception):
    """Base of every failure on the battery bus."""


class BusConnectionError(BusError):
    """The port or socket is gone (or could not be opened); every device on it is unreachable."""


class PortBusyError(BusConnectionError):
    """The serial port is held by another process; ``owner`` names it when it can be found."""

    def __init__(self, port: str, owner: str | None = None) -> None:
        self.port = port
        self.owner = owner
        hint = f" (held by {owner})" if owner else ""
        super().__init__(f"serial port {port} is busy{hint}")


class BusTimeoutError(BusError):
    """A device did not answer in time, after the configured retries."""


class DeviceMissingError(BusError):
    """No device answers at this unit id."""


class BadResponseError(BusError):
    """An answer arrived but could not be used: bad CRC, wrong length, wrong unit or function."""


class DeviceExceptionError(BusError):
    """The device answered with a Modbus exception (e.g. 2 = illegal data address)."""

    def __init__(self, unit: int, code: int) -> None:
        self.unit = unit
        self.code = code
        super().__init__(f"unit {unit} answered Modbus exception {code}")
