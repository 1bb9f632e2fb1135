"""Answers are checked against the request they answer, and nothing raises out of framing."""

from __future__ import annotations

import struct

import pytest
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    WriteSingleRegisterRequest,
)

from bacs_core.bus.frames import CheckedRtuFramer, CheckedSocketFramer, RejectedFrameError


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, err: RejectedFrameError, fail: bool) -> None:
        self.calls.append((err.reason, fail))


def tcp(payload: bytes, unit: int = 5, tid: int = 9, *, length: int = 0, pid: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, pid, len(payload) + 1 + length, unit) + payload


def framer(rtu: bool = False) -> tuple[CheckedSocketFramer | CheckedRtuFramer, Recorder]:
    hook = Recorder()
    cls = CheckedRtuFramer if rtu else CheckedSocketFramer
    f = cls(DecodePDU(False), on_reject=hook)
    f.buildFrame(ReadHoldingRegistersRequest(address=0x100, count=2, dev_id=5, transaction_id=9))
    return f, hook


GOOD = bytes([3, 4, 0, 1, 0, 2])


def test_a_good_answer_passes() -> None:
    f, hook = framer()
    used, pdu = f.handleFrame(tcp(GOOD), 0, 0)
    assert pdu is not None and pdu.registers == [1, 2] and used == 13
    assert hook.calls == []


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (tcp(bytes([4, 4, 0, 1, 0, 2])), "function code 4 answers a function code 3"),
        (tcp(bytes([3, 6, 0, 1, 0, 2])), "undecodable"),  # byte count beyond the frame
        (tcp(bytes([3, 2, 0, 1, 0, 2])), "1 registers, asked for 2"),
        (tcp(GOOD + b"\0\0"), "does not match its content"),  # trailing bytes in the MBAP
        (tcp(GOOD, length=-2), "undecodable"),  # MBAP length cuts the PDU
        (tcp(GOOD, length=300), "MBAP length"),
        (tcp(GOOD, pid=1), "protocol id 1"),
        (tcp(GOOD, unit=6), "answer from unit 6"),
        (tcp(bytes([0x83, 2])) + b"", None),  # an exception answers: it passes to the caller
    ],
)
def test_mismatched_answers_are_refused_without_raising(frame: bytes, reason: str | None) -> None:
    f, hook = framer()
    used, pdu = f.handleFrame(frame, 0, 0)
    if reason is None:
        assert pdu is not None and pdu.isError()
        return
    assert pdu is None and used == len(frame)
    assert len(hook.calls) == 1 and reason in hook.calls[0][0] and hook.calls[0][1]


def test_an_older_answer_is_skipped_and_the_right_one_taken() -> None:
    f, hook = framer()
    used, pdu = f.handleFrame(tcp(GOOD, tid=8) + tcp(GOOD), 0, 0)
    assert pdu is not None and pdu.transaction_id == 9
    assert hook.calls == [("answer to no outstanding request", False)]


def test_rtu_answer_from_another_unit_is_skipped() -> None:
    f, hook = framer(rtu=True)
    other = f.encode(GOOD, 6, 0)
    used, pdu = f.handleFrame(other + f.encode(GOOD, 5, 0), 0, 0)
    assert pdu is not None and pdu.dev_id == 5
    assert hook.calls[0][1] is False
    # On RTU a short echo is a frame still arriving: it waits (and times out), never raises.
    f.buildFrame(WriteSingleRegisterRequest(address=0x200, registers=[7], dev_id=5))
    assert f.handleFrame(f.encode(bytes([6, 2, 0]), 5, 0), 0, 0) == (0, None)


def test_tcp_short_write_echo_is_refused() -> None:
    f, hook = framer()
    f.buildFrame(
        WriteSingleRegisterRequest(address=0x200, registers=[7], dev_id=5, transaction_id=9)
    )
    used, pdu = f.handleFrame(tcp(bytes([6, 2, 0])), 0, 0)
    assert pdu is None and hook.calls[-1][1] is True
    f.buildFrame(
        WriteSingleRegisterRequest(address=0x200, registers=[7], dev_id=5, transaction_id=9)
    )
    used, pdu = f.handleFrame(tcp(bytes([6, 2, 0, 0, 8])), 0, 0)
    assert pdu is None and "echo differs" in hook.calls[-1][0]
