"""Answers checked against the request they answer, on top of pymodbus's own framing.

pymodbus cuts frames (MBAP or RTU with CRC) and decodes PDUs; what it does not do is reject an
answer that decodes into something other than what was asked. Worse, a frame its decoder
cannot take (a byte count beyond the frame, an MBAP length that cuts the PDU, a short write
echo) raises out of the asyncio protocol's ``data_received``: asyncio logs "Fatal error" with
a traceback and closes the connection, for every unit on the bus.

These framers keep pymodbus's ADU and PDU decoding and add, per outstanding request:
- nothing raises out of ``handleFrame``: bytes that do not decode are dropped and counted;
- the unit, function code (or its exception), register count and write echo must match;
- over Modbus TCP (no CRC) the transaction id must match (an older answer is skipped) and the
  frame must be byte for byte the canonical encoding of what it decoded to, so a wrong byte
  count, a wrong MBAP length or trailing bytes are caught;
- an MBAP header that cannot be Modbus (protocol id not 0, length beyond 254) is refused
  before pymodbus logs it at ERROR.
A rejection fails the waiting request at once (``on_reject``) instead of letting it time out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerBase, FramerRTU, FramerSocket
from pymodbus.pdu import ModbusPDU

_LOG = logging.getLogger(__name__)

MAX_PDU = 253  # Modbus application data unit limit: 256 bytes on RTU, 260 with an MBAP header
READS = (3, 4)
WRITE_SINGLE = 6
WRITE_MULTIPLE = 16


class RejectedFrameError(ModbusIOException):
    """An answer arrived and was refused; ``unit`` is the unit of the request it failed."""

    def __init__(self, unit: int, reason: str) -> None:
        self.unit = unit
        self.reason = reason
        super().__init__(f"unit {unit}: {reason}")  # type: ignore[no-untyped-call]


type RejectHook = Callable[[RejectedFrameError, bool], None]
"""Called for every refused frame; the flag says whether a waiting request fails with it."""


def response_problem(request: ModbusPDU, response: ModbusPDU) -> str | None:
    """Why ``response`` does not answer ``request`` (None when it does)."""
    if response.dev_id != request.dev_id:
        return f"answer from unit {response.dev_id}"
    fc = request.function_code
    if response.function_code == fc | 0x80:
        return None  # a Modbus exception: the caller maps its code
    if response.function_code != fc:
        return f"function code {response.function_code} answers a function code {fc} request"
    if fc in READS:
        if len(response.registers) != request.count:
            return f"{len(response.registers)} registers, asked for {request.count}"
    elif fc == WRITE_SINGLE:
        if response.address != request.address or response.registers[:1] != request.registers:
            return "write echo differs from the request"
    elif fc == WRITE_MULTIPLE and (
        response.address != request.address or response.count != request.count
    ):
        return "write answer differs from the request"
    return None


class _CheckedFramer(FramerBase):
    """The checks shared by both framings; ``checksummed`` framings skip the canonical test."""

    checksummed = True

    def __init__(
        self,
        *args: object,
        on_reject: RejectHook | None = None,
        waiting: Callable[[], bool] | None = None,
        **kw: object,
    ) -> None:
        """``waiting``: whether a request still waits for its answer (it may have timed out);
        an answer nobody waits for is skipped, never handed to pymodbus."""
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.expected: ModbusPDU | None = None
        self.on_reject = on_reject
        self.waiting = waiting or (lambda: True)

    def buildFrame(self, message: ModbusPDU) -> bytes:
        """pymodbus frames every outgoing request here: remember it to check its answer."""
        self.expected = message
        return super().buildFrame(message)

    def _canonical(self, pdu: ModbusPDU) -> bytes:
        payload = pdu.function_code.to_bytes(1, "big") + pdu.encode()
        return self.encode(payload, pdu.dev_id, pdu.transaction_id)

    def _reject(self, reason: str, unit: int | None = None) -> None:
        """Count a refused frame; it fails the waiting request unless it was an old answer."""
        request, fail = self.expected, unit is None
        if unit is None:
            unit = request.dev_id if request is not None else 0
            self.expected = None  # whatever else arrives for this request is refused too
        _LOG.debug("rejected frame (unit %s): %s", unit, reason)
        if self.on_reject is not None:
            self.on_reject(RejectedFrameError(unit, reason), fail and request is not None)

    def _header_problem(self, data: bytes) -> str | None:
        return None

    def _stale(self, pdu: ModbusPDU, request: ModbusPDU) -> bool:
        return False

    def _frame_end(self, data: bytes, size: int, dev_id: int, frame: bytes) -> int:
        return size

    def handleFrame(
        self, data: bytes, exp_devid: int, exp_tid: int
    ) -> tuple[int, ModbusPDU | None]:
        """pymodbus ≥ 3.9 calls this with each received chunk; never raises."""
        return self._checked(data)

    def processIncomingFrame(self, data: bytes) -> tuple[int, ModbusPDU | None]:
        """The same entry point under its pymodbus 3.8 name."""
        return self._checked(data)

    def _checked(self, data: bytes) -> tuple[int, ModbusPDU | None]:
        """pymodbus's ADU and PDU decoding, then the checks; never raises."""
        used = 0
        while used < len(data):
            rest = data[used:]
            if problem := self._header_problem(rest):
                self._reject(problem)
                return len(data), None
            try:
                size, dev_id, tid, frame = self.decode(rest)
                if not size or not frame:
                    return used, None  # an incomplete frame: wait for more bytes
                pdu = self.decoder.decode(frame)
            except Exception as err:  # pymodbus raises struct.error, IndexError, ... here
                self._reject(f"undecodable frame ({type(err).__name__}: {err})")
                return len(data), None
            if pdu is None:
                self._reject("undecodable frame")
                return len(data), None
            pdu.dev_id = dev_id
            pdu.transaction_id = tid
            size = self._frame_end(rest, size, dev_id, frame)
            raw = rest[:size]
            used += size
            request = self.expected
            if request is None or self._stale(pdu, request) or not self.waiting():
                # An answer to an earlier request (it timed out) or to none at all.
                self._reject("answer to no outstanding request", unit=pdu.dev_id)
                continue
            problem = response_problem(request, pdu)
            if problem is None and not self.checksummed:
                try:
                    canonical = self._canonical(pdu)
                except Exception as err:  # a decoded PDU that cannot be encoded back
                    problem = f"unencodable answer ({err})"
                else:
                    if raw != canonical:
                        problem = "frame length or byte count does not match its content"
            if problem is not None:
                self._reject(problem)
                return len(data), None
            self.expected = None
            return used, pdu
        return used, None


class CheckedSocketFramer(_CheckedFramer, FramerSocket):
    """Modbus TCP: no CRC, so the header, the transaction id and every byte are checked."""

    checksummed = False

    def _header_problem(self, data: bytes) -> str | None:
        if len(data) >= 4 and data[2:4] != b"\x00\x00":
            return f"protocol id {int.from_bytes(data[2:4], 'big')} is not Modbus"
        if len(data) >= 6:
            length = int.from_bytes(data[4:6], "big")
            if not 3 <= length <= MAX_PDU + 1:
                return f"MBAP length {length} is impossible"
        return None

    def _stale(self, pdu: ModbusPDU, request: ModbusPDU) -> bool:
        return pdu.transaction_id != request.transaction_id


class CheckedRtuFramer(_CheckedFramer, FramerRTU):
    """RTU (serial or over TCP): the CRC guards the bytes; pymodbus hunts past garbage.

    RTU has no transaction id: an answer from another unit is most likely a late answer to an
    earlier request, so it is skipped (and counted) while this request keeps waiting.
    """

    def _stale(self, pdu: ModbusPDU, request: ModbusPDU) -> bool:
        return pdu.dev_id != request.dev_id

    def _frame_end(self, data: bytes, size: int, dev_id: int, frame: bytes) -> int:
        """pymodbus consumes the whole buffer with an RTU frame; stop after the frame (and its
        CRC) instead, so an answer right behind a skipped one is still read."""
        start = data.find(bytes([dev_id]) + frame)
        return size if start < 0 else min(size, start + len(frame) + 3)
