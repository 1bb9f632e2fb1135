"""The appliance's UPS link: ``ups:`` in the site file, a NUT reader (aionut) against a real
NUT server (Debian's upsd with the dummy-ups driver, tests/nut_server.py): the status as
NUT says it, only changes reported, a lost server logged once and the UPS unknown until it
answers again; through the appliance, on battery and back reach the history."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bacs_core.cli.site_config import SiteConfigError, parse_site
from bacs_core.history import HistoryReader, UpsStatus
from bacs_core.ups import NutUrlError, parse_nut_url, ups_settings
from bacs_core.ups.nut import NutUpsReader, status_from_vars
from tests.nut_server import ON_BATTERY, ON_LINE, PASSWORD, USER, needs_nut, running_nut

ROOT = Path(__file__).parents[2]
SITE = """\
site: {name: UPS test, id: upstest}
buses: [{id: bus1, url: "sim://ups?strings=1&blocks=4&settle_days=0"}]
poll_interval: 1
"""


def test_status_from_nut_variables() -> None:
    assert status_from_vars(
        {"ups.status": "OB DISCHRG LB", "ups.load": "41", "battery.runtime": "600",
         "input.voltage": "0.0", "battery.charge": "80"}
    ) == UpsStatus(True, 41.0, 600.0, 0.0)  # fmt: skip
    assert status_from_vars({"ups.status": "OL CHRG"}) == UpsStatus(on_battery=False)
    # Neither flag (a driver starting, "WAIT"), nonsense and absurd values: not known.
    assert (
        status_from_vars(
            {
                "ups.status": "WAIT",
                "ups.load": "n/a",
                "battery.runtime": "-1",
                "input.voltage": "inf",
            }
        )
        == UpsStatus()
    )
    assert not status_from_vars({}).known


def test_nut_urls() -> None:
    assert parse_nut_url("nut://ups.local/rack1") == ("ups.local", 3493, "rack1", None, None)
    assert parse_nut_url("nut://mon:pw@10.0.0.5:3494/ups") == ("10.0.0.5", 3494, "ups", "mon", "pw")
    for bad, why in (
        ("tcp://h/ups", "use nut://"),
        ("nut:///ups", "no host"),
        ("nut://h", "no UPS name"),
        ("nut://h:99999/ups", "port"),
        ("nut://h/ups?x=1", r"no \?query"),
        ("nut://h/a b", "not a NUT UPS name"),
    ):
        with pytest.raises(NutUrlError, match=why):
            parse_nut_url(bad)


def test_ups_settings_defaults_and_credentials() -> None:
    s = ups_settings({"url": "nut://h/ups"})
    assert (s.host, s.port, s.ups, s.interval_s, s.username, s.password) == (
        "h", 3493, "ups", 2.0, None, None
    )  # fmt: skip
    s = ups_settings({"url": "nut://u:p@h/ups", "password": "other", "interval": 5})
    assert (s.username, s.password, s.interval_s) == ("u", "other", 5.0)
    assert "other" not in repr(s)  # never in a log line


def test_ups_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "nut-password"
    secret.write_text("from-a-file\n", encoding="utf-8")
    s = ups_settings({"url": "nut://h/ups", "username": "u", "password_file": str(secret)})
    assert s.password == "from-a-file"
    with pytest.raises(SiteConfigError, match=r"site.yaml:6: ups.password_file: cannot read"):
        parse_site(
            SITE + "ups:\n  url: nut://u@h/ups\n  password_file: /nonexistent/pw\n",
            Path("site.yaml"),
        )
    with pytest.raises(SiteConfigError, match="password or password_file, not both"):
        parse_site(
            SITE + f"ups: {{url: 'nut://u:p@h/ups', password_file: '{secret}'}}\n",
            Path("site.yaml"),
        )


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ("ups:\n  url: http://h/ups\n", "site.yaml:5: ups.url: 'http://h/ups': use nut://"),
        ("ups:\n  url: nut://h/ups\n  interval: 0.1\n", "site.yaml:6: ups.interval: must be"),
        ("ups:\n  url: nut://h/ups\n  password: x\n", "site.yaml:4: ups.username: a password"),
        ("ups:\n  url: nut://h/ups\n  colour: red\n", "site.yaml:6: ups.colour: extra keys"),
        ("ups: nut://h/ups\n", "site.yaml:4: ups: expected a mapping"),
        ("history:\n  float_interval: 5\n", "site.yaml:5: history.float_interval: must be"),
        ("history:\n  max_size: 2 furlongs\n", "site.yaml:5: history.max_size: expected a size"),
        ("history:\n  max_size: 100 kB\n", "site.yaml:5: history.max_size: must be at least"),
        ("history:\n  enabled: maybe\n", "site.yaml:5: history.enabled: expected bool"),
        ("history:\n  keep: forever\n", "site.yaml:5: history.keep: extra keys not allowed"),
        ("history: [1]\n", "site.yaml:4: history: expected a mapping"),
    ],
)
def test_site_file_errors_name_the_line_and_field(section: str, error: str) -> None:
    with pytest.raises(SiteConfigError) as err:
        parse_site(SITE + section, Path("site.yaml"))
    assert str(err.value).startswith(error), str(err.value)


def test_site_file_history_settings() -> None:
    site = parse_site(
        SITE + "history:\n  path: hist\n  float_interval: 600\n  max_age_days: 730\n"
        "  max_size: 500 MiB\n  recovery: 300\n",
        Path("site.yaml"),
    )
    h = site.sections["history"]
    assert h.enabled and h.directory(Path("/var/lib/bacs")) == Path("/var/lib/bacs/hist")
    c = h.config
    assert (c.float_interval_s, c.max_age_days, c.max_bytes, c.recovery_s) == (
        600.0, 730.0, 500 * 1024**2, 300.0
    )  # fmt: skip
    off = parse_site(SITE + "history: off\n", Path("site.yaml")).sections["history"]
    assert off.directory(Path("/x")) is None
    unlimited = parse_site(SITE + "history: {max_size: null, max_age_days: null}\n", Path("s"))
    assert unlimited.sections["history"].config.max_bytes is None
    assert "history" not in parse_site(SITE, Path("s")).sections  # the defaults: on, state dir


async def _until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@needs_nut
async def test_the_reader_follows_the_ups_and_outlives_its_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bacs_core.ups")
    with running_nut(tmp_path) as nut:
        seen: list[UpsStatus] = []
        settings = ups_settings(
            {"url": nut.url, "username": USER, "password": PASSWORD, "interval": 0.5,
             "timeout": 1}
        )  # fmt: skip
        reader = NutUpsReader(settings, seen.append)
        reader.start()
        try:
            await _until(lambda: bool(seen))
            assert seen == [UpsStatus(False, 23.0, 1800.0, 230.1)]
            assert reader.connected
            polls = reader.polls
            await _until(lambda: reader.polls >= polls + 3)
            assert len(seen) == 1  # only changes are reported
            await asyncio.to_thread(nut.write, ON_BATTERY)
            await _until(lambda: seen[-1].on_battery is True)
            assert seen[-1] == UpsStatus(True, 31.0, 1800.0, 0.0)

            await asyncio.to_thread(nut.stop_upsd)
            await _until(lambda: seen[-1] == UpsStatus())
            failures = reader.failures
            await _until(lambda: reader.failures >= failures + 3)  # retried, not given up
            lost = [r for r in caplog.records if "cannot be read" in r.getMessage()]
            assert len(lost) == 1, lost  # logged once
            assert lost[0].levelno == logging.WARNING
            assert not reader.connected

            await asyncio.to_thread(nut.start_upsd)
            await _until(lambda: seen[-1].on_battery is True)
            assert any("answers again" in r.getMessage() for r in caplog.records)
            assert seen.count(UpsStatus()) == 1
        finally:
            await reader.stop()


@needs_nut
async def test_an_unknown_ups_name_is_reported_and_unknown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_nut(tmp_path) as nut:
        seen: list[UpsStatus] = []
        url = nut.url.rsplit("/", 1)[0] + "/nosuch"
        reader = NutUpsReader(ups_settings({"url": url, "interval": 0.5}), seen.append)
        reader.start()
        try:
            await _until(lambda: reader.failures >= 2)
        finally:
            await reader.stop()
    assert seen == []  # never known: nothing to unlink
    assert reader.status == UpsStatus()
    [lost] = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert "UNKNOWN-UPS" in lost.getMessage()


@needs_nut
def test_the_appliance_feeds_the_ups_into_the_history(tmp_path: Path) -> None:
    with running_nut(tmp_path / "nut") as nut:
        (tmp_path / "site.yaml").write_text(
            SITE + f"ups:\n  url: {nut.url}\n  interval: 0.5\n", encoding="utf-8"
        )
        state = tmp_path / "state"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "bacs_core", "run", "--config", str(tmp_path / "site.yaml"),
             "--state-dir", str(state), "--log-format", "json"],
            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        lines: list[str] = []
        assert proc.stderr is not None
        reading = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
        reading.start()

        def logged(text: str) -> bool:
            return any(text in line for line in lines)

        try:
            deadline = time.monotonic() + 60
            while not logged("devices; running"):
                assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
                time.sleep(0.1)
            time.sleep(2.0)
            nut.write(ON_BATTERY)
            time.sleep(4.0)
            nut.write(ON_LINE)
            time.sleep(4.0)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            reading.join(timeout=10)
    assert proc.returncode == 0, "".join(lines)
    messages = [json.loads(line)["message"] for line in lines if line.startswith("{")]
    assert f"UPS {nut.url} polled every 0.5 s" in messages
    reader = HistoryReader(state)
    span = (datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC))
    kinds = [e.type for e in reader.events(*span) if e.type.startswith("ups_")]
    assert kinds == ["ups_on_battery", "ups_on_line"], kinds
    rows = reader.ups(*span)
    assert any(r.on_battery and r.load_pct == 31.0 for r in rows), rows
    assert rows[-1].on_battery is False
    [record] = reader.discharges()  # the UPS opened the string's discharge record at once
    assert record.string == 1
