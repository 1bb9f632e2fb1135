"""A real NUT server for the tests: Debian's nut-server (``upsd`` and the ``dummy-ups`` driver)
on a free loopback port, serving a ``.dev`` file the test rewrites.

``./scripts/test`` installs it (apt-get install nut-server); nothing else starts it: ``NutServer``
writes ups.conf, upsd.conf, upsd.users and nut.conf into a temporary directory and runs the
driver and upsd in the foreground (NUT_CONFPATH / NUT_STATEPATH point at that directory).
Without the binaries the tests that need them are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

NUT_LIB = next((p for p in (Path("/lib/nut"), Path("/usr/lib/nut")) if (p / "upsd").exists()), None)
needs_nut = pytest.mark.skipif(
    NUT_LIB is None or not (NUT_LIB / "dummy-ups").exists(),
    reason="nut-server is not installed (apt-get install nut-server)",
)
UPS = "dummy"
USER, PASSWORD = "monitor", "s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NutServer:
    """``dummy-ups`` re-reads its ``.dev`` file when it changes (mode dummy-once), every
    second here; ``upsd`` serves it. ``stop_upsd``/``start_upsd`` take the server away and
    bring it back on the same port (the driver keeps running)."""

    def __init__(self, directory: Path) -> None:
        assert NUT_LIB is not None
        self.directory = directory
        self.port = free_port()
        self.conf = directory / "conf"
        self.state = directory / "state"
        self.conf.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o700)
        self.dev = self.conf / f"{UPS}.dev"
        self.upsd: subprocess.Popen[str] | None = None
        self.driver: subprocess.Popen[str] | None = None
        self._files()

    @property
    def url(self) -> str:
        return f"nut://127.0.0.1:{self.port}/{UPS}"

    def _files(self) -> None:
        (self.conf / "ups.conf").write_text(
            f"[{UPS}]\n  driver = dummy-ups\n  port = {self.dev}\n  pollinterval = 1\n"
            '  desc = "test UPS"\n',
            encoding="utf-8",
        )
        (self.conf / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\n", encoding="utf-8")
        (self.conf / "upsd.users").write_text(
            f"[{USER}]\n  password = {PASSWORD}\n  upsmon secondary\n", encoding="utf-8"
        )
        (self.conf / "nut.conf").write_text("MODE=standalone\n", encoding="utf-8")
        for f in self.conf.iterdir():
            f.chmod(0o600)

    def write(self, values: Mapping[str, str]) -> None:
        """The UPS's variables now (the driver notices within a second or two)."""
        text = "".join(f"{k}: {v}\n" for k, v in values.items())
        tmp = self.dev.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.dev)
        # dummy-once compares modification times with a one-second resolution.
        later = time.time() + 1
        os.utime(self.dev, (later, later))

    def _run(self, program: str, *args: str) -> subprocess.Popen[str]:
        assert NUT_LIB is not None
        env = {**os.environ, "NUT_CONFPATH": str(self.conf), "NUT_STATEPATH": str(self.state)}
        user = ["-u", getpass.getuser()] if os.geteuid() == 0 else []
        return subprocess.Popen(
            [str(NUT_LIB / program), *args, *user, "-F"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def start(self, values: Mapping[str, str]) -> None:
        self.write(values)
        self.driver = self._run("dummy-ups", "-a", UPS)
        socket_path = self.state / f"dummy-ups-{UPS}"
        deadline = time.monotonic() + 15
        while not socket_path.exists():
            assert self.driver.poll() is None, self._output(self.driver)
            assert time.monotonic() < deadline, "dummy-ups did not start"
            time.sleep(0.05)
        self.start_upsd()

    def start_upsd(self) -> None:
        self.upsd = self._run("upsd")
        deadline = time.monotonic() + 15
        while True:
            assert self.upsd.poll() is None, self._output(self.upsd)
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s,
            ):
                s.sendall(f"GET VAR {UPS} ups.status\n".encode())
                answer = s.recv(200)
                if answer.startswith(b"VAR") and b"WAIT" not in answer:  # the driver has read
                    return
            assert time.monotonic() < deadline, "upsd did not serve the UPS"
            time.sleep(0.1)

    def stop_upsd(self) -> None:
        if self.upsd is not None:
            self.upsd.terminate()
            self.upsd.wait(timeout=10)
            self.upsd = None

    def stop(self) -> None:
        self.stop_upsd()
        if self.driver is not None:
            self.driver.terminate()
            self.driver.wait(timeout=10)
            self.driver = None

    @staticmethod
    def _output(proc: subprocess.Popen[str]) -> str:
        out, _ = proc.communicate(timeout=5)
        return out


ON_LINE = {
    "ups.status": "OL",
    "ups.load": "23",
    "battery.runtime": "1800",
    "input.voltage": "230.1",
    "battery.charge": "100",
}
ON_BATTERY = {**ON_LINE, "ups.status": "OB DISCHRG", "input.voltage": "0", "ups.load": "31"}


@contextlib.contextmanager
def running_nut(directory: Path, values: Mapping[str, str] = ON_LINE) -> Iterator[NutServer]:
    server = NutServer(directory)
    try:
        server.start(values)
        yield server
    finally:
        server.stop()
