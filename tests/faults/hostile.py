"""A hostile Modbus server: a simulated room's bus whose one target unit misbehaves on the wire.

Requests are framed and answered by the simulator's own handler (so the other units answer
correctly, from the same room); the answer to the target unit is then mangled, with
probability ``rate`` and a seeded generator, in one of the ``Hostile`` ways. Framing is built
with pymodbus's framers (MBAP header, or RTU with a valid CRC), so on RTU every mangled answer
is a frame a device could really send: the CRC protects nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from enum import StrEnum

from pymodbus.framer import FramerRTU

from bacs_core import registers as reg
from bacs_core.sim.room import Room
from bacs_core.sim.server import BusProtocolHandler


class Hostile(StrEnum):
    WRONG_FUNCTION = "wrong_function"  # an FC04 answer to an FC03 request
    WRONG_UNIT = "wrong_unit"
    WRONG_TID = "wrong_tid"
    BYTE_COUNT_LONG = "byte_count_long"
    BYTE_COUNT_SHORT = "byte_count_short"
    ODD_BYTE_COUNT = "odd_byte_count"
    EXTRA_BYTES = "extra_bytes"
    MBAP_SHORT = "mbap_short"
    MBAP_LONG = "mbap_long"
    PROTOCOL_ID = "protocol_id"
    EXCEPTION = "exception"  # server device failure (4)
    BAD_EXCEPTION = "bad_exception"  # an exception code no device uses
    GARBAGE = "garbage"
    SILENCE = "silence"
    HALF_THEN_CLOSE = "half_then_close"
    HUGE = "huge"
    OUT_OF_RANGE = "out_of_range"
    FLIP_INPUT = "flip_input"  # the breaker's input flips for one answer
    CORRUPT_VALUE = "corrupt_value"  # a data byte changed, framing (and CRC) valid
    SHORT_ECHO = "short_echo"  # a write answered with a truncated echo
    DUPLICATE = "duplicate"
    STALE_FIRST = "stale_first"  # the previous answer sent again before this one
    DELAYED = "delayed"  # the answer after the client gave up
    FRAGMENTED = "fragmented"  # a correct answer, one byte at a time


TCP_ONLY = frozenset(
    {Hostile.WRONG_TID, Hostile.MBAP_SHORT, Hostile.MBAP_LONG, Hostile.PROTOCOL_ID}
)
WRITE_MODES = frozenset({Hostile.SHORT_ECHO})
RELAY_MODES = frozenset({Hostile.FLIP_INPUT})
READ_FC = 3


class HostileServer:
    def __init__(
        self,
        room: Room,
        mode: Hostile,
        target: int,
        *,
        rtu: bool = False,
        rate: float = 1.0,
        seed: int = 1,
        delay_s: float = 0.25,
        spare: int = 0,
    ) -> None:
        """``spare``: the target's first requests answered correctly (e.g. a scan's)."""
        self.room = room
        self.bus = room.buses[0]
        self.mode = mode
        self.target = target
        self.rtu = rtu
        self.rate = rate
        self.rng = random.Random(seed)
        self.delay_s = delay_s
        self.armed = False  # the scan runs clean; the scenario arms the misbehaviour after it
        self.port = 0
        self.mangled = 0
        self.spare = spare
        self._glitched_last = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"{'rtu+tcp' if self.rtu else 'tcp'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def frame(self, payload: bytes, unit: int, tid: int, *, length: int = 0, pid: int = 0) -> bytes:
        """An ADU as a device would send it; ``length`` adjusts the MBAP length field."""
        if self.rtu:
            body = bytes([unit]) + payload
            return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")
        return struct.pack(">HHHB", tid, pid, len(payload) + 1 + length, unit) + payload

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = BusProtocolHandler(self.bus, rtu=self.rtu, timing=None)
        previous: dict[int, bytes] = {}
        buffer = b""
        self._writers.add(writer)
        try:
            while data := await reader.read(4096):
                buffer += data
                while buffer:
                    used, unit, tid, pdu = handler.framer.decode(buffer)
                    if not used:
                        break
                    buffer = buffer[used:]
                    if not pdu:
                        continue
                    answer = handler._respond(unit, pdu)
                    if answer is None:
                        continue
                    payload = answer.function_code.to_bytes(1, "big") + answer.encode()
                    good = self.frame(payload, unit, tid)
                    if not self._misbehaves(unit, pdu):
                        writer.write(good)
                        previous[unit] = good
                        continue
                    self.mangled += 1
                    if not await self._mangle(writer, pdu, payload, unit, tid, previous):
                        return
                    previous[unit] = good
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    def _misbehaves(self, unit: int, pdu: bytes) -> bool:
        if not self.armed or unit != self.target:
            return False
        if self.spare > 0:
            self.spare -= 1
            return False
        fc = pdu[0]
        if self.mode in WRITE_MODES:
            applies = fc in (6, 16)
        else:
            applies = fc == READ_FC
        if self.mode in RELAY_MODES or self.mode is Hostile.OUT_OF_RANGE:
            applies = applies and int.from_bytes(pdu[1:3], "big") == reg.MEASUREMENT_START
        if self.mode is Hostile.FLIP_INPUT:
            # A glitch: one answer at a time, never two in a row (that would be the truth).
            applies = applies and not self._glitched_last
            self._glitched_last = applies and self.rng.random() < self.rate
            return self._glitched_last
        return applies and self.rng.random() < self.rate

    async def _mangle(
        self,
        writer: asyncio.StreamWriter,
        pdu: bytes,
        payload: bytes,
        unit: int,
        tid: int,
        previous: dict[int, bytes],
    ) -> bool:
        """Send the mangled answer; False when the connection is to be closed."""
        m, rng, frame = self.mode, self.rng, self.frame
        p = bytearray(payload)
        out: bytes = b""
        match m:
            case Hostile.WRONG_FUNCTION:
                p[0] = 4  # input registers: other words at the same addresses
                p[2:] = bytes(b ^ 0x11 for b in p[2:])
                out = frame(bytes(p), unit, tid)
            case Hostile.WRONG_UNIT:
                out = frame(payload, unit % 246 + 1, tid)
            case Hostile.WRONG_TID:
                out = frame(payload, unit, (tid + 1) & 0xFFFF)
            case Hostile.BYTE_COUNT_LONG:
                p[1] = min(255, p[1] + 2)
                out = frame(bytes(p), unit, tid)
            case Hostile.BYTE_COUNT_SHORT:
                p[1] = max(0, p[1] - 2)
                out = frame(bytes(p), unit, tid)
            case Hostile.ODD_BYTE_COUNT:
                p[1] -= 1
                out = frame(bytes(p), unit, tid)
            case Hostile.EXTRA_BYTES:
                out = frame(payload + b"\x00\x00", unit, tid)
            case Hostile.MBAP_SHORT:
                out = frame(payload, unit, tid, length=-2)
            case Hostile.MBAP_LONG:
                out = frame(payload, unit, tid, length=2)
            case Hostile.PROTOCOL_ID:
                out = frame(payload, unit, tid, pid=1)
            case Hostile.EXCEPTION:
                out = frame(bytes([pdu[0] | 0x80, 4]), unit, tid)
            case Hostile.BAD_EXCEPTION:
                out = frame(bytes([pdu[0] | 0x80, 0x55]), unit, tid)
            case Hostile.GARBAGE:
                out = rng.randbytes(rng.randint(3, 40))
            case Hostile.SILENCE:
                return True
            case Hostile.HALF_THEN_CLOSE:
                whole = frame(payload, unit, tid)
                writer.write(whole[: len(whole) // 2])
                await writer.drain()
                return False
            case Hostile.HUGE:
                if self.rtu:
                    out = frame(bytes([pdu[0], 250]) + rng.randbytes(250), unit, tid)
                else:
                    out = frame(bytes([pdu[0], 255]) + rng.randbytes(1000), unit, tid)
            case Hostile.OUT_OF_RANGE:
                p[6:8] = b"\x7f\xff"  # the first value after sequence and status
                out = frame(bytes(p), unit, tid)
            case Hostile.FLIP_INPUT:
                p[9] ^= 0x01  # inputs, low byte: the first string's breaker contact
                out = frame(bytes(p), unit, tid)
            case Hostile.CORRUPT_VALUE:
                p[rng.randrange(2, len(p))] ^= rng.randrange(1, 256)
                out = frame(bytes(p), unit, tid)
            case Hostile.SHORT_ECHO:
                out = frame(payload[:3], unit, tid)
            case Hostile.DUPLICATE:
                out = frame(payload, unit, tid) * 2
            case Hostile.STALE_FIRST:
                out = previous.get(unit, b"") + frame(payload, unit, tid)
            case Hostile.DELAYED:
                await asyncio.sleep(self.delay_s)
                out = frame(payload, unit, tid)
            case Hostile.FRAGMENTED:
                for byte in frame(payload, unit, tid):
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.001)
                return True
        writer.write(out)
        await writer.drain()
        return True
