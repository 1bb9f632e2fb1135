"""Reads the CS141's BACS registers over Modbus TCP with pymodbus. Never writes.

FC03 first; a CS141 answers FC04 from the same space, so a unit that refuses FC03 (exception 01)
is read with FC04 from then on. Exception 02 (no such register) on the whole block falls back to
the general block and one string at a time; 06 (busy) is retried with back-off; 03 and anything
else is reported, not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from ..bus.pymodbus_compat import unit_kwargs
from . import cs141_map as m

_LOG = logging.getLogger(__name__)

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
DEVICE_BUSY = 6
BUSY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0)


class Cs141ModbusError(Exception):
    """The CS141 could not be read; ``code`` is the Modbus exception when there was one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class Cs141ModbusClient:
    def __init__(self, host: str, port: int, unit: int, timeout: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout = timeout
        self.function = 3
        self.requests = 0
        self.failures = 0
        self._client: AsyncModbusTcpClient | None = None

    async def connect(self) -> None:
        await self.close()
        client = AsyncModbusTcpClient(
            self.host, port=self.port, timeout=self.timeout, retries=0, reconnect_delay=0
        )
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as err:
            client.close()
            raise Cs141ModbusError(f"cannot connect to Modbus TCP port {self.port}: {err}") from err
        if not ok:
            client.close()
            raise Cs141ModbusError(f"cannot connect to Modbus TCP port {self.port}")
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _once(self, address: int, count: int) -> ModbusPDU:
        if self._client is None or not self._client.connected:
            await self.connect()
        assert self._client is not None
        name = "read_holding_registers" if self.function == 3 else "read_input_registers"
        method = getattr(self._client, name)  # the unit keyword differs across pymodbus
        self.requests += 1
        try:
            response: ModbusPDU = await method(address, count=count, **unit_kwargs(self.unit))
            return response
        except ModbusException as err:
            self.failures += 1
            await self.close()
            raise Cs141ModbusError(f"no Modbus answer from unit {self.unit}: {err}") from err

    async def read(self, address: int, count: int) -> list[int]:
        """``count`` registers from ``address`` (FC03, or FC04 once FC03 was refused)."""
        busy = iter(BUSY_BACKOFF_S)
        while True:
            response = await self._once(address, count)
            if not response.isError():
                words = list(response.registers)
                if len(words) != count:
                    self.failures += 1
                    raise Cs141ModbusError(f"{len(words)} registers answered, {count} asked")
                return words
            self.failures += 1
            code = int(response.exception_code)
            if code == ILLEGAL_FUNCTION and self.function == 3:
                _LOG.info("unit %s refuses FC03; reading with FC04", self.unit)
                self.function = 4
                continue
            if code == DEVICE_BUSY:
                delay = next(busy, None)
                if delay is not None:
                    await asyncio.sleep(delay)
                    continue
                raise Cs141ModbusError("the CS141 stayed busy (exception 06)", code)
            meaning = {
                ILLEGAL_ADDRESS: "no such register",
                ILLEGAL_VALUE: "illegal data value",
                ILLEGAL_FUNCTION: "function not supported",
            }.get(code, "device exception")
            raise Cs141ModbusError(
                f"registers {address}…{address + count - 1}: exception {code:02d} ({meaning})",
                code,
            )

    async def read_map(self) -> tuple[dict[int, int], list[str]]:
        """Every documented register that answers: address → word, and notes on the rest."""
        notes: list[str] = []
        try:
            words = await self.read(m.GENERAL_START, m.BLOCK_COUNT)
            return dict(enumerate(words, start=m.GENERAL_START)), notes
        except Cs141ModbusError as err:
            if err.code != ILLEGAL_ADDRESS:
                raise
            notes.append(f"the whole block 1000–1059 is refused ({err}); reading piecewise")
        out = dict(
            enumerate(await self.read(m.GENERAL_START, m.GENERAL_COUNT), start=m.GENERAL_START)
        )
        strings = out.get(1003) or m.MAX_MAIN_STRINGS
        for s in range(1, min(strings, m.MAX_MAIN_STRINGS) + 1):
            start = m.string_address(s, m.StringField.CURRENT)
            try:
                block = await self.read(start, m.STRING_STRIDE - 1)
            except Cs141ModbusError as err:
                if err.code != ILLEGAL_ADDRESS:
                    raise
                notes.append(f"string {s}: {err}")
                continue
            out.update(enumerate(block, start=start))
        return out, notes

    async def __aenter__(self) -> Cs141ModbusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.close()
