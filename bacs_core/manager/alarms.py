"""The alarm engine: thresholds with hysteresis, on/off delays, latching and acknowledgement.

Pure logic: the manager hands it one ``Observation`` per cycle and gets back the alarms
that stand and the events that happened. Values of doubtful quality are never compared with
thresholds: an impossible value raises one "sensor implausible" warning instead of an alarm
that flaps, and a silent device raises "communication lost".

Each alarm is announced once (``alarm_raised``) while it stands or stays latched; a rise to a
higher severity is ``alarm_escalated``. Deviations from the string mean that the equalizer is
still correcting wait ``Thresholds.deviation_grace`` before they are raised; a block the
equalizer reports out of its range is judged at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import IntEnum
from typing import Any

from ..events import Event, EventType
from ..model import Quality
from ..snapshot import Alarm, BalancingState, ChargeState, DeviceRef, Severity, Value
from .alarm_text import Quantity, limit_message, quantity
from .thresholds import Limit, Thresholds


class Level(IntEnum):
    NONE = 0
    WARNING = 1
    ALARM = 2
    CRITICAL = 3  # the manager's own conditions only (see Condition)


_SEVERITY = {
    Level.WARNING: Severity.WARNING,
    Level.ALARM: Severity.ALARM,
    Level.CRITICAL: Severity.CRITICAL,
}
_LEVEL_WORD = {Level.WARNING: "warning", Level.ALARM: "alarm", Level.CRITICAL: "critical alarm"}
# The equalizer is steering the block towards its target (not paused, not beyond its reach).
_EQUALIZING = frozenset({BalancingState.ACTIVE, BalancingState.IDLE})
_SOURCE_NAMES = {
    "environment": "Environment sensor",
    "current_sensor": "Current sensor",
    "relay": "Relay module",
}


@dataclass(frozen=True, slots=True)
class ModuleObservation:
    ref: DeviceRef
    string: int
    position: int
    cells: int
    online: bool
    voltage: Value
    temperature: Value
    resistance: Value
    resistance_baseline: float | None
    resistance_median: float | None


@dataclass(frozen=True, slots=True)
class StringObservation:
    index: int
    charge_state: ChargeState
    mean_cell_voltage: float | None
    cell_spread: float | None
    ambient: float | None
    modules: Sequence[ModuleObservation]
    # The equalizer's state of each block, in module order (empty: no equalizer ran).
    balancing: Sequence[BalancingState] = ()


@dataclass(frozen=True, slots=True)
class SensorObservation:
    """A current, relay or environment device: only its presence and environment values."""

    ref: DeviceRef
    source: str  # "current_sensor", "relay", "environment"
    online: bool
    values: Mapping[str, Value] = field(default_factory=dict)


# -- conditions the manager judges itself (trip path, state file, stale devices) ------------
@dataclass(frozen=True, slots=True)
class Condition:
    """An alarm whose rule lives in the manager (safety, state file, stale data). Pass every
    known key each cycle, with ``severity=None`` when it does not hold: it then clears."""

    key: str
    code: str
    severity: Severity | None
    message: str
    source: str = "safety"
    device: DeviceRef | None = None
    string: int | None = None
    # Stays, at its severity, once it no longer holds until a person acknowledges it,
    # whatever ``latch_alarms`` says (a breaker that did not open).
    latch: bool = False


_LEVEL = {
    Severity.WARNING: Level.WARNING,
    Severity.ALARM: Level.ALARM,
    Severity.CRITICAL: Level.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class Observation:
    strings: Sequence[StringObservation]
    sensors: Sequence[SensorObservation]
    buses: Mapping[str, bool]  # bus id -> answering
    conditions: Sequence[Condition] = ()


@dataclass
class _State:
    level: Level = Level.NONE  # what stands now
    pending: Level = Level.NONE
    pending_since: datetime | None = None
    clear_since: datetime | None = None
    since: datetime | None = None
    latched: bool = False
    acknowledged: bool = False
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    code: str = ""
    source: str = ""
    device: DeviceRef | None = None
    string: int | None = None
    latch: bool = False
    unit: str = ""
    reported: Level = Level.NONE  # the highest level announced since it was raised


@dataclass(frozen=True, slots=True)
class AlarmUpdate:
    alarms: tuple[Alarm, ...]
    events: tuple[Event, ...]
    problem_devices: frozenset[DeviceRef]
    problem_strings: frozenset[int]


def _raw_level(value: float, limit: Limit, current: Level) -> tuple[Level, float | None, str]:
    """Level of a value against a limit; hysteresis holds a standing level a little longer."""
    h = limit.hysteresis

    def beyond_high(bound: float | None, level: Level) -> bool:
        return bound is not None and value > bound - (h if current >= level else 0.0)

    def beyond_low(bound: float | None, level: Level) -> bool:
        return bound is not None and value < bound + (h if current >= level else 0.0)

    if beyond_high(limit.alarm_high, Level.ALARM):
        return Level.ALARM, limit.alarm_high, "high"
    if beyond_low(limit.alarm_low, Level.ALARM):
        return Level.ALARM, limit.alarm_low, "low"
    if beyond_high(limit.warning_high, Level.WARNING):
        return Level.WARNING, limit.warning_high, "high"
    if beyond_low(limit.warning_low, Level.WARNING):
        return Level.WARNING, limit.warning_low, "low"
    return Level.NONE, None, ""


class AlarmEngine:
    def __init__(self, thresholds: Thresholds, *, latch_alarms: bool = True) -> None:
        self.thresholds = thresholds
        self.latch_alarms = latch_alarms
        self._states: dict[str, _State] = {}
        self._events: list[Event] = []
        self._seen: set[str] = set()

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, now: datetime, obs: Observation) -> AlarmUpdate:
        self._events = []
        self._seen = set()
        t = self.thresholds
        for s in obs.strings:
            on_float = s.charge_state is ChargeState.FLOAT
            balancing = list(s.balancing) + [None] * (len(s.modules) - len(s.balancing))
            for m, eq in zip(s.modules, balancing, strict=False):
                prefix = f"module:{m.ref}"
                where = {"device": m.ref, "string": s.index, "source": "module"}
                label = f"String {s.index} block {m.position}"
                if not m.online:
                    continue  # comm-lost is judged per device below
                volts = self._plausible(now, prefix, m.voltage, where, label, "voltage")
                temp = self._plausible(now, prefix, m.temperature, where, label, "temperature")
                ri = self._plausible(now, prefix, m.resistance, where, label, "resistance")
                if volts is not None and on_float:
                    self._rule(
                        now,
                        f"{prefix}:voltage",
                        "voltage",
                        volts / m.cells,
                        t.cell_voltage,
                        where,
                        label,
                        scale=m.cells,
                    )
                    if s.mean_cell_voltage is not None:
                        limit = t.cell_deviation
                        if eq in _EQUALIZING:  # the equalizer is still bringing it in
                            limit = replace(limit, on_delay=max(limit.on_delay, t.deviation_grace))
                        self._rule(
                            now,
                            f"{prefix}:deviation",
                            "deviation",
                            volts / m.cells - s.mean_cell_voltage,
                            limit,
                            where,
                            label,
                            scale=m.cells,
                        )
                else:
                    self._hold(f"{prefix}:voltage")
                    self._hold(f"{prefix}:deviation")
                if temp is not None:
                    self._rule(
                        now,
                        f"{prefix}:temperature",
                        "temperature",
                        temp,
                        t.temperature,
                        where,
                        label,
                    )
                    if s.ambient is not None:
                        self._rule(
                            now,
                            f"{prefix}:above_ambient",
                            "above_ambient",
                            temp - s.ambient,
                            t.above_ambient,
                            where,
                            label,
                        )
                if ri is not None and m.resistance_baseline:
                    self._rule(
                        now,
                        f"{prefix}:resistance",
                        "resistance",
                        ri / m.resistance_baseline,
                        t.resistance_vs_baseline,
                        where,
                        label,
                    )
                if ri is not None and m.resistance_median:
                    self._rule(
                        now,
                        f"{prefix}:resistance_median",
                        "resistance_median",
                        ri / m.resistance_median,
                        t.resistance_vs_median,
                        where,
                        label,
                    )
            if s.cell_spread is not None and on_float:
                limit = t.cell_spread
                if any(b in _EQUALIZING for b in s.balancing):
                    limit = replace(limit, on_delay=max(limit.on_delay, t.deviation_grace))
                cells = {m.cells for m in s.modules}
                per_block = len(cells) == 1  # one block size: show volts per block
                self._rule(
                    now,
                    f"string:{s.index}:spread",
                    "spread",
                    s.cell_spread,
                    limit,
                    {"device": None, "string": s.index, "source": "string"},
                    f"String {s.index}",
                    scale=cells.pop() if per_block else 1.0,
                    shown_as=None if per_block else quantity("spread_per_cell"),
                )
        env_limits = {
            "hydrogen": t.hydrogen,
            "humidity": t.humidity,
            "acid_level": t.acid_level,
            "temperature": t.room_temperature,
        }
        for sensor in obs.sensors:
            where = {"device": sensor.ref, "string": None, "source": sensor.source}
            label = self._sensor_label(sensor.ref, sensor.source, obs)
            for name, value in sensor.values.items():
                v = self._plausible(now, f"{sensor.source}:{sensor.ref}", value, where, label, name)
                if v is not None and name in env_limits:
                    self._rule(
                        now,
                        f"{sensor.source}:{sensor.ref}:{name}",
                        name,
                        v,
                        env_limits[name],
                        where,
                        label,
                    )
        self._comm(now, obs)
        for c in obs.conditions:
            self._set(
                now,
                c.key,
                c.code,
                _LEVEL[c.severity] if c.severity else Level.NONE,
                None,
                None,
                c.message,
                {"device": c.device, "string": c.string, "source": c.source},
                Limit(latch=c.latch),
                always_latch=c.latch,
            )
        return self._finish()

    @staticmethod
    def _sensor_label(ref: DeviceRef, source: str, obs: Observation) -> str:
        """ "Environment sensor 40", with the bus when there is more than one."""
        name = _SOURCE_NAMES.get(source, source.replace("_", " ").capitalize())
        return f"{name} {ref.unit}" if len(obs.buses) <= 1 else f"{name} {ref}"

    def _plausible(
        self,
        now: datetime,
        prefix: str,
        value: Value,
        where: Mapping[str, Any],
        label: str,
        name: str,
    ) -> float | None:
        key = f"{prefix}:{name}_implausible"
        if value.quality is Quality.OUT_OF_RANGE:
            self._set(
                now,
                key,
                "sensor_implausible",
                Level.WARNING,
                value.value,
                None,
                f"{label}: the {name.replace('_', ' ')} reading is impossible and is ignored",
                where,
                Limit(on_delay=30, off_delay=60),
            )
            return None
        self._set(
            now,
            key,
            "sensor_implausible",
            Level.NONE,
            None,
            None,
            "",
            where,
            Limit(on_delay=30, off_delay=60),
        )
        if value.quality is Quality.MISSING or value.value is None:
            return None
        return value.value

    def _comm(self, now: datetime, obs: Observation) -> None:
        devices: list[tuple[DeviceRef, bool, Mapping[str, Any], str]] = []
        for s in obs.strings:
            for m in s.modules:
                devices.append(
                    (
                        m.ref,
                        m.online,
                        {"device": m.ref, "string": s.index, "source": "module"},
                        f"String {s.index} block {m.position}",
                    )
                )
        for sensor in obs.sensors:
            devices.append(
                (
                    sensor.ref,
                    sensor.online,
                    {"device": sensor.ref, "string": None, "source": sensor.source},
                    self._sensor_label(sensor.ref, sensor.source, obs),
                )
            )
        limit = Limit(on_delay=0, off_delay=0)
        for ref, online, where, label in devices:
            if not obs.buses.get(ref.bus, True):
                self._set(
                    now,
                    f"comm:{ref}",
                    "communication_lost",
                    Level.NONE,
                    None,
                    None,
                    "",
                    where,
                    limit,
                )
                continue
            self._set(
                now,
                f"comm:{ref}",
                "communication_lost",
                Level.NONE if online else Level.WARNING,
                None,
                None,
                f"{label} does not answer",
                where,
                limit,
            )
        for bus, ok in obs.buses.items():
            self._set(
                now,
                f"bus:{bus}",
                "bus_lost",
                Level.NONE if ok else Level.ALARM,
                None,
                None,
                f"Bus {bus} does not answer",
                {"device": None, "string": None, "source": "bus"},
                limit,
            )

    def _hold(self, key: str) -> None:
        """A rule that does not apply now (e.g. float window in discharge) keeps its state."""
        self._seen.add(key)

    def _rule(
        self,
        now: datetime,
        key: str,
        code: str,
        value: float,
        limit: Limit,
        where: Mapping[str, Any],
        label: str,
        *,
        scale: float = 1.0,
        shown_as: Quantity | None = None,
    ) -> None:
        """Compare (in the rule's own unit, e.g. V/cell) and describe (in the unit shown)."""
        current = self._states.get(key, _State()).level
        level, bound, side = _raw_level(value, limit, current)
        code_full = f"{code}_{side}" if side else code
        q = shown_as or quantity(code)
        digits = q.decimals + 3  # no float noise such as 12.899999999999999
        shown = round(value * scale, digits)
        threshold = None if bound is None else round(bound * scale, digits)
        message = limit_message(
            label,
            q,
            shown,
            threshold,
            side,
            _LEVEL_WORD.get(level, ""),
            limit.hysteresis * scale,
        )
        self._set(
            now,
            key,
            code_full,
            level,
            shown,
            threshold,
            message,
            where,
            limit,
            unit=q.unit,
            step=q.step,
        )

    def _set(
        self,
        now: datetime,
        key: str,
        code: str,
        level: Level,
        value: float | None,
        threshold: float | None,
        message: str,
        where: Mapping[str, Any],
        limit: Limit,
        *,
        unit: str = "",
        step: float = 0.0,
        always_latch: bool = False,
    ) -> None:
        self._seen.add(key)
        st = self._states.get(key)
        if st is None:
            if level is Level.NONE:
                return
            st = self._states[key] = _State()
        if level > st.level:
            if st.pending != level:
                st.pending, st.pending_since = level, now
            assert st.pending_since is not None
            if (now - st.pending_since).total_seconds() >= limit.on_delay:
                shown_before = st.level is not Level.NONE or st.latched
                st.level = level
                st.clear_since = None
                st.acknowledged = False
                st.latched = False
                st.latch = always_latch or (
                    limit.latch and self.latch_alarms and level is Level.ALARM
                )
                st.since = st.since if shown_before and st.since else now
                st.value, st.threshold, st.message, st.code = value, threshold, message, code
                st.source, st.device, st.string = where["source"], where["device"], where["string"]
                st.unit = unit
                data = {"key": key, "code": code, "severity": _SEVERITY[level].value}
                if not shown_before:  # one announcement per alarm, however it moves after
                    self._emit(EventType.ALARM_RAISED, now, st, {**data, "value": value})
                elif level > st.reported:
                    self._emit(EventType.ALARM_ESCALATED, now, st, {**data, "value": value})
                st.reported = max(st.reported, level)
            return
        st.pending, st.pending_since = Level.NONE, None
        if level == st.level:
            st.clear_since = None
            # The text follows the value once it moved by a step it shows: noise around a
            # rounding boundary does not rewrite the message every cycle.
            if level is not Level.NONE and (
                value is None or st.value is None or abs(value - st.value) >= 0.999 * step
            ):
                st.value, st.message = value, message or st.message
            return
        # Lower than what stands: clear (or step down) after the off-delay.
        if st.clear_since is None:
            st.clear_since = now
        if (now - st.clear_since).total_seconds() < limit.off_delay:
            return
        previous = st.level
        st.level, st.clear_since = level, None
        if level is Level.NONE:
            if st.latch and not st.acknowledged and previous >= Level.ALARM:
                st.latched = True
            self._emit(
                EventType.ALARM_CLEARED,
                now,
                st,
                {"key": key, "code": st.code, "latched": st.latched},
            )
            if not st.latched:
                del self._states[key]
        else:
            st.value, st.threshold, st.message, st.code = value, threshold, message, code

    def _emit(self, kind: EventType, now: datetime, st: _State, data: dict[str, Any]) -> None:
        self._events.append(
            Event(kind, now, st.message, device=st.device, string=st.string, data=data)
        )

    def _finish(self) -> AlarmUpdate:
        alarms: list[Alarm] = []
        devices: set[DeviceRef] = set()
        strings: set[int] = set()
        for key, st in sorted(self._states.items()):
            if key not in self._seen and st.level is not Level.NONE and not st.latched:
                continue  # a device no longer observed (removed); keep its state quietly
            standing = st.level is not Level.NONE
            if not standing and not st.latched:
                continue
            # Latched: at the severity it was announced with (an alarm, or a critical one).
            level = st.level if standing else max(Level.ALARM, st.reported)
            severity = _SEVERITY[level]
            if st.code in ("bus_lost",):
                severity = Severity.ALARM
            assert st.since is not None
            alarms.append(
                Alarm(
                    key,
                    st.code,
                    severity,
                    st.source,
                    st.device,
                    st.string,
                    st.message,
                    st.value,
                    st.threshold,
                    standing,
                    st.latched,
                    st.acknowledged,
                    st.since,
                    st.unit,
                )
            )
            if st.device is not None:
                devices.add(st.device)
            if st.string is not None:
                strings.add(st.string)
        events = tuple(self._events)
        self._events = []
        return AlarmUpdate(tuple(alarms), events, frozenset(devices), frozenset(strings))

    # -- commands -------------------------------------------------------------------------
    def acknowledge(self, now: datetime, key: str | None = None) -> list[Event]:
        """Acknowledge one alarm (or all): one event per alarm that was shown and not yet
        acknowledged, so the count is what a person saw. Latched alarms whose condition is
        gone disappear. An unknown key (or one only pending its on-delay) is a KeyError."""
        events: list[Event] = []
        shown = [
            k
            for k, st in self._states.items()
            if (st.level is not Level.NONE or st.latched) and (key is None or k == key)
        ]
        if key is not None and not shown:
            raise KeyError(key)
        for k in shown:
            st = self._states[k]
            if st.acknowledged and not st.latched:
                continue
            st.acknowledged = True
            events.append(
                Event(
                    EventType.ALARM_ACKNOWLEDGED,
                    now,
                    st.message,
                    device=st.device,
                    string=st.string,
                    data={"key": k, "code": st.code},
                )
            )
            if st.latched:
                st.latched = False
                if st.level is Level.NONE:
                    del self._states[k]
        return events

    # -- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Latched and standing alarms, JSON-safe, to survive a restart."""
        out: dict[str, Any] = {}
        for key, st in self._states.items():
            if st.level is Level.NONE and not st.latched:
                continue
            out[key] = {
                "level": int(st.level),
                "latched": st.latched,
                "acknowledged": st.acknowledged,
                "since": st.since.isoformat() if st.since else None,
                "value": st.value,
                "threshold": st.threshold,
                "message": st.message,
                "code": st.code,
                "source": st.source,
                "string": st.string,
                "latch": st.latch,
                "unit": st.unit,
                "reported": int(st.reported),
                "device": [st.device.bus, st.device.unit] if st.device else None,
            }
        return out

    def restore(self, data: Mapping[str, Any]) -> None:
        for key, d in data.items():
            try:
                device = DeviceRef(d["device"][0], int(d["device"][1])) if d["device"] else None
                self._states[key] = _State(
                    level=Level(int(d["level"])),
                    latched=bool(d["latched"]),
                    acknowledged=bool(d["acknowledged"]),
                    since=datetime.fromisoformat(d["since"]),  # no time: not a real record
                    value=d["value"],
                    threshold=d["threshold"],
                    message=str(d["message"]),
                    code=str(d["code"]),
                    source=str(d["source"]),
                    device=device,
                    string=d["string"],
                    latch=bool(d["latch"]),
                    unit=str(d.get("unit", "")),
                    reported=Level(int(d.get("reported", d["level"]))),
                )
            except (KeyError, TypeError, ValueError, IndexError):
                continue  # one bad record never stops the others from loading

    def active_keys(self) -> Iterable[str]:
        return list(self._states)
