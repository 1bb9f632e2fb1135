"""systemd's notify protocol (sd_notify(3)): a datagram to $NOTIFY_SOCKET, nothing more.

READY=1 once the manager runs, WATCHDOG=1 while its poll cycle makes progress, STATUS= for
``systemctl status``, STOPPING=1 on the way out. Without $NOTIFY_SOCKET every call does nothing.
The socket never blocks: a receiver that stops reading (its queue holds only a few datagrams)
costs a message, never the manager's loop and with it the runaway trip.
"""

from __future__ import annotations

import logging
import os
import socket

_LOG = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | bytes | None = None
        if address:
            # "@name" is Linux's abstract namespace: a leading NUL byte on the wire.
            self._address = b"\0" + address[1:].encode() if address.startswith("@") else address
        self._socket: socket.socket | None = None
        self._failing = False  # said once per outage, not every watchdog ping

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
        if self._address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto("\n".join(fields).encode(), self._address)
        except OSError as err:
            log = _LOG.debug if self._failing else _LOG.warning
            log("sd_notify to %r failed: %s", self._address, err)
            self._failing = True
            return False
        if self._failing:
            _LOG.info("sd_notify to %r works again", self._address)
            self._failing = False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
