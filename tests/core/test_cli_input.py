"""Bad input on the command line gets one clear line on stderr and exit status 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bacs_core.cli import main

LONG_HOST = "h" * 300


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["scan", "tcp://[::1"], "Invalid IPv6 URL"),
        (["scan", f"tcp://{LONG_HOST}:502"], "300 characters long"),
        (["scan", "tcp://bad host:502"], "not a host name"),
        (["scan", "tcp://gateway:0"], "port must be a number"),
        (["scan", "tcp://gateway:502?x=1"], "no path or options"),
        (["scan", "sim://demo?speed=nan"], "speed must be a number ≥ 0"),
        (["scan", "tcp://127.0.0.1:1", "--timeout", "-1"], "--timeout: -1 must be above 0"),
        (["scan", "tcp://127.0.0.1:1", "--timeout", "0"], "--timeout: 0 must be above 0"),
        (["scan", "tcp://127.0.0.1:1", "--timeout", "nan"], "not a finite number"),
        (["scan", "tcp://127.0.0.1:1", "--last", "300"], "--last: 300 is not in 1..247"),
        (["scan", "tcp://127.0.0.1:1", "--first", "9", "--last", "3"], "above --last"),
        (["monitor", "tcp://127.0.0.1:1", "--interval", "inf"], "not a finite number"),
        (["monitor", "tcp://127.0.0.1:1", "--strings", "0"], "--strings: 0 is not in 1..64"),
        (["monitor", "tcp://127.0.0.1:1", "--count", "-2"], "--count"),
        (["simulate", "--control", "HOST:abc"], "the port must be a number"),
        (["simulate", "--control", f"{LONG_HOST}:5030"], "300 characters long"),
        (["simulate", "--speed", "nan"], "--speed: 'nan' is not a finite number"),
        (["simulate", "--speed", "inf"], "--speed: 'inf' is not a finite number"),
        (["simulate", "--speed", "-1"], "--speed: -1 must be above 0"),
        (["simulate", "--speed", "fast"], "'fast' is not a number"),
        (["simulate", "--blocks", "0"], "--blocks: 0 is not in 1..240"),
        (["simulate", "--capacity", "0"], "--capacity: 0 must be above 0"),
        (["simulate", "--settle-days", "-1"], "--settle-days"),
        (["simulate", "--turnaround-ms", "nan"], "--turnaround-ms"),
        (["simulate", "--baud", "1234"], "--baud 1234 is not one of"),
        (["simulate", "--listen", "tcp://0.0.0.0"], "give HOST:PORT"),
        (["simulate", "--listen", "udp://x:1"], "use tcp://HOST:PORT"),
        (["simulate", "--fault", "timeouts:1=nan"], "=value must be a number"),
        (["simulate", "--fault", "weak:x:7"], "with numbers from 1"),
        (["simulate", "--fault", "weak:1:7@-5"], "@seconds must be a number"),
        (["simulate", "--fault", "meltdown"], "unknown fault"),
        (["run", "--interval", "nan"], "--interval: 'nan' is not a finite number"),
        (["run", "--interval", "0.1"], "--interval: 0.1 must be at least 1"),
        (["run", "--interval", "61"], "--interval: 61 must be at most 60"),
        (["run", "--cycles", "-1"], "--cycles"),
        (["run", "tcp://[::1"], "Invalid IPv6 URL"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_option_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(argv, capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert len(err) < 250, err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "a JSON object is expected"),
        (b'{"poll_interval": NaN}', "NaN is not a number JSON allows"),
        (b'{"poll_interval": "soon"}', "poll_interval"),
        (b'{"buses": [{"id": "b", "url": "tcp://[::1"}]}', "Invalid IPv6 URL"),
    ],
)
def test_bad_settings_file_is_one_line(
    tmp_path: Path, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    code, err = run_cli(["run", "--config", str(path)], capsys)
    assert (code, len(err.strip().splitlines())) == (2, 1), err
    assert message in err


def test_settings_path_that_is_a_directory_or_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["run", "--config", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in err
    code, err = run_cli(["run", "--config", str(tmp_path / "nope.json")], capsys)
    assert code == 2 and "nope.json" in err and len(err.strip().splitlines()) == 1


def simulate(*extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "bacs_core", "simulate", "--strings", "1", "--blocks", "2"),
            *("--listen", "tcp://127.0.0.1:0", *extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )


def test_control_channel_in_use_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = simulate("--control", str(port))
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.strip() == f"bacs simulate: control channel 127.0.0.1:{port} is already in use"


def test_control_channel_binds_localhost_unless_a_host_is_given() -> None:
    proc = simulate("--control", "0")
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # the bus line
        line = proc.stdout.readline().strip()
        assert line.startswith("control: tcp://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b'{"status": true}\n')
            answer = json.loads(conn.makefile().readline())
        assert answer["ok"] is True
    finally:
        proc.terminate()
        proc.wait(10)
