"""Readings → what the engines judge: alarm observations and the runaway detector's inputs.

One pass per cycle over the strings. It also moves the per-string trackers that live on
readings (charge state, state of charge, resistance trends), so the engines downstream get
plain values and never see a register or a bus.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from ..bus import (
    AnyReading,
    CurrentReading,
    DeviceIdentity,
    EnvironmentReading,
    ModuleReading,
    RelayReading,
)
from ..events import Event, EventType
from ..model import MODULE_SPECS, Quality
from ..snapshot import MISSING, ChargeState, DeviceRef, Value
from .alarms import ModuleObservation, Observation, SensorObservation, StringObservation
from .presence import Presence
from .runaway import StringThermal
from .safety import RelayState
from .topology import StringRuntime, Topology
from .trend import ResistanceTrend

DEFAULT_CELLS = 6


@dataclass(frozen=True, slots=True)
class Observed:
    strings: list[StringObservation]
    thermal: list[StringThermal]
    events: list[Event] = field(default_factory=list)


def module_reading(
    ref: DeviceRef, readings: Mapping[DeviceRef, AnyReading]
) -> ModuleReading | None:
    r = readings.get(ref)
    return r if isinstance(r, ModuleReading) else None


def string_current(s: StringRuntime, readings: Mapping[DeviceRef, AnyReading]) -> float | None:
    if s.sensor is None:
        return None
    r = readings.get(s.sensor)
    if isinstance(r, CurrentReading) and r.current.quality is Quality.OK:
        return r.current.value
    return None


def ambient(topology: Topology, readings: Mapping[DeviceRef, AnyReading]) -> float | None:
    """The first environment sensor whose temperature reads well."""
    for ref in topology.environment:
        r = readings.get(ref)
        if isinstance(r, EnvironmentReading) and r.temperature.quality is Quality.OK:
            return r.temperature.value
    return None


def cells_of(dev: DeviceIdentity | None) -> int:
    return MODULE_SPECS[dev.kind].cells if dev else DEFAULT_CELLS


class Observer:
    def __init__(self, poll_interval: float, resistance_alarm: float) -> None:
        self.poll_interval = poll_interval
        self.resistance_alarm = resistance_alarm
        self.trends: dict[DeviceRef, ResistanceTrend] = {}

    def track_modules(self, modules: Sequence[DeviceRef]) -> None:
        for ref in modules:
            self.trends.setdefault(ref, ResistanceTrend(self.resistance_alarm))

    def observe(
        self,
        now: datetime,
        topology: Topology,
        readings: Mapping[DeviceRef, AnyReading],
        presence: Presence,
    ) -> Observed:
        env_temp = ambient(topology, readings)
        out = Observed([], [])
        for s in topology.strings:
            obs, thermal = self._string(now, s, topology, readings, presence, env_temp, out.events)
            out.strings.append(obs)
            out.thermal.append(thermal)
        return out

    def _string(
        self,
        now: datetime,
        s: StringRuntime,
        topology: Topology,
        readings: Mapping[DeviceRef, AnyReading],
        presence: Presence,
        env_temp: float | None,
        events: list[Event],
    ) -> tuple[StringObservation, StringThermal]:
        volts: list[float] = []
        cell_values: list[float] = []
        cells_total = 0
        temps_ok: list[float | None] = []
        ris: list[float] = []
        for ref in s.modules:
            m = module_reading(ref, readings)
            cells = cells_of(topology.devices.get(ref))
            if m is not None and m.voltage.quality is Quality.OK and m.voltage.value is not None:
                volts.append(m.voltage.value)
                cell_values.append(m.voltage.value / cells)
                cells_total += cells
            temps_ok.append(
                m.temperature.value
                if m is not None and m.temperature.quality is Quality.OK
                else None
            )
            if (
                m is not None
                and m.resistance.quality is Quality.OK
                and m.resistance.value is not None
            ):
                ris.append(m.resistance.value)
                self.trends[ref].add(now, m.resistance.value, m.ri_sequence)
        median_ri = statistics.median(ris) if len(ris) >= 3 else None
        current = string_current(s, readings)
        mean_cell = sum(volts) / cells_total if cells_total else None
        before = s.charge.state
        state = s.charge.update(current, mean_cell)
        if before is not ChargeState.UNKNOWN and state != before:
            events.append(
                Event(
                    EventType.CHARGE_STATE_CHANGED,
                    now,
                    f"{s.name}: {before.value} → {state.value}",
                    string=s.index,
                    data={"from": before.value, "to": state.value},
                )
            )
        self._update_soc(s, state, current, mean_cell)
        spread = max(cell_values) - min(cell_values) if len(cell_values) >= 2 else None
        modules: list[ModuleObservation] = []
        for pos, ref in enumerate(s.modules, 1):
            m = module_reading(ref, readings)
            trend = self.trends.get(ref)
            modules.append(
                ModuleObservation(
                    ref,
                    s.index,
                    pos,
                    cells_of(topology.devices.get(ref)),
                    presence.is_online(ref),
                    m.voltage if m else MISSING,
                    m.temperature if m else MISSING,
                    m.resistance if m else MISSING,
                    trend.baseline if trend else None,
                    median_ri,
                )
            )
        obs = StringObservation(s.index, state, mean_cell, spread, env_temp, modules)
        thermal = StringThermal(s.index, temps_ok, env_temp, current, state, s.balancing)
        return obs, thermal

    def _update_soc(
        self, s: StringRuntime, state: ChargeState, current: float | None, cell_v: float | None
    ) -> None:
        """A plain estimate: full on float, coulomb counting away from it, OCV at rest."""
        if state is ChargeState.FLOAT:
            s.soc = min(100.0, s.soc + 0.5)  # back to full over a few cycles of float
        elif current is not None and state in (ChargeState.DISCHARGE, ChargeState.CHARGE):
            hours = self.poll_interval / 3600.0
            s.soc = min(100.0, max(0.0, s.soc + 100.0 * current * hours / s.capacity_ah))
        elif state is ChargeState.REST and cell_v is not None:
            s.soc = min(100.0, max(0.0, (cell_v - 1.98) / 0.17 * 100.0))


def alarm_observation(
    strings: Sequence[StringObservation],
    topology: Topology,
    readings: Mapping[DeviceRef, AnyReading],
    presence: Presence,
) -> Observation:
    sensors: list[SensorObservation] = []
    for ref in topology.environment:
        r = readings.get(ref)
        values: dict[str, Value] = {}
        if isinstance(r, EnvironmentReading):
            values = {
                "temperature": r.temperature,
                "humidity": r.humidity,
                "hydrogen": r.hydrogen,
                "acid_level": r.acid_level,
            }
        sensors.append(SensorObservation(ref, "environment", presence.is_online(ref), values))
    for ref in topology.sensors:
        sensors.append(SensorObservation(ref, "current_sensor", presence.is_online(ref)))
    for ref in topology.relays:
        sensors.append(SensorObservation(ref, "relay", presence.is_online(ref)))
    # The equalizer ran before the alarms: its block states decide the deviation grace.
    judged = [
        replace(o, balancing=s.commands.state) if s.commands else o
        for o, s in zip(strings, topology.strings, strict=True)
    ]
    return Observation(judged, sensors, dict(presence.bus_ok))


def relay_states(
    topology: Topology, readings: Mapping[DeviceRef, AnyReading]
) -> dict[DeviceRef, RelayState]:
    """The relay modules that answered this cycle, as the safety engine reads them."""
    return {
        ref: RelayState(r.relays, r.inputs)
        for ref in topology.relays
        if isinstance(r := readings.get(ref), RelayReading) and r.quality is not Quality.MISSING
    }


def blind(topology: Topology, readings: Mapping[DeviceRef, AnyReading]) -> bool:
    """No battery module answers (the bus is lost): the runaway detector sees nothing."""
    return bool(topology.strings) and not any(
        (r := readings.get(ref)) is not None and r.quality is not Quality.MISSING
        for s in topology.strings
        for ref in s.modules
    )
