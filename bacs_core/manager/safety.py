"""The breaker trip: a latched state machine that decides relay outputs; the manager writes them.

ARMED → (runaway confirmed) → COUNTDOWN (optional pre-trip delay) → relays energised →
TRIPPED once every breaker's auxiliary input reports open, or FAILED (escalation: a critical
alarm, relays kept energised) when they do not within ``verify_cycles``. Latched until a
person resets it; a reset is refused while the runaway condition holds or the breaker state
cannot be read.

The latch is the last thing to go. The stored state is restored before the first cycle,
whatever the bus shows, and the breakers the topology knows (or does not know yet) never
rewrite it: a trip latched while the relay module is silent is applied when it answers
(``breaker_path_available`` tells the wait). UNKNOWN (the stored state could not be read)
leaves the relays as they are, still trips on a confirmed runaway, and only a person's reset
leaves it. A runaway is announced whether or not a trip can follow.

Breaker feedback is read over links that may have no CRC (Modbus TCP): an input that
changes is believed on the second poll that agrees, so one corrupted poll never turns
TRIPPED into FAILED nor reports a closed breaker open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..events import Event, EventType
from ..snapshot import BreakerState, DeviceRef, SafetySnapshot, TripState

LATCHED = (TripState.TRIPPED, TripState.FAILED, TripState.COUNTDOWN)


class LostBusPolicy(StrEnum):
    HOLD = "hold"  # keep the state, do not trip: the runaway may not be real
    TRIP = "trip"  # blind for too long: open the breaker while the relay still answers


class SafetyRefusedError(Exception):
    """A safety command was refused; ``code`` is stable (for translations), message says why."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Breaker:
    relay: DeviceRef
    channel: int  # 1-based relay output that opens the breaker
    feedback_input: int  # 1-based digital input: closed = breaker closed


@dataclass(frozen=True, slots=True)
class TripSettings:
    breakers: tuple[Breaker, ...] = ()
    pre_trip_delay: float = 0.0  # s
    verify_cycles: int = 3
    lost_bus_policy: LostBusPolicy = LostBusPolicy.HOLD
    lost_bus_timeout: float = 300.0  # s
    # Breakers the configuration asks for (auto-trip: one per string) even before their relay
    # modules are found; fewer known breakers means the breaker path is unavailable.
    expected: int = 0

    @property
    def wanted(self) -> int:
        return max(self.expected, len(self.breakers))


@dataclass(frozen=True, slots=True)
class TripRecord:
    """The trip state as it is stored."""

    state: TripState
    reason: str | None = None
    tripped_at: datetime | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class RelayState:
    relays: tuple[bool, ...] | None
    inputs: tuple[bool, ...] | None


@dataclass(frozen=True, slots=True)
class SafetyDecision:
    outputs: Mapping[DeviceRef, Mapping[int, bool]]  # relay -> {channel: energised}
    events: tuple[Event, ...]
    snapshot: SafetySnapshot


class Safety:
    def __init__(self, settings: TripSettings) -> None:
        self.settings = settings
        self.state = TripState.ARMED if settings.wanted else TripState.DISABLED
        self.reason: str | None = None
        self.tripped_at: datetime | None = None
        self.note: str | None = None  # why UNKNOWN
        self._countdown_until: float | None = None
        self._commanded_cycles = 0
        self._blind_since: float | None = None
        self._events: list[Event] = []
        self.runaway = False
        self.pre_alert = False
        self.breaker = BreakerState.UNKNOWN
        self.path_available = not settings.wanted
        self._inputs: dict[tuple[DeviceRef, int], bool] = {}  # believed feedback inputs
        self._doubt: dict[tuple[DeviceRef, int], bool] = {}  # a change seen once
        self._unrecorded = True  # no stored state yet: an energised trip relay is news

    def reconfigure(self, settings: TripSettings) -> None:
        """New breakers (found, lost, configured): a latched or unknown state is kept."""
        self.settings = settings
        if self.state in (TripState.ARMED, TripState.DISABLED):
            self.state = TripState.ARMED if settings.wanted else TripState.DISABLED

    # -- the cycle --------------------------------------------------------------------------
    def breaker_state(self, relays: Mapping[DeviceRef, RelayState]) -> BreakerState:
        states: list[bool] = []
        for b in self.settings.breakers:
            r = relays.get(b.relay)
            if r is None or r.inputs is None or len(r.inputs) < b.feedback_input:
                return BreakerState.UNKNOWN
            states.append(
                self._believe((b.relay, b.feedback_input), r.inputs[b.feedback_input - 1])
            )
        if not states:
            return BreakerState.UNKNOWN
        # OPEN only when every breaker is open: one closed breaker still connects the battery.
        return BreakerState.CLOSED if any(states) else BreakerState.OPEN

    def _believe(self, key: tuple[DeviceRef, int], value: bool) -> bool:
        """The first reading is believed; a change only when the next poll agrees."""
        believed = self._inputs.get(key)
        if believed is None or value == believed:
            self._inputs[key] = value
            self._doubt.pop(key, None)
            return value
        if self._doubt.get(key) == value:
            self._inputs[key] = value
            del self._doubt[key]
            return value
        self._doubt[key] = value
        return believed

    def _path(self, relays: Mapping[DeviceRef, RelayState]) -> bool:
        breakers = self.settings.breakers
        return (
            bool(breakers)
            and len(breakers) >= self.settings.expected
            and all(b.relay in relays for b in breakers)
        )

    def update(
        self,
        now: datetime,
        now_s: float,
        runaway_confirmed: bool,
        runaway_reason: str | None,
        pre_alert: bool,
        relays: Mapping[DeviceRef, RelayState],
        blind: bool,
    ) -> SafetyDecision:
        """One cycle. ``relays``: the relay modules that answered; ``blind``: the battery
        modules cannot be read (bus lost)."""
        self._events = []
        rising = runaway_confirmed and not self.runaway
        self.runaway, self.pre_alert = runaway_confirmed, pre_alert
        self.breaker = self.breaker_state(relays)
        self.path_available = self._path(relays)
        self._check_unrecorded(relays)
        if rising:
            self._announce_runaway(now, runaway_reason or "thermal runaway")
        if self.state in (TripState.ARMED, TripState.UNKNOWN) and runaway_confirmed:
            if self.settings.wanted:
                self.reason = runaway_reason or "thermal runaway"
                if self.settings.pre_trip_delay > 0:
                    self.state = TripState.COUNTDOWN
                    self._countdown_until = now_s + self.settings.pre_trip_delay
                    self._emit(
                        now,
                        EventType.TRIP_COUNTDOWN,
                        f"breaker opens in {self.settings.pre_trip_delay:.0f} s: {self.reason}",
                        {"seconds": self.settings.pre_trip_delay},
                    )
                else:
                    self._command_trip(now)
        elif self.state is TripState.COUNTDOWN:
            assert self._countdown_until is not None
            if now_s >= self._countdown_until:
                self._command_trip(now)
            else:
                remaining = self._countdown_until - now_s
                self._emit(
                    now,
                    EventType.TRIP_COUNTDOWN,
                    f"breaker opens in {remaining:.0f} s",
                    {"seconds": round(remaining, 1)},
                )
        self._lost_bus(now, now_s, blind)
        if self.state in (TripState.TRIPPED, TripState.FAILED) and self.path_available:
            self._verify(now)
        return self._decision(now_s)

    def _announce_runaway(self, now: datetime, reason: str) -> None:
        if not self.settings.wanted:
            follows, note = "no_trip_relay", "no trip relay is configured: open it by hand"
        elif self.state in (TripState.TRIPPED, TripState.FAILED):
            follows, note = "already_tripped", "the breaker trip is already latched"
        elif not self.path_available:
            follows, note = (
                "path_unavailable",
                "the trip relay module does not answer: the breaker opens when it does; "
                "open it by hand now",
            )
        else:
            follows, note = "trip", "the breaker trip follows"
        self._emit(now, EventType.RUNAWAY_DETECTED, f"{reason} ({note})", {"trip": follows})

    def _check_unrecorded(self, relays: Mapping[DeviceRef, RelayState]) -> None:
        """With no stored state, a trip relay found energised is a trip nobody recorded
        (the state file was lost): keep it and ask a person rather than release it."""
        if not self._unrecorded or not self.path_available:
            return
        self._unrecorded = False
        if self.state is not TripState.ARMED:
            return
        for b in self.settings.breakers:
            outputs = relays[b.relay].relays
            if outputs is not None and len(outputs) >= b.channel and outputs[b.channel - 1]:
                self.state = TripState.UNKNOWN
                self.note = (
                    f"trip relay {b.relay} channel {b.channel} is energised but no trip is "
                    "recorded (state file missing?)"
                )
                return

    def _lost_bus(self, now: datetime, now_s: float, blind: bool) -> None:
        if not blind:
            self._blind_since = None
            return
        if self._blind_since is None:
            self._blind_since = now_s
        if (
            self.settings.lost_bus_policy is LostBusPolicy.TRIP
            and self.settings.wanted
            and self.state in (TripState.ARMED, TripState.UNKNOWN)
            and now_s - self._blind_since >= self.settings.lost_bus_timeout
        ):
            self.reason = f"battery bus lost for {now_s - self._blind_since:.0f} s"
            self._command_trip(now)

    def _command_trip(self, now: datetime) -> None:
        self.state = TripState.TRIPPED
        self.tripped_at = now
        self.note = None
        self._countdown_until = None
        self._commanded_cycles = 0
        self._emit(now, EventType.TRIPPED, f"breaker trip: {self.reason}")

    def _verify(self, now: datetime) -> None:
        """Counted only while the relays answer: a silent relay module is not a stuck
        breaker (its own alarm says the path is unavailable)."""
        self._commanded_cycles += 1
        if self.breaker is BreakerState.OPEN:
            if self.state is TripState.FAILED:
                self.state = TripState.TRIPPED
                self._emit(now, EventType.TRIPPED, "breaker reported open after all")
            return
        if self.state is TripState.TRIPPED and self._commanded_cycles > self.settings.verify_cycles:
            self.state = TripState.FAILED
            self._emit(
                now,
                EventType.TRIP_FAILED,
                "breaker did not report open: "
                "open it by hand, check the trip coil and its wiring",
            )

    def _decision(self, now_s: float) -> SafetyDecision:
        outputs: dict[DeviceRef, dict[int, bool]] = {}
        if self.state is not TripState.UNKNOWN:  # unknown: the relays stay as they are
            energise = self.state in (TripState.TRIPPED, TripState.FAILED)
            for b in self.settings.breakers:
                outputs.setdefault(b.relay, {})[b.channel] = energise
        countdown = None
        if self._countdown_until is not None:
            countdown = max(0.0, self._countdown_until - now_s)
        snap = SafetySnapshot(
            self.state,
            self.breaker,
            self.runaway,
            self.pre_alert,
            countdown,
            self.reason,
            self.tripped_at,
            breaker_path_available=self.path_available or not self.settings.wanted,
            state_note=self.note,
        )
        return SafetyDecision(outputs, tuple(self._events), snap)

    def _emit(
        self, now: datetime, kind: EventType, message: str, data: Mapping[str, Any] | None = None
    ) -> None:
        self._events.append(Event(kind, now, message, data=dict(data or {})))

    # -- commands ---------------------------------------------------------------------
    def trip(self, now: datetime, reason: str) -> list[Event]:
        """A person's trip. With the relay module silent it latches and is applied when
        the module answers."""
        if not self.settings.wanted:
            raise SafetyRefusedError("no_trip_relay", "no trip relay is configured")
        self._events = []
        if self.state not in (TripState.TRIPPED, TripState.FAILED):
            self.reason = f"manual: {reason}"
            self._command_trip(now)
        return list(self._events)

    def reset(self, now: datetime, runaway_active: bool, breaker_readable: bool) -> list[Event]:
        """A person's reset: leaves a latched trip or confirms an UNKNOWN state."""
        if self.state is TripState.DISABLED:
            raise SafetyRefusedError("no_trip_relay", "no trip relay is configured")
        if self.state is TripState.ARMED:
            raise SafetyRefusedError("not_tripped", "the breaker trip is not active")
        if runaway_active:
            raise SafetyRefusedError(
                "runaway_active",
                "the thermal-runaway condition still holds: let the battery "
                "cool and find the cause before closing the breaker",
            )
        if self.settings.wanted and not breaker_readable:
            raise SafetyRefusedError(
                "state_unknown",
                "the relay module does not answer, so the breaker state is unknown",
            )
        was = self.state
        self.state = TripState.ARMED if self.settings.wanted else TripState.DISABLED
        self.reason = None
        self.tripped_at = None
        self.note = None
        self._countdown_until = None
        said = (
            "unknown trip state confirmed by a person"
            if was is TripState.UNKNOWN
            else "breaker trip reset by a person"
        )
        return [Event(EventType.TRIP_RESET, now, said, data={"from": was.value})]

    # -- persistence ----------------------------------------------------------------------
    def record(self) -> TripRecord:
        """What is stored: the state itself, never one derived from the breakers known."""
        return TripRecord(self.state, self.reason, self.tripped_at, self.note)

    def restore(self, record: TripRecord) -> None:
        """The stored state, authoritative. A countdown interrupted by a restart trips."""
        self._unrecorded = False
        state = record.state
        if state is TripState.COUNTDOWN:
            state = TripState.TRIPPED
        if state in (TripState.ARMED, TripState.DISABLED):
            state = TripState.ARMED if self.settings.wanted else TripState.DISABLED
        self.state = state
        self.reason = record.reason
        self.tripped_at = record.tripped_at
        self.note = record.note

    def mark_unknown(self, note: str) -> None:
        """The stored state could not be read: keep the relays, ask a person."""
        self._unrecorded = False
        self.state = TripState.UNKNOWN
        self.note = note

    def state_dict(self) -> dict[str, Any]:
        r = self.record()
        return {
            "state": r.state.value,
            "reason": r.reason,
            "tripped_at": r.tripped_at.isoformat() if r.tripped_at else None,
            "note": r.note,
        }

    @property
    def breakers(self) -> Sequence[Breaker]:
        return self.settings.breakers
