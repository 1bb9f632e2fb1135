"""The dashboards' templates rendered by Home Assistant itself, on the simulator: the README's
dashboard (no entity id written in) finds the room, and both show every alarm's reason."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.template import Template

from .conftest import cycle, make_entry, setup
from .test_alarms import WARM

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
REASON = "String 1 block 1: temperature 25.0 °C, above the 20.0 °C warning limit"


def dashboard_module() -> ModuleType:
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location(
            "demo_dashboard", SCRIPTS / "demo_dashboard.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["demo_dashboard"] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(SCRIPTS))


def render(hass: HomeAssistant, config: dict[str, Any]) -> dict[str, str]:
    view = config["views"][0]  # a masonry view's cards, or a sections view's
    cards = [c for section in view.get("sections", []) for c in section["cards"]]
    return {
        card["title"]: str(Template(card["content"], hass).async_render(parse_result=False))
        for card in cards + view.get("cards", [])
        if card.get("type") == "markdown"
    }


async def test_the_readme_dashboard_finds_the_room_and_its_alarms(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(options=WARM))
    await cycle(hass, entry)
    cards = render(hass, dashboard_module().generic_dashboard())
    alarms = cards["Alarms"]
    assert f'<ha-alert alert-type="warning">{REASON}</ha-alert>' in alarms, alarms
    assert alarms.count("<ha-alert") == 8
    strings = cards["Strings"].splitlines()
    assert strings[0] == "| String | Voltage | Current | State | Balancing | Alarms |"
    assert [row.split(" | ")[0] for row in strings[2:]] == ["| String 1", "| String 2"]
    assert re.search(r"\| String 1 \| 5\d\.\d+ V \| ", strings[2]), strings[2]
    assert strings[2].endswith(f"| {REASON} (+3 more) |"), strings[2]
    worst = cards["Worst blocks (furthest from their string's mean)"].splitlines()
    assert len([r for r in worst if re.match(r"\| String [12] \| [1-4] \| 1", r)]) == 8, worst
    bars = cards["Block voltages"]
    assert "**String 1**" in bars and "**String 2**" in bars
    assert len(re.findall(r"^\| [1-4] \| 1[0-9]\.[0-9]{2} \|", bars, re.M)) == 8, bars


async def test_the_readme_dashboard_with_nothing_set_up(hass: HomeAssistant) -> None:
    cards = render(hass, dashboard_module().generic_dashboard())
    assert cards["Strings"] == "No battery strings yet."


async def test_the_demo_dashboard_lists_every_alarms_reason(hass: HomeAssistant) -> None:
    entry = await setup(hass, make_entry(options=WARM))
    await cycle(hass, entry)
    entities = [
        {**e.as_partial_dict, "original_name": e.original_name}
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    ]
    devices = [
        {"id": d.id, "name": d.name, "name_by_user": None, "model": d.model,
         "via_device_id": d.via_device_id}
        for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    ]  # fmt: skip
    config = dashboard_module().build_dashboard(entities, devices)
    alarms = render(hass, config)["Alarms"]
    assert REASON in alarms and alarms.count("<ha-alert") == 8, alarms
