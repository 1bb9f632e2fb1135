"""The battery history in Home Assistant, on the simulator: a discharge with an aged block
(string 1 block 3) in simulated time, the energy and last-discharge sensors (surviving a
reload), the Energy dashboard's validation, the report and export actions, the report's
authenticated address, and the blueprint that sends the report after each discharge."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    CLIENT_ID,
    MockConfigEntry,
    async_capture_events,
    async_mock_service,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.bacs.const import DOMAIN
from custom_components.bacs.history import EVENT_DISCHARGE

from .conftest import cycle, room

pytest.importorskip("matplotlib")

STEP_S = 60
LOAD_A = 30.0
DISCHARGED = "sensor.string_1_energy_discharged"
CHARGED = "sensor.string_1_energy_charged"
BLUEPRINTS = Path(__file__).resolve().parents[2] / "blueprints" / "automation" / "bacs"


async def _minutes(
    hass: HomeAssistant, entry: MockConfigEntry, freezer: FrozenDateTimeFactory, n: int
) -> None:
    """``n`` minutes: the room steps, the wall clock moves, the manager polls."""
    sim = room(entry)
    for _ in range(n):
        sim.step(STEP_S)
        freezer.tick(timedelta(seconds=STEP_S))
        await cycle(hass, entry)


async def _discharge(
    hass: HomeAssistant, entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """20 minutes at 30 A with block 3 aged, then back on float past the recovery reading."""
    from bacs_core.sim.physics import ChargerMode

    sim = room(entry)
    sim.string(1).physics.age_block(2, 0.6, 1.5)
    await _minutes(hass, entry, freezer, 2)
    sim.set_mode(1, ChargerMode.DISCHARGE, LOAD_A)
    await _minutes(hass, entry, freezer, 20)
    sim.set_mode(1, ChargerMode.FLOAT)
    await _minutes(hass, entry, freezer, 12)  # the recovery reading comes 10 min after the end


def _state(hass: HomeAssistant, entity_id: str) -> Any:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state


async def test_a_discharge_in_the_sensors_and_the_event(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    history_in_tmp: Path,
) -> None:
    events = async_capture_events(hass, EVENT_DISCHARGE)
    assert float(_state(hass, DISCHARGED).state) == 0.0
    await _discharge(hass, loaded_entry, freezer)
    # About 30 A × 4 blocks × ~12.3 V × 19 min of discharging samples: about 0.47 kWh.
    discharged = float(_state(hass, DISCHARGED).state)
    assert 0.35 < discharged < 0.6, discharged
    assert _state(hass, DISCHARGED).attributes["state_class"] == "total_increasing"
    assert float(_state(hass, CHARGED).state) > 0  # the recharge after it
    duration = float(_state(hass, "sensor.string_1_last_discharge_duration").state)
    assert 18 <= duration <= 20
    ah = float(_state(hass, "sensor.string_1_last_discharge_charge").state)
    assert ah == pytest.approx(LOAD_A * duration / 60, rel=0.1)
    weakest = _state(hass, "sensor.string_1_last_discharge_weakest_block")
    assert weakest.state == "block 3"
    assert weakest.attributes == {} or "fell_early" not in weakest.attributes
    attrs = _state(hass, "sensor.string_1_last_discharge_duration").attributes
    assert attrs["fell_early"][0] == 3 and attrs["recovered"] is True
    assert _state(hass, "sensor.string_2_last_discharge_duration").state == "unknown"
    # One event, when the record became final (the recovery read).
    assert len(events) == 1
    data = events[0].data
    assert data["config_entry_id"] == loaded_entry.entry_id
    assert (data["string"], data["weakest_block"], data["recovered"]) == (1, 3, True)
    assert (history_in_tmp / loaded_entry.entry_id / "history.db").is_file()

    # A reload (a restart of the integration): the totals come back from the history file.
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert float(_state(hass, DISCHARGED).state) == pytest.approx(discharged, abs=0.001)
    assert _state(hass, "sensor.string_1_last_discharge_weakest_block").state == "block 3"


async def test_report_and_export_actions(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
    hass_admin_user: Any,
) -> None:
    entry_id = loaded_entry.entry_id
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "generate_report", {"config_entry_id": entry_id}, True, return_response=True
        )
    assert err.value.translation_key == "history_refused"  # no discharge yet
    await _discharge(hass, loaded_entry, freezer)

    report = await hass.services.async_call(
        DOMAIN, "generate_report", {"config_entry_id": entry_id}, True, return_response=True
    )
    assert report is not None
    assert report["url"] == f"/api/bacs/report/{entry_id}/{report['name']}"
    page = Path(str(report["path"])).read_text(encoding="utf-8")
    assert "String 1 block 3 (bus1/" in page and '<g id="bar-s1-b3">' in page

    # Behind Home Assistant's authentication: a logged-in user, or the signed link. (A token
    # made now: the fixture's expired in the simulated half hour.)
    refresh = await hass.auth.async_create_refresh_token(hass_admin_user, CLIENT_ID)
    client = await hass_client(hass.auth.async_create_access_token(refresh))
    answer = await client.get(str(report["url"]))
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert "String 1 block 3" in await answer.text()
    anonymous = await hass_client_no_auth()
    assert (await anonymous.get(str(report["url"]))).status == 401
    assert (await anonymous.get(str(report["signed_url"]))).status == 200
    assert (await client.get(f"/api/bacs/report/{entry_id}/..%2Fhistory.db")).status in (400, 404)
    assert (await client.get(f"/api/bacs/report/{entry_id}/history.db")).status == 404
    assert (await client.get(f"/api/bacs/report/nope/{report['name']}")).status == 404
    assert (await client.get(f"/api/bacs/report/{entry_id}/nothing.html")).status == 404

    period = await hass.services.async_call(
        DOMAIN,
        "generate_report",
        {"config_entry_id": entry_id, "since": "2020-01-01T00:00:00"},
        True,
        return_response=True,
    )
    assert period is not None and period["name"].startswith("history-")
    assert "Float voltage spread" in Path(str(period["path"])).read_text(encoding="utf-8")
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "generate_report",
            {"config_entry_id": entry_id, "discharge": "last", "since": "2020-01-01T00:00:00"},
            True,
            return_response=True,
        )
    assert err.value.translation_key == "report_both"

    export = await hass.services.async_call(
        DOMAIN,
        "export_history",
        {"config_entry_id": entry_id, "discharge": "last", "format": "csv"},
        True,
        return_response=True,
    )
    assert export is not None and export["samples"] > 20
    lines = Path(str(export["path"])).read_text(encoding="utf-8").splitlines()
    assert len(lines) > 20
    jsonl = await hass.services.async_call(
        DOMAIN,
        "export_history",
        {"config_entry_id": entry_id, "format": "jsonl", "since": "2020-01-01T00:00:00"},
        True,
        return_response=True,
    )
    assert jsonl is not None and jsonl["samples"] >= export["samples"]
    assert str(jsonl["path"]).endswith(".jsonl")


async def test_the_blueprint_sends_the_report_after_a_discharge(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
) -> None:
    config_dir = hass.config.config_dir
    shutil.copytree(BLUEPRINTS, tmp_path / "blueprints" / "automation" / "bacs")
    hass.config.config_dir = str(tmp_path)
    try:
        notes = async_mock_service(hass, "persistent_notification", "create")
        config = {
            "automation": [
                {
                    "id": "discharge_report",
                    "alias": "discharge report",
                    "use_blueprint": {
                        "path": "bacs/discharge_report.yaml",
                        "input": {"manager": loaded_entry.entry_id},
                    },
                }
            ]
        }
        assert await async_setup_component(hass, "automation", config)
        await hass.async_block_till_done()
        await _discharge(hass, loaded_entry, freezer)
        await hass.async_block_till_done()
    finally:
        hass.config.config_dir = config_dir
    assert len(notes) == 1
    note = notes[0].data
    assert note["title"] == "Battery discharge report: string 1"
    assert "Block 3 fell early." in note["message"]
    assert f"/api/bacs/report/{loaded_entry.entry_id}/discharge-" in note["message"]
    reports = list((tmp_path / "bacs-history" / loaded_entry.entry_id / "reports").glob("*.html"))
    assert len(reports) == 1


async def test_the_last_discharge_chart_image(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    hass_client: ClientSessionGenerator,
    hass_admin_user: Any,
) -> None:
    image = "image.string_1_last_discharge_chart"
    assert _state(hass, image).state == "unknown"  # no discharge yet
    await _discharge(hass, loaded_entry, freezer)
    await hass.async_block_till_done()
    state = _state(hass, image)
    assert state.state not in ("unknown", "unavailable")
    assert _state(hass, "image.string_2_last_discharge_chart").state == "unknown"
    refresh = await hass.auth.async_create_refresh_token(hass_admin_user, CLIENT_ID)
    client = await hass_client(hass.auth.async_create_access_token(refresh))
    answer = await client.get(f"/api/image_proxy/{image}")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "image/svg+xml"
    svg = await answer.text()
    assert '<g id="bar-s1-b3"><title>String 1 block 3' in svg and "fell early" in svg
    # After a reload the chart comes back from the history file.
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert _state(hass, image).state not in ("unknown", "unavailable")
