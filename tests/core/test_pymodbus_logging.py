"""bacs_core quiets pymodbus's per-request errors for its own clients only: another pymodbus
user in the same process (Home Assistant's Modbus integration) still sees its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from bacs_core.bus import open_transport
from bacs_core.bus.errors import BusTimeoutError

NO_RESPONSE = "No response received"


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """Accepts Modbus TCP connections and never answers."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(256):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def _no_response_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("pymodbus") and NO_RESPONSE in r.msg]


async def test_our_timeouts_are_not_logged(
    silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pymodbus")
    transport = open_transport(f"tcp://127.0.0.1:{silent_port}", timeout=0.05, retries=1)
    await transport.connect()
    try:
        with pytest.raises(BusTimeoutError):
            await transport.read(1, 0, 1)
    finally:
        await transport.close()
    assert _no_response_records(caplog) == []


async def test_other_pymodbus_clients_still_log(
    silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A plain pymodbus client, as Home Assistant's Modbus integration holds one, in the
    same process after bacs_core's transport was imported and used."""
    caplog.set_level(logging.DEBUG, logger="pymodbus")
    ours = open_transport(f"tcp://127.0.0.1:{silent_port}", timeout=0.05, retries=0)
    await ours.connect()
    theirs = AsyncModbusTcpClient("127.0.0.1", port=silent_port, timeout=0.05, retries=0)
    await theirs.connect()
    try:
        # Interleaved: our request in flight while theirs times out.
        results = await asyncio.gather(
            ours.read(1, 0, 1), theirs.read_holding_registers(0, count=1), return_exceptions=True
        )
    finally:
        theirs.close()
        await ours.close()
    assert isinstance(results[0], BusTimeoutError)
    assert isinstance(results[1], ModbusIOException)
    records = _no_response_records(caplog)
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "Repeat" in r.msg]
