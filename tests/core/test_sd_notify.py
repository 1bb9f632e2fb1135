"""sd_notify never blocks the loop that runs the trip, and loses no state message."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bacs_core.cli.sd_notify import Notifier


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield sock, path
    sock.close()


def _fill(path: str) -> int:
    """Fill the receiver's queue from another socket: the state a stuck systemd leaves."""
    other = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    other.setblocking(False)
    sent = 0
    try:
        while True:
            other.sendto(b"X=1", path)
            sent += 1
    except BlockingIOError:
        return sent
    finally:
        other.close()


def _drain(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    got = []
    try:
        while True:
            got.append(sock.recv(1024))
    except BlockingIOError:
        return got


def test_a_full_receiver_never_blocks_and_order_is_kept(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    notifier = Notifier(path)
    filler = _fill(path)
    started = time.monotonic()
    assert notifier.notify("READY=1", "STATUS=running") is False
    assert notifier.notify("WATCHDOG=1") is False  # a ping that cannot go is dropped
    assert notifier.notify("STATUS=second") is False
    assert time.monotonic() - started < 0.5  # returned at once (a blocking send hangs forever)
    assert len(_drain(sock)) == filler  # only the filler got through
    assert notifier.notify("STOPPING=1") is True
    assert _drain(sock) == [b"READY=1\nSTATUS=running", b"STATUS=second", b"STOPPING=1"]
    notifier.close()


def test_close_delivers_what_is_pending_once_the_receiver_reads(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    notifier = Notifier(path)
    filler = _fill(path)
    assert notifier.notify("STOPPING=1") is False
    got: list[bytes] = []

    def read_later() -> None:
        time.sleep(0.2)
        sock.settimeout(2)
        for _ in range(filler + 1):
            got.append(sock.recv(1024))

    reader = threading.Thread(target=read_later)
    reader.start()
    notifier.close()  # waits up to a second for the receiver
    reader.join()
    assert got[-1] == b"STOPPING=1"


def test_without_a_socket_nothing_is_sent() -> None:
    notifier = Notifier("")
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    notifier.close()
