"""The battery-room card ships with the integration: served by Home Assistant's HTTP server at
a URL that changes with its content, and loaded by every dashboard as an extra module."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.json import json_dumps
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from bacs_core.sim.room import Fault
from custom_components.bacs.card import (
    CARD_FILE,
    CARD_URL,
    DATA_CARD_URL,
    FRONTEND_DIR,
    async_register_card,
    card_version,
)
from custom_components.bacs.const import DOMAIN

from .conftest import SIM_DATA, SIM_URL, cycle, make_entry, setup

MODULES = sorted(FRONTEND_DIR.glob("*.js"))
VERSION = card_version()


async def test_the_card_is_served_and_loaded_by_every_dashboard(
    hass: HomeAssistant, hass_client_no_auth: ClientSessionGenerator
) -> None:
    assert await async_setup_component(hass, "frontend", {})
    await setup(hass, make_entry())
    url = f"{CARD_URL}?v={VERSION}"
    assert hass.data[DATA_CARD_URL] == url
    assert url in hass.data[DATA_EXTRA_MODULE_URL].urls
    client = await hass_client_no_auth()  # a module the login page's app loads: no token
    answer = await client.get(url)
    assert answer.status == 200
    assert answer.content_type in ("application/javascript", "text/javascript")
    assert (await answer.read()) == CARD_FILE.read_bytes()
    for module in MODULES:  # the card's siblings, which it loads with its own version
        sibling = await client.get(f"/bacs_static/{module.name}?v={VERSION}")
        assert sibling.status == 200 and (await sibling.read()) == module.read_bytes()
    assert "max-age" in answer.headers.get("Cache-Control", "")  # the version busts it
    # Home Assistant's page for the browser names the module.
    with patch("homeassistant.components.onboarding.async_is_onboarded", return_value=True):
        page = await client.get("/")
    assert page.status == 200
    assert url in await page.text()
    # Only the frontend folder is served, not the integration's code beside it.
    for other in ("card.py", "manifest.json", "frontend/bacs-battery-room-card.js"):
        assert (await client.get(f"/bacs_static/{other}")).status == 404


async def test_registered_once_whatever_the_number_of_entries(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, "frontend", {})
    await setup(hass, make_entry())
    await setup(
        hass,
        make_entry(unique_id="sim:other", entry_id="01JBACSOTHERENTRY000000000"),
    )
    assert hass.data[DATA_EXTRA_MODULE_URL].urls == {f"{CARD_URL}?v={VERSION}"}
    assert await async_register_card(hass) == f"{CARD_URL}?v={VERSION}"  # again: no error
    assert len(hass.config_entries.async_entries(DOMAIN)) == 2


async def test_without_a_frontend_the_card_is_only_served(
    hass: HomeAssistant, hass_client_no_auth: ClientSessionGenerator
) -> None:
    """A headless Home Assistant (no frontend): the integration sets up all the same."""
    await setup(hass, make_entry())
    assert "frontend" not in hass.config.components
    assert DATA_EXTRA_MODULE_URL not in hass.data
    client = await hass_client_no_auth()
    answer = await client.get(hass.data[DATA_CARD_URL])
    assert answer.status == 200


# -- the card's reading of a real Home Assistant (node runs the module as a browser would) ------

NODE = shutil.which("node")
ROOM_SCRIPT = Path(__file__).parent / "frontend" / "card_room.mjs"
# 2 × 8 blocks, string 1 block 3 aged: resistance ×1.4 (the manager warns from 1.3× the median)
WEAK_URL = SIM_URL.replace("blocks=4", "blocks=8") + "&fault=weak:1:3"


def frontend_hass(hass: HomeAssistant, card_config: dict[str, Any]) -> dict[str, Any]:
    """What the frontend's ``hass`` object holds: the entity registry's display entries (no
    disabled ones), the device registry and the states."""
    entities = {
        e.entity_id: {
            "entity_id": e.entity_id,
            "platform": e.platform,
            "device_id": e.device_id,
            "translation_key": e.translation_key,
            "hidden": e.hidden_by is not None,
            "entity_category": e.entity_category,
        }
        for e in er.async_get(hass).entities.values()
        if e.disabled_by is None
    }
    devices = {d.id: json.loads(d.json_repr or b"{}") for d in dr.async_get(hass).devices.values()}
    states = {s.entity_id: s.as_dict() for s in hass.states.async_all()}
    return json.loads(
        json_dumps(
            {"entities": entities, "devices": devices, "states": states, "card_config": card_config}
        )
    )


def modules_for_node(tmp_path: Path) -> Path:
    """The card's modules in a folder node reads as ES modules (as browsers load them)."""
    folder = tmp_path / "frontend"
    folder.mkdir(exist_ok=True)
    (folder / "package.json").write_text('{"type": "module"}')
    for module in MODULES:
        (folder / module.name).write_bytes(module.read_bytes())
    return folder / CARD_FILE.name


def run_card(hass: HomeAssistant, tmp_path: Path, card_config: dict[str, Any]) -> dict[str, Any]:
    assert NODE is not None
    card = modules_for_node(tmp_path)
    data = tmp_path / "hass.json"
    data.write_text(json.dumps(frontend_hass(hass, card_config)))
    done = subprocess.run(
        [NODE, str(ROOM_SCRIPT), str(card), str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


pytestmark_node = pytest.mark.skipif(
    NODE is None, reason="node is not installed (Debian: apt-get install nodejs)"
)


@pytestmark_node
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_the_modules_parse(module: Path) -> None:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--input-type=module", "--check"],
        input=module.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_change_in_any_module_is_a_new_version(tmp_path: Path) -> None:
    for module in MODULES:
        (tmp_path / module.name).write_bytes(module.read_bytes())
    assert card_version(tmp_path) == VERSION
    (tmp_path / "bacs-room.js").write_text("// another release\n")
    assert card_version(tmp_path) != VERSION


@pytestmark_node
async def test_the_card_finds_every_block_and_marks_the_weak_one(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    entry = await setup(hass, make_entry(data={**SIM_DATA, "blocks": 8, "url": WEAK_URL}))
    await cycle(hass, entry, 3)
    out = run_card(hass, tmp_path, {})
    assert [s["index"] for s in out["strings"]] == [1, 2]
    assert out["bars"] == 16 and out["element"] == "function" and out["stub"] == {}
    for s in out["strings"]:
        assert [b["position"] for b in s["blocks"]] == list(range(1, 9))
        assert s["breaker"] == "closed" and s["trip_state"] == "armed"
        assert s["voltage"] == float(hass.states.get(f"sensor.string_{s['index']}_voltage").state)
        for b in s["blocks"]:
            assert b["entity"] == f"sensor.string_{s['index']}_block_{b['position']}_voltage"
            assert b["voltage"] == float(hass.states.get(b["entity"]).state)
        mean = sum(b["voltage"] for b in s["blocks"]) / 8
        assert sum(b["deviation"] for b in s["blocks"]) == pytest.approx(0.0, abs=1e-9)
        assert s["blocks"][0]["deviation"] == pytest.approx(s["blocks"][0]["voltage"] - mean)
    first = out["strings"][0]["blocks"]
    assert "weak" in first[2]["marks"], first
    assert hass.states.get("binary_sensor.string_1_block_3_problem").state == "on"
    assert first[2]["marks"][0] == "alarm" and out["strings"][0]["worst"] == 3
    assert all(not b["marks"] for b in first if b["position"] != 3)
    assert all(not b["marks"] for b in out["strings"][1]["blocks"])
    assert 'data-entity="sensor.string_1_block_3_voltage" data-position="3"' in out["html"]


@pytestmark_node
async def test_hot_and_silent_blocks_and_the_choice_of_strings(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    entry = await setup(hass, make_entry())
    await cycle(hass, entry)
    hot = hass.states.get("sensor.string_2_block_2_temperature")
    hass.states.async_set(hot.entity_id, "41.5", hot.attributes)
    silent = hass.states.get("sensor.string_2_block_4_voltage")
    hass.states.async_set(silent.entity_id, "unavailable", silent.attributes)
    out = run_card(hass, tmp_path, {"strings": [2], "entry": entry.entry_id})
    assert [s["index"] for s in out["strings"]] == [2]
    blocks = out["strings"][0]["blocks"]
    assert blocks[1]["marks"] == ["hot"] and blocks[3]["marks"] == ["no_data"]
    assert blocks[3]["voltage"] is None and blocks[3]["deviation"] is None
    assert out["strings"][0]["worst"] == 2  # hot before a block without a reading
    # A module that stops answering: the string's alarm names it, the card marks it.
    room = entry.runtime_data.transport.room
    room.inject(Fault.parse("dead:2:3"))
    await cycle(hass, entry, 4)
    alarms = hass.states.get("sensor.string_2_alarms")
    assert "String 2 block 3" in alarms.state, alarms.state
    out = run_card(hass, tmp_path, {"strings": "2"})
    dead = out["strings"][0]["blocks"][2]
    assert dead["marks"] == ["alarm", "no_data"], dead
    assert "String 2 block 3 does not answer" in out["html"]
    assert out["bars"] == 4
    assert run_card(hass, tmp_path, {"entry": "another"})["strings"] == []
    devices = dr.async_get(hass)
    string_1 = devices.async_get_device({(DOMAIN, f"{entry.entry_id}-string-1")})
    hub = devices.async_get_device({(DOMAIN, entry.entry_id)})
    assert string_1 is not None and hub is not None
    assert [s["index"] for s in run_card(hass, tmp_path, {"device": string_1.id})["strings"]] == [1]
    assert [s["index"] for s in run_card(hass, tmp_path, {"device": hub.id})["strings"]] == [1, 2]
    assert "No BACS battery strings found" in run_card(hass, tmp_path, {"entry": "x"})["html"]
