"""The UPS link: fake UPS entities (an on-battery binary sensor or NUT's status sensor, load
and runtime sensors) feed the battery history. On battery starts fast logging at once (before
the string current shows it), the discharge record carries the load and runtime, and the
report shows them. The options flow links and unlinks it; without matplotlib the report
action says so in words."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from bacs_core.history import HistoryReader
from bacs_core.history.codec import SampleKind
from bacs_core.sim.physics import ChargerMode
from custom_components.bacs.const import DOMAIN
from custom_components.bacs.history import EVENT_DISCHARGE
from custom_components.bacs.ups import on_battery_from, runtime_from, ups_status, voltage_from

from .conftest import OPTIONS, cycle, make_entry, room, setup

STEP_S = 60
ON_BATTERY = "binary_sensor.ups_on_battery"
NUT_STATUS = "sensor.ups_status_data"
LOAD = "sensor.ups_load"
RUNTIME = "sensor.ups_battery_runtime"
PERCENT = {"unit_of_measurement": "%"}
MINUTES = {"unit_of_measurement": "min", "device_class": "duration"}


async def _minutes(
    hass: HomeAssistant, entry: MockConfigEntry, freezer: FrozenDateTimeFactory, n: int
) -> None:
    sim = room(entry)
    for _ in range(n):
        sim.step(STEP_S)
        freezer.tick(timedelta(seconds=STEP_S))
        await cycle(hass, entry)


def _ups_entry(on_battery: str = ON_BATTERY) -> MockConfigEntry:
    links = {"on_battery": on_battery, "load": LOAD, "runtime": RUNTIME}
    return make_entry(entry_id="01JBACSUPSENTRY00000000000", options=OPTIONS | {"ups": links})


def _rows(entry: MockConfigEntry, since: Any) -> list[Any]:
    recorder = entry.runtime_data.history
    assert recorder.writer.flush(10.0)
    return list(recorder.store.samples(since, since + timedelta(days=1), 1))


async def test_on_battery_logs_fast_and_the_record_carries_the_ups(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    hass.states.async_set(ON_BATTERY, "off")
    hass.states.async_set(LOAD, "18", PERCENT)
    hass.states.async_set(RUNTIME, "60", MINUTES)
    events = async_capture_events(hass, EVENT_DISCHARGE)
    entry = await setup(hass, _ups_entry())
    recorder = entry.runtime_data.history
    assert recorder.ups is not None and recorder.ups.runtime_s == 3600.0
    await _minutes(hass, entry, freezer, 5)  # float: one row, the first
    assert len(_rows(entry, dt_util.utcnow() - timedelta(hours=1))) == 1

    # The mains fail: the UPS says so before the string current does.
    outage = dt_util.utcnow()
    hass.states.async_set(ON_BATTERY, "on")
    await hass.async_block_till_done()
    record = recorder.last_discharge(1)
    assert record is not None and record.in_progress
    assert record.ups_on_battery_at == outage == record.start
    await _minutes(hass, entry, freezer, 2)  # strings still on float: every poll anyway
    rows = [r for r in _rows(entry, outage) if r.time > outage]
    # (On float alone the next row would come 20 minutes after the last.)
    assert len(rows) >= 2 and {r.kind for r in rows} == {SampleKind.ACTIVE}

    sim = room(entry)
    for s in (1, 2):
        sim.set_mode(s, ChargerMode.DISCHARGE, 20.0)
    for load, runtime in ((45, 30), (50, 25), (55, 20), (52, 15)):
        hass.states.async_set(LOAD, str(load), PERCENT)
        hass.states.async_set(RUNTIME, str(runtime), MINUTES)
        await _minutes(hass, entry, freezer, 2)
    back = dt_util.utcnow()
    hass.states.async_set(ON_BATTERY, "off")
    hass.states.async_set(LOAD, "20", PERCENT)
    hass.states.async_set(RUNTIME, "50", MINUTES)
    await hass.async_block_till_done()
    for s in (1, 2):
        sim.set_mode(s, ChargerMode.FLOAT)
    await _minutes(hass, entry, freezer, 12)  # past the recovery reading

    record = recorder.store.discharge("last", 1)
    assert record is not None and record.recovered
    assert record.ups_on_battery_at == outage and record.ups_on_line_at == back
    # Two polls at 18 % before the strings discharged, then two at each reported load.
    loads = [18, 18, 45, 45, 50, 50, 55, 55, 52, 52]
    assert record.ups_load_avg_pct == pytest.approx(sum(loads) / len(loads), abs=0.05)
    assert record.ups_load_max_pct == 55.0
    assert record.ups_runtime_start_s == 3600.0
    assert record.ups_runtime_end_s == 15 * 60.0
    # The sensor and the event carry them too.
    attrs = hass.states.get("sensor.string_1_last_discharge_duration").attributes
    assert attrs["ups_load_max_pct"] == 55.0 and attrs["ups_runtime_end_s"] == 900.0
    assert attrs["ups_on_battery_at"] == outage.isoformat()
    [event] = [e for e in events if e.data["string"] == 1]
    assert event.data["ups_runtime_start_s"] == 3600.0
    stored = HistoryReader(recorder.store.path.parent).ups(outage, back)
    assert stored[0].on_battery is True and stored[0].load_pct == 18.0
    assert {45.0, 50.0, 55.0, 52.0} <= {r.load_pct for r in stored}

    report = await hass.services.async_call(
        DOMAIN,
        "generate_report",
        {"config_entry_id": entry.entry_id},
        True,
        return_response=True,
    )
    assert report is not None
    page = Path(str(report["path"])).read_text(encoding="utf-8")
    assert '<g id="ups-load"' in page and '<g id="ups-runtime"' in page
    assert "UPS runtime at start / end" in page and "60.0 min / 15.0 min" in page
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_nut_status_sensor_starts_fast_logging(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    hass.states.async_set(NUT_STATUS, "OL CHRG")
    entry = await setup(hass, _ups_entry(NUT_STATUS))
    await _minutes(hass, entry, freezer, 3)
    since = dt_util.utcnow()
    hass.states.async_set(NUT_STATUS, "OB DISCHRG")
    await hass.async_block_till_done()
    assert entry.runtime_data.history.ups.on_battery is True
    await _minutes(hass, entry, freezer, 3)
    rows = [r for r in _rows(entry, since) if r.time > since]
    assert len(rows) >= 3 and {r.kind for r in rows} == {SampleKind.ACTIVE}
    hass.states.async_set(NUT_STATUS, "unavailable")  # NUT lost the UPS: not known
    await hass.async_block_till_done()
    assert entry.runtime_data.history.ups is None
    await hass.config_entries.async_unload(entry.entry_id)


def test_states_read_as_the_ups_means_them() -> None:
    assert on_battery_from(State("binary_sensor.x", "on")) is True
    assert on_battery_from(State("binary_sensor.x", "off")) is False
    assert on_battery_from(State("binary_sensor.x", "unavailable")) is None
    assert on_battery_from(State("sensor.x", "OB DISCHRG LB")) is True
    assert on_battery_from(State("sensor.x", "OL CHRG")) is False
    assert on_battery_from(State("sensor.x", "On Battery Battery Discharging")) is True
    assert on_battery_from(State("sensor.x", "Online Battery Charging")) is False
    assert on_battery_from(State("sensor.x", "BYPASS")) is None
    assert on_battery_from(None) is None
    assert runtime_from(State("sensor.r", "1200", {"unit_of_measurement": "s"})) == 1200.0
    assert runtime_from(State("sensor.r", "1.5", {"unit_of_measurement": "h"})) == 5400.0
    assert runtime_from(State("sensor.r", "300")) == 300.0  # no unit: seconds
    assert runtime_from(State("sensor.r", "3", {"unit_of_measurement": "%"})) is None
    assert voltage_from(State("sensor.v", "231.5", {"unit_of_measurement": "V"})) == 231.5
    # A value out of range counts as not known; the others stay.
    status = ups_status(
        {"on_battery": State("binary_sensor.x", "on"), "load": State("sensor.l", "-5")}
    )
    assert (status.on_battery, status.load_pct) == (True, None)


async def test_the_options_link_and_unlink_the_ups(hass: HomeAssistant) -> None:
    hass.states.async_set(ON_BATTERY, "off")
    hass.states.async_set(LOAD, "30", PERCENT)
    entry = await setup(hass, make_entry(entry_id="01JBACSUPSOPTIONS000000000"))
    recorder = entry.runtime_data.history
    assert recorder.ups is None
    result = await hass.config_entries.options.async_init(entry.entry_id)
    ups_keys = result["data_schema"].schema["ups"].schema.schema
    assert {str(k) for k in ups_keys} == {"on_battery", "load", "runtime", "input_voltage"}
    form = _options_form(ups={"on_battery": ON_BATTERY, "load": LOAD})
    result = await hass.config_entries.options.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done()
    assert entry.options["ups"] == {"on_battery": ON_BATTERY, "load": LOAD}
    assert entry.runtime_data.history is recorder  # no reload: the link follows the options
    assert recorder.ups is not None and recorder.ups.load_pct == 30.0
    hass.states.async_set(ON_BATTERY, "on")
    await hass.async_block_till_done()
    assert recorder.ups.on_battery is True
    # The form shows the link; emptied, it unlinks.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    shown = {
        str(k): (k.description or {}).get("suggested_value")
        for k in result["data_schema"].schema["ups"].schema.schema
    }
    assert shown == {"on_battery": ON_BATTERY, "load": LOAD, "runtime": None, "input_voltage": None}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], _options_form(ups={})
    )
    await hass.async_block_till_done()
    assert "ups" not in entry.options
    assert recorder.ups is None
    hass.states.async_set(LOAD, "80", PERCENT)
    await hass.async_block_till_done()
    assert recorder.ups is None
    await hass.config_entries.async_unload(entry.entry_id)


def _options_form(ups: dict[str, str]) -> dict[str, Any]:
    from .test_config_flow import _options_form as base

    return base() | {"ups": ups}


async def test_the_report_without_matplotlib_says_so(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation without matplotlib: a translated error naming it, nothing else lost."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises
    for name in [m for m in sys.modules if m.startswith("bacs_core.report")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "generate_report",
            {"config_entry_id": loaded_entry.entry_id},
            True,
            return_response=True,
        )
    assert err.value.translation_key == "report_unavailable"
    assert "needs matplotlib, which is not installed" in str(err.value)
    export = await hass.services.async_call(
        DOMAIN,
        "export_history",
        {"config_entry_id": loaded_entry.entry_id, "since": "2020-01-01T00:00:00"},
        True,
        return_response=True,
    )
    assert export is not None and export["samples"] >= 1
