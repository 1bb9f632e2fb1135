"""A site file may name one GENEREX WEB-MANAGER / CS141 (``generex://``) instead of our buses:
then every setting only an active source can use is refused with its file, line and field, the
MQTT commands a read-only source cannot carry out are refused, and the ``gateway:`` section
(also valid for a bus site) is validated the same way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bacs_core.cli.appliance import describe
from bacs_core.cli.site_config import SiteConfigError, load_site

SITE = """\
site:
  name: UPS room 2
buses:
  - id: cs141
    url: generex://192.0.2.20?unit=2&snmp=161
poll_interval: 15
thresholds:
  temperature:
    alarm_high: 40
mqtt:
  host: broker.example
  commands:
    acknowledge: true
gateway:
  modbus: 0.0.0.0:1502
  snmp: 127.0.0.1:1161
  community: nms
  commands: true
  allow: [192.0.2.5]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_a_generex_site_reads_with_its_consumers(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, SITE))
    assert site.generex and not site.simulated
    assert site.manager.buses[0].url.startswith("generex://192.0.2.20")
    assert site.manager.poll_interval == 15
    assert site.manager.thresholds.temperature.alarm_high == 40
    assert site.sections["mqtt"].commands == {"acknowledge"}
    gateway = site.sections["gateway"]
    assert (gateway.modbus, gateway.snmp) == (("0.0.0.0", 1502), ("127.0.0.1", 1161))
    assert (gateway.community, gateway.commands, gateway.allow) == ("nms", True, ("192.0.2.5",))
    text = describe(site)
    assert "GENEREX CS141 (read-only: no equalization, no trip)" in text
    assert "gateway Modbus 0.0.0.0:1502, SNMP 127.0.0.1:1161 (commands from 192.0.2.5)" in text
    assert "trip" not in text.replace("no trip", "")


@pytest.mark.parametrize(
    ("addition", "line", "field", "why"),
    [
        ("equalization:\n  enabled: false\n", 20, "equalization", "equalizes (or not) by itself"),
        ("trip:\n  auto: true\n", 20, "trip", "nothing here can open its breaker"),
        ("runaway:\n  trip_delta: 20\n", 20, "runaway", "thermal-runaway trip"),
        ("string_count: 2\n", 20, "string_count", "reports its own strings"),
        ("block_counts: [8, 8]\n", 20, "block_counts", "assigns its modules"),
        ("capacity_ah: 200\n", 20, "capacity_ah", "own capacity setting"),
        (
            "strings:\n  - {modules: cs141/1-8}\n",
            20,
            "strings",
            "assigns its modules to strings itself",
        ),
    ],
)
def test_settings_only_our_buses_can_use_are_refused_with_their_line(
    tmp_path: Path, addition: str, line: int, field: str, why: str
) -> None:
    path = write(tmp_path, SITE + addition)
    with pytest.raises(SiteConfigError) as err:
        load_site(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: {field}: "), message
    assert why in message
    assert message.endswith("remove this for a generex:// source")


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (  # a GENEREX system beside a bus
            "    url: generex://192.0.2.20?unit=2&snmp=161\n",
            "    url: generex://192.0.2.20?unit=2&snmp=161\n  - id: bus1\n    url: sim://x\n",
            ":6: buses[1]: a generex:// source is read on its own",
        ),
        (
            "    url: generex://192.0.2.20?unit=2&snmp=161\n",
            "    url: generex://192.0.2.20?unit=2&snmp=161\n    timeout: 3\n",
            ":6: buses[0].timeout: set it in the URL: generex://HOST?timeout=2",
        ),
        (
            "    acknowledge: true\n",
            "    acknowledge: true\n    reset_trip: true\n",
            ":14: mqtt.commands.reset_trip: a GENEREX system is read-only",
        ),
        (  # the URL itself is checked by the GENEREX URL parser, with its line
            "url: generex://192.0.2.20?unit=2&snmp=161",
            "url: generex://192.0.2.20?units=2",
            ":5: buses[0].url: unknown option",
        ),
    ],
)
def test_a_generex_source_stands_alone_and_offers_only_what_it_can(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    path = write(tmp_path, SITE.replace(old, new))
    with pytest.raises(SiteConfigError) as err:
        load_site(path)
    assert str(err.value).startswith(f"{path}{where}"), str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "  modbus: 0.0.0.0:1502\n",
            "  modbus: everywhere\n",
            ":15: gateway.modbus: 'everywhere': expected HOST:PORT",
        ),
        (
            "  allow: [192.0.2.5]\n",
            "  allow: [scada.example]\n",
            ":19: gateway.allow[0]: 'scada.example' is not an IP",
        ),
        ("  allow: [192.0.2.5]\n", "", ":18: gateway.commands: commands need an allow-list"),
        ("  commands: true\n", "", ":18: gateway.allow: an allow-list without commands"),
        ("  community: nms\n", "  community: nms\n  port: 161\n", ":18: gateway.port: extra keys"),
        (
            "  modbus: 0.0.0.0:1502\n  snmp: 127.0.0.1:1161\n",
            "",
            ":14: gateway: serve modbus: HOST:PORT, snmp: HOST:PORT or both",
        ),
    ],
)
def test_the_gateway_section_errors_name_their_line(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    path = write(tmp_path, SITE.replace(old, new))
    with pytest.raises(SiteConfigError) as err:
        load_site(path)
    assert str(err.value).startswith(f"{path}{where}"), str(err.value)


def test_a_bus_site_may_have_a_gateway_too(tmp_path: Path) -> None:
    text = SITE.replace("generex://192.0.2.20?unit=2&snmp=161", "tcp://192.0.2.10:502")
    site = load_site(write(tmp_path, text + "trip:\n  auto: true\n"))
    assert not site.generex
    assert site.sections["gateway"].modbus == ("0.0.0.0", 1502)
    assert "1 bus; 1 string;" in describe(site)
    site = load_site(write(tmp_path, text.replace("  snmp: 127.0.0.1:1161\n", "")))
    assert "gateway Modbus 0.0.0.0:1502 (commands from 192.0.2.5)" in describe(site)
    snmp_only = text.replace("  modbus: 0.0.0.0:1502\n", "")
    with pytest.raises(SiteConfigError, match=r":17: gateway.commands: commands are Modbus"):
        load_site(write(tmp_path, snmp_only))
    snmp_only = snmp_only.replace("  commands: true\n  allow: [192.0.2.5]\n", "")
    site = load_site(write(tmp_path, snmp_only))
    assert site.sections["gateway"].modbus is None
    assert "gateway SNMP 127.0.0.1:1161 (read-only)" in describe(site)


def test_gateway_options_on_the_command_line_are_refused_with_a_site_file(tmp_path: Path) -> None:
    path = write(tmp_path, SITE)
    done = subprocess.run(
        [sys.executable, "-m", "bacs_core", "run", "--config", str(path), "--check-config",
         "--serve-modbus", "127.0.0.1:1502"],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2], check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "with a site file the gateway is set in its gateway: section" in done.stderr
