"""The seam between register traffic and what carries it (pymodbus on a port, or the
simulator in-process for fast accelerated-time runs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class RegisterTransport(Protocol):
    """Raw holding-register access on one bus. One owner per port serialises requests.

    Raises the errors of ``bacs_core.bus.errors``; never returns partial data. A read with
    an explicit ``timeout`` is a probe (a bus scan): one try, no retries.
    """

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def read(
        self, unit: int, address: int, count: int, *, timeout: float | None = None
    ) -> list[int]: ...

    async def write(self, unit: int, address: int, values: Sequence[int]) -> None: ...
