"""RegisterTransport on pymodbus: Modbus TCP, RTU over TCP and RTU on a serial port.

This class is the one owner of its port: an asyncio.Lock serialises every request. It
retries (pymodbus's own retries are off, so a timeout costs exactly ``timeout`` per try)
and maps pymodbus failures onto ``bacs_core.bus.errors``. Reconnection is the caller's
decision (BusClient backs off); pymodbus's automatic reconnect is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.logging import Log
from pymodbus.pdu import DecodePDU, ModbusPDU

from .errors import (
    BadResponseError,
    BusConnectionError,
    BusTimeoutError,
    DeviceExceptionError,
    PortBusyError,
)
from .frames import CheckedRtuFramer, CheckedSocketFramer, RejectedFrameError
from .pymodbus_compat import unit_kwargs
from .url import BusUrl, Scheme

# pymodbus logs through one process-wide logger and says nothing of which client spoke. Our
# requests run with this flag set (asyncio copies it into everything they schedule), so the
# filter can drop exactly our own records and leave every other pymodbus user's alone (Home
# Assistant's Modbus integration logs its missing answers as before).
_OUR_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "bacs_modbus_request", default=False
)


class _DropOurPerRequestErrors(logging.Filter):
    """pymodbus logs every unanswered request at ERROR with a frame dump; for our own
    requests BusClient already accounts for each one as a reading's quality and the bus
    link quality."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _OUR_REQUEST.get():
            return True
        message = record.getMessage()
        if not message.startswith(("No response received", "ERROR: request ask for")):
            return True
        # pymodbus collapses a line equal to the last one into "Repeating....", across all
        # clients: forget ours, so another client's same error is still logged in full.
        Log.last_log_text = ""
        Log.repeat_log = False
        return False


logging.getLogger("pymodbus.logging").addFilter(_DropOurPerRequestErrors())


def find_port_owner(path: str) -> str | None:
    """The process that holds a serial device open (``name (pid N)``), if /proc tells."""
    try:
        target = os.path.realpath(path)
    except OSError:
        return None
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.path.realpath(fd) == target:
                    name = (proc / "comm").read_text().strip()
                    return f"{name} (pid {proc.name})"
    return None


def _is_connected(client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> bool:
    return bool(client.connected)


class ModbusTransport:
    """One bus over pymodbus. Every answer is checked against its request (``frames.py``)."""

    confirm_changes = True  # a wire: BusClient re-reads a value that jumps before it acts

    def __init__(self, url: BusUrl, *, timeout: float = 0.5, retries: int = 1) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self.rejected: Counter[int] = Counter()  # refused answers, by unit

    def _install_checks(self, client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> None:
        """Swap pymodbus's framer for the same framing with the answer checks on top."""
        framer = CheckedSocketFramer if self.url.scheme is Scheme.TCP else CheckedRtuFramer
        ctx = client.ctx

        def on_reject(err: RejectedFrameError, fail: bool) -> None:
            self.rejected[err.unit] += 1
            future = ctx.response_future
            if fail and not future.done():
                future.set_exception(err)

        ctx.framer = framer(
            DecodePDU(False), on_reject=on_reject, waiting=lambda: not ctx.response_future.done()
        )

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        url = self.url
        if url.scheme is Scheme.SERIAL:
            return AsyncModbusSerialClient(
                url.path,
                framer=FramerType.RTU,
                baudrate=url.baudrate,
                parity=url.parity,
                stopbits=url.stopbits,
                bytesize=url.bytesize,
                timeout=self.timeout,
                retries=0,
                reconnect_delay=0,
            )
        framer = FramerType.SOCKET if url.scheme is Scheme.TCP else FramerType.RTU
        return AsyncModbusTcpClient(
            url.host,
            port=url.port,
            framer=framer,
            timeout=self.timeout,
            retries=0,
            reconnect_delay=0,
        )

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        await self.close()
        if self.url.is_serial:
            await self._probe_port_owner()
        client = self._make_client()
        self._install_checks(client)
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as err:
            client.close()
            raise BusConnectionError(f"cannot open {self.url.redacted()}: {err}") from err
        if not ok:
            client.close()
            raise BusConnectionError(f"cannot open {self.url.redacted()}")
        client.ctx.max_until_disconnect = 1 << 30  # dead modules must not close the port
        client.ctx.count_until_disconnect = 1 << 30
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _probe_port_owner(self) -> None:
        """Probe for another owner: pymodbus opens the port with pyserial's exclusive flock,
        which would only say "cannot open"; this names the process that holds it."""
        path = self.url.path
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise BusConnectionError(f"serial port {path} does not exist") from None
        except OSError as err:
            raise BusConnectionError(f"cannot open serial port {path}: {err}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            owner = await asyncio.get_running_loop().run_in_executor(None, find_port_owner, path)
            raise PortBusyError(path, owner) from None
        os.close(fd)  # closing drops the probe's lock; pymodbus takes its own

    async def _call(
        self, unit: int, timeout: float | None, request: str, *args: object, **kwargs: object
    ) -> ModbusPDU:
        token = _OUR_REQUEST.set(True)
        try:
            return await self._call_locked(unit, timeout, request, *args, **kwargs)
        finally:
            _OUR_REQUEST.reset(token)

    async def _call_locked(
        self, unit: int, timeout: float | None, request: str, *args: object, **kwargs: object
    ) -> ModbusPDU:
        async with self._lock:
            client = self._client
            if client is None or not client.connected:
                raise BusConnectionError(f"{self.url.redacted()} is not connected")
            client.ctx.comm_params.timeout_connect = timeout or self.timeout
            last: Exception | None = None
            rejected: RejectedFrameError | None = None
            tries = 1 if timeout else self.retries + 1  # a probe (scan) tries once
            for _ in range(tries):
                try:
                    method = getattr(client, request)
                    response: ModbusPDU = await method(*args, **unit_kwargs(unit), **kwargs)
                except ConnectionException as err:
                    await self.close()
                    raise BusConnectionError(str(err)) from err
                except RejectedFrameError as err:
                    rejected = err  # refused at once; the retry asks again
                    continue
                except ModbusIOException as err:
                    if not _is_connected(client):
                        await self.close()
                        raise BusConnectionError(str(err)) from err
                    last = err
                    continue
                except ModbusException as err:
                    raise BadResponseError(f"unit {unit}: {err}") from err
                if response.isError():
                    raise DeviceExceptionError(unit, response.exception_code)
                return response
            if rejected is not None and last is None:
                raise BadResponseError(str(rejected))
            raise BusTimeoutError(f"unit {unit}: no answer ({last or rejected})")

    async def read(
        self, unit: int, address: int, count: int, *, timeout: float | None = None
    ) -> list[int]:
        response = await self._call(unit, timeout, "read_holding_registers", address, count=count)
        words = list(response.registers)
        if len(words) != count:
            raise BadResponseError(f"unit {unit}: {len(words)} registers, asked for {count}")
        return words

    async def write(self, unit: int, address: int, values: Sequence[int]) -> None:
        if len(values) == 1:
            await self._call(unit, None, "write_register", address, values[0])
        else:
            await self._call(unit, None, "write_registers", address, list(values))
