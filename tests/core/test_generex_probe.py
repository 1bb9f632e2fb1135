"""``bacs simulate --as generex`` and ``bacs probe`` as a user runs them: processes, real ports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BACS = [sys.executable, "-m", "bacs_core"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cs141() -> Iterator[str]:
    port, snmp = free_port(), free_port()
    proc = subprocess.Popen(
        [*BACS, "simulate", "--as", "generex", "--strings", "2", "--blocks", "6",
         "--settle-days", "0.2", "--fault", "dead:1:2",
         "--listen", f"tcp://127.0.0.1:{port}", "--snmp", f"127.0.0.1:{snmp}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert "2 strings, 12 modules" in first, first
    assert "SNMP" in proc.stdout.readline()
    yield f"generex://127.0.0.1:{port}?snmp={snmp}&timeout=0.5"
    proc.terminate()
    proc.wait(10)


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BACS, "probe", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_probe_recognises_a_cs141_and_writes_a_dump_without_secrets(
    cs141: str, tmp_path: Path
) -> None:
    dump = tmp_path / "dump.json"
    out = probe(cs141 + "&community=public", "--json", "--dump", str(dump), "--scan-registers")
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    assert facts["is_bacs"] and facts["modules"] == 12
    assert facts["modules_lost"] == [2]
    assert facts["modbus"]["flags"] == ["RUNNING", "MODULE_LOST", "FLOAT_CHARGING"]
    assert facts["system"]["sysObjectID"] == "1.3.6.1.2.1.33"
    assert facts["register_scan"]["1060-1184"] == "exception 2"  # nothing above 1059
    text = dump.read_text()
    data = json.loads(text)
    assert data["raw_registers"]["1004"] == 12
    assert "1.3.6.1.2.1.33.5.2.5.1.6.2" in data["raw_oids"]
    assert "public" not in text and "127.0.0.1" not in text


def test_probe_reports_a_wrong_scale(cs141: str, tmp_path: Path) -> None:
    out = probe(cs141 + "&string_scale=1", "--no-dump")
    assert out.returncode == 0, out.stderr
    assert "SCALE MISMATCH" in out.stdout and "string_scale=10 would match" in out.stdout


def test_probe_says_what_is_wrong_with_a_bad_url() -> None:
    out = probe("generex://127.0.0.1?comunity=x", "--no-dump")
    assert out.returncode == 2
    assert "unknown option 'comunity'" in out.stderr


def test_probe_of_nothing_exits_1() -> None:
    out = probe(f"generex://127.0.0.1:{free_port()}?snmp={free_port()}&timeout=0.1", "--no-dump")
    assert out.returncode == 1
    assert "nothing answers" in out.stderr
