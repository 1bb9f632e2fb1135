"""The UPS Home Assistant already knows, linked to the battery history (options, "UPS link").

Any "on battery" binary sensor, or the ``nut`` integration's status sensor (its raw
``ups.status``, "OB DISCHRG", or its display text, "On Battery Battery Discharging"), plus
optional load (%), runtime (any time unit) and input voltage sensors. Their states become
one ``UpsStatus`` for bacs_core's recorder at every change: on battery starts fast logging
and opens the discharge record at once; load and runtime go into the record and the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from homeassistant.const import (
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    UnitOfElectricPotential,
    UnitOfTime,
)
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.util.unit_conversion import DurationConverter, ElectricPotentialConverter

from bacs_core.history import DischargeRecord, HistoryRecorder, UpsStatus

from .coordinator import BacsConfigEntry

_LOGGER = logging.getLogger(__name__)

OPT_UPS: Final = "ups"  # entry.options["ups"]: {field: entity_id}; not the manager's
UPS_ON_BATTERY: Final = "on_battery"
UPS_LOAD: Final = "load"
UPS_RUNTIME: Final = "runtime"
UPS_INPUT_VOLTAGE: Final = "input_voltage"
UPS_FIELDS: Final = (UPS_ON_BATTERY, UPS_LOAD, UPS_RUNTIME, UPS_INPUT_VOLTAGE)
_NOT_KNOWN = (STATE_UNAVAILABLE, STATE_UNKNOWN, "")


def manager_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options bacs_core's manager validates: everything but the UPS link."""
    return {key: value for key, value in options.items() if key != OPT_UPS}


def ups_options_from_form(section_form: Mapping[str, Any] | None) -> dict[str, str]:
    """The options form's UPS section as stored: the chosen entities only."""
    return {
        name: str(section_form[name])
        for name in UPS_FIELDS
        if section_form and section_form.get(name)
    }


def on_battery_from(state: State | None) -> bool | None:
    """A binary sensor's on/off, or a status text with nut's OB / OL flags (raw or shown)."""
    if state is None or state.state in _NOT_KNOWN:
        return None
    if state.domain == "binary_sensor":
        return {STATE_ON: True, STATE_OFF: False}.get(state.state)
    flags = state.state.upper().split()
    if "OB" in flags:
        return True
    if "OL" in flags:
        return False
    text = f" {state.state.strip().lower()}"
    if " on battery" in text:
        return True
    if " online" in text or " on line" in text:
        return False
    return None


def _number(state: State | None) -> float | None:
    if state is None or state.state in _NOT_KNOWN:
        return None
    try:
        return float(state.state)
    except ValueError:
        return None


def runtime_from(state: State | None) -> float | None:
    """In seconds, from the sensor's own unit (nut's is s; a template's may be min)."""
    value = _number(state)
    if value is None or state is None:
        return None
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT) or UnitOfTime.SECONDS
    if unit not in DurationConverter.VALID_UNITS:
        return None
    return float(DurationConverter.convert(value, unit, UnitOfTime.SECONDS))


def voltage_from(state: State | None) -> float | None:
    value = _number(state)
    if value is None or state is None:
        return None
    unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT) or UnitOfElectricPotential.VOLT
    if unit not in ElectricPotentialConverter.VALID_UNITS:
        return None
    return float(ElectricPotentialConverter.convert(value, unit, UnitOfElectricPotential.VOLT))


def ups_figures(r: DischargeRecord) -> dict[str, Any]:
    """A linked UPS's figures of the discharge, only those it gave (none without a UPS)."""
    figures = {
        "ups_on_battery_at": r.ups_on_battery_at.isoformat() if r.ups_on_battery_at else None,
        "ups_load_avg_pct": r.ups_load_avg_pct,
        "ups_load_max_pct": r.ups_load_max_pct,
        "ups_runtime_start_s": r.ups_runtime_start_s,
        "ups_runtime_end_s": r.ups_runtime_end_s,
    }
    return {k: v for k, v in figures.items() if v is not None}


def ups_status(states: Mapping[str, State | None]) -> UpsStatus:
    """The entities' states as one status; a value out of range counts as not known."""
    values: dict[str, Any] = {
        "on_battery": on_battery_from(states.get(UPS_ON_BATTERY)),
        "load_pct": _number(states.get(UPS_LOAD)),
        "runtime_s": runtime_from(states.get(UPS_RUNTIME)),
        "input_voltage": voltage_from(states.get(UPS_INPUT_VOLTAGE)),
    }
    try:
        return UpsStatus(**values)
    except (TypeError, ValueError) as err:
        _LOGGER.debug("UPS: %s; that value is taken as not known", err)
    for name in ("load_pct", "runtime_s", "input_voltage"):
        try:
            UpsStatus(**{name: values[name]})
        except (TypeError, ValueError):
            values[name] = None
    return UpsStatus(**values)


class UpsLink:
    """Follows the linked entities and tells the recorder whenever their status changes."""

    def __init__(
        self, hass: HomeAssistant, recorder: HistoryRecorder, entities: Mapping[str, str]
    ) -> None:
        self.hass = hass
        self.recorder = recorder
        self.entities = dict(entities)
        self._unsub: Callable[[], None] | None = None
        self._last: UpsStatus | None = None

    @callback
    def start(self) -> None:
        self._unsub = async_track_state_change_event(
            self.hass, list(self.entities.values()), self._changed
        )
        self._push()  # a UPS already on battery at start counts at once

    @callback
    def stop(self) -> None:
        if self._unsub is not None:
            self._unsub()
            self._unsub = None

    @callback
    def _changed(self, _event: Event[EventStateChangedData]) -> None:
        self._push()

    @callback
    def _push(self) -> None:
        status = ups_status(
            {name: self.hass.states.get(entity) for name, entity in self.entities.items()}
        )
        if status != self._last:
            self._last = status
            self.recorder.ups_update(status)


@callback
def async_setup_ups_link(
    hass: HomeAssistant, entry: BacsConfigEntry, recorder: HistoryRecorder
) -> None:
    """Link the UPS the options name (if any), and follow the options when they change."""
    link: UpsLink | None = None

    @callback
    def _link(options: Mapping[str, Any]) -> None:
        nonlocal link
        entities = dict(options.get(OPT_UPS) or {})
        if link is not None and link.entities == entities:
            return
        if link is not None:
            link.stop()
            link = None
        if entities:
            link = UpsLink(hass, recorder, entities)
            link.start()
        elif recorder.ups is not None:
            recorder.ups_update(UpsStatus())  # unlinked: nothing known any more

    async def _options_updated(_hass: HomeAssistant, updated: BacsConfigEntry) -> None:
        _link(updated.options)

    @callback
    def _stop() -> None:
        if link is not None:
            link.stop()

    _link(entry.options)
    entry.async_on_unload(entry.add_update_listener(_options_updated))
    entry.async_on_unload(_stop)
