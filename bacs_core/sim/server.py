"""Serves a simulated bus over the real wire protocols: Modbus TCP, RTU over TCP, RTU on a pty.

Framing, CRC and PDU coding are pymodbus's (FramerRTU/FramerSocket, DecodePDU); this module
only routes requests to the simulated devices, emulates the line's timing and injects wire
faults. Line emulation: an answer is delivered when a real RS-485 line would have carried
request, gap, module turnaround and response (see ``LineTiming``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterResponse,
)

from ..bus.timing import LineTiming
from .devices import ILLEGAL_FUNCTION, ILLEGAL_VALUE, ModbusDeviceError
from .room import NoAnswer, Room, SimBus

_LOG = logging.getLogger(__name__)
MAX_BUFFER = 512
GATEWAY_TARGET_FAILED = 11
MAX_READ = 125  # registers per FC03/FC04 (Modbus application protocol v1.1b3, 6.3)
MAX_WRITE = 123  # registers per FC16 (6.12)


def request_problem(pdu: bytes) -> int | None:
    """The exception code a request's raw PDU earns before any device sees it (None: fine).

    Quantity and byte count are checked as the Modbus specification says (exception 3), so a
    request pymodbus could not even re-encode never reaches the devices.
    """
    fc = pdu[0]
    if fc in (3, 4):
        if len(pdu) != 5:
            return ILLEGAL_VALUE
        count = int.from_bytes(pdu[3:5], "big")
        return None if 1 <= count <= MAX_READ else ILLEGAL_VALUE
    if fc == 6:
        return None if len(pdu) == 5 else ILLEGAL_VALUE
    if fc == 16:
        if len(pdu) < 6:
            return ILLEGAL_VALUE
        count = int.from_bytes(pdu[3:5], "big")
        byte_count = pdu[5]
        if not 1 <= count <= MAX_WRITE or byte_count != 2 * count or len(pdu) != 6 + byte_count:
            return ILLEGAL_VALUE
        return None
    return ILLEGAL_FUNCTION


@dataclass
class ServerStats:
    requests: int = 0
    answered: int = 0
    dropped: int = 0
    corrupted: int = 0


class BusProtocolHandler:
    """Turns request bytes into answer bytes for one simulated bus (one connection)."""

    def __init__(
        self, bus: SimBus, *, rtu: bool, timing: LineTiming | None, gateway: bool = False
    ) -> None:
        """``gateway``: answer for an absent unit with exception 11 (gateway target device
        failed to respond), as a Modbus TCP gateway does, instead of silence."""
        self.bus = bus
        self.gateway = gateway
        self.rtu = rtu
        self.timing = timing
        self.decoder = DecodePDU(is_server=True)
        self.framer = (FramerRTU if rtu else FramerSocket)(self.decoder)
        self.buffer = b""
        self.stats = ServerStats()
        self._line_free_at = 0.0

    def _answer(self, request: ModbusPDU) -> ModbusPDU | None:
        unit = request.dev_id
        fc = request.function_code
        try:
            if fc == 3:
                words = self.bus.read(unit, request.address, request.count)
                return ReadHoldingRegistersResponse(registers=words, dev_id=unit)
            if fc == 6:
                self.bus.write(unit, request.address, request.registers)
                return WriteSingleRegisterResponse(
                    address=request.address, registers=request.registers, dev_id=unit
                )
            if fc == 16:
                self.bus.write(unit, request.address, request.registers)
                return WriteMultipleRegistersResponse(
                    address=request.address, count=request.count, dev_id=unit
                )
            self.bus.device(unit)
            return ExceptionResponse(fc, ILLEGAL_FUNCTION, unit)
        except NoAnswer:
            return None
        except ModbusDeviceError as err:
            return ExceptionResponse(fc, err.code, unit)

    def _respond(self, unit: int, pdu: bytes) -> ModbusPDU | None:
        """The answer to one request PDU; None when nothing answers (no such unit)."""
        fc = pdu[0]
        try:
            self.bus.device(unit)
        except NoAnswer:
            if self.gateway and not self.bus.vanished:
                return ExceptionResponse(fc & 0x7F, GATEWAY_TARGET_FAILED, unit)
            return None
        if (code := request_problem(pdu)) is not None:
            return ExceptionResponse(fc & 0x7F, code, unit)
        try:
            request = self.decoder.decode(pdu)
        except Exception:  # pymodbus raises struct.error on a PDU shorter than its kind
            request = None
        if request is None:
            return ExceptionResponse(fc, ILLEGAL_VALUE, unit)
        request.dev_id = unit
        return self._answer(request)

    def feed(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        """Requests in ``data`` -> (deliver_at, bytes) answers; faults decided per exchange.

        Never raises: undecodable bytes are dropped (an RTU slave resyncs on the next
        silence), a malformed request gets the Modbus exception the specification names.
        """
        self.buffer += data
        out: list[tuple[float, bytes]] = []
        while self.buffer:
            try:
                used, unit, tid, pdu = self.framer.decode(self.buffer)
            except Exception:
                used, unit, tid, pdu = len(self.buffer), 0, 0, b""
            if not used:
                if len(self.buffer) > MAX_BUFFER:
                    self.buffer = b""
                break
            self.buffer = self.buffer[used:]
            if not pdu:
                continue
            self.stats.requests += 1
            if self.bus.vanished:
                self.stats.dropped += 1
                continue
            fate = self.bus.wire_fault()
            answer = self._respond(unit, pdu)
            if answer is None or fate == "timeout":
                self.stats.dropped += 1
                if self.timing:  # the line stays busy for the request and a timeout
                    self._line_free_at = max(now, self._line_free_at)
                continue
            answer.dev_id = unit
            answer.transaction_id = tid
            frame = self.framer.buildFrame(answer)
            deliver = now
            if self.timing:
                start = max(now, self._line_free_at)
                deliver = start + self.timing.transaction_s(used, len(frame))
                self._line_free_at = deliver + self.timing.gap_s
            if fate == "crc":
                self.stats.corrupted += 1
                frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
            elif fate == "garbage":
                self.stats.corrupted += 1
                rng = self.bus.rng
                if rng.random() < 0.5:
                    frame = bytes(rng.randrange(256) for _ in range(5)) + frame
                else:
                    frame = frame[: max(1, len(frame) // 2)]
            self.stats.answered += 1
            out.append((deliver, frame))
        return out


class _Sender:
    """Delivers answers at their line-emulated time, in order."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, items: list[tuple[float, bytes]]) -> None:
        for item in items:
            self._queue.put_nowait(item)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deliver, frame = await self._queue.get()
            delay = deliver - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                self._write(frame)
            except OSError:
                return

    def close(self) -> None:
        self._task.cancel()


class TcpBusServer:
    """Modbus TCP (MBAP) or RTU framing over a TCP socket."""

    def __init__(
        self,
        room: Room,
        bus_index: int,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rtu: bool = False,
        timing: LineTiming | None = None,
        gateway: bool = False,
    ) -> None:
        self.room = room
        self.bus = room.buses[bus_index]
        self.host = host
        self.port = port
        self.rtu = rtu
        self.timing = timing
        self.gateway = gateway
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._watch: asyncio.Task[None] | None = None
        self.handlers: list[BusProtocolHandler] = []

    @property
    def url(self) -> str:
        return f"{'rtu+tcp' if self.rtu else 'tcp'}://{self.host}:{self.port}"

    async def start(self) -> None:
        await self._listen()
        self._watch = asyncio.get_running_loop().create_task(self._watch_vanish())

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _watch_vanish(self) -> None:
        """A vanished port: connections drop and nothing listens until it returns."""
        while True:
            await asyncio.sleep(0.05)
            if self.bus.vanished and self._server is not None:
                await self._close_listener()
            elif not self.bus.vanished and self._server is None:
                with contextlib.suppress(OSError):
                    await self._listen()

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = BusProtocolHandler(
            self.bus, rtu=self.rtu, timing=self.timing, gateway=self.gateway
        )
        self.handlers.append(handler)
        sender = _Sender(writer.write)
        self._writers.add(writer)
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(4096):
                sender.put(handler.feed(data, loop.time()))
        except (ConnectionError, OSError):
            pass
        finally:
            sender.close()
            self._writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        if self._watch:
            self._watch.cancel()
        await self._close_listener()


class PtyBusServer:
    """RTU on a pseudo-terminal: the client opens ``path`` (a stable symlink) like a serial port."""

    def __init__(
        self, room: Room, bus_index: int, path: str, *, timing: LineTiming | None = None
    ) -> None:
        self.room = room
        self.bus = room.buses[bus_index]
        self.path = Path(path)
        self.timing = timing
        self._master = -1
        self._slave = -1
        self._sender: _Sender | None = None
        self._watch: asyncio.Task[None] | None = None
        self.handler = BusProtocolHandler(self.bus, rtu=True, timing=timing)

    @property
    def url(self) -> str:
        return f"serial://{self.path}"

    async def start(self) -> None:
        self._open()
        self._watch = asyncio.get_running_loop().create_task(self._watch_vanish())

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.path.symlink_to(os.ttyname(slave))
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._on_readable)
        self._sender = _Sender(self._write)
        self.handler = BusProtocolHandler(self.bus, rtu=True, timing=self.timing)

    def _write(self, data: bytes) -> None:
        if self._master >= 0:
            os.write(self._master, data)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:
            return
        if data and self._sender:
            self._sender.put(self.handler.feed(data, asyncio.get_running_loop().time()))

    def _close(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            if self._sender:
                self._sender.close()
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _watch_vanish(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            if self.bus.vanished and self._master >= 0:
                self._close()
            elif not self.bus.vanished and self._master < 0:
                self._open()

    async def stop(self) -> None:
        if self._watch:
            self._watch.cancel()
        self._close()


type BusServer = TcpBusServer | PtyBusServer


def make_server(room: Room, bus_index: int, url: str, timing: LineTiming | None) -> BusServer:
    """``tcp://h:p``, ``rtu+tcp://h:p`` or ``pty:///path`` (a pty with a symlink at path)."""
    scheme, _, rest = url.partition("://")
    if scheme in ("tcp", "rtu+tcp"):
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"listen URL needs host:port: {url}")
        return TcpBusServer(
            room, bus_index, host, int(port), rtu=scheme == "rtu+tcp", timing=timing
        )
    if scheme == "pty":
        if not rest.startswith("/"):
            raise ValueError(f"pty URL needs an absolute path: {url}")
        return PtyBusServer(room, bus_index, rest, timing=timing)
    raise ValueError(f"unsupported listen URL {url!r} (tcp://, rtu+tcp://, pty:///path)")
