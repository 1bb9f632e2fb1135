"""The gateway as a consumer of the manager: snapshots in, a serving process out.

``Gateway(manager, options)`` listens for snapshots (``Manager.add_snapshot_listener``) and
hands the newest to the serving process (``worker.py``) from a sender thread, so the listener
costs the poll cycle one assignment. The sender builds the served image itself (about 3 ms for
330 modules) and ships its words and values, and its OID table only when the layout changed:
pickling the snapshot instead cost about 10 ms here and as much again to unpickle there.
Commands from allowed clients come back up the pipe and run on the manager's loop:
``acknowledge()`` and ``reset_trip()``, whose SafetyRefusedError becomes Modbus exception 04 —
a reset stays refused while unsafe, whoever asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from ..generex.image import Cs141Image
from ..generex.modbus_server import DEVICE_FAILURE
from ..manager.safety import SafetyRefusedError
from ..snapshot import SystemSnapshot
from ..source import SourceError
from .image import gateway_image
from .options import GatewayOptions

_LOG = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0


class GatewayError(Exception):
    """The gateway could not start (port taken, process died); the message says why."""


class CommandTarget(Protocol):
    snapshot: SystemSnapshot | None

    def add_snapshot_listener(self, cb: Any) -> Any: ...

    async def acknowledge(self, key: str | None = None) -> int: ...

    async def reset_trip(self) -> None: ...


class Gateway:
    def __init__(self, manager: CommandTarget, options: GatewayOptions) -> None:
        self.manager = manager
        self.options = options
        self.modbus_port: int | None = None
        self.snmp_port: int | None = None
        self._process: Any = None
        self._conn: Any = None
        self._latest: SystemSnapshot | None = None
        self._outbox: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._sender: threading.Thread | None = None
        self._unlisten: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the directory holding bacs_core
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bacs_core.gateway.worker",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                env=env,
            )
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send(("options", self.options))
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, self._wait_ready)
        if ready[0] != "ready":
            await self.stop()
            raise GatewayError(str(ready[1]))
        self.modbus_port, self.snmp_port = ready[1], ready[2]
        self._sender = threading.Thread(target=self._send_loop, name="bacs-gateway-send")
        self._sender.daemon = True
        self._sender.start()
        loop.add_reader(self._conn.fileno(), self._on_message)
        self._unlisten = self.manager.add_snapshot_listener(self.publish)
        if self.manager.snapshot is not None:
            self.publish(self.manager.snapshot)

    def describe(self) -> str:
        o = self.options
        parts = []
        if o.modbus is not None:
            parts.append(f"Modbus TCP {o.modbus[0]}:{self.modbus_port} unit {o.settings.unit}")
        if o.snmp is not None:
            parts.append(f"SNMP {o.snmp[0]}:{self.snmp_port}")
        access = f"commands from {', '.join(o.allow)}" if o.commands else "read-only"
        return f"gateway: {'; '.join(parts)} ({access})"

    def _wait_ready(self) -> tuple[Any, ...]:
        if not self._conn.poll(START_TIMEOUT_S):
            return ("error", "the gateway process did not start")
        try:
            message: tuple[Any, ...] = self._conn.recv()
        except EOFError:
            return ("error", "the gateway process exited at start")
        return message

    def publish(self, snap: SystemSnapshot) -> None:
        """The snapshot listener: O(1); the sender thread ships only the newest."""
        with self._wake:
            self._latest = snap
            self._wake.notify()

    def _send_loop(self) -> None:
        last_oids: tuple[object, ...] | None = None
        serial = 0
        while True:
            with self._wake:
                while self._latest is None and not self._outbox and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                snap, self._latest = self._latest, None
                outbox = list(self._outbox)
                self._outbox.clear()
            try:
                for message in outbox:
                    self._conn.send(message)
                if snap is not None:
                    serial += 1
                    image = gateway_image(snap, self.options.settings, serial=serial)
                    self._conn.send(image_message(image, same_oids=image.oids == last_oids))
                    last_oids = image.oids
                    self.sent += 1
            except (OSError, ValueError):
                return

    def _post(self, message: tuple[Any, ...]) -> None:
        with self._wake:
            self._outbox.append(message)
            self._wake.notify()

    def _on_message(self) -> None:
        try:
            while self._conn.poll():
                message = self._conn.recv()
                if message[0] == "command":
                    task = asyncio.get_running_loop().create_task(self._command(*message[1:]))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            _LOG.error("the gateway process stopped")

    async def _command(self, command_id: int, kind: str, host: str) -> None:
        code = 0
        try:
            if kind == "acknowledge":
                await self.manager.acknowledge()
                _LOG.warning("gateway: alarms acknowledged by %s", host)
            elif kind == "reset_trip":
                await self.manager.reset_trip()
                _LOG.warning("gateway: trip reset by %s", host)
        except (SafetyRefusedError, SourceError) as err:  # unsafe now, or a read-only source
            _LOG.warning("gateway: %s by %s refused: %s", kind, host, err)
            code = DEVICE_FAILURE
        except Exception:
            _LOG.exception("gateway: %s by %s failed", kind, host)
            code = DEVICE_FAILURE
        self._post(("result", command_id, code))

    async def stop(self) -> None:
        if self._unlisten is not None:
            with contextlib.suppress(ValueError):
                self._unlisten()
            self._unlisten = None
        if self._conn is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._conn.fileno())
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._sender is not None:
            self._sender.join(5)
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(("stop",))
        if self._process is not None:
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
            self._process = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def image_message(image: Cs141Image, *, same_oids: bool) -> tuple[Any, ...]:
    """("image", ranges, oids or None when unchanged, values, serial): see worker.py."""
    return ("image", image.ranges, None if same_oids else image.oids, image.values, image.serial)
