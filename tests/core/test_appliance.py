"""``bacs run --config site.yaml`` as a service, in a subprocess: systemd's notify protocol
(READY, WATCHDOG, STATUS, STOPPING on a real datagram socket), JSON logs, SIGHUP reloads what
can change live and says what needs a restart, SIGTERM stops cleanly with the state saved,
one appliance per state directory, and MQTT publishing from the service."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt_broker import Subscriber, needs_mosquitto, running_broker

ROOT = Path(__file__).parents[2]
SITE = """\
site: {name: Appliance test, id: appl}
buses:
  - {id: bus1, url: "sim://appl?strings=1&blocks=4&settle_days=0"}
poll_interval: 1
trip: {auto: true}
thresholds:
  temperature: {alarm_high: 55}
"""


class Notify:
    """The socket systemd would listen on, read all the time as systemd reads it (its queue
    holds about ten datagrams; the service drops what does not fit)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.received: list[str] = []
        self.closed = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while not self.closed.is_set():
            with contextlib.suppress(TimeoutError):
                self.received.append(self.sock.recv(4096).decode())

    def wait_for(self, field: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in list(self.received):
                if field in msg.split("\n") or any(
                    line.startswith(field) for line in msg.split("\n")
                ):
                    return msg
            time.sleep(0.05)
        raise AssertionError(f"no {field} from the service; got {self.received}")

    def close(self) -> None:
        self.closed.set()
        self.reader.join()
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    n = Notify(tmp_path / "notify.sock")
    yield n
    n.close()


def start(tmp_path: Path, notify: Notify | None, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WATCHDOG_USEC": "1000000"}
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify.path)
    return subprocess.Popen(
        [sys.executable, "-m", "bacs_core", "run", "--config", str(tmp_path / "site.yaml"),
         "--state-dir", str(tmp_path / "state"), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_service_notifies_reloads_and_stops_cleanly(tmp_path: Path, notify: Notify) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    proc = start(tmp_path, notify, "--log-format", "json")
    try:
        notify.wait_for("READY=1")
        assert "cycle" in notify.wait_for("STATUS=cycle")
        notify.wait_for("WATCHDOG=1")
        # A second service on the same state directory is refused.
        second = start(tmp_path, None)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 1
        assert "another bacs run uses this state directory" in err

        changed = SITE.replace("alarm_high: 55", "alarm_high: 50").replace(
            "strings=1&blocks=4", "strings=1&blocks=5"
        )
        (tmp_path / "site.yaml").write_text(changed)
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        (tmp_path / "site.yaml").write_text("buses: [")  # a broken file is refused on reload
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert proc.poll() is None  # still running on the last good settings
    finally:
        code, err = stop(proc)
    assert code == 0, err
    notify.wait_for("STOPPING=1")
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    messages = [r["message"] for r in records]
    assert any("buses changed and need a restart" in m for m in messages), messages
    assert any(m.startswith("reloaded") for m in messages), messages
    assert any(m.startswith("reload refused, the running settings stay") for m in messages)
    assert any(m == "stopping: shunts off, state saved" for m in messages)
    assert messages[-1] == "stopped"
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    state = json.loads((tmp_path / "state" / "manager.json").read_text())
    assert state  # the manager's state was saved on the way out


def test_text_logs_and_a_stop_after_n_cycles(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SITE)
    proc = start(tmp_path, None, "--cycles", "2")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = err.splitlines()
    assert any("INFO bacs.appliance: found 7 devices; running" in line for line in lines), err
    assert any("cycle 1, ok, 4/4 modules, 0 active alarm(s), trip armed" in ln for ln in lines)


@needs_mosquitto
def test_the_service_publishes_to_mqtt_and_says_offline_when_stopped(tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    with running_broker(tmp_path / "broker") as broker:
        site = SITE + f"mqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n"
        (tmp_path / "site.yaml").write_text(site)
        sub = Subscriber(broker.port)
        proc = start(tmp_path, None)
        try:
            sub.wait_for(lambda: sub.retained.get("bacs/appl/hub/status") == b"ok", 30)
            sub.wait_for(lambda: sub.retained.get("homeassistant/device/bacs-appl/config"))
            assert sub.retained["bacs/appl/availability"] == b"online"
        finally:
            code, err = stop(proc)
        assert code == 0, err
        sub.wait_for(lambda: sub.retained.get("bacs/appl/availability") == b"offline")
        assert (tmp_path / "state" / "mqtt-outbox-appl.sqlite3").exists()
        sub.close()
