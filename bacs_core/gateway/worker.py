"""The gateway's serving process: Modbus TCP and SNMP from the last snapshot's image.

It runs in its own process (and at a lower priority) so that SCADA and NMS clients polling flat
out never take the interpreter away from the manager's poll cycle and safety loop. The manager
side sends each new image down a pipe (only the newest matters; the OID table only when it
changed); this side serves it and asks the manager side to run a command when an allowed client
writes one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from ..generex import cs141_map as m
from ..generex.image import Cs141Content, Cs141Image, build_image
from ..generex.modbus_server import (
    DEVICE_FAILURE,
    ILLEGAL_ADDRESS,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    Cs141ModbusServer,
)
from ..generex.snmp_agent import serve_snmp
from ..snapshot import ManagerStatus, SystemSnapshot
from . import block as b
from .image import gateway_image
from .options import GatewayOptions

_LOG = logging.getLogger(__name__)
COMMAND_TIMEOUT_S = 10.0


class GatewayServing:
    """The servers and the current image; usable in-process too (tests, benchmarks)."""

    def __init__(self, options: GatewayOptions, send: Any = None) -> None:
        self.options = options
        self._send = send  # (message) -> None towards the manager side; None = no commands
        self.image: Cs141Image = build_image(
            Cs141Content(flags=0, strings=(), modules=()), options.settings
        )
        self._serial = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[int]] = {}
        self.modbus: Cs141ModbusServer | None = None
        self._snmp: asyncio.DatagramTransport | None = None
        self.snmp_port = 0
        self._updated_at = time.monotonic()
        self._stale: Cs141Image | None = None

    def update(self, snap: SystemSnapshot) -> None:
        """Serve ``snap`` (in-process use: tests; the worker gets images built by the sender)."""
        self._serial += 1
        self.serve(gateway_image(snap, self.options.settings, serial=self._serial))

    def serve(self, image: Cs141Image) -> None:
        self.image = image
        self._updated_at = time.monotonic()
        self._stale = None

    def receive_image(self, message: tuple[Any, ...]) -> None:
        """An ``("image", ranges, oids or None, values, serial)`` message from the sender."""
        _, ranges, oids, values, serial = message
        if oids is None:
            oids = self.image.oids  # unchanged: the servers keep their per-OID encodings
        if len(oids) != len(values):
            raise ValueError("image message: OID table and values differ in length")
        self.serve(Cs141Image(ranges=ranges, oids=oids, values=values, serial=serial))

    def current(self) -> Cs141Image:
        """The last image; once no snapshot came for ``stale_after_s``, the same values with
        register 1000 at 0 (a CS141's "internal communication interrupted") and our header's
        status STOPPED, so that a template reading only the CS141 map sees it too."""
        if time.monotonic() - self._updated_at <= self.options.stale_after_s:
            return self.image
        if self._stale is None:
            self._stale = stale_image(self.image)
        return self._stale

    def result(self, command_id: int, code: int) -> None:
        future = self._pending.pop(command_id, None)
        if future is not None and not future.done():
            future.set_result(code)

    async def write(self, host: str, address: int, values: Sequence[int]) -> int:
        if not self.options.allowed(host) or self._send is None:
            if self.options.commands:
                _LOG.warning("gateway: command from %s refused (not in the allow-list)", host)
            return ILLEGAL_FUNCTION
        if len(values) != 1 or address not in (b.ACK_ADDRESS, b.RESET_ADDRESS):
            return ILLEGAL_ADDRESS
        if address == b.ACK_ADDRESS:
            if values[0] != b.ACK_VALUE:
                return ILLEGAL_VALUE
            kind = "acknowledge"
        else:
            if values[0] != b.RESET_VALUE:
                return ILLEGAL_VALUE
            kind = "reset_trip"
        command_id = next(self._ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        self._send(("command", command_id, kind, host))
        try:
            return await asyncio.wait_for(future, COMMAND_TIMEOUT_S)
        except TimeoutError:
            self._pending.pop(command_id, None)
            return DEVICE_FAILURE

    async def start(self) -> None:
        o = self.options
        if o.modbus is not None:
            self.modbus = Cs141ModbusServer(
                self.current, o.modbus[0], o.modbus[1], unit=o.settings.unit, writer=self.write
            )
            await self.modbus.start()
        if o.snmp is not None:
            self._snmp, _ = await serve_snmp(self.current, o.snmp[0], o.snmp[1], o.community)
            self.snmp_port = int(self._snmp.get_extra_info("sockname")[1])

    async def stop(self) -> None:
        if self.modbus is not None:
            await self.modbus.stop()
        if self._snmp is not None:
            self._snmp.close()


def stale_image(image: Cs141Image) -> Cs141Image:
    ranges = []
    for start, words in image.ranges:
        patched = list(words)
        if start == m.GENERAL_START:
            patched[0] = 0
        elif start == b.HEADER_START:
            patched[3] = b.STATUS_CODES[ManagerStatus.STOPPED.value]
        ranges.append((start, tuple(patched)))
    return replace(image, ranges=tuple(ranges), serial=image.serial + 1_000_000)


def worker_main(conn: Connection, options: GatewayOptions) -> None:
    """Serve until told to stop or until the manager's side of the socket closes."""
    with contextlib.suppress(OSError):
        os.nice(options.nice)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, options))


async def _serve(conn: Connection, options: GatewayOptions) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    serving = GatewayServing(options, send=conn.send)
    try:
        await serving.start()
    except OSError as err:
        conn.send(("error", f"cannot listen: {err}"))
        return
    modbus_port = serving.modbus.port if serving.modbus else None
    conn.send(("ready", modbus_port, serving.snmp_port or None))

    def on_readable() -> None:
        try:
            while conn.poll():
                message = conn.recv()
                if message[0] == "image":
                    serving.receive_image(message)
                elif message[0] == "result":
                    serving.result(message[1], message[2])
                elif message[0] == "stop":
                    stop.set()
        except (EOFError, OSError):
            stop.set()  # the manager's process is gone

    loop.add_reader(conn.fileno(), on_readable)
    await stop.wait()
    loop.remove_reader(conn.fileno())
    await serving.stop()


def main(argv: Sequence[str]) -> None:
    """``python -m bacs_core.gateway.worker FD``: FD is a socket to the manager's process."""
    conn = Connection(int(argv[1]))
    kind, options = conn.recv()
    if kind != "options" or not isinstance(options, GatewayOptions):
        raise SystemExit("bacs gateway worker: expected options first")
    worker_main(conn, options)


if __name__ == "__main__":
    import sys

    main(sys.argv)
