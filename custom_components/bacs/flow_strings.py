"""The config flow's strings step, after a bus scan: what was found, how many strings the
blocks form (split in unit order, or by the counts given), the capacity, the chemistry and
whether the trip may act by itself."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.helpers.selector import BooleanSelector, TextSelector

from bacs_core.model import Chemistry

from .bus import ScanSummary
from .const import (
    DEFAULT_POLL_INTERVAL,
    OPT_BLOCK_COUNTS,
    OPT_CAPACITY,
    OPT_CHEMISTRY,
    OPT_POLL_INTERVAL,
    OPT_STRING_COUNT,
)
from .flow_fields import chemistry_dropdown, name_field, number, parse_block_counts


def default_strings(summary: ScanSummary) -> int:
    """A string per current sensor found (one string when there is none)."""
    return max(1, min(summary.current_sensors or 1, summary.modules or 1))


def strings_schema(summary: ScanSummary, data: dict[str, Any], taken: set[str]) -> vol.Schema:
    return vol.Schema(
        {
            **name_field(data, taken),
            vol.Required(OPT_STRING_COUNT, default=default_strings(summary)): number(
                1, max(1, min(64, summary.modules))
            ),
            vol.Required(OPT_CAPACITY, default=100): number(1, 20000, 1, "Ah"),
            vol.Required(OPT_CHEMISTRY, default=Chemistry.VRLA.value): chemistry_dropdown(),
            vol.Optional(OPT_BLOCK_COUNTS): TextSelector(),
            vol.Required("auto_trip", default=summary.relays > 0): BooleanSelector(),
        }
    )


def strings_placeholders(summary: ScanSummary) -> dict[str, str]:
    return {
        "modules": str(summary.modules),
        "current_sensors": str(summary.current_sensors),
        "relays": str(summary.relays),
        "environment": str(summary.environment),
        "per_string": str(summary.modules // default_strings(summary)),
    }


def strings_options(
    user_input: dict[str, Any], summary: ScanSummary, errors: dict[str, str]
) -> dict[str, Any]:
    """The new entry's options from the form; bad block counts are an error on their field."""
    count = int(user_input[OPT_STRING_COUNT])
    options = {
        OPT_STRING_COUNT: count,
        OPT_CAPACITY: float(user_input[OPT_CAPACITY]),
        OPT_CHEMISTRY: user_input[OPT_CHEMISTRY],
        OPT_POLL_INTERVAL: DEFAULT_POLL_INTERVAL,
        "trip": {"auto": bool(user_input["auto_trip"])},
    }
    try:
        counts = parse_block_counts(user_input.get(OPT_BLOCK_COUNTS), count, summary.modules)
    except ValueError:
        errors[OPT_BLOCK_COUNTS] = "block_counts_invalid"
    else:
        if counts:
            options[OPT_BLOCK_COUNTS] = counts
    return options
