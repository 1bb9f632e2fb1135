"""An in-process RegisterTransport onto a simulated room: no wire, same registers and faults.

Used by the ``sim://`` bus URL (Home Assistant's "try it without hardware") and by
accelerated-time benchmarks that would take days of wall time on a real line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..bus.errors import (
    BadResponseError,
    BusConnectionError,
    BusTimeoutError,
    DeviceExceptionError,
)
from .devices import ModbusDeviceError
from .room import NoAnswer, Room


class LoopbackTransport:
    def __init__(
        self,
        room: Room,
        bus_index: int = 0,
        *,
        clock: Callable[[], float] | None = None,
        speed: float = 1.0,
    ) -> None:
        """With ``clock`` (seconds, monotonic) the room advances in real time × speed before
        each request, so a live simulator needs no task of its own."""
        self.room = room
        self.bus = room.buses[bus_index]
        self._connected = False
        self._clock = clock
        self._speed = speed
        self._origin = clock() if clock else 0.0
        self._room_origin = room.time_s

    def advance(self) -> None:
        if self._clock is None:
            return
        target = self._room_origin + (self._clock() - self._origin) * self._speed
        while self.room.time_s < target - 1e-6:
            self.room.step(min(30.0, target - self.room.time_s))

    @property
    def connected(self) -> bool:
        return self._connected and not self.bus.vanished

    async def connect(self) -> None:
        if self.bus.vanished:
            raise BusConnectionError("simulated port is gone")
        self._connected = True

    async def close(self) -> None:
        self._connected = False

    def _check(self, unit: int) -> None:
        self.advance()
        if not self.connected:
            self._connected = False
            raise BusConnectionError("simulated port is gone")
        fate = self.bus.wire_fault()
        if fate == "timeout":
            raise BusTimeoutError(f"unit {unit}: no answer (injected)")
        if fate in ("crc", "garbage"):
            raise BadResponseError(f"unit {unit}: corrupted frame (injected)")

    async def read(
        self, unit: int, address: int, count: int, *, timeout: float | None = None
    ) -> list[int]:
        self._check(unit)
        try:
            return self.bus.read(unit, address, count)
        except NoAnswer as err:
            raise BusTimeoutError(str(err)) from err
        except ModbusDeviceError as err:
            raise DeviceExceptionError(unit, err.code) from err

    async def write(self, unit: int, address: int, values: Sequence[int]) -> None:
        self._check(unit)
        try:
            self.bus.write(unit, address, values)
        except NoAnswer as err:
            raise BusTimeoutError(str(err)) from err
        except ModbusDeviceError as err:
            raise DeviceExceptionError(unit, err.code) from err
