"""A TCP fault proxy (asyncio, 127.0.0.1) between a Modbus client and a server.

Every chunk the server sends back meets, with probability ``rate`` and a seeded generator, the
proxy's fault: ``drop`` (never delivered), ``corrupt`` (1 to 3 bytes flipped), ``truncate``
(only the first part delivered), ``delay`` (held longer than a client timeout) or ``reset``
(both connections closed). ``kill()`` stops listening and cuts every connection (the bus is
gone); ``restore()`` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from enum import StrEnum


class ProxyFault(StrEnum):
    DROP = "drop"
    CORRUPT = "corrupt"
    TRUNCATE = "truncate"
    DELAY = "delay"
    RESET = "reset"


@dataclass
class ProxyStats:
    chunks: int = 0
    faulted: int = 0
    connections: int = 0


class FaultProxy:
    def __init__(
        self,
        upstream_port: int,
        fault: ProxyFault | None = None,
        rate: float = 0.0,
        seed: int = 1,
        *,
        delay_s: float = 0.3,
    ) -> None:
        self.upstream_port = upstream_port
        self.fault = fault
        self.rate = rate
        self.rng = random.Random(seed)
        self.delay_s = delay_s
        self.port = 0
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, scheme: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    async def kill(self) -> None:
        """The bus is gone: nothing listens, every connection is cut."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.kill()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream = asyncio.create_task(self._pipe(reader, up_writer, faults=False))
        self._tasks.add(upstream)
        try:
            await self._pipe(up_reader, writer, faults=True)
        finally:
            upstream.cancel()
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()
            self._tasks.discard(task)
            self._tasks.discard(upstream)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, faults: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while data := await reader.read(4096):
                if faults:
                    self.stats.chunks += 1
                    if self.fault is not None and self.rng.random() < self.rate:
                        self.stats.faulted += 1
                        data = await self._apply(data, writer)
                        if data is None:
                            return
                writer.write(data)
                await writer.drain()
        if not faults:  # the client went away: so does the upstream connection
            writer.transport.abort()

    async def _apply(self, data: bytes, writer: asyncio.StreamWriter) -> bytes | None:
        """The chunk after the fault; None closes the connection."""
        match self.fault:
            case ProxyFault.DROP:
                return b""
            case ProxyFault.CORRUPT:
                out = bytearray(data)
                for _ in range(self.rng.randint(1, 3)):
                    out[self.rng.randrange(len(out))] ^= self.rng.randrange(1, 256)
                return bytes(out)
            case ProxyFault.TRUNCATE:
                return data[: self.rng.randrange(len(data))]
            case ProxyFault.DELAY:
                await asyncio.sleep(self.delay_s)
                return data
            case ProxyFault.RESET:
                return None
        return data
