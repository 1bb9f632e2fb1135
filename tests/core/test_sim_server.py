"""The simulator answers malformed requests as the Modbus specification says, on the wire."""

from __future__ import annotations

import asyncio
import struct

import pytest
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU

from bacs_core import registers as reg
from bacs_core.model import Command, DeviceKind
from bacs_core.sim.room import Room
from bacs_core.sim.server import TcpBusServer

RELAY_UNIT = 19  # 2 strings × 8 modules, 2 current sensors, then the relay module


async def exchange(server: TcpBusServer, pdu: bytes, unit: int = 1) -> bytes:
    """One raw request PDU to ``unit``; returns the answer's PDU (function code first)."""
    framer = (FramerRTU if server.rtu else FramerSocket)(DecodePDU(False))
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(framer.encode(pdu, unit, 7))
        await writer.drain()
        data = b""
        while True:
            data += await asyncio.wait_for(reader.read(512), 2.0)
            used, dev_id, tid, answer = framer.decode(data)
            if used:
                assert dev_id == unit
                if not server.rtu:
                    assert tid == 7
                return answer
    finally:
        writer.close()


@pytest.fixture(params=["tcp", "rtu+tcp"])
async def server(room: Room, request: pytest.FixtureRequest) -> TcpBusServer:
    srv = TcpBusServer(room, 0, rtu=request.param == "rtu+tcp")
    await srv.start()
    yield srv  # type: ignore[misc]
    await srv.stop()


def read(address: int, count: int, fc: int = 3) -> bytes:
    return struct.pack(">BHH", fc, address, count)


@pytest.mark.parametrize("count", [0, 126, 0xFFFF])
async def test_read_quantity_outside_1_to_125_is_exception_3(
    server: TcpBusServer, count: int
) -> None:
    assert await exchange(server, read(reg.MEASUREMENT_START, count)) == bytes([0x83, 3])
    # The connection, and the bus, go on: the next request is answered.
    answer = await exchange(server, read(reg.MEASUREMENT_START, 8))
    assert answer[:2] == bytes([3, 16])


async def test_address_outside_the_map_is_exception_2(server: TcpBusServer) -> None:
    assert await exchange(server, read(0x0050, 1)) == bytes([0x83, 2])
    assert await exchange(server, read(reg.MEASUREMENT_START + 6, 4)) == bytes([0x83, 2])


async def test_unsupported_function_is_exception_1(server: TcpBusServer) -> None:
    assert await exchange(server, struct.pack(">BHH", 1, 0, 1)) == bytes([0x81, 1])


async def test_fc16_byte_count_mismatch_is_refused_and_changes_nothing(
    room: Room, server: TcpBusServer
) -> None:
    module = room.buses[0].devices[1]
    before = dict(module.control)
    # Byte count 2 for two registers (4 bytes); over TCP also a byte count of 6 for them.
    wrong = struct.pack(">BHHBHH", 16, reg.CONTROL_START, 2, 2, 100, 60)
    assert await exchange(server, wrong) == bytes([0x90, 3])
    if not server.rtu:  # on RTU a byte count beyond the frame waits for bytes that never come
        wrong = struct.pack(">BHHBHH", 16, reg.CONTROL_START, 2, 6, 100, 60)
        assert await exchange(server, wrong) == bytes([0x90, 3])
    if not server.rtu:  # on RTU only silence can end a frame shorter than its byte count
        short = struct.pack(">BHHBH", 16, reg.CONTROL_START, 2, 4, 100)  # 2 of the 4 bytes
        assert await exchange(server, short) == bytes([0x90, 3])
    assert module.control == before
    good = struct.pack(">BHHBHH", 16, reg.CONTROL_START, 2, 4, 100, 60)
    assert await exchange(server, good) == struct.pack(">BHH", 16, reg.CONTROL_START, 2)
    assert module.control["balance_setpoint"] == pytest.approx(0.1)


async def test_a_command_the_kind_does_not_have_is_refused(
    room: Room, server: TcpBusServer
) -> None:
    relay = room.buses[0].devices[RELAY_UNIT]
    assert relay.kind is DeviceKind.GX_R_AUX
    address = reg.RELAY_CONTROL.register("command").address
    # Measure Ri, in one request with a relay setpoint: refused whole, the relays unchanged.
    both = struct.pack(">BHHBHHH", 16, reg.CONTROL_START, 3, 6, 1, 0, int(Command.MEASURE_RI))
    assert await exchange(server, both, RELAY_UNIT) == bytes([0x90, 3])
    assert relay.relays == [False] * 4
    single = struct.pack(">BHH", 6, address, int(Command.MEASURE_RI))
    assert await exchange(server, single, RELAY_UNIT) == bytes([0x86, 3])
    # A module has that command.
    module_cmd = struct.pack(">BHH", 6, address, int(Command.MEASURE_RI))
    assert await exchange(server, module_cmd, 1) == module_cmd
