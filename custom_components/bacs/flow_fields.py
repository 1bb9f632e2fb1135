"""Form fields the config and options flows share: number boxes, translated dropdowns, the
entry's name and the block counts per string."""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol
from homeassistant.const import CONF_NAME
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from bacs_core.model import Chemistry

from .const import CONF_KIND, CONF_SIM_NAME, KIND_GENEREX, KIND_REMOTE, KIND_SIM


def number(low: float, high: float, step: float = 1, unit: str | None = None) -> NumberSelector:
    """A number box the selector itself bounds (the config flow's; the options flow states
    its ranges in its errors instead, see options_fields.Field)."""
    config = NumberSelectorConfig(min=low, max=high, step=step, mode=NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


def dropdown(options: list[str], key: str) -> SelectSelector:
    """A dropdown whose options are translated under ``selector.<key>``."""
    return SelectSelector(
        SelectSelectorConfig(options=options, translation_key=key, mode=SelectSelectorMode.DROPDOWN)
    )


def chemistry_dropdown() -> SelectSelector:
    return dropdown([c.value for c in Chemistry], "chemistry")


def default_name(data: dict[str, Any], taken: set[str]) -> str:
    """A name for the entry (and its hub device, so its entities): the user's to change; it
    never carries the host or the adapter's serial number."""
    base = f"Simulator {data[CONF_SIM_NAME]}" if data[CONF_KIND] == KIND_SIM else "Battery room"
    if data[CONF_KIND] == KIND_GENEREX:
        base = "GENEREX BACS"
    if data[CONF_KIND] == KIND_REMOTE:
        base = f"BACS appliance {data['site']}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base} {n}"
    return name


def name_field(data: dict[str, Any], taken: set[str]) -> dict[Any, Any]:
    """The entry's name field, offering a name no other entry has."""
    return {vol.Required(CONF_NAME, default=default_name(data, taken)): TextSelector()}


def entry_name(user_input: dict[str, Any], errors: dict[str, str]) -> str:
    """The name the user gave, stripped; an empty one is an error on the field."""
    name = str(user_input[CONF_NAME]).strip()
    if not name:
        errors[CONF_NAME] = "name_required"
    return name


def parse_block_counts(text: str | None, strings: int, modules: int | None) -> list[int]:
    """ "32, 31" → [32, 31]; empty → [] (split evenly). ValueError when it does not fit: one
    positive count per string, adding up to the modules found (when that is known)."""
    if not text or not text.strip():
        return []
    counts = [int(part) for part in re.split(r"[,\s;]+", text.strip()) if part]
    if len(counts) != strings or min(counts) < 1:
        raise ValueError("one positive count per string")
    if modules is not None and sum(counts) != modules:
        raise ValueError("the counts must add up to the modules found")
    return counts
