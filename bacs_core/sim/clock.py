"""The simulator's clock, for a manager that runs against ``bacs simulate --speed N``.

A manager measures its integral times, lags and timers on the clock it is given. Against a
simulator running N× faster than real time, ``time.monotonic`` would make every one of them
N× off. ``SimClock`` reads the simulated time and speed from the simulator's JSON control
channel (``{"status": true}`` → ``time_s``, ``speed``) once a second and extrapolates in
between, so ``bacs run --clock sim:HOST:PORT`` keeps its time with the simulated plant.
It never goes backwards; ``rate`` tells the manager's loop how to sleep an interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClockError(Exception):
    """The simulator's control channel cannot be reached or answers nonsense."""


class SimClock:
    def __init__(self, host: str, port: int, *, refresh_s: float = 1.0) -> None:
        self.host = host
        self.port = port
        self.refresh_s = refresh_s
        self.rate = 1.0
        self._sim_s = 0.0
        self._at = time.monotonic()
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    def parse(cls, spec: str) -> SimClock:
        """``sim:HOST:PORT`` (the simulator's ``--control`` address)."""
        kind, _, rest = spec.partition(":")
        host, _, port = rest.rpartition(":")
        if kind != "sim" or not host or not port.isdigit():
            raise ValueError(f"clock {spec!r}: use sim:HOST:PORT (the simulator's --control)")
        return cls(host, int(port))

    def __call__(self) -> float:
        now = self._sim_s + (time.monotonic() - self._at) * self.rate
        self._last = max(self._last, now)
        return self._last

    async def start(self) -> None:
        """Connect and take the first reading (raises ``SimClockError``)."""
        try:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except OSError as err:
            raise SimClockError(f"simulator control {self.host}:{self.port}: {err}") from err
        await self._read()
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _read(self) -> None:
        assert self._reader is not None and self._writer is not None
        sent = time.monotonic()
        self._writer.write(b'{"status": true}\n')
        await self._writer.drain()
        line = await asyncio.wait_for(self._reader.readline(), 5.0)
        received = time.monotonic()
        try:
            status = json.loads(line)["status"]
            sim_s, speed = float(status["time_s"]), float(status.get("speed", 1.0))
        except (ValueError, KeyError, TypeError) as err:
            raise SimClockError(f"simulator control answered {line[:80]!r}") from err
        self.rate = speed if speed > 0 else 1.0
        self._sim_s = sim_s
        self._at = (sent + received) / 2

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self._read()
            except (OSError, SimClockError, TimeoutError):
                # Keep extrapolating at the last rate; the next refresh may reconnect.
                with contextlib.suppress(OSError):
                    self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()


def wall_clock_of(clock: Callable[[], float]) -> Callable[[], datetime]:
    """A wall clock that moves with the manager's clock (a simulator's, N× faster): now, then
    as many seconds later as that clock has counted, so the history's times, energy and
    durations follow the simulated plant."""
    anchor: list[tuple[datetime, float]] = []  # set at the first reading (a started clock)

    def now() -> datetime:
        t = clock()
        if not anchor:
            anchor.append((datetime.now(UTC), t))
        wall, origin = anchor[0]
        return wall + timedelta(seconds=t - origin)

    return now
