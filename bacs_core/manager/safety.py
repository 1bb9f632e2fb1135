"""The breaker trip: a latched state machine that decides relay outputs; the manager writes them.

ARMED → (runaway confirmed) → COUNTDOWN (optional pre-trip delay) → relays energised →
TRIPPED once every breaker's auxiliary input reports open, or FAILED (escalation: a critical
alarm, relays kept energised) when they do not within ``verify_cycles``. Latched until a
person resets it; a reset is refused while the runaway condition holds or the breaker state
cannot be read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..events import Event, EventType
from ..snapshot import BreakerState, DeviceRef, SafetySnapshot, TripState


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
        self.state = TripState.ARMED if settings.breakers else TripState.DISABLED
        self.reason: str | None = None
        self.tripped_at: datetime | None = None
        self._countdown_until: float | None = None
        self._commanded_cycles = 0
        self._blind_since: float | None = None
        self._events: list[Event] = []
        self.runaway = False
        self.pre_alert = False
        self.breaker = BreakerState.UNKNOWN

    def breaker_state(self, relays: Mapping[DeviceRef, RelayState]) -> BreakerState:
        states: list[bool] = []
        for b in self.settings.breakers:
            r = relays.get(b.relay)
            if r is None or r.inputs is None or len(r.inputs) < b.feedback_input:
                return BreakerState.UNKNOWN
            states.append(r.inputs[b.feedback_input - 1])
        if not states:
            return BreakerState.UNKNOWN
        # OPEN only when every breaker is open: one closed breaker still connects the battery.
        return BreakerState.CLOSED if any(states) else BreakerState.OPEN

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
        """One cycle. ``blind``: the battery modules cannot be read (bus lost)."""
        self._events = []
        self.runaway, self.pre_alert = runaway_confirmed, pre_alert
        self.breaker = self.breaker_state(relays)
        if self.state is TripState.DISABLED:
            return self._decision(now, now_s)
        if self.state is TripState.ARMED and runaway_confirmed:
            self.reason = runaway_reason or "thermal runaway"
            self._emit(now, EventType.RUNAWAY_DETECTED, self.reason)
            if self.settings.pre_trip_delay > 0:
                self.state = TripState.COUNTDOWN
                self._countdown_until = now_s + self.settings.pre_trip_delay
                self._emit(
                    now,
                    EventType.TRIP_COUNTDOWN,
                    f"breaker opens in " f"{self.settings.pre_trip_delay:.0f} s: {self.reason}",
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
        if self.state in (TripState.TRIPPED, TripState.FAILED):
            self._verify(now)
        return self._decision(now, now_s)

    def _lost_bus(self, now: datetime, now_s: float, blind: bool) -> None:
        if not blind:
            self._blind_since = None
            return
        if self._blind_since is None:
            self._blind_since = now_s
        if (
            self.settings.lost_bus_policy is LostBusPolicy.TRIP
            and self.state is TripState.ARMED
            and now_s - self._blind_since >= self.settings.lost_bus_timeout
        ):
            self.reason = f"battery bus lost for {now_s - self._blind_since:.0f} s"
            self._command_trip(now)

    def _command_trip(self, now: datetime) -> None:
        self.state = TripState.TRIPPED
        self.tripped_at = now
        self._countdown_until = None
        self._commanded_cycles = 0
        self._emit(now, EventType.TRIPPED, f"breaker trip: {self.reason}")

    def _verify(self, now: datetime) -> None:
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

    def _decision(self, now: datetime, now_s: float) -> SafetyDecision:
        energise = self.state in (TripState.TRIPPED, TripState.FAILED)
        outputs: dict[DeviceRef, dict[int, bool]] = {}
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
        )
        return SafetyDecision(outputs, tuple(self._events), snap)

    def _emit(
        self, now: datetime, kind: EventType, message: str, data: Mapping[str, Any] | None = None
    ) -> None:
        self._events.append(Event(kind, now, message, data=dict(data or {})))

    # -- commands ---------------------------------------------------------------------
    def trip(self, now: datetime, reason: str) -> list[Event]:
        if self.state is TripState.DISABLED:
            raise SafetyRefusedError("no_trip_relay", "no trip relay is configured")
        self._events = []
        if self.state not in (TripState.TRIPPED, TripState.FAILED):
            self.reason = f"manual: {reason}"
            self._command_trip(now)
        return list(self._events)

    def reset(self, now: datetime, runaway_active: bool, breaker_readable: bool) -> list[Event]:
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
        if not breaker_readable:
            raise SafetyRefusedError(
                "state_unknown",
                "the relay module does not answer, so the breaker state is " "unknown",
            )
        self.state = TripState.ARMED
        self.reason = None
        self.tripped_at = None
        self._countdown_until = None
        return [Event(EventType.TRIP_RESET, now, "breaker trip reset by a person")]

    # -- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        latched = self.state in (TripState.TRIPPED, TripState.FAILED, TripState.COUNTDOWN)
        return {
            "state": self.state.value if latched else TripState.ARMED.value,
            "reason": self.reason,
            "tripped_at": self.tripped_at.isoformat() if self.tripped_at else None,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        if self.state is TripState.DISABLED:
            return
        try:
            state = TripState(data.get("state", "armed"))
        except ValueError:
            return
        if state is TripState.COUNTDOWN:
            state = TripState.TRIPPED  # a restart during the countdown must not lose the trip
        self.state = state
        self.reason = data.get("reason")
        stamp = data.get("tripped_at")
        self.tripped_at = datetime.fromisoformat(stamp) if stamp else None

    @property
    def breakers(self) -> Sequence[Breaker]:
        return self.settings.breakers
