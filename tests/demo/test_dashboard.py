"""The demo's dashboard builder and its state file, without a Home Assistant."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load(name: str) -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve their annotations through it
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def registry(
    blocks: int = 3, buttons: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    devices = [{"id": "hub", "name": "BACS 127.0.0.1", "model": "BACS manager"}]
    entities: list[dict[str, Any]] = []

    def add(device: str, entity_id: str, unique_id: str, name: str | None = None) -> None:
        entities.append(
            {
                "entity_id": entity_id,
                "unique_id": unique_id,
                "device_id": device,
                "original_name": name,
                "disabled_by": None,
                "config_entry_id": "ENTRY",
            }
        )

    add("hub", "sensor.bacs_breaker", "E-breaker", "Breaker")
    add("hub", "sensor.bacs_active_alarms", "E-active_alarms", "Active alarms")
    add("hub", "sensor.bacs_alarms", "E-alarms", "Alarms")
    add("hub", "binary_sensor.bacs_thermal_runaway", "E-thermal_runaway", "Thermal runaway")
    if buttons:
        add("hub", "button.bacs_trip_breaker", "E-trip", "Trip breaker")
        add("hub", "button.bacs_reset_breaker", "E-reset", "Reset breaker")
    for s in (1, 2):
        devices.append(
            {
                "id": f"s{s}",
                "name": f"String {s}",
                "model": "Battery string",
                "via_device_id": "hub",
            }
        )
        add(f"s{s}", f"sensor.string_{s}_voltage", f"E-string{s}-voltage")
        add(f"s{s}", f"binary_sensor.string_{s}_problem", f"E-string{s}-problem")
        for b in reversed(range(1, blocks + 1)):  # registry order is not block order
            dev = f"s{s}b{b}"
            devices.append(
                {
                    "id": dev,
                    "name": f"String {s} block {b}",
                    "model": "C20",
                    "via_device_id": f"s{s}",
                }
            )
            add(dev, f"sensor.string_{s}_block_{b}_voltage", f"battery_module-{s}{b}-voltage")
            add(
                dev,
                f"sensor.string_{s}_block_{b}_temperature",
                f"battery_module-{s}{b}-temperature",
            )
            add(
                dev, f"binary_sensor.string_{s}_block_{b}_problem", f"battery_module-{s}{b}-problem"
            )
    devices.append({"id": "env", "name": "Environment sensor 9", "model": "Environment sensor"})
    add("env", "sensor.environment_sensor_9_temperature", "environment-9-temperature")
    entities.append({**entities[-1], "entity_id": "sensor.off", "disabled_by": "user"})
    return entities, devices


def test_dashboard_has_every_part_in_block_order() -> None:
    dashboard = load("demo_dashboard")
    config = dashboard.build_dashboard(*registry())
    view = config["views"][0]
    assert view["type"] == "sections"
    # The integration's battery-room card leads, across the whole view, for the demo's entry.
    room = view["sections"][0]
    assert room["column_span"] == view["max_columns"]
    assert room["cards"] == [
        {"type": "custom:bacs-battery-room-card", "title": "Battery room", "entry": "ENTRY"}
    ]
    cards = dashboard.view_cards(config)[1:]
    assert all(c["type"] != "markdown" or "voltages" not in c.get("title", "") for c in cards)
    titles = [c.get("title") for c in cards]
    buttons = cards[1]["cards"]
    # The integration's (admin-only) buttons, each behind a confirmation.
    assert [b["tap_action"]["perform_action"] for b in buttons] == ["button.press"] * 2
    assert [b["tap_action"]["target"]["entity_id"] for b in buttons] == [
        "button.bacs_trip_breaker",
        "button.bacs_reset_breaker",
    ]
    assert all("confirmation" in b["tap_action"] for b in buttons)
    del cards[1]
    assert titles[:1] + titles[2:6] == [
        "Manager and breaker",
        "Alarms",
        "String 1",
        "String 2",
        "Worst blocks (furthest from their string's mean)",
    ]
    manager = cards[0]["entities"]
    assert {"entity": "sensor.bacs_breaker", "name": "Breaker"} in manager
    assert {"entity": "sensor.bacs_alarms", "name": "Alarms"} in manager
    alarms = cards[1]["content"]
    assert "{%- for hub in ['sensor.bacs_alarms'] -%}" in alarms  # every alarm, its reason
    assert "HUBS" not in alarms and "MAX" not in alarms
    graphs = [c for c in cards if c["type"] == "history-graph"]
    # No current sensors, no spread sensors in this registry: those graphs are left out.
    assert [g["title"] for g in graphs] == ["String voltages", "Room and block temperatures"]
    assert "sensor.off" not in repr(config)  # disabled entities stay off the dashboard


def test_dashboard_falls_back_to_the_actions() -> None:
    dashboard = load("demo_dashboard")
    cards = dashboard.view_cards(dashboard.build_dashboard(*registry(buttons=False)))
    buttons = cards[2]["cards"]
    assert [b["tap_action"]["perform_action"] for b in buttons] == [
        "bacs.trip_breaker",
        "bacs.reset_breaker",
    ]
    assert all(b["tap_action"]["data"]["config_entry_id"] == "ENTRY" for b in buttons)
    assert all("confirmation" in b["tap_action"] for b in buttons)


def test_demo_state_survives_and_a_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    demo = load("demo")
    path = tmp_path / "demo.json"
    assert demo.DemoState.load(path) is None
    demo.DemoState(5020, 5030, "pw").save(path)
    assert demo.DemoState.load(path) == demo.DemoState(5020, 5030, "pw")
    path.write_text("{not json")
    with pytest.raises(demo.DemoError, match="--fresh"):
        demo.DemoState.load(path)


def test_demo_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    demo = load("demo")
    assert demo.main(["--password", ""]) == 2
    assert demo.main(["--speed", "0"]) == 2
    assert demo.main(["--outage", "-1"]) == 2
    assert "must be positive" in capsys.readouterr().err


def test_the_readme_has_the_current_dashboard() -> None:
    """The README's dashboard is the generator's output (./scripts/demo_dashboard.py)."""
    dashboard = load("demo_dashboard")
    readme = (SCRIPTS.parent / "README.md").read_text()
    start = readme.index("<!-- dashboard:start -->")
    end = readme.index("<!-- dashboard:end -->")
    block = readme[start:end].split("```yaml\n", 1)[1].rsplit("```", 1)[0]
    assert (
        block == dashboard.generic_dashboard_yaml()
    ), "README.md's dashboard is stale: paste the output of python scripts/demo_dashboard.py"
    for card in dashboard.generic_dashboard()["views"][0]["cards"]:
        assert "sensor.bacs_" not in card["content"]  # no entity id of one installation


async def test_a_discharge_ends_when_the_outage_is_over() -> None:
    """The demo's discharge is a mains outage: after --outage simulated minutes it sets the
    simulator back to float (then the integration closes the record, draws its chart and the
    report can be written); the next discharge gets its own outage."""
    import asyncio

    from bacs_core.sim.control import serve_control
    from bacs_core.sim.room import Room, RoomConfig, Scenario

    demo = load("demo")
    demo.OUTAGE_POLL_S = 0.05
    room = Room(RoomConfig(strings=2, blocks=4, scenario=Scenario.DISCHARGE, settle_days=0))
    server = await serve_control(room, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = asyncio.create_task(room.run(speed=600.0, tick_s=0.02))  # 10 min a second
    driver = asyncio.create_task(demo.end_outages(port, 300.0))

    async def modes() -> set[str]:
        status = await demo.simulator_command(port, {"status": True})
        return {s["mode"] for s in status["status"]["strings"]}

    async def wait_for(mode: str) -> float:
        for _ in range(400):
            if await modes() == {mode}:
                return room.time_s
            await asyncio.sleep(0.025)
        raise AssertionError(f"never {mode}")

    try:
        assert await modes() == {"discharge"}
        ended = await wait_for("float")
        assert 300.0 <= ended <= 300.0 + 120.0  # the outage's length, give or take a poll
        answer = await demo.simulator_command(port, {"scenario": "discharge"})  # by hand
        assert answer["ok"]
        again = room.time_s
        assert await wait_for("float") - again >= 300.0
    finally:
        driver.cancel()
        clock.cancel()
        server.close()
        await server.wait_closed()
        await asyncio.gather(driver, clock, return_exceptions=True)
