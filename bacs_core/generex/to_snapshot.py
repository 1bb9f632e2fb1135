"""A CS141 read → the ``SystemSnapshot`` every consumer reads (CLI, gateway, Home Assistant).

A GENEREX source is passive: no trip relay, no equalization control, no per-module balancing
figures, so those parts of the snapshot say "disabled" or "unknown" rather than guess. Modules
keep GENEREX's numbering: ``DeviceRef(bus=<source id>, unit=<module id>)``.
"""

from __future__ import annotations

from ..model import DeviceKind
from ..snapshot import (
    MISSING,
    BalancingState,
    BlockExtreme,
    BreakerState,
    BusSnapshot,
    ChargeState,
    DeviceInfo,
    DeviceRef,
    ManagerStatus,
    ModuleSnapshot,
    SafetySnapshot,
    StringSnapshot,
    SystemSnapshot,
    TripState,
)
from .cs141_map import GeneralFlag, ModuleState
from .readings import Cs141Readings, ModuleReading, StringReading

_KIND_BY_TYPE = {0: DeviceKind.C20, 10: DeviceKind.C30, 20: DeviceKind.C40}
CHARGE_THRESHOLD_A = 0.5
_ALARM_STATES = {
    ModuleState.SYSTEM_ALARM,
    ModuleState.VOLTAGE_ALARM,
    ModuleState.TEMPERATURE_ALARM,
    ModuleState.RESISTANCE_ALARM,
}


def status_from(readings: Cs141Readings) -> ManagerStatus:
    general = readings.general
    states = {r.state for r in readings.modules}
    if general is not None and general.communication_interrupted:
        return ManagerStatus.BUS_LOST
    flags = general.flags if general else GeneralFlag(0)
    if GeneralFlag.SYSTEM_FAILURE in flags or states & _ALARM_STATES:
        return ManagerStatus.ALARM
    if GeneralFlag.MODULE_LOST in flags or any(r.lost for r in readings.modules):
        return ManagerStatus.DEGRADED
    out_of_range = (
        GeneralFlag.VOLTAGE_OUT_OF_RANGE
        | GeneralFlag.TEMPERATURE_OUT_OF_RANGE
        | GeneralFlag.RESISTANCE_OUT_OF_RANGE
    )
    if flags & out_of_range or states - {ModuleState.OK, None}:
        return ManagerStatus.WARNING
    if GeneralFlag.CONNECTED in flags and GeneralFlag.RUNNING not in flags:
        return ManagerStatus.STARTING
    if not readings.modbus_ok:  # without the flags, module data alone is no "ok"
        return ManagerStatus.DEGRADED
    return ManagerStatus.OK


def _charge_state(string: StringReading, flags: GeneralFlag) -> ChargeState:
    current = string.current.value if string.current.usable else None
    if current is not None:
        if current < -CHARGE_THRESHOLD_A:
            return ChargeState.DISCHARGE
        if current > CHARGE_THRESHOLD_A:
            return ChargeState.CHARGE
    if GeneralFlag.FLOAT_CHARGING in flags:
        return ChargeState.FLOAT
    if GeneralFlag.DISCHARGING in flags:
        return ChargeState.DISCHARGE
    if GeneralFlag.CHARGING in flags:
        return ChargeState.CHARGE
    return ChargeState.UNKNOWN


def _module(
    source: str, r: ModuleReading, kind: DeviceKind, readings: Cs141Readings
) -> ModuleSnapshot:
    return ModuleSnapshot(
        info=DeviceInfo(
            ref=DeviceRef(source, r.module_id),
            kind=kind,
            serial=0,
            firmware="",
            online=not r.lost,
            last_seen=None if r.lost else readings.timestamp,
        ),
        string=r.string,
        position=r.position,
        voltage=r.voltage,
        resistance=r.resistance,
        temperature=r.temperature,
        balance_current=MISSING,
        module_temperature=MISSING,
        target_v=None,
        deviation_v=None,
        balancing=BalancingState.DISABLED,
        status_flags=r.state or 0,
        resistance_baseline=None,
        replace_by=None,
        problem=r.lost or r.state not in (None, ModuleState.OK),
    )


def build_snapshot(
    readings: Cs141Readings, source: str = "generex", *, cycle: int = 0
) -> SystemSnapshot:
    kind = _KIND_BY_TYPE.get(readings.module_type or 0, DeviceKind.C20)
    flags = readings.general.flags if readings.general else GeneralFlag(0)
    strings: list[StringSnapshot] = []
    for s in readings.strings:
        modules = tuple(
            _module(source, r, kind, readings) for r in readings.modules if r.string == s.index
        )
        usable = [
            (mod.position, mod.voltage.value)
            for mod in modules
            if mod.voltage.usable and mod.voltage.value is not None
        ]
        highest = max(usable, key=lambda p: p[1]) if usable else None
        lowest = min(usable, key=lambda p: p[1]) if usable else None
        voltage = s.voltage.value if s.voltage.usable else None
        current = s.current.value if s.current.usable else None
        strings.append(
            StringSnapshot(
                index=s.index,
                name=f"String {s.index}",
                modules=modules,
                voltage=voltage,
                current=current,
                power=voltage * current if voltage is not None and current is not None else None,
                charge_state=_charge_state(s, flags),
                spread=highest[1] - lowest[1] if highest and lowest else None,
                highest=BlockExtreme(*highest) if highest else None,
                lowest=BlockExtreme(*lowest) if lowest else None,
                balancing_active=GeneralFlag.EQUALISATION in flags,
                problem=any(mod.problem for mod in modules),
                state_of_charge=None,
                target_v=None,
            )
        )
    total = readings.requests or 1
    bus = BusSnapshot(
        id=source,
        connected=readings.modbus_ok or readings.snmp_ok,
        link_quality=100.0 * max(0, total - readings.failures) / total,
        requests=readings.requests,
        failures=readings.failures,
        last_cycle_s=readings.duration_s,
    )
    return SystemSnapshot(
        timestamp=readings.timestamp,
        cycle=cycle,
        status=status_from(readings),
        poll_duration_s=readings.duration_s,
        buses=(bus,),
        strings=tuple(strings),
        current_sensors=(),
        relays=(),
        environment=(),
        alarms=(),
        safety=SafetySnapshot(
            trip_state=TripState.DISABLED,
            breaker=BreakerState.UNKNOWN,
            runaway=False,
            pre_alert=False,
            countdown_s=None,
            reason=None,
            tripped_at=None,
        ),
        equalization_enabled=False,
        extra={"generex_flags": float(readings.general.raw)} if readings.general else {},
    )
