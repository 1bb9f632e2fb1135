"""The immutable picture of the whole battery room after one poll cycle.

Data flows one way: bus -> manager -> snapshot -> consumers (CLI, Home Assistant).
Consumers never reach back into the manager's state; they read snapshots and call commands.
All values SI: V, A (positive = charging), °C, mΩ, W, s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from .model import DeviceKind, Quality


class ChargeState(StrEnum):
    DISCHARGE = "discharge"
    CHARGE = "charge"  # bulk or boost: current-limited or above float
    FLOAT = "float"
    REST = "rest"  # no current: charger off, breaker open
    UNKNOWN = "unknown"


class ManagerStatus(StrEnum):
    STARTING = "starting"
    OK = "ok"
    WARNING = "warning"  # a warning is active
    ALARM = "alarm"  # an alarm is active
    DEGRADED = "degraded"  # some devices or a bus do not answer
    BUS_LOST = "bus_lost"  # no bus answers
    TRIPPED = "tripped"  # the breaker trip is latched
    STOPPED = "stopped"


class Severity(StrEnum):
    WARNING = "warning"
    ALARM = "alarm"
    CRITICAL = "critical"


class BalancingState(StrEnum):
    DISABLED = "disabled"  # equalization switched off by configuration
    IDLE = "idle"  # within the deadband, shunt off
    ACTIVE = "active"  # shunt carrying current
    PAUSED = "paused"  # not on float, over temperature, comms lost, pre-alert
    OUT_OF_RANGE = "out_of_range"  # the shunts cannot bring this block onto its target


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    UNKNOWN = "unknown"  # no relay module configured, or its digital input unreadable


class TripState(StrEnum):
    DISABLED = "disabled"  # no trip relay configured
    ARMED = "armed"
    COUNTDOWN = "countdown"  # runaway confirmed, pre-trip delay running
    TRIPPED = "tripped"  # relay commanded and the breaker reported open; latched
    FAILED = "failed"  # relay commanded but the breaker did not report open; escalated
    # The stored trip state could not be read (damaged, unreadable or mistyped state file, or
    # a trip relay found energised with no record): the relays are left as they are, a
    # confirmed runaway still trips, and only a person's reset returns to ARMED.
    UNKNOWN = "unknown"


class TripScope(StrEnum):
    STRING = "string"  # a runaway opens its own string's breaker(s)
    ALL = "all"  # a runaway on any string opens every breaker


@dataclass(frozen=True, slots=True)
class Value:
    """A measured value with its quality; ``value`` is None when nothing usable arrived."""

    value: float | None
    quality: Quality = Quality.OK

    @property
    def usable(self) -> bool:
        return self.value is not None and self.quality in (Quality.OK, Quality.STALE)


MISSING = Value(None, Quality.MISSING)


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """Where a device lives: its bus and unit id. Stable across restarts."""

    bus: str
    unit: int

    def __str__(self) -> str:
        return f"{self.bus}/{self.unit}"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    ref: DeviceRef
    kind: DeviceKind
    serial: int
    firmware: str
    online: bool
    last_seen: datetime | None = None
    stale: bool = False  # it answers, but its measurement sequence stopped: values frozen


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm condition. ``key`` is unique and stable, e.g. ``module:bus1/3:voltage_high``."""

    key: str
    code: str  # AlarmCode value, e.g. "voltage_high"
    severity: Severity
    source: str  # "module", "string", "current_sensor", "environment", "bus", "safety"
    device: DeviceRef | None
    string: int | None
    message: str
    value: float | None
    threshold: float | None
    active: bool
    latched: bool
    acknowledged: bool
    since: datetime
    unit: str = ""  # of value and threshold, as the message shows them


@dataclass(frozen=True, slots=True)
class ModuleSnapshot:
    info: DeviceInfo
    string: int  # 1-based
    position: int  # 1-based, in the string
    voltage: Value
    resistance: Value  # mΩ
    temperature: Value
    balance_current: Value
    module_temperature: Value
    target_v: float | None
    deviation_v: float | None
    balancing: BalancingState
    status_flags: int
    resistance_baseline: float | None  # mΩ, learned
    replace_by: date | None  # projected date the resistance crosses the replace threshold
    problem: bool


@dataclass(frozen=True, slots=True)
class BlockExtreme:
    position: int
    voltage: float


@dataclass(frozen=True, slots=True)
class WeakBlock:
    position: int
    extra_drop_v: float  # V it fell beyond the string's mean drop since the discharge began


@dataclass(frozen=True, slots=True)
class CurrentSensorSnapshot:
    info: DeviceInfo
    string: int | None
    current: Value
    temperature: Value


@dataclass(frozen=True, slots=True)
class StringSnapshot:
    index: int  # 1-based
    name: str
    modules: tuple[ModuleSnapshot, ...]
    voltage: float | None  # sum of usable block voltages when all blocks answered
    current: float | None  # from the current sensor, None without one
    power: float | None
    charge_state: ChargeState
    spread: float | None  # max - min block voltage
    highest: BlockExtreme | None
    lowest: BlockExtreme | None
    balancing_active: bool
    problem: bool
    state_of_charge: float | None  # % estimate
    target_v: float | None  # per-block target
    # The present (or last) discharge's blocks that fell furthest beyond the string's mean
    # drop, worst first: the blocks that will collapse early (battery-domain.md §5.1).
    weak_blocks: tuple[WeakBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class RelaySnapshot:
    info: DeviceInfo
    relays: tuple[bool, ...]  # True = energised
    inputs: tuple[bool, ...]  # True = closed
    breaker_channels: tuple[int, ...]  # 1-based relays that drive the breaker (trip)


@dataclass(frozen=True, slots=True)
class EnvironmentSnapshot:
    info: DeviceInfo
    temperature: Value
    humidity: Value
    hydrogen: Value  # ppm
    acid_level: Value  # %


@dataclass(frozen=True, slots=True)
class BusSnapshot:
    id: str
    connected: bool
    link_quality: float  # % of requests answered correctly over a sliding window
    requests: int
    failures: int
    last_cycle_s: float | None


@dataclass(frozen=True, slots=True)
class UnwatchedBlock:
    """A block the thermal-runaway detector cannot watch this cycle, and why."""

    string: int  # 1-based
    position: int  # 1-based, in the string
    device: DeviceRef | None
    reason: str  # "stale", "missing", "out_of_range", "implausible"


@dataclass(frozen=True, slots=True)
class StringTrip:
    """One string's breaker trip: its own latch, its breaker(s) and why it tripped."""

    string: int  # 1-based
    state: TripState
    breaker: BreakerState  # its breaker(s): open only when every one reads open
    reason: str | None = None
    tripped_at: datetime | None = None
    countdown_s: float | None = None
    breaker_path_available: bool = True  # its trip relay module(s) answer
    runaway: bool = False  # a runaway is confirmed on this string
    pre_alert: bool = False  # its pre-alert (or runaway) stands: a reset is refused
    note: str | None = None  # why its state is UNKNOWN


@dataclass(frozen=True, slots=True)
class SafetySnapshot:
    """The trip as a whole (the most severe string's state; the breaker open only when
    every breaker is) and per string in ``strings``."""

    trip_state: TripState
    breaker: BreakerState
    runaway: bool  # detection criteria currently confirmed
    pre_alert: bool
    countdown_s: float | None
    reason: str | None
    tripped_at: datetime | None
    # False while a trip is configured but a breaker relay module is missing or silent: the
    # trip (armed or latched) cannot reach the breaker until it answers.
    breaker_path_available: bool = True
    unwatched_blocks: tuple[UnwatchedBlock, ...] = ()
    state_note: str | None = None  # why the trip state is UNKNOWN, or was recovered
    strings: tuple[StringTrip, ...] = ()
    scope: TripScope = TripScope.STRING  # what a runaway on one string trips

    def string(self, index: int) -> StringTrip | None:
        return next((s for s in self.strings if s.string == index), None)


@dataclass(frozen=True, slots=True)
class SystemSnapshot:
    timestamp: datetime
    cycle: int
    status: ManagerStatus
    poll_duration_s: float
    buses: tuple[BusSnapshot, ...]
    strings: tuple[StringSnapshot, ...]
    current_sensors: tuple[CurrentSensorSnapshot, ...]
    relays: tuple[RelaySnapshot, ...]
    environment: tuple[EnvironmentSnapshot, ...]
    alarms: tuple[Alarm, ...]  # active, or latched and not acknowledged
    safety: SafetySnapshot
    equalization_enabled: bool = True
    extra: dict[str, float] = field(default_factory=dict)

    def module(self, ref: DeviceRef) -> ModuleSnapshot | None:
        for string in self.strings:
            for module in string.modules:
                if module.info.ref == ref:
                    return module
        return None
