"""systemd's notify protocol (sd_notify(3)): a datagram to $NOTIFY_SOCKET, nothing more.

READY=1 once the manager runs, WATCHDOG=1 while its poll cycle makes progress, STATUS= for
``systemctl status``, STOPPING=1 on the way out. Without $NOTIFY_SOCKET every call does nothing.

The socket never blocks: the event loop that sends these also runs the runaway trip, and a
receiver whose queue is full (a stuck systemd, a slow test) must not stall it. A message that
cannot go now waits, in order, and goes before the next one; a watchdog ping that cannot go is
dropped (the next one says the same). Closing waits a moment for what is still pending: by
then the manager has stopped and nothing else needs the loop.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque

_LOG = logging.getLogger(__name__)

PENDING_MAX = 16  # messages kept while the receiver's queue is full; the oldest go first
CLOSE_WAIT_S = 1.0  # how long closing may wait for the receiver to take what is pending


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | bytes | None = None
        if address:
            # "@name" is Linux's abstract namespace: a leading NUL byte on the wire.
            self._address = b"\0" + address[1:].encode() if address.startswith("@") else address
        self._socket: socket.socket | None = None
        self._pending: deque[bytes] = deque(maxlen=PENDING_MAX)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def watchdog_interval_s(self) -> float | None:
        """Half of WatchdogSec= (systemd's advice), when the watchdog is on for this process."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2e6
        except ValueError:
            return None

    def notify(self, *fields: str) -> bool:
        """Send now if the receiver takes it (True); else keep it for later (False)."""
        if self._address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            sock = self._open()
            self._flush(sock)
            if self._pending:  # still full: keep the order
                self._keep(message)
                return False
            sock.sendto(message, self._address)
        except BlockingIOError:
            self._keep(message)
            return False
        except OSError as err:
            _LOG.warning("sd_notify to %r failed: %s", self._address, err)
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            if self._pending:
                self._socket.settimeout(CLOSE_WAIT_S)
                try:
                    self._flush(self._socket)
                except OSError as err:
                    _LOG.warning(
                        "sd_notify: %d messages not delivered: %s", len(self._pending), err
                    )
            self._socket.close()
            self._socket = None

    def _open(self) -> socket.socket:
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        return self._socket

    def _flush(self, sock: socket.socket) -> None:
        assert self._address is not None
        while self._pending:
            try:
                sock.sendto(self._pending[0], self._address)
            except BlockingIOError:
                return
            self._pending.popleft()

    def _keep(self, message: bytes) -> None:
        if message == b"WATCHDOG=1":
            return  # periodic: the next ping says the same
        self._pending.append(message)
