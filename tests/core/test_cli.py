"""The ``bacs`` command as a user runs it: processes, a real port, JSON out."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

BACS = [sys.executable, "-m", "bacs_core"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *BACS,
            "simulate",
            "--strings",
            "2",
            "--blocks",
            "32",
            "--speed",
            "60",
            "--settle-days",
            "0.5",
            "--listen",
            f"tcp://127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "68 devices" in line, line
    yield f"tcp://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_scan_json_lists_64_modules_and_the_other_devices(simulator: str) -> None:
    out = subprocess.run(
        [*BACS, "scan", simulator, "--json", "--last", "80", "--timeout", "0.05"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    devices = json.loads(out.stdout)
    kinds = Counter(d["kind"] for d in devices)
    assert kinds == {"C20": 64, "current_sensor": 2, "relay": 1, "environment": 1}
    assert all({"address", "kind", "model", "serial", "firmware"} <= d.keys() for d in devices)
    assert [d["address"] for d in devices] == list(range(1, 69))


def test_monitor_shows_values_that_move(simulator: str) -> None:
    def table() -> str:
        return subprocess.run(
            [*BACS, "monitor", simulator, "--strings", "2", "--once", "--last", "70"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    first = table()
    assert first.count("\n") >= 2
    assert first.splitlines()[1].startswith("1")
    time.sleep(1.5)
    assert table() != first  # measurement noise and the simulated clock move the values


def test_bad_url_is_one_line_and_exit_2() -> None:
    out = subprocess.run(
        [*BACS, "scan", "ftp://x"], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 2
    assert out.stderr.strip().startswith("bacs scan: unsupported bus URL")
    assert "Traceback" not in out.stderr
    down = subprocess.run(
        [*BACS, "monitor", f"tcp://127.0.0.1:{free_port()}", "--once"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert down.returncode == 2
    assert "cannot reach" in down.stderr


def test_simulate_prints_units_and_refuses_bad_options() -> None:
    out = subprocess.run(
        [*BACS, "simulate", "--strings", "1", "--blocks", "4", "--print-units"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert "unit   1 C20" in out.stdout
    assert "GX_R_AUX" in out.stdout
    bad = subprocess.run(
        [*BACS, "simulate", "--fault", "meltdown:1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2
    assert "unknown fault" in bad.stderr


def test_help_lists_every_command() -> None:
    out = subprocess.run([*BACS, "--help"], capture_output=True, text=True, check=True)
    for command in ("simulate", "scan", "monitor"):
        assert command in out.stdout
