"""Modbus TCP serving of a :class:`~bacs_core.generex.image.Cs141Image`.

Framing and PDU coding are pymodbus's (FramerSocket, DecodePDU), as in ``bacs_core.sim.server``;
this module routes FC03/FC04 to the image (both read the same space, as on a CS141) and hands
writes, with the client's address, to an optional handler: without one every write is refused
with exception 01, so the server is read-only unless its owner decides otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterResponse,
)

from ..sim.server import request_problem
from .image import Cs141Image

_LOG = logging.getLogger(__name__)

ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03
DEVICE_FAILURE = 0x04
DEVICE_BUSY = 0x06
GATEWAY_NO_RESPONSE = 0x0B
MAX_READ = 125
MAX_BUFFER = 1024

# (client host, address, values) -> 0 when done, else the Modbus exception code to answer.
type WriteHandler = Callable[[str, int, Sequence[int]], Awaitable[int]]


class Cs141ModbusServer:
    """One listening socket; every connection is served from the latest image."""

    def __init__(
        self,
        image: Callable[[], Cs141Image],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        unit: int = 1,
        writer: WriteHandler | None = None,
    ) -> None:
        self._image = image
        self.host = host
        self.port = port
        self.unit = unit
        self._writer = writer
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.requests = 0
        # Encoded read answers of the current image: a SCADA polls the same blocks again and
        # again, so most answers are a dictionary hit plus the caller's transaction id.
        self._cache_image: Cs141Image | None = None
        self._cache: dict[tuple[int, ...], bytes] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._connections):
            w.close()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if peer else ""
        decoder = DecodePDU(is_server=True)
        framer = FramerSocket(decoder)
        buffer = b""
        self._connections.add(writer)
        try:
            while data := await reader.read(4096):
                buffer += data
                while buffer:
                    try:  # the framer's decode: the same in every pymodbus bacs-core supports
                        used, unit, tid, pdu = framer.decode(buffer)
                    except Exception:
                        used, unit, tid, pdu = len(buffer), 0, 0, b""
                    if not used:
                        if len(buffer) > MAX_BUFFER:
                            buffer = b""
                        break
                    buffer = buffer[used:]
                    if pdu:
                        writer.write(await self._frame(framer, decoder, unit, tid, pdu, host))
        except (ConnectionError, OSError):
            pass
        except Exception:  # a bug here must not pass silently, nor stop the other clients
            _LOG.exception("Modbus server: closing the connection from %s", host)
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _frame(
        self, framer: FramerSocket, decoder: DecodePDU, unit: int, tid: int, pdu: bytes, host: str
    ) -> bytes:
        """One answer frame; reads of the current image come from the cache."""
        fc = pdu[0]
        key: tuple[int, ...] | None = None
        if fc in (3, 4) and len(pdu) == 5:
            image = self._image()
            if image is not self._cache_image:
                self._cache_image, self._cache = image, {}
            key = (unit, *pdu)
            frame = self._cache.get(key)
            if frame is not None:
                self.requests += 1
                return tid.to_bytes(2, "big") + frame[2:]  # MBAP: the transaction id leads
        answer: ModbusPDU
        if (code := request_problem(pdu)) is not None:
            self.requests += 1
            answer = ExceptionResponse(fc & 0x7F, code, unit)
        else:
            try:
                request = decoder.decode(pdu)
            except Exception:  # pymodbus raises struct.error on a PDU shorter than its kind
                request = None
            if request is None:
                self.requests += 1
                answer = ExceptionResponse(fc & 0x7F, ILLEGAL_VALUE, unit)
            else:
                request.dev_id = unit
                answer = await self.answer(request, host)
        answer.dev_id = unit
        answer.transaction_id = 0
        frame = bytes(framer.buildFrame(answer))
        if key is not None and not answer.isError():  # an exception may be transient (06)
            self._cache[key] = frame
        return tid.to_bytes(2, "big") + frame[2:]

    async def answer(self, request: ModbusPDU, host: str) -> ModbusPDU:
        self.requests += 1
        unit = request.dev_id
        fc = request.function_code
        if unit not in (self.unit, 0, 255):
            return ExceptionResponse(fc, GATEWAY_NO_RESPONSE, unit)
        if fc in (3, 4):
            words = self._image().read(request.address, request.count)
            if words is None:
                return ExceptionResponse(fc, ILLEGAL_ADDRESS, unit)
            cls = ReadHoldingRegistersResponse if fc == 3 else ReadInputRegistersResponse
            return cls(registers=words, dev_id=unit)
        if fc in (6, 16) and self._writer is not None:
            values = list(request.registers)
            code = await self._writer(host, request.address, values)
            if code:
                return ExceptionResponse(fc, code, unit)
            if fc == 6:
                return WriteSingleRegisterResponse(
                    address=request.address, registers=values, dev_id=unit
                )
            return WriteMultipleRegistersResponse(
                address=request.address, count=len(values), dev_id=unit
            )
        return ExceptionResponse(fc, ILLEGAL_FUNCTION, unit)
