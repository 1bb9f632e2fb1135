"""The appliance's site file: one schema with Home Assistant's options, errors that name the
file, the line and the field, and ``bacs run --check-config``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bacs_core.cli.site_config import SiteConfigError, load_site
from bacs_core.manager import validate_config

SITE = """\
site:
  name: Shelter 17
buses:
  - id: bus1
    url: "sim://s17?strings=2&blocks=8"
  - id: bus2
    url: tcp://192.0.2.10:502
string_count: 2
poll_interval: 5
thresholds:
  temperature:
    alarm_high: 45
trip:
  auto: true
  lost_bus_policy: trip
mqtt:
  host: broker.example
  username: bacs
  password: pw
  tls:
    ca_certs: /etc/ssl/certs/ca.pem
  commands:
    acknowledge: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_a_site_file_reads_as_the_manager_settings_and_its_consumers(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, SITE))
    assert (site.name, site.site_id) == ("Shelter 17", "shelter-17")
    assert [b.id for b in site.manager.buses] == ["bus1", "bus2"]
    assert site.manager.thresholds.temperature.alarm_high == 45
    assert site.manager.trip.auto
    mqtt = site.sections["mqtt"]
    assert (mqtt.host, mqtt.port, mqtt.username) == ("broker.example", 8883, "bacs")
    assert mqtt.tls is not None and mqtt.tls.ca_certs == "/etc/ssl/certs/ca.pem"
    assert mqtt.commands == {"acknowledge"}
    assert not site.simulated


def test_the_manager_part_is_validated_by_the_schema_home_assistant_uses(tmp_path: Path) -> None:
    options = {
        "buses": [{"id": "bus1", "url": "tcp://192.0.2.1:502"}],
        "string_count": 2,
        "poll_interval": 60.0,
        "trip": {"auto": True},
        "equalization": {"float_voltage": 13.62},
    }
    import json

    site = load_site(write(tmp_path, json.dumps(options)))  # JSON is YAML too
    assert site.manager == validate_config(options)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("poll_interval: 5", "poll_interval: 0.2"), ":9: poll_interval: value must be at least"),
        (("    alarm_high: 45", "    alarm_hihg: 45"), ":12: thresholds.temperature.alarm_hihg:"),
        (("url: tcp://192.0.2.10:502", "url: ftp://x"), ":7: buses[1].url: unsupported bus URL"),
        (("host: broker.example", "host: 7"), ":17: mqtt.host: expected str"),
        (("  auto: true", "  auto: maybe"), ":14: trip.auto: expected bool"),
        (("    acknowledge: true", "    reboot: true"), ":23: mqtt.commands.reboot: extra keys"),
        (("string_count: 2", "string_count: 2\nblock_counts: [8]"), ":9: block_counts: 1 counts"),
        (("  name: Shelter 17", "  name: Shelter 17\n  id: a/b"), ":3: site.id: letters"),
        (("    ca_certs: /etc/ssl/certs/ca.pem", "    keyfile: k.pem"), ":20: mqtt.tls.certfile"),
        (("string_count: 2", "string_count: 2\nstorage_path: /x"), ":9: storage_path: the appl"),
        (("string_count: 2", "string_count: 2\nstring_count: 3"), ":9: string_count: given twice"),
        (("  - id: bus1", "  - id: bus1\n  - {"), ":7: not valid YAML"),
    ],
)
def test_errors_name_the_file_the_line_and_the_field(
    tmp_path: Path, change: tuple[str, str], where: str
) -> None:
    assert change[0] in SITE
    path = write(tmp_path, SITE.replace(change[0], change[1]))
    with pytest.raises(SiteConfigError) as err:
        load_site(path)
    assert str(err.value).startswith(f"{path}{where}"), str(err.value)
    assert "\n" not in str(err.value)


def test_password_file_is_read_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("from-a-file\n")
    text = SITE.replace("  password: pw", f"  password_file: {secret}")
    assert load_site(write(tmp_path, text)).sections["mqtt"].password == "from-a-file"
    secret.unlink()
    with pytest.raises(SiteConfigError, match=r":19: mqtt.password_file: cannot read"):
        load_site(write(tmp_path, text))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bacs_core", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
        check=False,
    )


def test_check_config_says_ok_in_one_line_or_the_error_with_status_2(tmp_path: Path) -> None:
    path = write(tmp_path, SITE)
    ok = run_cli("--config", str(path), "--check-config")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("\n") == 1
    assert ok.stdout.startswith(f"{path}: OK; site 'Shelter 17' (shelter-17); 2 buses")
    assert "MQTT broker.example:8883 TLS, commands: acknowledge" in ok.stdout
    bad = write(tmp_path, SITE.replace("poll_interval: 5", "poll_interval: fast"))
    fail = run_cli("--config", str(bad), "--check-config")
    assert fail.returncode == 2
    assert fail.stdout == ""
    assert fail.stderr.strip().startswith(f"bacs run: {bad}:9: poll_interval:")
    assert fail.stderr.count("\n") == 1
    missing = run_cli("--config", str(tmp_path / "nope.yaml"), "--check-config")
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
