"""``bacs run --config site.yaml`` on a GENEREX CS141 (the simulator impersonating one, in its
own process): the service reads it, publishes over MQTT and serves the gateway from it; a
GENEREX system that does not answer stops the service with one clear error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from bacs_core.bus.pymodbus_compat import unit_kwargs
from bacs_core.gateway import block as b
from tests.mqtt_broker import Subscriber, needs_mosquitto, running_broker

ROOT = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def cs141() -> Iterator[tuple[int, int]]:
    """A CS141 impersonated by ``bacs simulate --as generex``: (Modbus port, SNMP port)."""
    modbus, snmp = free_port(), free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bacs_core", "simulate", "--as", "generex", "--strings", "2",
         "--blocks", "4", "--settle-days", "0.1", "--listen", f"tcp://127.0.0.1:{modbus}",
         "--snmp", f"127.0.0.1:{snmp}"],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(modbus)
        yield modbus, snmp
    finally:
        proc.terminate()
        proc.wait(10)


def start(tmp_path: Path, site: str) -> subprocess.Popen[str]:
    (tmp_path / "site.yaml").write_text(site)
    return subprocess.Popen(
        [sys.executable, "-m", "bacs_core", "run", "--config", str(tmp_path / "site.yaml"),
         "--state-dir", str(tmp_path / "state")],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def read_gateway(port: int, address: int, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        try:
            if client.connect():
                r = client.read_holding_registers(address, count=count, **unit_kwargs(1))
                if not r.isError() and r.registers[0]:
                    return list(r.registers)
        finally:
            client.close()
        time.sleep(0.2)
    raise AssertionError(f"the gateway on {port} served nothing at {address}")


@needs_mosquitto
def test_a_generex_site_runs_with_mqtt_and_the_gateway(
    tmp_path: Path, cs141: tuple[int, int]
) -> None:
    modbus, snmp = cs141
    gateway = free_port()
    (tmp_path / "broker").mkdir()
    with running_broker(tmp_path / "broker") as broker:
        site = (
            "site: {name: UPS room, id: ups}\n"
            f"buses:\n  - {{id: cs141, url: 'generex://127.0.0.1:{modbus}?snmp={snmp}&timeout=1'}}\n"
            "poll_interval: 1\n"
            f"mqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n"
            f"gateway:\n  modbus: 127.0.0.1:{gateway}\n"
        )
        sub = Subscriber(broker.port)
        proc = start(tmp_path, site)
        try:
            sub.wait_for(lambda: sub.retained.get("bacs/ups/hub/status"), 60)
            assert sub.retained["bacs/ups/availability"] == b"online"
            general = read_gateway(gateway, 1000, 5)  # the CS141 map, served again
            header = read_gateway(gateway, b.HEADER_START, 3)  # and our own block
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        sub.close()
    assert proc.returncode == 0, err
    assert general[3:5] == [2, 8]  # strings, modules
    assert header == [b.FORMAT_VERSION, 8, 2]
    assert "INFO bacs.appliance: found 8 devices; running" in err
    assert f"gateway: Modbus TCP 127.0.0.1:{gateway} unit 1 (read-only)" in err
    assert "Traceback" not in err


def test_a_generex_system_that_does_not_answer_stops_the_service(tmp_path: Path) -> None:
    closed = free_port()
    proc = start(
        tmp_path,
        f"buses:\n  - {{id: cs141, url: 'generex://127.0.0.1:{closed}?snmp=0&timeout=0.2'}}\n",
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "ERROR" in err and "Traceback" not in err
    assert str(closed) in err
