"""The options flow: the manager's configuration, validated by bacs_core's own schema.

Every number shows its unit and its range, and a value outside gets an error that states the
range; the form says how long a thermal runaway takes to be confirmed at the poll interval
chosen. Thresholds, equalization and the trip apply live (see __init__.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntry, ConfigFlowResult, OptionsFlow
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from bacs_core.manager import ConfigError, validate_config
from bacs_core.manager.config import POLL_INTERVAL_MAX, POLL_INTERVAL_MIN, RUNAWAY_SCHEMA
from bacs_core.manager.equalization import TargetMode
from bacs_core.manager.safety import LostBusPolicy, TripScope
from bacs_core.manager.thresholds import thresholds_for
from bacs_core.model import RELAY_CHANNELS, Chemistry

from .const import (
    BUS_ID,
    CONF_KIND,
    CONF_URL,
    DEFAULT_POLL_INTERVAL,
    KIND_GENEREX,
    KIND_REMOTE,
    OPT_BLOCK_COUNTS,
    OPT_CAPACITY,
    OPT_CHEMISTRY,
    OPT_POLL_INTERVAL,
    OPT_STRING_COUNT,
)
from .ups import (
    OPT_UPS,
    UPS_FIELDS,
    UPS_INPUT_VOLTAGE,
    UPS_LOAD,
    UPS_ON_BATTERY,
    UPS_RUNTIME,
    manager_options,
    ups_options_from_form,
)

TRIP_NONE = "none"
TRIP_AUTO = "auto"


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


def dropdown(options: list[str], key: str) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(options=options, translation_key=key, mode=SelectSelectorMode.DROPDOWN)
    )


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


def _relay_choices(entry: ConfigEntry[Any]) -> list[str]:
    choices = [TRIP_NONE, TRIP_AUTO]
    runtime = getattr(entry, "runtime_data", None)
    if runtime is not None:
        choices += [str(ref) for ref in sorted(runtime.coordinator.index.relays, key=str)]
    current = _current_relay(entry.options)
    if current not in choices:
        choices.append(current)
    return choices


def _current_relay(options: Mapping[str, Any]) -> str:
    trip = options.get("trip", {})
    if trip.get("breakers"):
        return str(trip["breakers"][0]["relay"])
    return TRIP_AUTO if trip.get("auto") else TRIP_NONE


def _form_defaults(options: dict[str, Any]) -> dict[str, Any]:
    chemistry = Chemistry(options.get(OPT_CHEMISTRY, Chemistry.VRLA.value))
    thresholds = thresholds_for(chemistry, options.get("thresholds") or None)
    eq = options.get("equalization", {})
    trip = options.get("trip", {})
    breaker = (trip.get("breakers") or [{}])[0]
    values: dict[str, Any] = {
        OPT_POLL_INTERVAL: options.get(OPT_POLL_INTERVAL, DEFAULT_POLL_INTERVAL),
        OPT_STRING_COUNT: options.get(OPT_STRING_COUNT, 1),
        OPT_BLOCK_COUNTS: ", ".join(str(c) for c in options.get(OPT_BLOCK_COUNTS, [])),
        OPT_CAPACITY: options.get(OPT_CAPACITY, 100.0),
        OPT_CHEMISTRY: chemistry.value,
        "latch_alarms": options.get("latch_alarms", True),
        "equalization": {
            "enabled": eq.get("enabled", True),
            "target": eq.get("target", TargetMode.STRING_SHARE.value),
            "float_voltage_per_cell": eq.get("float_voltage_per_cell", 2.27),
        },
        "thresholds": {
            **{
                name: _shown(group, getattr(getattr(thresholds, group), bound))
                for name, (group, bound, _field) in THRESHOLD_FIELDS.items()
            },
            GRACE: round(thresholds.deviation_grace / 3600.0, 2),
        },
        "trip": {
            "relay": _current_relay(options),
            "channel": breaker.get("channel", 1),
            "input": breaker.get("input", 1),
            "pre_trip_delay": trip.get("pre_trip_delay", 0.0),
            "scope": trip.get("scope", TripScope.STRING.value),
            "lost_bus_policy": trip.get("lost_bus_policy", LostBusPolicy.HOLD.value),
        },
    }
    if eq.get("float_voltage") is not None:
        values["equalization"]["float_voltage"] = eq["float_voltage"]
    values[OPT_UPS] = dict(options.get(OPT_UPS) or {})
    return values


def _ups_section() -> dict[Any, Any]:
    """The UPS link (the history's, not the manager's): entities Home Assistant already has."""
    selectors = {
        UPS_ON_BATTERY: EntitySelector(EntitySelectorConfig(domain=["binary_sensor", "sensor"])),
        UPS_LOAD: EntitySelector(EntitySelectorConfig(domain="sensor")),
        UPS_RUNTIME: EntitySelector(EntitySelectorConfig(domain="sensor")),
        UPS_INPUT_VOLTAGE: EntitySelector(EntitySelectorConfig(domain="sensor")),
    }
    return {
        vol.Optional(OPT_UPS): section(
            vol.Schema({vol.Optional(name): selectors[name] for name in UPS_FIELDS}),
            {"collapsed": True},
        )
    }


def _with_ups(options: dict[str, Any], form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's UPS section into the options (kept as it was when the form has none)."""
    if OPT_UPS in form:
        options.pop(OPT_UPS, None)
        if ups := ups_options_from_form(form[OPT_UPS]):
            options[OPT_UPS] = ups
    return options


def _shown(group: str, value: float | None) -> float | None:
    """A stored threshold as the form shows it (a resistance ratio as % of its baseline)."""
    if value is None or group not in PERCENT_OF_BASELINE:
        return value
    return round(value * 100, 1)


def _stored(group: str, value: float) -> float:
    return value / 100 if group in PERCENT_OF_BASELINE else value


def _thresholds_from_form(section_form: dict[str, Any], chemistry: Chemistry) -> dict[str, Any]:
    """The thresholds that differ from the chemistry's defaults (a new chemistry brings its
    own for the rest)."""
    defaults = thresholds_for(chemistry)
    thresholds: dict[str, Any] = {}
    for name, (group, bound, _field) in THRESHOLD_FIELDS.items():
        value = section_form.get(name)
        default = getattr(getattr(defaults, group), bound)
        if value is not None and value != _shown(group, default):
            thresholds.setdefault(group, {})[bound] = _stored(group, float(value))
    grace_h = section_form.get(GRACE)
    if grace_h is not None and float(grace_h) * 3600.0 != defaults.deviation_grace:
        thresholds[GRACE] = float(grace_h) * 3600.0
    return thresholds


# A GENEREX web manager (read-only): how often it is read and our alarm rules on its readings;
# no strings to form, no equalization, no trip, no environment sensor.
GENEREX_THRESHOLDS = [n for n in THRESHOLD_FIELDS if not n.startswith("hydrogen")]
GENEREX_FIELDS = {("", OPT_POLL_INTERVAL), *(("thresholds", n) for n in GENEREX_THRESHOLDS)}


def generex_options_from_form(form: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    chemistry = Chemistry(form[OPT_CHEMISTRY])
    options = {k: v for k, v in previous.items() if k != "thresholds"}
    options.update(
        {
            OPT_POLL_INTERVAL: float(form[OPT_POLL_INTERVAL]),
            OPT_CHEMISTRY: chemistry.value,
            "latch_alarms": bool(form["latch_alarms"]),
        }
    )
    thresholds = _thresholds_from_form(form["thresholds"], chemistry)
    if thresholds:
        options["thresholds"] = thresholds
    return _with_ups(options, form)


def _generex_schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(OPT_POLL_INTERVAL): OPTION_FIELDS[("", OPT_POLL_INTERVAL)].selector(),
            vol.Required(OPT_CHEMISTRY): dropdown([c.value for c in Chemistry], "chemistry"),
            vol.Required("latch_alarms"): BooleanSelector(),
            vol.Required("thresholds"): section(
                vol.Schema(
                    {
                        vol.Optional(name): OPTION_FIELDS[("thresholds", name)].selector()
                        for name in GENEREX_THRESHOLDS
                    }
                ),
                {"collapsed": False},
            ),
            **_ups_section(),
        }
    )


def options_from_form(form: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """The bacs_core configuration dict from the options form (thresholds only where they
    differ from the chemistry's defaults, so a chemistry change brings its own)."""
    chemistry = Chemistry(form[OPT_CHEMISTRY])
    thresholds = _thresholds_from_form(form["thresholds"], chemistry)
    eq_form = form["equalization"]
    equalization: dict[str, Any] = {
        "enabled": bool(eq_form["enabled"]),
        "target": eq_form["target"],
        "float_voltage_per_cell": float(eq_form["float_voltage_per_cell"]),
    }
    if eq_form.get("float_voltage") is not None:
        equalization["float_voltage"] = float(eq_form["float_voltage"])
    trip_form = form["trip"]
    trip: dict[str, Any] = {
        "auto": trip_form["relay"] == TRIP_AUTO,
        "pre_trip_delay": float(trip_form["pre_trip_delay"]),
        "scope": trip_form.get("scope", TripScope.STRING.value),
        "lost_bus_policy": trip_form["lost_bus_policy"],
    }
    if trip_form["relay"] not in (TRIP_AUTO, TRIP_NONE):
        trip["breakers"] = [
            {
                "relay": trip_form["relay"],
                "channel": int(trip_form["channel"]),
                "input": int(trip_form["input"]),
            }
        ]
    options = {
        key: value
        for key, value in previous.items()
        if key not in ("thresholds", "equalization", "trip")
    }
    options.update(
        {
            OPT_POLL_INTERVAL: float(form[OPT_POLL_INTERVAL]),
            OPT_STRING_COUNT: int(form[OPT_STRING_COUNT]),
            OPT_CAPACITY: float(form[OPT_CAPACITY]),
            OPT_CHEMISTRY: chemistry.value,
            "latch_alarms": bool(form["latch_alarms"]),
            "equalization": equalization,
            "trip": trip,
        }
    )
    if thresholds:
        options["thresholds"] = thresholds
    return _with_ups(options, form)


def _options_schema(relays: list[str]) -> vol.Schema:
    def number(section_name: str, name: str) -> NumberSelector:
        return OPTION_FIELDS[(section_name, name)].selector()

    def required(section_name: str, names: list[str]) -> dict[Any, Any]:
        return {vol.Required(name): number(section_name, name) for name in names}

    return vol.Schema(
        {
            vol.Required(OPT_POLL_INTERVAL): number("", OPT_POLL_INTERVAL),
            vol.Required(OPT_STRING_COUNT): number("", OPT_STRING_COUNT),
            vol.Optional(OPT_BLOCK_COUNTS): TextSelector(),
            vol.Required(OPT_CAPACITY): number("", OPT_CAPACITY),
            vol.Required(OPT_CHEMISTRY): dropdown([c.value for c in Chemistry], "chemistry"),
            vol.Required("latch_alarms"): BooleanSelector(),
            vol.Required("equalization"): section(
                vol.Schema(
                    {
                        vol.Required("enabled"): BooleanSelector(),
                        vol.Required("target"): dropdown([t.value for t in TargetMode], "target"),
                        **required("equalization", ["float_voltage_per_cell"]),
                        vol.Optional("float_voltage"): number("equalization", "float_voltage"),
                    }
                ),
                {"collapsed": False},
            ),
            vol.Required("thresholds"): section(
                vol.Schema(
                    {
                        **{
                            vol.Optional(name): number("thresholds", name)
                            for name in THRESHOLD_FIELDS
                        },
                        vol.Optional(GRACE): number("thresholds", GRACE),
                    }
                ),
                {"collapsed": True},
            ),
            vol.Required("trip"): section(
                vol.Schema(
                    {
                        vol.Required("relay"): SelectSelector(
                            SelectSelectorConfig(
                                options=relays,
                                translation_key="trip_relay",
                                mode=SelectSelectorMode.DROPDOWN,
                            )
                        ),
                        **required("trip", ["channel", "input", "pre_trip_delay"]),
                        vol.Required("scope"): dropdown([t.value for t in TripScope], "trip_scope"),
                        vol.Required("lost_bus_policy"): dropdown(
                            [p.value for p in LostBusPolicy], "lost_bus_policy"
                        ),
                    }
                ),
                {"collapsed": False},
            ),
            **_ups_section(),
        }
    )


class BacsOptionsFlow(OptionsFlow):
    """The manager's configuration, validated by bacs_core's own schema."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        entry = self.config_entry
        if entry.data.get(CONF_KIND) == KIND_GENEREX:
            return await self.async_step_generex(user_input)
        if entry.data.get(CONF_KIND) == KIND_REMOTE:  # its site file rules, where the trip runs
            return self.async_abort(reason="remote_settings")
        errors: dict[str, str] = {}
        placeholders = {"error": "", **range_placeholders()}
        shown: Mapping[str, Any] = entry.options
        if user_input is not None:
            errors = range_errors(user_input)
        if user_input is not None and not errors:
            options = options_from_form(user_input, dict(entry.options))
            shown = options
            options.pop(OPT_BLOCK_COUNTS, None)
            runtime = getattr(entry, "runtime_data", None)
            modules = len(runtime.coordinator.index.modules) if runtime is not None else None
            try:
                counts = parse_block_counts(
                    user_input.get(OPT_BLOCK_COUNTS), options[OPT_STRING_COUNT], modules
                )
            except ValueError:
                errors[OPT_BLOCK_COUNTS] = "block_counts_invalid"
            else:
                if counts:
                    options[OPT_BLOCK_COUNTS] = counts
                try:
                    validate_config(
                        {
                            **manager_options(options),
                            "buses": [{"id": BUS_ID, "url": entry.data[CONF_URL]}],
                        }
                    )
                except ConfigError as err:
                    errors["base"] = "invalid_config"
                    placeholders["error"] = str(err)
                else:
                    return self.async_create_entry(data=options)
        detection, trip = detection_time(shown)
        placeholders["detection"] = f"{detection:g}"
        placeholders["trip_time"] = f"{trip:g}"
        placeholders["poll_interval"] = f"{float(shown.get(OPT_POLL_INTERVAL, 10.0)):g}"
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                _options_schema(_relay_choices(entry)),
                user_input or _form_defaults(dict(entry.options)),
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_generex(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A GENEREX web manager: the poll interval and our alarm rules, nothing it controls."""
        entry = self.config_entry
        errors: dict[str, str] = {}
        placeholders = {"error": "", **range_placeholders()}
        if user_input is not None:
            errors = range_errors(user_input, GENEREX_FIELDS)
        if user_input is not None and not errors:
            options = generex_options_from_form(user_input, dict(entry.options))
            try:
                validate_config(
                    {
                        **manager_options(options),
                        "buses": [{"id": BUS_ID, "url": entry.data[CONF_URL]}],
                    }
                )
            except ConfigError as err:
                errors["base"] = "invalid_config"
                placeholders["error"] = str(err)
            else:
                return self.async_create_entry(data=options)
        defaults = _form_defaults(dict(entry.options))
        shown = {
            OPT_POLL_INTERVAL: defaults[OPT_POLL_INTERVAL],
            OPT_CHEMISTRY: defaults[OPT_CHEMISTRY],
            "latch_alarms": defaults["latch_alarms"],
            "thresholds": {
                k: v for k, v in defaults["thresholds"].items() if k in GENEREX_THRESHOLDS
            },
            OPT_UPS: defaults[OPT_UPS],
        }
        return self.async_show_form(
            step_id="generex",
            data_schema=self.add_suggested_values_to_schema(_generex_schema(), user_input or shown),
            errors=errors,
            description_placeholders=placeholders,
        )
