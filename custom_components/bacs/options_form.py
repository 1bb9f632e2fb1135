"""The options forms (the full one, and a GENEREX web manager's): their schemas, the values
they show for the stored options, and the options they give back (thresholds only where they
differ from the chemistry's defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntry
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    TextSelector,
)

from bacs_core.manager.equalization import TargetMode
from bacs_core.manager.safety import LostBusPolicy, TripScope
from bacs_core.manager.thresholds import thresholds_for
from bacs_core.model import Chemistry

from .const import (
    DEFAULT_POLL_INTERVAL,
    OPT_BLOCK_COUNTS,
    OPT_CAPACITY,
    OPT_CHEMISTRY,
    OPT_POLL_INTERVAL,
    OPT_STRING_COUNT,
)
from .flow_fields import chemistry_dropdown, dropdown
from .options_fields import (
    GENEREX_THRESHOLDS,
    GRACE,
    OPTION_FIELDS,
    THRESHOLD_FIELDS,
    threshold_shown,
    threshold_stored,
)
from .ups import (
    OPT_UPS,
    UPS_FIELDS,
    UPS_INPUT_VOLTAGE,
    UPS_LOAD,
    UPS_ON_BATTERY,
    UPS_RUNTIME,
    ups_options_from_form,
)

TRIP_NONE = "none"
TRIP_AUTO = "auto"


def relay_choices(entry: ConfigEntry[Any]) -> list[str]:
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


def form_defaults(options: dict[str, Any]) -> dict[str, Any]:
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
                name: threshold_shown(group, getattr(getattr(thresholds, group), bound))
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


def generex_form_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """What a GENEREX web manager's form shows for its stored options."""
    defaults = form_defaults(options)
    return {
        OPT_POLL_INTERVAL: defaults[OPT_POLL_INTERVAL],
        OPT_CHEMISTRY: defaults[OPT_CHEMISTRY],
        "latch_alarms": defaults["latch_alarms"],
        "thresholds": {k: v for k, v in defaults["thresholds"].items() if k in GENEREX_THRESHOLDS},
        OPT_UPS: defaults[OPT_UPS],
    }


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


def _thresholds_from_form(section_form: dict[str, Any], chemistry: Chemistry) -> dict[str, Any]:
    """The thresholds that differ from the chemistry's defaults (a new chemistry brings its
    own for the rest)."""
    defaults = thresholds_for(chemistry)
    thresholds: dict[str, Any] = {}
    for name, (group, bound, _field) in THRESHOLD_FIELDS.items():
        value = section_form.get(name)
        default = getattr(getattr(defaults, group), bound)
        if value is not None and value != threshold_shown(group, default):
            thresholds.setdefault(group, {})[bound] = threshold_stored(group, float(value))
    grace_h = section_form.get(GRACE)
    if grace_h is not None and float(grace_h) * 3600.0 != defaults.deviation_grace:
        thresholds[GRACE] = float(grace_h) * 3600.0
    return thresholds


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


def generex_schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(OPT_POLL_INTERVAL): OPTION_FIELDS[("", OPT_POLL_INTERVAL)].selector(),
            vol.Required(OPT_CHEMISTRY): chemistry_dropdown(),
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


def options_schema(relays: list[str]) -> vol.Schema:
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
            vol.Required(OPT_CHEMISTRY): chemistry_dropdown(),
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
                        vol.Required("relay"): dropdown(relays, "trip_relay"),
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
