"""The demo's battery-room dashboard, built from the entity and device registries.

The blocks are drawn by the integration's own battery-room card (it ships with the
integration, nothing to install); the rest are core cards. ``generic_dashboard`` is the
README's paste-anywhere variant: core markdown cards only, templates that find the room.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "dashboard"
BAR_CELLS = 10  # per side of the centre line
SCALES_MV = (10, 20, 50, 100, 200, 500)  # full-scale choices; the smallest that fits is used


def _template(name: str) -> str:
    """Jinja run by Home Assistant itself; placeholders in capitals are filled in here."""
    return (TEMPLATES / name).read_text().rstrip("\n")


@dataclass
class Device:
    name: str
    entities: dict[str, str] = field(default_factory=dict)  # key → entity_id
    names: dict[str, str] = field(default_factory=dict)  # entity_id → name without the device


@dataclass
class Room:
    hub: Device | None = None
    strings: dict[int, Device] = field(default_factory=dict)
    blocks: dict[int, dict[int, Device]] = field(default_factory=lambda: defaultdict(dict))
    others: dict[str, list[Device]] = field(default_factory=lambda: defaultdict(list))


def _key(unique_id: str) -> str:
    return unique_id.rsplit("-", 1)[-1]


def index_room(entities: list[dict[str, Any]], devices: list[dict[str, Any]]) -> Room:
    """Sort the integration's entities by device: hub, strings, blocks and the other devices."""
    by_id = {d["id"]: d for d in devices}
    per_device: dict[str, dict[str, str]] = defaultdict(dict)
    names: dict[str, str] = {}
    for entity in entities:
        if entity.get("disabled_by") or not entity.get("device_id"):
            continue
        key = _key(entity["unique_id"])
        per_device[entity["device_id"]][key] = entity["entity_id"]
        names[entity["entity_id"]] = (
            entity.get("original_name") or key.replace("_", " ").capitalize()
        )
    room = Room()
    for device_id, keyed in per_device.items():
        device = by_id.get(device_id)
        if device is None:
            continue
        name = device.get("name_by_user") or device["name"]
        item = Device(name, keyed, {eid: names[eid] for eid in keyed.values()})
        model = device.get("model") or ""
        via = by_id.get(device.get("via_device_id") or "")
        if model == "BACS manager":
            room.hub = item
        elif model == "Battery string":
            room.strings[_number_after(device["name"], "String")] = item
        elif via is not None and via.get("model") == "Battery string" and " block " in name:
            string = _number_after(via["name"], "String")
            room.blocks[string][_number_after(device["name"], "block")] = item
        else:
            room.others[name.rsplit(" ", 1)[0]].append(item)
    return room


def _number_after(name: str, word: str) -> int:
    tail = name.split(word, 1)[-1].strip().split(" ", 1)[0]
    try:
        return int(tail)
    except ValueError:
        return 0


def _ids(devices: list[Device], *keys: str) -> list[str]:
    return [d.entities[k] for d in devices for k in keys if k in d.entities]


def entities_card(title: str, device: Device | None, keys: list[str]) -> dict[str, Any]:
    if device is None:
        return {"type": "entities", "title": title, "entities": []}
    rows = [
        {"entity": device.entities[k], "name": device.names[device.entities[k]]}
        for k in keys
        if k in device.entities
    ]
    return {"type": "entities", "title": title, "state_color": True, "entities": rows}


# Jinja run by Home Assistant (the README's dashboard): the voltages, their mean and a bar per
# block. `IDS` is filled in.
BAR_TEMPLATE = _template("bar_chart.jinja")


WORST_TEMPLATE = _template("worst_blocks.jinja")


def worst_blocks_card(room: Room, count: int = 8) -> dict[str, Any]:
    rows = [
        [
            s,
            pos,
            dev.entities["voltage"],
            dev.entities.get("internal_resistance", ""),
            dev.entities.get("temperature", ""),
        ]
        for s in sorted(room.blocks)
        for pos, dev in sorted(room.blocks[s].items())
        if "voltage" in dev.entities
    ]
    content = WORST_TEMPLATE.replace("ROWS", repr(rows)).replace("COUNT", str(count))
    return {
        "type": "markdown",
        "title": "Worst blocks (furthest from their string's mean)",
        "content": content,
    }


ALARMS_TEMPLATE = _template("alarms.jinja")
ALARMS_SHOWN = 20  # alarms listed on the card; the sensor's attribute has them all


def alarms_card(room: Room) -> dict[str, Any]:
    """Every alarm's reason (what, where, the value against its limit), worst first, from
    the hub's alarm-text sensor; the trip and a runaway lead the list."""
    hubs = [room.hub.entities["alarms"]] if room.hub and "alarms" in room.hub.entities else []
    content = ALARMS_TEMPLATE.replace("HUBS", repr(hubs)).replace("MAX", str(ALARMS_SHOWN))
    return {"type": "markdown", "title": "Alarms", "content": content}


def breaker_buttons(hub: Device | None, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trip (a test) and reset the breaker from the dashboard, each behind a confirmation:
    the integration's Trip breaker / Reset breaker buttons (admin only; unavailable without a
    trip relay), or its actions where those buttons are not there."""
    entry_id = next((e["config_entry_id"] for e in entities if e.get("config_entry_id")), None)
    if entry_id is None:
        return []
    buttons = hub.entities if hub is not None else {}

    def button(name: str, icon: str, key: str, text: str, data: dict[str, str]) -> dict[str, Any]:
        entity_id = buttons.get(key)
        if entity_id is not None:
            action: dict[str, Any] = {
                "action": "perform-action",
                "perform_action": "button.press",
                "target": {"entity_id": entity_id},
            }
        else:
            action = {
                "action": "perform-action",
                "perform_action": f"bacs.{key}_breaker",
                "data": {"config_entry_id": entry_id, **data},
            }
        card: dict[str, Any] = {
            "type": "button",
            "name": name,
            "icon": icon,
            "show_state": False,
            "tap_action": {**action, "confirmation": {"text": text}},
        }
        if entity_id is not None:
            card["entity"] = entity_id
        return card

    return [
        {
            "type": "horizontal-stack",
            "cards": [
                button(
                    "Trip breaker (test)",
                    "mdi:power-plug-off",
                    "trip",
                    "Open the battery breakers now? They stay open until reset.",
                    {"reason": "test from the dashboard"},
                ),
                button(
                    "Reset breaker",
                    "mdi:restore-alert",
                    "reset",
                    "Release the trip? The breakers are then closed by hand.",
                    {},
                ),
            ],
        }
    ]


CARD_TYPE = "custom:bacs-battery-room-card"  # shipped and loaded by the integration itself


def battery_room_card(entry_id: str | None) -> dict[str, Any]:
    """The integration's battery-room card: every block of every string of the entry as a bar
    by its deviation and state, the alarmed, hot or weak blocks marked, each string's summary
    and its last discharge with the chart and the report."""
    card: dict[str, Any] = {"type": CARD_TYPE, "title": "Battery room"}
    if entry_id:
        card["entry"] = entry_id
    return card


def build_dashboard(
    entities: list[dict[str, Any]], devices: list[dict[str, Any]]
) -> dict[str, Any]:
    """A Lovelace configuration (the body of lovelace/config/save) for the whole room: a
    sections view, the battery-room card across its full width on top."""
    room = index_room(entities, devices)
    strings = [room.strings[s] for s in sorted(room.strings)]
    entry_id = next((e["config_entry_id"] for e in entities if e.get("config_entry_id")), None)
    manager: list[dict[str, Any]] = [
        entities_card(
            "Manager and breaker",
            room.hub,
            [
                "status",
                "alarms",
                "thermal_runaway",
                "runaway_pre_alert",
                "breaker",
                "trip_state",
                "equalization",
                "float_voltage",
                "link_quality",
                "poll_duration",
                "acknowledge",
            ],
        ),
        *breaker_buttons(room.hub, entities),
        alarms_card(room),
    ]
    string_cards = [
        entities_card(
            room.strings[s].name,
            room.strings[s],
            [
                "voltage",
                "current",
                "power",
                "charge_state",
                "state_of_charge",
                "spread",
                "highest_block",
                "highest_block_voltage",
                "lowest_block",
                "lowest_block_voltage",
                "balancing",
                "alarms",
                "discharge_weakest_block",
                "last_discharge_duration",
                "last_discharge_charge",
                "last_discharge_weakest_block",
            ],
        )
        for s in sorted(room.strings)
    ]
    history: list[dict[str, Any]] = []
    graphs = [
        ("String voltages", _ids(strings, "voltage")),
        ("String currents (+ charging)", _ids(strings, "current")),
        ("Voltage spread", _ids(strings, "spread")),
    ]
    temperatures = _ids(room.others.get("Environment sensor", []), "temperature")
    # The demo's weak block and the block its thermal-runaway scenario heats.
    runaway_watch = [room.blocks.get(1, {}).get(p) for p in (7, 12)]
    temperatures += _ids([d for d in runaway_watch if d is not None], "temperature")
    graphs.append(("Room and block temperatures", temperatures))
    for title, ids in graphs:
        if ids:
            history.append(
                {"type": "history-graph", "title": title, "hours_to_show": 6, "entities": ids}
            )
    others = [
        {
            "type": "entities",
            "title": device.name,
            "state_color": True,
            "entities": [
                {"entity": eid, "name": device.names[eid]}
                for eid in sorted(device.entities.values())
            ],
        }
        for family in ("Relay module", "Current sensor", "Environment sensor")
        for device in room.others.get(family, [])
    ]
    sections = [
        {"type": "grid", "column_span": 4, "cards": [battery_room_card(entry_id)]},
        {"type": "grid", "cards": manager},
        {"type": "grid", "cards": [*string_cards, worst_blocks_card(room)]},
        {"type": "grid", "cards": history},
        {"type": "grid", "cards": others},
    ]
    return {
        "title": "Battery room",
        "views": [
            {
                "type": "sections",
                "max_columns": 4,
                "title": "Battery room",
                "path": "battery-room",
                "icon": "mdi:car-battery",
                "sections": [s for s in sections if s["cards"]],
            }
        ],
    }


def view_cards(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every card of the dashboard's view, section by section."""
    view = config["views"][0]
    return [card for section in view.get("sections", []) for card in section["cards"]] + list(
        view.get("cards", [])
    )


# -- the same dashboard for any installation (the README's) ---------------------------------------
# Core markdown cards only and no entity id written in: the templates find the integration's
# hubs, strings and blocks when Home Assistant renders them (the same templates the demo's
# cards use, fed by a search instead of a list), so one YAML fits any hub name and any number of
# strings and blocks. Buttons and history graphs need fixed entity ids: they are on the devices'
# own pages.
FIND_HUBS = _template("find_hubs.jinja")
FIND_ROOM = _template("find_room.jinja")
STRINGS_TEMPLATE = _template("strings_table.jinja")


def generic_dashboard() -> dict[str, Any]:
    """A Lovelace configuration that works as pasted into any Home Assistant with BACS."""
    alarms = (
        FIND_HUBS
        + "\n"
        + ALARMS_TEMPLATE.replace("HUBS", "ns_h.ids").replace("MAX", str(ALARMS_SHOWN))
    )
    worst = FIND_ROOM + "\n" + WORST_TEMPLATE.replace("ROWS", "ns_room.worst").replace("COUNT", "8")
    bars = (
        FIND_ROOM
        + "\n{%- for s in strings %}\n\n**{{ s.name }}**\n\n"
        + BAR_TEMPLATE.replace("IDS", "s.rows | map(attribute='1') | list")
        .replace("POSITIONS", "s.rows | map(attribute='0') | list")
        .replace("SCALES", repr(list(SCALES_MV)))
        .replace("CELLS", str(BAR_CELLS))
        + "\n{%- endfor %}"
    )
    cards: list[dict[str, Any]] = [
        {"type": "markdown", "title": "Alarms", "content": alarms},
        {"type": "markdown", "title": "Strings", "content": FIND_ROOM + "\n" + STRINGS_TEMPLATE},
        {"type": "markdown", "title": "Worst blocks (furthest from their string's mean)",
         "content": worst},
        {"type": "markdown", "title": "Block voltages", "content": bars},
    ]  # fmt: skip
    return {
        "title": "Battery room",
        "views": [
            {
                "title": "Battery room",
                "path": "battery-room",
                "icon": "mdi:car-battery",
                "cards": cards,
            }
        ],
    }


def generic_dashboard_yaml() -> str:
    """The README's copy: YAML for the raw configuration editor."""
    import yaml

    class _Literal(str):
        pass

    def literal(dumper: yaml.SafeDumper, text: _Literal) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")

    def blocks(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: blocks(v) for k, v in node.items()}
        if isinstance(node, list):
            return [blocks(v) for v in node]
        return _Literal(node) if isinstance(node, str) and "\n" in node else node

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Literal, literal)
    return str(
        yaml.dump(blocks(generic_dashboard()), Dumper=Dumper, sort_keys=False, allow_unicode=True)
    )


if __name__ == "__main__":  # python scripts/demo_dashboard.py > dashboard.yaml
    print(generic_dashboard_yaml(), end="")
