"""Building the immutable SystemSnapshot from one cycle's facts. No side effects, no bus."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..bus import AnyReading, BusClient, CurrentReading, EnvironmentReading, RelayReading
from ..model import RELAY_CHANNELS, Quality
from ..snapshot import (
    MISSING,
    Alarm,
    BalancingState,
    BlockExtreme,
    BusSnapshot,
    CurrentSensorSnapshot,
    DeviceInfo,
    DeviceRef,
    EnvironmentSnapshot,
    ManagerStatus,
    ModuleSnapshot,
    RelaySnapshot,
    SafetySnapshot,
    Severity,
    StringSnapshot,
    SystemSnapshot,
    TripState,
)
from ..source import MANAGER_CAPABILITIES
from .alarms import AlarmUpdate
from .history import History
from .observation import module_reading, string_current
from .presence import Presence
from .safety import Breaker
from .topology import StringRuntime, Topology
from .trend import ResistanceTrend


@dataclass(frozen=True, slots=True)
class CycleFacts:
    """What one cycle decided, handed to the assembler."""

    timestamp: datetime
    cycle: int
    poll_duration_s: float
    readings: Mapping[DeviceRef, AnyReading]
    alarms: AlarmUpdate
    safety: SafetySnapshot
    equalization_enabled: bool
    stale: frozenset[DeviceRef] = frozenset()  # answering, but with frozen values


class SnapshotAssembler:
    def __init__(
        self,
        topology: Topology,
        presence: Presence,
        clients: Mapping[str, BusClient],
        trends: Mapping[DeviceRef, ResistanceTrend],
        history: History,
    ) -> None:
        self._topology = topology
        self._presence = presence
        self._clients = clients
        self._trends = trends
        self._history = history
        self._stale: frozenset[DeviceRef] = frozenset()

    def info(self, ref: DeviceRef) -> DeviceInfo:
        dev = self._topology.devices[ref]
        return DeviceInfo(
            ref,
            dev.kind,
            dev.serial,
            dev.firmware,
            self._presence.is_online(ref),
            self._presence.last_seen.get(ref),
            ref in self._stale,
        )

    def build(self, facts: CycleFacts, breakers: Sequence[Breaker]) -> SystemSnapshot:
        readings = facts.readings
        self._stale = facts.stale
        problems = facts.alarms.problem_devices
        strings = tuple(
            self._string(s, readings, problems, facts.alarms.problem_strings)
            for s in self._topology.strings
        )
        buses = tuple(
            BusSnapshot(
                c.bus_id,
                self._presence.bus_ok.get(c.bus_id, c.connected),
                round(c.link_quality, 1),
                c.requests,
                c.failures,
                c.last_cycle_s,
            )
            for c in self._clients.values()
        )
        return SystemSnapshot(
            timestamp=facts.timestamp,
            cycle=facts.cycle,
            status=self._status(facts.safety.trip_state, buses, facts.alarms.alarms),
            poll_duration_s=facts.poll_duration_s,
            buses=buses,
            strings=strings,
            current_sensors=self._current_sensors(readings),
            relays=self._relays(readings, breakers),
            environment=self._environment(readings),
            alarms=facts.alarms.alarms,
            safety=facts.safety,
            equalization_enabled=facts.equalization_enabled,
            capabilities=MANAGER_CAPABILITIES,
        )

    def _string(
        self,
        s: StringRuntime,
        readings: Mapping[DeviceRef, AnyReading],
        problems: frozenset[DeviceRef],
        problem_strings: frozenset[int],
    ) -> StringSnapshot:
        modules: list[ModuleSnapshot] = []
        cmd = s.commands
        for i, ref in enumerate(s.modules):
            m = module_reading(ref, readings)
            trend = self._trends.get(ref)
            modules.append(
                ModuleSnapshot(
                    info=self.info(ref),
                    string=s.index,
                    position=i + 1,
                    voltage=m.voltage if m else MISSING,
                    resistance=m.resistance if m else MISSING,
                    temperature=m.temperature if m else MISSING,
                    balance_current=m.balance_current if m else MISSING,
                    module_temperature=m.module_temperature if m else MISSING,
                    target_v=cmd.target[i] if cmd else None,
                    deviation_v=cmd.deviation[i] if cmd else None,
                    balancing=cmd.state[i] if cmd else BalancingState.IDLE,
                    status_flags=int(m.status) if m else 0,
                    resistance_baseline=trend.baseline if trend else None,
                    replace_by=trend.replace_by() if trend else None,
                    problem=ref in problems or not self._presence.is_online(ref),
                )
            )
        usable = [
            (mod.position, mod.voltage.value)
            for mod in modules
            if mod.voltage.quality is Quality.OK and mod.voltage.value is not None
        ]
        total = sum(v for _, v in usable) if len(usable) == len(modules) and modules else None
        current = string_current(s, readings)
        hi = max(usable, key=lambda x: x[1]) if usable else None
        lo = min(usable, key=lambda x: x[1]) if usable else None
        targets = [t for t in (cmd.target if cmd else ()) if t is not None]
        return StringSnapshot(
            index=s.index,
            name=s.name,
            modules=tuple(modules),
            voltage=total,
            current=current,
            power=total * current if total is not None and current is not None else None,
            charge_state=s.charge.state,
            spread=(hi[1] - lo[1]) if hi and lo else None,
            highest=BlockExtreme(*hi) if hi else None,
            lowest=BlockExtreme(*lo) if lo else None,
            balancing_active=s.balancing,
            problem=s.index in problem_strings or any(mod.problem for mod in modules),
            state_of_charge=round(s.soc, 1),
            target_v=statistics.mean(targets) if targets else None,
            weak_blocks=self._history.weak_blocks.get(s.index, ()),
        )

    def _current_sensors(
        self, readings: Mapping[DeviceRef, AnyReading]
    ) -> tuple[CurrentSensorSnapshot, ...]:
        out = []
        for ref in self._topology.sensors:
            r = readings.get(ref)
            c = r if isinstance(r, CurrentReading) else None
            out.append(
                CurrentSensorSnapshot(
                    self.info(ref),
                    self._topology.string_of_sensor(ref),
                    c.current if c else MISSING,
                    c.temperature if c else MISSING,
                )
            )
        return tuple(out)

    def _relays(
        self, readings: Mapping[DeviceRef, AnyReading], breakers: Sequence[Breaker]
    ) -> tuple[RelaySnapshot, ...]:
        out = []
        off = (False,) * RELAY_CHANNELS
        for ref in self._topology.relays:
            r = readings.get(ref)
            rr = r if isinstance(r, RelayReading) else None
            out.append(
                RelaySnapshot(
                    self.info(ref),
                    rr.relays if rr and rr.relays else off,
                    rr.inputs if rr and rr.inputs else off,
                    tuple(b.channel for b in breakers if b.relay == ref),
                )
            )
        return tuple(out)

    def _environment(
        self, readings: Mapping[DeviceRef, AnyReading]
    ) -> tuple[EnvironmentSnapshot, ...]:
        out = []
        for ref in self._topology.environment:
            r = readings.get(ref)
            e = r if isinstance(r, EnvironmentReading) else None
            out.append(
                EnvironmentSnapshot(
                    self.info(ref),
                    e.temperature if e else MISSING,
                    e.humidity if e else MISSING,
                    e.hydrogen if e else MISSING,
                    e.acid_level if e else MISSING,
                )
            )
        return tuple(out)

    def _status(
        self, trip: TripState, buses: Sequence[BusSnapshot], alarms: Sequence[Alarm]
    ) -> ManagerStatus:
        if trip in (TripState.TRIPPED, TripState.FAILED, TripState.COUNTDOWN):
            return ManagerStatus.TRIPPED
        if buses and not any(b.connected for b in buses):
            return ManagerStatus.BUS_LOST
        if any(not b.connected for b in buses) or not self._presence.all_online():
            return ManagerStatus.DEGRADED
        if any(a.severity in (Severity.ALARM, Severity.CRITICAL) for a in alarms):
            return ManagerStatus.ALARM
        if alarms:
            return ManagerStatus.WARNING
        return ManagerStatus.OK
