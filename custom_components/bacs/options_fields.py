"""The numbers of the options forms: each one's unit and accepted range (bacs_core's where it
has one), the errors that state the range, and how a threshold is shown (a resistance ratio as
% of its baseline). Also the runaway detection time the form states for a poll interval."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.helpers.selector import NumberSelector, NumberSelectorConfig, NumberSelectorMode

from bacs_core.manager.config import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN, RUNAWAY_SCHEMA
from bacs_core.model import RELAY_CHANNELS

from .const import DEFAULT_POLL_INTERVAL, OPT_CAPACITY, OPT_POLL_INTERVAL, OPT_STRING_COUNT


class Field:
    """A number in a form: its unit and the range the form accepts (bacs_core's where it has
    one), both shown to the user; a value outside gets an error that says the range."""

    def __init__(self, low: float, high: float, step: float, unit: str | None = None) -> None:
        self.low, self.high, self.step, self.unit = low, high, step, unit

    def selector(self) -> NumberSelector:
        """No min/max on the selector: the step checks them and says the range in its error
        (a selector's own refusal says only "too small")."""
        config = NumberSelectorConfig(step=self.step, mode=NumberSelectorMode.BOX)
        if self.unit is not None:
            config["unit_of_measurement"] = self.unit
        return NumberSelector(config)

    def accepts(self, value: Any) -> bool:
        try:
            return self.low <= float(value) <= self.high
        except (TypeError, ValueError):
            return False


# Alarm thresholds in the form: (group, bound) in bacs_core's Thresholds, and the field.
THRESHOLD_FIELDS: dict[str, tuple[str, str, Field]] = {
    "cell_voltage_alarm_high": ("cell_voltage", "alarm_high", Field(0.5, 5.0, 0.005, "V")),
    "cell_voltage_warning_high": ("cell_voltage", "warning_high", Field(0.5, 5.0, 0.005, "V")),
    "cell_voltage_warning_low": ("cell_voltage", "warning_low", Field(0.5, 5.0, 0.005, "V")),
    "cell_voltage_alarm_low": ("cell_voltage", "alarm_low", Field(0.5, 5.0, 0.005, "V")),
    "cell_deviation_alarm_high": ("cell_deviation", "alarm_high", Field(0, 1, 0.001, "V")),
    "cell_deviation_warning_high": ("cell_deviation", "warning_high", Field(0, 1, 0.001, "V")),
    "cell_deviation_warning_low": ("cell_deviation", "warning_low", Field(-1, 0, 0.001, "V")),
    "cell_deviation_alarm_low": ("cell_deviation", "alarm_low", Field(-1, 0, 0.001, "V")),
    "temperature_warning_high": ("temperature", "warning_high", Field(-20, 90, 0.5, "°C")),
    "temperature_alarm_high": ("temperature", "alarm_high", Field(-20, 90, 0.5, "°C")),
    "resistance_warning_high": (
        "resistance_vs_baseline",
        "warning_high",
        Field(100, 500, 1, "%"),
    ),
    "resistance_alarm_high": ("resistance_vs_baseline", "alarm_high", Field(100, 500, 1, "%")),
    "hydrogen_warning_high": ("hydrogen", "warning_high", Field(0, 40000, 100, "ppm")),
    "hydrogen_alarm_high": ("hydrogen", "alarm_high", Field(0, 40000, 100, "ppm")),
}
PERCENT_OF_BASELINE = {"resistance_vs_baseline"}  # stored as a ratio, shown in %
# How long a block the equalizer is still correcting may deviate before it alarms: stored in s
# (Thresholds.deviation_grace), shown in hours.
GRACE = "deviation_grace"
GRACE_FIELD = Field(0, 168, 0.5, "h")

# The other numbers of the options form, by section ("" = top level).
OPTION_FIELDS: dict[tuple[str, str], Field] = {
    ("", OPT_POLL_INTERVAL): Field(POLL_INTERVAL_MIN, POLL_INTERVAL_MAX, 1, "s"),
    ("", OPT_STRING_COUNT): Field(1, 64, 1),
    ("", OPT_CAPACITY): Field(1, 20000, 1, "Ah"),
    ("equalization", "float_voltage_per_cell"): Field(1.2, 4.3, 0.005, "V"),
    ("equalization", "float_voltage"): Field(1, 20, 0.01, "V"),
    ("trip", "channel"): Field(1, RELAY_CHANNELS, 1),
    ("trip", "input"): Field(1, RELAY_CHANNELS, 1),
    ("trip", "pre_trip_delay"): Field(0, 3600, 1, "s"),
    **{("thresholds", name): field for name, (_g, _b, field) in THRESHOLD_FIELDS.items()},
    ("thresholds", GRACE): GRACE_FIELD,
}


def range_placeholders() -> dict[str, str]:
    """``{poll_interval_range}`` and friends for the errors and field descriptions."""
    out: dict[str, str] = {}
    for (_section, name), field in OPTION_FIELDS.items():
        unit = f" {field.unit}" if field.unit else ""
        out[f"{name}_range"] = f"{field.low:g} to {field.high:g}{unit}"
    return out


def range_errors(
    form: Mapping[str, Any], only: set[tuple[str, str]] | None = None
) -> dict[str, str]:
    """``{field: "<field>_range"}`` for every number (of ``only``, if given) outside its range."""
    errors: dict[str, str] = {}
    for (section_name, name), field in OPTION_FIELDS.items():
        if only is not None and (section_name, name) not in only:
            continue
        values = form.get(section_name, {}) if section_name else form
        value = values.get(name)
        if value is None and (section_name, name) in OPTIONAL_NUMBERS:
            continue
        if not field.accepts(value):
            errors[name] = f"{name}_range"
    return errors


OPTIONAL_NUMBERS = {
    ("equalization", "float_voltage"),
    *(("thresholds", name) for name in THRESHOLD_FIELDS),
    ("thresholds", GRACE),
}


def detection_time(options: Mapping[str, Any]) -> tuple[float, float]:
    """Worst case, in s, from a runaway's start to its confirmation, and to the trip: it is
    seen at the next cycle and confirmed over ``confirm_cycles`` cycles."""
    interval = float(options.get(OPT_POLL_INTERVAL, DEFAULT_POLL_INTERVAL))
    confirm = int(RUNAWAY_SCHEMA(dict(options.get("runaway", {})))["confirm_cycles"])
    delay = float(options.get("trip", {}).get("pre_trip_delay", 0.0))
    return confirm * interval, confirm * interval + delay


def threshold_shown(group: str, value: float | None) -> float | None:
    """A stored threshold as the form shows it (a resistance ratio as % of its baseline)."""
    if value is None or group not in PERCENT_OF_BASELINE:
        return value
    return round(value * 100, 1)


def threshold_stored(group: str, value: float) -> float:
    return value / 100 if group in PERCENT_OF_BASELINE else value


# A GENEREX web manager (read-only): how often it is read and our alarm rules on its readings;
# no strings to form, no equalization, no trip, no environment sensor.
GENEREX_THRESHOLDS = [n for n in THRESHOLD_FIELDS if not n.startswith("hydrogen")]
GENEREX_FIELDS = {("", OPT_POLL_INTERVAL), *(("thresholds", n) for n in GENEREX_THRESHOLDS)}
