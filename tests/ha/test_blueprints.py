"""The automation blueprints, run by Home Assistant's own automation engine.

Each blueprint is loaded from blueprints/automation/bacs and instantiated as an automation;
the runaway and alarm ones are driven by real events of the integration on the simulator,
or by bacs_event where the case (a cancelled countdown) needs an exact sequence.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util.yaml import load_yaml
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
    async_mock_service,
)

from .conftest import (
    HOT_OPTIONS,
    discharge_with_an_aged_block,
    heat_until_tripped,
    make_entry,
    setup,
)

SOURCE = Path(__file__).resolve().parents[2] / "blueprints" / "automation" / "bacs"
BLUEPRINTS = sorted(p.name for p in SOURCE.glob("*.yaml"))
NOTIFY = [{"event": "bacs_test_notified", "event_data": {"title": "{{ title }}"}}]


@pytest.fixture
def blueprints(hass: HomeAssistant, tmp_path: Path) -> Iterator[None]:
    """Our blueprints where Home Assistant looks for them: a config directory of this test's
    own (the harness's shared one would be written to by every run at once)."""
    config_dir = hass.config.config_dir
    shutil.copytree(SOURCE, tmp_path / "blueprints" / "automation" / "bacs")
    hass.config.config_dir = str(tmp_path)
    yield
    hass.config.config_dir = config_dir


async def automate(hass: HomeAssistant, blueprint: str, **inputs: Any) -> str:
    config = {
        "automation": [
            {
                "id": blueprint,
                "alias": blueprint.removesuffix(".yaml"),
                "use_blueprint": {"path": f"bacs/{blueprint}", "input": inputs},
            }
        ]
    }
    assert await async_setup_component(hass, "automation", config)
    await hass.async_block_till_done()
    entity_id = f"automation.{blueprint.removesuffix('.yaml')}"
    state = hass.states.get(entity_id)
    assert state is not None and state.state == "on", state
    return entity_id


def test_the_blueprints_with_their_metadata() -> None:
    assert BLUEPRINTS == [
        "battery_alarm_notification.yaml",
        "discharge_report.yaml",
        "thermal_runaway_response.yaml",
        "weekly_battery_health_summary.yaml",
    ]
    for name in BLUEPRINTS:
        meta = load_yaml(SOURCE / name)["blueprint"]  # type: ignore[index]
        assert meta["domain"] == "automation"
        assert meta["source_url"].endswith(f"blueprints/automation/bacs/{name}")
        assert meta["input"]["manager"]["selector"] == {"config_entry": {"integration": "bacs"}}


def runaway_event(
    hass: HomeAssistant, entry_id: str, kind: str = "runaway_detected", trip_state: str = "armed"
) -> None:
    hass.bus.async_fire(
        "bacs_event",
        {
            "type": kind,
            "config_entry_id": entry_id,
            "message": "string 1 block 12: +9 K",
            "trip_state": trip_state,
        },
    )


async def until(hass: HomeAssistant, test: Any) -> None:
    """Let runs proceed while one waits out a countdown (block_till_done would wait it out)."""
    for _ in range(200):
        await asyncio.sleep(0.01)
        if test():
            return
    raise AssertionError("never happened")


async def test_runaway_response_trips_the_real_manager(
    hass: HomeAssistant, blueprints: None
) -> None:
    """An event the manager itself did not act on: the blueprint's trip opens the breaker."""
    from bacs_core.snapshot import TripState

    entry = await setup(hass, make_entry())
    notes = async_mock_service(hass, "persistent_notification", "create")
    notified = async_capture_events(hass, "bacs_test_notified")
    await automate(
        hass, "thermal_runaway_response.yaml", manager=entry.entry_id, countdown=0, notify=NOTIFY
    )
    runaway_event(hass, entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.manager.safety.state in (TripState.TRIPPED, TripState.FAILED)
    assert notes[0].data["title"] == "Battery THERMAL RUNAWAY detected"
    assert "tripped now" in notes[0].data["message"]
    assert notified[0].data == {"title": "Battery THERMAL RUNAWAY detected"}
    await hass.config_entries.async_unload(entry.entry_id)


async def test_runaway_response_follows_the_managers_own_trip(
    hass: HomeAssistant, blueprints: None
) -> None:
    """A real runaway the manager trips at once: the blueprint announces it, says it tripped,
    and neither counts down nor trips again."""
    entry = await setup(hass, make_entry(options=HOT_OPTIONS))
    notes = async_mock_service(hass, "persistent_notification", "create")
    trips = async_mock_service(hass, "bacs", "trip_breaker")
    await automate(hass, "thermal_runaway_response.yaml", manager=entry.entry_id, countdown=60)
    await heat_until_tripped(hass, entry)
    await hass.async_block_till_done()
    by_title = {n.data["title"]: n.data["message"] for n in notes}
    assert "Battery thermal runaway pre-alert" in by_title
    assert "The manager has tripped the breaker." in by_title["Battery THERMAL RUNAWAY detected"]
    assert "latched until a person resets it" in by_title["Battery breaker TRIPPED"]
    assert not [m for m in by_title.values() if "will be tripped" in m], by_title
    assert trips == []
    await hass.config_entries.async_unload(entry.entry_id)


async def test_runaway_response_leaves_the_managers_countdown_alone(
    hass: HomeAssistant, blueprints: None
) -> None:
    trips = async_mock_service(hass, "bacs", "trip_breaker")
    notes = async_mock_service(hass, "persistent_notification", "create")
    await automate(hass, "thermal_runaway_response.yaml", manager="entry1", countdown=600)
    runaway_event(hass, "entry1", trip_state="countdown")
    await hass.async_block_till_done()  # no countdown of its own to wait out
    assert trips == []
    assert "trips the breaker by itself" in notes[-1].data["message"]


async def test_a_failed_trip_during_a_countdown_is_told_at_once(
    hass: HomeAssistant, blueprints: None
) -> None:
    trips = async_mock_service(hass, "bacs", "trip_breaker")
    notes = async_mock_service(hass, "persistent_notification", "create")
    await automate(hass, "thermal_runaway_response.yaml", manager="entry1", countdown=600)
    runaway_event(hass, "entry1")
    await until(hass, lambda: notes)
    assert "in 600 s unless" in notes[-1].data["message"]
    runaway_event(hass, "entry1", "trip_failed", trip_state="failed")
    await hass.async_block_till_done()  # the countdown ended: the manager acted
    assert notes[-1].data["title"] == "Battery breaker DID NOT OPEN"
    assert "by hand" in notes[-1].data["message"]
    assert trips == []  # the manager commanded the trip; it is not repeated blindly


async def test_the_managers_trip_ends_a_countdown(hass: HomeAssistant, blueprints: None) -> None:
    trips = async_mock_service(hass, "bacs", "trip_breaker")
    notes = async_mock_service(hass, "persistent_notification", "create")
    await automate(hass, "thermal_runaway_response.yaml", manager="entry1", countdown=600)
    runaway_event(hass, "entry1")
    await until(hass, lambda: notes)
    runaway_event(hass, "entry1", "tripped", trip_state="tripped")
    await hass.async_block_till_done()
    assert [n.data["title"] for n in notes][-1] == "Battery breaker TRIPPED"
    assert trips == []


async def test_runaway_countdown_can_be_cancelled(hass: HomeAssistant, blueprints: None) -> None:
    trips = async_mock_service(hass, "bacs", "trip_breaker")
    notes = async_mock_service(hass, "persistent_notification", "create")
    await automate(hass, "thermal_runaway_response.yaml", manager="entry1", countdown=600)
    runaway_event(hass, "entry1")
    await until(hass, lambda: notes)
    assert "in 600 s unless" in notes[-1].data["message"]
    hass.bus.async_fire("bacs_cancel_trip")
    await hass.async_block_till_done()
    assert trips == []
    assert "cancelled by a person" in notes[-1].data["message"]


async def test_runaway_countdown_runs_out_and_trips(hass: HomeAssistant, blueprints: None) -> None:
    trips = async_mock_service(hass, "bacs", "trip_breaker")
    async_mock_service(hass, "persistent_notification", "create")
    await automate(hass, "thermal_runaway_response.yaml", manager="entry1", countdown=1)
    runaway_event(hass, "entry1")
    await hass.async_block_till_done()  # through the 1 s countdown
    assert len(trips) == 1
    assert trips[0].data["config_entry_id"] == "entry1"
    assert trips[0].data["reason"].startswith("Battery THERMAL RUNAWAY detected")


async def test_runaway_response_trip_on_and_escalation(
    hass: HomeAssistant, blueprints: None
) -> None:
    trips = async_mock_service(hass, "bacs", "trip_breaker")
    notes = async_mock_service(hass, "persistent_notification", "create")
    await automate(
        hass, "thermal_runaway_response.yaml", manager="entry1", countdown=0, trip_on="pre_alert"
    )
    runaway_event(hass, "entry2", "runaway_pre_alert")  # another manager: not ours
    await hass.async_block_till_done()
    assert notes == []
    runaway_event(hass, "entry1", "runaway_pre_alert")
    await hass.async_block_till_done()
    assert len(trips) == 1
    runaway_event(hass, "entry1", "trip_failed", trip_state="failed")
    await hass.async_block_till_done()
    assert len(trips) == 1  # a failed trip is escalated to people, not retried blindly
    assert notes[-1].data["title"] == "Battery breaker DID NOT OPEN"
    assert "by hand" in notes[-1].data["message"]


async def test_runaway_notify_only(hass: HomeAssistant, blueprints: None) -> None:
    trips = async_mock_service(hass, "bacs", "trip_breaker")
    async_mock_service(hass, "persistent_notification", "create")
    await automate(hass, "thermal_runaway_response.yaml", manager="entry1", trip_on="never")
    runaway_event(hass, "entry1")
    await hass.async_block_till_done()
    assert trips == []


def alarm_event(hass: HomeAssistant, kind: str, severity: str) -> None:
    hass.bus.async_fire(
        "bacs_event",
        {
            "type": kind,
            "config_entry_id": "entry1",
            "message": f"string 1 block 7: {severity}",
            "data": {"key": "module:bus1/7:voltage_high", "severity": severity},
        },
    )


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({}, ["Battery warning", "Battery alarm", "Battery alarm"]),
        ({"include_warnings": False}, ["Battery alarm", "Battery alarm"]),
        (
            {"notify_cleared": True},
            ["Battery warning", "Battery alarm", "Battery alarm", "Battery alarm cleared"],
        ),
    ],
)
async def test_alarm_notification_filters(
    hass: HomeAssistant, blueprints: None, inputs: dict[str, Any], expected: list[str]
) -> None:
    notes = async_mock_service(hass, "persistent_notification", "create")
    await automate(hass, "battery_alarm_notification.yaml", manager="entry1", **inputs)
    alarm_event(hass, "alarm_raised", "warning")
    alarm_event(hass, "alarm_escalated", "alarm")  # that warning became an alarm
    alarm_event(hass, "alarm_raised", "alarm")
    alarm_event(hass, "alarm_cleared", "alarm")
    await hass.async_block_till_done()
    assert [n.data["title"] for n in notes] == expected


async def test_alarm_notification_runs_the_notify_actions_instead(
    hass: HomeAssistant, blueprints: None
) -> None:
    notes = async_mock_service(hass, "persistent_notification", "create")
    notified = async_capture_events(hass, "bacs_test_notified")
    await automate(hass, "battery_alarm_notification.yaml", manager="entry1", notify=NOTIFY)
    alarm_event(hass, "alarm_raised", "alarm")
    await hass.async_block_till_done()
    assert notes == []
    assert [e.data for e in notified] == [{"title": "Battery alarm"}]


async def test_alarm_notification_from_a_real_alarm(hass: HomeAssistant, blueprints: None) -> None:
    entry = await setup(hass, make_entry(options=HOT_OPTIONS))
    notes = async_mock_service(hass, "persistent_notification", "create")
    await automate(hass, "battery_alarm_notification.yaml", manager=entry.entry_id)
    await heat_until_tripped(hass, entry)
    await hass.async_block_till_done()
    assert any(n.data["title"] == "Battery alarm" for n in notes)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_weekly_summary_reads_the_room(
    hass: HomeAssistant, blueprints: None, loaded_entry: MockConfigEntry
) -> None:
    notes = async_mock_service(hass, "persistent_notification", "create")
    notified = async_capture_events(hass, "bacs_test_notified")
    entity_id = await automate(
        hass,
        "weekly_battery_health_summary.yaml",
        manager=loaded_entry.entry_id,
        notify=NOTIFY,
    )
    await hass.services.async_call(
        "automation", "trigger", {"entity_id": entity_id, "skip_condition": True}, blocking=True
    )
    await hass.async_block_till_done()
    message = notes[0].data["message"]
    assert message.startswith("String 1:") and "\nString 2:" in message
    assert "spread" in message and "lowest block" in message
    assert "Highest internal resistance: String" in message and "mΩ" in message
    assert "Warmest block: String" in message
    assert "Breaker: closed" in message
    assert "in the last discharge" not in message  # none yet
    assert notified[0].data == {"title": "Weekly battery health summary"}
    await hass.services.async_call(
        "automation", "turn_off", {"entity_id": entity_id}, blocking=True
    )


async def test_weekly_summary_only_on_its_day(hass: HomeAssistant, blueprints: None) -> None:
    notes = async_mock_service(hass, "persistent_notification", "create")
    now = dt_util.now()
    other_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(now.weekday() + 1) % 7]
    at = (now + timedelta(minutes=1)).strftime("%H:%M:00")
    entity_id = await automate(
        hass, "weekly_battery_health_summary.yaml", manager="entry1", weekday=other_day, at=at
    )
    async_fire_time_changed(hass, now + timedelta(minutes=1, seconds=1))
    await hass.async_block_till_done()
    assert notes == []
    await hass.services.async_call(
        "automation", "turn_off", {"entity_id": entity_id}, blocking=True
    )


async def test_weekly_summary_names_the_block_that_fell_in_the_last_discharge(
    hass: HomeAssistant, blueprints: None, loaded_entry: MockConfigEntry
) -> None:
    await discharge_with_an_aged_block(hass, loaded_entry)
    notes = async_mock_service(hass, "persistent_notification", "create")
    entity_id = await automate(
        hass, "weekly_battery_health_summary.yaml", manager=loaded_entry.entry_id
    )
    await hass.services.async_call(
        "automation", "trigger", {"entity_id": entity_id, "skip_condition": True}, blocking=True
    )
    await hass.async_block_till_done()
    first_line = notes[0].data["message"].splitlines()[0]
    assert "in the last discharge block 3 fell" in first_line, first_line
    await hass.services.async_call(
        "automation", "turn_off", {"entity_id": entity_id}, blocking=True
    )


def _demo_module() -> Any:
    import importlib.util
    import sys

    scripts = SOURCE.parents[2] / "scripts"
    sys.path.insert(0, str(scripts))
    try:
        spec = importlib.util.spec_from_file_location("demo", scripts / "demo.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["demo"] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(scripts))


async def test_the_demos_blueprints_are_found_by_home_assistant(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """The demo copies them (a symlinked folder, as before, is not searched by Home
    Assistant's blueprint glob: nothing was listed)."""
    from homeassistant.components.automation.helpers import async_get_blueprints

    config_dir = hass.config.config_dir
    try:
        linked = tmp_path / "linked"
        (linked / "blueprints" / "automation").mkdir(parents=True)
        (linked / "blueprints" / "automation" / "bacs").symlink_to(SOURCE)
        hass.config.config_dir = str(linked)
        assert await async_get_blueprints(hass).async_get_blueprints() == {}

        copied = tmp_path / "copied"
        _demo_module().install_blueprints(copied)
        _demo_module().install_blueprints(copied)  # again on the next start: refreshed
        hass.config.config_dir = str(copied)
        found = await async_get_blueprints(hass).async_get_blueprints()
        assert sorted(found) == [f"bacs/{name}" for name in BLUEPRINTS]
        assert all(type(b).__name__ == "Blueprint" for b in found.values()), found
    finally:
        hass.config.config_dir = config_dir
