"""The appliance records the battery history: ``bacs run --config site.yaml`` against
``bacs simulate --speed 600`` on the simulator's clock, a discharge of the whole room driven
through the control channel (string 1 has a weak block, capacity ×0.75 and Ri ×1.4 at
position 7), SIGTERM, then ``bacs export STATE --list`` and ``bacs report STATE --discharge
last`` on what the service wrote: the weak block is named. A damaged history file is set
aside and the service runs on."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bacs_core.history import HistoryReader

ROOT = Path(__file__).parents[2]
BACS = [sys.executable, "-m", "bacs_core"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
WEAK = 7
# The simulator steps its room every 0.2 s of real time: a poll must take longer than that or
# the modules' measurement sequence stands still and their readings are judged stale. 60 s
# polls (the longest allowed) at 240× are 0.25 s apart; two simulated hours take 30 s.
SPEED = 240
POLL_S = 60
DISCHARGE_S = 2 * 3600.0  # C/10 for two hours: the weak block falls early (20 % depth)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Control:
    """The simulator's JSON control channel."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rw", encoding="utf-8")

    def send(self, command: dict[str, object]) -> dict[str, object]:
        self.file.write(json.dumps(command) + "\n")
        self.file.flush()
        answer: dict[str, object] = json.loads(self.file.readline())
        assert answer["ok"], answer
        return answer

    def time_s(self) -> float:
        status = self.send({"status": True})["status"]
        assert isinstance(status, dict)
        return float(status["time_s"])

    def wait_until(self, t_s: float, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.time_s() < t_s:
            assert time.monotonic() < deadline, "the simulator's time does not advance"
            time.sleep(0.2)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def simulator(bus: int, control: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*BACS, "simulate", "--strings", "1", "--blocks", "16", "--capacity", "40",
         "--seed", "4", "--settle-days", "1", "--fault", f"weak:1:{WEAK}",
         "--speed", str(SPEED), "--turnaround-ms", "0",
         "--listen", f"tcp://127.0.0.1:{bus}", "--control", f"127.0.0.1:{control}"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert "devices" in proc.stdout.readline()
    assert "control" in proc.stdout.readline()
    return proc


def appliance(tmp_path: Path, control: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*BACS, "run", "--config", str(tmp_path / "site.yaml"),
         "--state-dir", str(tmp_path / "state"), "--clock", f"sim:127.0.0.1:{control}",
         "--log-format", "json", *extra],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def messages(err: str) -> list[str]:
    return [json.loads(line)["message"] for line in err.splitlines() if line.startswith("{")]


class Log:
    """The service's log lines as they come (a thread reads its standard error)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        assert proc.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: io.TextIOBase) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in m for m in messages("".join(self.lines))):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.1)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self._thread.join(timeout=10)
        err = "".join(self.lines)
        assert self.proc.returncode == 0, err
        return err


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One discharge recorded by the service (about a minute: the scan of every address, two
    simulated hours); the state directory and its log."""
    tmp_path = tmp_path_factory.mktemp("appliance-history")
    bus, port = free_port(), free_port()
    (tmp_path / "site.yaml").write_text(
        "site: {name: History test, id: hist}\n"
        f"buses: [{{id: bus1, url: 'tcp://127.0.0.1:{bus}'}}]\n"
        "capacity_ah: 40\n"
        f"poll_interval: {POLL_S}\n"
        "history:\n"
        "  float_interval: 600\n"
        "  recovery: 300\n",
        encoding="utf-8",
    )
    sim = simulator(bus, port)
    control = Control(port)
    proc = None
    try:
        proc = appliance(tmp_path, port)
        log = Log(proc)
        log.wait_for("devices; running")  # the scan of every address takes a while
        time.sleep(1.0)  # a few float cycles first
        start = control.time_s()
        control.send({"scenario": "discharge"})
        control.wait_until(start + DISCHARGE_S)
        control.send({"scenario": "float"})
        control.wait_until(start + DISCHARGE_S + 600)  # past the 5 min recovery reading
        err = log.stop()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        control.close()
        sim.terminate()
        sim.communicate(timeout=30)
    return tmp_path / "state", err


def test_the_service_records_the_discharge_and_closes_the_history(
    recorded: tuple[Path, str],
) -> None:
    state, err = recorded
    log = messages(err)
    assert f"history in {state / 'history.db'}" in log, log
    closed = [m for m in log if m.startswith("history closed:")]
    assert closed and "0 failed, 0 samples dropped" in closed[0], log
    assert log[-1] == "stopped"
    assert log.index(closed[0]) > log.index("stopping: shunts off, state saved")
    reader = HistoryReader(state)
    [record] = reader.discharges()
    assert record.string == 1
    assert not record.in_progress and record.recovered
    # Times on the simulator's clock: two simulated hours, not the 12 s they took.
    assert abs(record.duration_s - DISCHARGE_S) < 3 * POLL_S
    assert record.ah == pytest.approx(8.0, rel=0.05)  # C/10 (4 A) for two hours
    assert record.early and record.early[0] == WEAK
    assert reader.energy_totals()[1].discharged_wh > 0  # saved on the way out


def test_export_and_report_read_what_the_service_wrote(
    recorded: tuple[Path, str], tmp_path: Path
) -> None:
    state, _ = recorded
    listed = subprocess.run(
        [*BACS, "export", str(state), "--list"], cwd=ROOT, env=ENV, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    assert f"block {WEAK}" in listed.stdout, listed.stdout
    out = tmp_path / "report.html"
    report = subprocess.run(
        [*BACS, "report", str(state), "--discharge", "last", "--out", str(out)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    html = out.read_text(encoding="utf-8")
    assert f"String 1 block {WEAK} (bus1/{WEAK}) fell early" in html
    assert f'id="bar-s1-b{WEAK}"' in html
    csv_out = tmp_path / "discharge.csv"
    subprocess.run(
        [*BACS, "export", str(state), "--discharge", "last", "--out", str(csv_out)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = csv_out.read_text(encoding="utf-8").splitlines()
    assert len(rows) > 100  # every poll of the discharge, each block a row


SIM_SITE = """\
site: {name: Damaged history, id: dmg}
buses: [{id: bus1, url: "sim://dmg?strings=1&blocks=4&settle_days=0"}]
poll_interval: 1
"""


def test_a_damaged_history_is_set_aside_and_the_service_runs_on(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SIM_SITE, encoding="utf-8")
    state = tmp_path / "state"
    state.mkdir()
    (state / "history.db").write_bytes(b"this is not a database\n" * 400)
    proc = subprocess.run(
        [*BACS, "run", "--config", str(tmp_path / "site.yaml"), "--state-dir", str(state),
         "--log-format", "json", "--cycles", "3"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    log = messages(proc.stderr)
    aside = [m for m in log if "damaged and set aside" in m]
    assert aside, log
    assert list(state.glob("history.db.damaged*")) or list(state.glob("*damaged*")), list(
        state.iterdir()
    )
    assert any(m.startswith("cycle 1, ok") for m in log)
    assert len(HistoryReader(state).discharges()) == 0
    assert log[-1] == "stopped"


def test_history_off_and_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SIM_SITE, encoding="utf-8")
    base = [*BACS, "run", "--config", str(tmp_path / "site.yaml"), "--cycles", "2"]
    off = subprocess.run(
        [*base, "--state-dir", str(tmp_path / "a"), "--history", "off"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert off.returncode == 0, off.stderr
    assert not (tmp_path / "a" / "history.db").exists()
    elsewhere = subprocess.run(
        [*base, "--state-dir", str(tmp_path / "b"), "--history", str(tmp_path / "h")],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert (tmp_path / "h" / "history.db").is_file()
    assert not (tmp_path / "b" / "history.db").exists()


def test_bacs_run_url_records_with_history_dir_and_one_recorder_per_file(tmp_path: Path) -> None:
    """``bacs run URL`` has no state directory: it records only with ``--history DIR``, and a
    second run on the same history is refused (it records nothing, the manager runs on)."""
    url = "sim://plain?strings=1&blocks=4&settle_days=0"
    history = tmp_path / "h"
    base = [*BACS, "run", url, "--interval", "1", "--history", str(history)]
    first = subprocess.Popen(
        [*base, "--json"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (history / "history.lock").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)
        second = subprocess.run(
            [*base, "--cycles", "2"], cwd=ROOT, env=ENV, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 0
    assert second.returncode == 0, second.stderr
    assert "another bacs run records into this history; not recording" in second.stderr
    reader = HistoryReader(history)
    assert reader.layout(1) == tuple(f"bus1/{u}" for u in range(1, 5))
    assert reader.energy_totals()  # saved when the run stopped
    nothing = subprocess.run(
        [*BACS, "run", url, "--cycles", "1"], cwd=tmp_path, env=ENV, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert nothing.returncode == 0, nothing.stderr
    assert list(tmp_path.iterdir()) == [history]  # no history without --history


def test_check_config_says_where_the_history_goes(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        SIM_SITE + "history: {float_interval: 600, path: /srv/bacs-history}\n"
        "ups: {url: 'nut://127.0.0.1/rack'}\n",
        encoding="utf-8",
    )
    out = subprocess.run(
        [*BACS, "run", "--config", str(tmp_path / "site.yaml"), "--check-config"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "history in /srv/bacs-history, every 600 s on float" in out.stdout
    assert "UPS nut://127.0.0.1:3493/rack every 2 s" in out.stdout
    (tmp_path / "site.yaml").write_text(
        SIM_SITE + "history: off\nups: {url: 'nut://127.0.0.1/rack'}\n", encoding="utf-8"
    )
    out = subprocess.run(
        [*BACS, "run", "--config", str(tmp_path / "site.yaml"), "--check-config"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "history off; UPS nut://127.0.0.1:3493/rack not polled: history off" in out.stdout


def test_a_history_that_cannot_be_opened_never_stops_the_manager(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(SIM_SITE, encoding="utf-8")
    (tmp_path / "a-file").write_text("not a directory\n", encoding="utf-8")
    proc = subprocess.run(
        [*BACS, "run", "--config", str(tmp_path / "site.yaml"), "--state-dir",
         str(tmp_path / "state"), "--history", str(tmp_path / "a-file" / "h"),
         "--log-format", "json", "--cycles", "3"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    log = messages(proc.stderr)
    assert any(m.startswith(f"history in {tmp_path / 'a-file' / 'h'}: ") for m in log), log
    assert any(m.endswith("not recording") for m in log)
    assert any(m.startswith("cycle 1, ok") for m in log)
    assert log[-1] == "stopped"
