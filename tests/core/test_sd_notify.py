"""sd_notify never blocks the manager's loop: a receiver that stops reading (a unix datagram
queue holds about ten messages) costs messages, said once, and the next read gets through."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from bacs_core.cli.sd_notify import Notifier


@pytest.mark.timeout(20)
def test_a_receiver_that_stops_reading_costs_messages_not_the_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    notifier = Notifier(str(path))
    try:
        with caplog.at_level(logging.DEBUG, logger="bacs_core.cli.sd_notify"):
            sent = [notifier.notify("WATCHDOG=1") for _ in range(200)]  # blocked here before
            assert sent[0] and not all(sent)
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "failed" in warnings[0].getMessage()
            receiver.setblocking(False)
            queued = 0
            while True:
                try:
                    receiver.recv(64)
                except BlockingIOError:
                    break
                queued += 1
            assert queued == sent.count(True)
            assert notifier.notify("STOPPING=1")  # read again: the next one gets through
            assert receiver.recv(64) == b"STOPPING=1"
            assert any("works again" in r.getMessage() for r in caplog.records)
    finally:
        notifier.close()
        receiver.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier("")
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
