"""A CS141's readings → what our alarm engine judges (``manager/alarms.py``, the same rules).

The web manager has alarms of its own (module states, the register-1000 flags); ours run on
top: float-voltage window per cell, deviation from the string mean, spread, temperature,
resistance against each block's first reading and against the string median. The web
manager's own verdicts come in as conditions, so they show, latch and are acknowledged the
same way; so does a Modbus/SNMP disagreement that points at a wrong scale setting.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import datetime

from ..manager.alarms import (
    Condition,
    ModuleObservation,
    Observation,
    StringObservation,
)
from ..manager.trend import ResistanceTrend
from ..model import MODULE_SPECS, DeviceKind, Quality
from ..snapshot import DeviceRef, Severity, SystemSnapshot
from .cs141_map import GeneralFlag, ModuleState
from .readings import Cs141Readings

DEFAULT_CELLS = 6
_STATE_TEXT = {
    ModuleState.SYSTEM_ALARM: "a system alarm",
    ModuleState.VOLTAGE_ALARM: "a voltage alarm",
    ModuleState.TEMPERATURE_ALARM: "a temperature alarm",
    ModuleState.RESISTANCE_ALARM: "a resistance alarm",
}


def cells_of(kind: DeviceKind) -> int:
    spec = MODULE_SPECS.get(kind)
    return spec.cells if spec else DEFAULT_CELLS


def observe(
    now: datetime,
    snap: SystemSnapshot,
    trends: dict[DeviceRef, ResistanceTrend],
    resistance_alarm: float,
) -> Observation:
    """One observation per string of the snapshot built from the readings."""
    strings: list[StringObservation] = []
    for s in snap.strings:
        volts: list[float] = []
        per_cell: list[float] = []
        cells_total = 0
        ris: list[float] = []
        for m in s.modules:
            cells = cells_of(m.info.kind)
            if m.voltage.quality is Quality.OK and m.voltage.value is not None:
                volts.append(m.voltage.value)
                per_cell.append(m.voltage.value / cells)
                cells_total += cells
            if m.resistance.quality is Quality.OK and m.resistance.value is not None:
                ris.append(m.resistance.value)
                trend = trends.setdefault(m.info.ref, ResistanceTrend(resistance_alarm))
                # The web manager measures now and then and serves the last figure: a new
                # value is a new measurement (the raw step is 0.01 mΩ).
                trend.add(now, m.resistance.value, round(m.resistance.value * 100))
        median = statistics.median(ris) if len(ris) >= 3 else None
        modules = [
            ModuleObservation(
                m.info.ref,
                s.index,
                m.position,
                cells_of(m.info.kind),
                m.info.online,
                m.voltage,
                m.temperature,
                m.resistance,
                trends[m.info.ref].baseline if m.info.ref in trends else None,
                median,
            )
            for m in s.modules
        ]
        strings.append(
            StringObservation(
                s.index,
                s.charge_state,
                sum(volts) / cells_total if cells_total else None,
                max(per_cell) - min(per_cell) if len(per_cell) >= 2 else None,
                None,  # a CS141 has no room-temperature sensor in its map
                modules,
            )
        )
    buses = {b.id: b.connected for b in snap.buses}
    return Observation(strings, (), buses)


def conditions(
    readings: Cs141Readings | None,
    snap: SystemSnapshot,
    labels: Mapping[DeviceRef, str],
    reachable: bool,
    expect_snmp: bool = True,
) -> list[Condition]:
    """The web manager's own verdicts and our doubts about its figures, as conditions (every
    key every time, with severity None when it does not hold, so it clears)."""
    source = snap.buses[0].id if snap.buses else "cs141"
    general = readings.general if readings and reachable else None
    flags = general.flags if general else GeneralFlag(0)
    out = [
        Condition(
            f"generex:{source}:system_failure",
            "source_system_failure",
            Severity.ALARM if GeneralFlag.SYSTEM_FAILURE in flags else None,
            "The GENEREX web manager reports a system failure: part of the BMS is inoperable",
            source="source",
        ),
        Condition(
            f"generex:{source}:communication_interrupted",
            "source_communication_interrupted",
            Severity.ALARM if general is not None and general.communication_interrupted else None,
            "The GENEREX web manager's internal communication is interrupted (register 1000 "
            "is 0): its module values are not current",
            source="source",
        ),
    ]
    mismatches = readings.mismatches if readings and reachable else ()
    out.append(
        Condition(
            f"generex:{source}:scale",
            "source_scale_mismatch",
            Severity.WARNING if mismatches else None,
            "Modbus and SNMP disagree: " + "; ".join(str(x) for x in mismatches[:2]),
            source="source",
        )
    )
    silent = None
    if readings is not None and reachable:
        if not readings.modbus_ok:
            silent = "Modbus"
        elif expect_snmp and not readings.snmp_ok:
            silent = "SNMP"
    out.append(
        Condition(
            f"generex:{source}:protocol",
            "source_protocol_silent",
            Severity.WARNING if silent else None,
            f"The GENEREX web manager does not answer {silent or 'one protocol'}: only part "
            "of its data is read",
            source="source",
        )
    )
    states = {r.module_id: r.state for r in readings.modules} if readings and reachable else {}
    for s in snap.strings:
        for m in s.modules:
            state = states.get(m.info.ref.unit)
            text = _STATE_TEXT.get(ModuleState(state)) if state in _STATE_TEXT else None
            out.append(
                Condition(
                    f"generex:{m.info.ref}:state",
                    "source_module_alarm",
                    Severity.WARNING if text else None,
                    f"{labels.get(m.info.ref, str(m.info.ref))}: the web manager reports {text}",
                    source="module",
                    device=m.info.ref,
                    string=s.index,
                )
            )
    return out
