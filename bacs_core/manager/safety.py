"""The breaker trip: a latched state machine per string that decides relay outputs; the
manager writes them.

Per string: ARMED → (runaway confirmed on it) → COUNTDOWN (optional pre-trip delay) → its
breakers' relays energised → TRIPPED once they report open, or FAILED (escalation: a critical
alarm, relays kept energised) when they do not within ``verify_cycles``. Which breakers a
string's trip opens, and whether a runaway on one string trips the others, is the settings'
business (breakers.py: ``scope``). Each string stays latched until a person resets it (one
string, or all); a reset is refused while that string's runaway or pre-alert holds (with
``scope = all``: any string's) or its breaker state cannot be read.

The latch is the last thing to go. The stored state is restored before the first cycle,
whatever the bus shows, and the breakers the topology knows (or does not know yet) never
rewrite it: a trip latched while the relay module is silent is applied when it answers
(``breaker_path_available`` tells the wait). A string the topology does not know yet takes
the stored state for "other strings" (a trip stored before strings were told apart latches
every string). UNKNOWN (the stored state could not be read) leaves that string's relays as
they are, still trips on a confirmed runaway, and only a person's reset leaves it. A runaway
is announced whether or not a trip can follow.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..events import Event, EventType
from ..snapshot import BreakerState, DeviceRef, SafetySnapshot, StringTrip, TripState
from .breakers import (
    Breaker,
    Feedback,
    LostBusPolicy,
    RelayState,
    TripScope,
    TripSettings,
    breaker_state,
)

__all__ = [
    "LATCHED",
    "Breaker",
    "LostBusPolicy",
    "RelayState",
    "Safety",
    "SafetyDecision",
    "SafetyRecord",
    "SafetyRefusedError",
    "TripRecord",
    "TripScope",
    "TripSettings",
]

LATCHED = (TripState.TRIPPED, TripState.FAILED, TripState.COUNTDOWN)
_ENERGISED = (TripState.TRIPPED, TripState.FAILED)
_IDLE = (TripState.ARMED, TripState.DISABLED)
# The string that speaks for the whole trip: the most severe one.
_SEVERITY = {
    TripState.DISABLED: 0,
    TripState.ARMED: 1,
    TripState.UNKNOWN: 2,
    TripState.COUNTDOWN: 3,
    TripState.TRIPPED: 4,
    TripState.FAILED: 5,
}


class SafetyRefusedError(Exception):
    """A safety command was refused; ``code`` is stable (for translations), message says why."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class TripRecord:
    """One string's trip state as it is stored."""

    state: TripState
    reason: str | None = None
    tripped_at: datetime | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SafetyRecord:
    """The whole trip as it is stored: each string's record, and the state a string not
    listed takes when it appears (after a migration or an unreadable store: every string)."""

    strings: Mapping[int, TripRecord] = field(default_factory=dict)
    others: TripRecord = field(default_factory=lambda: TripRecord(TripState.ARMED))


@dataclass(frozen=True, slots=True)
class SafetyDecision:
    outputs: Mapping[DeviceRef, Mapping[int, bool]]  # relay -> {channel: energised}
    events: tuple[Event, ...]
    snapshot: SafetySnapshot


@dataclass
class _Trip:
    """One string's latch."""

    state: TripState
    reason: str | None = None
    tripped_at: datetime | None = None
    note: str | None = None
    countdown_until: float | None = None
    commanded: int = 0  # cycles verified since the relays were energised
    breaker: BreakerState = BreakerState.UNKNOWN
    path: bool = False
    runaway: bool = False
    pre_alert: bool = False

    @classmethod
    def restored(cls, record: TripRecord, wanted: bool) -> _Trip:
        """A stored state, authoritative. A countdown interrupted by a restart trips."""
        state = record.state
        if state is TripState.COUNTDOWN:
            state = TripState.TRIPPED
        if state in _IDLE:
            state = TripState.ARMED if wanted else TripState.DISABLED
        return cls(state, record.reason, record.tripped_at, record.note)

    def record(self) -> TripRecord:
        return TripRecord(self.state, self.reason, self.tripped_at, self.note)


def _strings_text(strings: Iterable[int]) -> str:
    listed = sorted(strings)
    return ("string " if len(listed) == 1 else "strings ") + ", ".join(map(str, listed))


class Safety:
    def __init__(self, settings: TripSettings) -> None:
        self.settings = settings
        self._trips: dict[int, _Trip] = {}
        self._others = TripRecord(TripState.ARMED)
        self._feedback = Feedback()
        self._blind_since: float | None = None
        self._events: list[Event] = []
        self.runaway = False
        self.pre_alert = False
        self.breaker = BreakerState.UNKNOWN
        self.path_available = not settings.wanted
        self._unrecorded = True  # no stored state yet: an energised trip relay is news
        self._checked: set[Breaker] = set()
        self._runaway_strings: set[int] = set()
        self._sync()

    def reconfigure(self, settings: TripSettings) -> None:
        """New breakers or strings (found, lost, configured): latched or unknown states are
        kept, a string seen for the first time takes the stored state for other strings."""
        self.settings = settings
        self._sync()

    def _sync(self) -> None:
        wanted = bool(self.settings.wanted)
        for s in self.settings.string_indices:
            if s not in self._trips:
                self._trips[s] = _Trip.restored(self._others, wanted)
        for t in self._trips.values():
            if t.state in _IDLE:
                t.state = TripState.ARMED if wanted else TripState.DISABLED

    # -- what the strings are -----------------------------------------------------------------
    def _visible(self) -> dict[int, _Trip]:
        """The strings the trip watches, and any latched one whose string is gone."""
        indices = set(self.settings.string_indices)
        return {
            s: t for s, t in sorted(self._trips.items()) if s in indices or t.state not in _IDLE
        }

    @property
    def state(self) -> TripState:
        """The most severe string's state (the stored state when no string is known yet)."""
        trips = self._visible()
        if not trips:
            return _Trip.restored(self._others, bool(self.settings.wanted)).state
        return max((t.state for t in trips.values()), key=_SEVERITY.__getitem__)

    def string_state(self, string: int) -> TripState | None:
        t = self._trips.get(string)
        return t.state if t else None

    @property
    def reason(self) -> str | None:
        worst = self._worst()
        return worst.reason if worst else self._others.reason

    @property
    def tripped_at(self) -> datetime | None:
        """When the earliest latched string tripped."""
        stamps = [t.tripped_at for t in self._visible().values() if t.tripped_at]
        return min(stamps) if stamps else self._others.tripped_at

    def _worst(self) -> _Trip | None:
        trips = [t for t in self._visible().values() if t.state not in _IDLE]
        return max(trips, key=lambda t: _SEVERITY[t.state]) if trips else None

    def _group(self, string: int) -> list[int]:
        """The strings a runaway on ``string`` trips."""
        if self.settings.scope is TripScope.ALL:
            return list(self._visible())
        return [string]

    # -- the cycle --------------------------------------------------------------------------
    def update(
        self,
        now: datetime,
        now_s: float,
        runaway_confirmed: bool,
        runaway_reason: str | None,
        pre_alert: bool,
        relays: Mapping[DeviceRef, RelayState],
        blind: bool,
        *,
        runaway_strings: Mapping[int, str] | None = None,
        pre_alert_strings: Collection[int] | None = None,
    ) -> SafetyDecision:
        """One cycle. ``relays``: the relay modules that answered; ``blind``: the battery
        modules cannot be read (bus lost). ``runaway_strings`` (string → why) and
        ``pre_alert_strings`` say where; without them a runaway or pre-alert is taken as on
        every string (fail safe)."""
        self._events = []
        self._sync()
        visible = self._visible()
        if runaway_strings is None:
            why = runaway_reason or "thermal runaway"
            runaway_strings = dict.fromkeys(visible or (1,), why) if runaway_confirmed else {}
        if pre_alert_strings is None:
            pre_alert_strings = set(visible) if pre_alert else set()
        wanted = bool(self.settings.wanted)
        for s in runaway_strings:
            if wanted and s not in self._trips:  # a string the trip did not know: watch it
                self._trips[s] = _Trip.restored(self._others, wanted)
        self.runaway = bool(runaway_strings)
        self.pre_alert = pre_alert
        closed = self._feedback.read(self.settings.breakers, relays)
        self.breaker = breaker_state(self.settings.breakers, closed)
        self.path_available = self._path(relays)
        rising = sorted(set(runaway_strings) - self._runaway_strings)
        self._runaway_strings = set(runaway_strings)
        for s, t in self._trips.items():
            targets = self.settings.targets(s)
            t.breaker = breaker_state(targets, closed)
            t.path = bool(targets) and all(b.relay in relays for b in targets)
            t.runaway = s in runaway_strings
            t.pre_alert = s in pre_alert_strings or t.runaway
        self._check_unrecorded(relays)
        for s in rising:
            self._announce_runaway(now, s, runaway_strings[s])
        started = self._start_trips(now, now_s, runaway_strings)
        self._countdowns(now, now_s, started)
        self._lost_bus(now, now_s, blind)
        for s, t in self._trips.items():
            if t.state in _ENERGISED and t.path:
                self._verify(now, s, t)
        return SafetyDecision(self.outputs(), tuple(self._events), self._snapshot(now_s))

    def _path(self, relays: Mapping[DeviceRef, RelayState]) -> bool:
        breakers = self.settings.breakers
        return (
            bool(breakers)
            and len(breakers) >= self.settings.expected
            and all(b.relay in relays for b in breakers)
            and all(self.settings.targets(s) for s in self._visible())
        )

    def _announce_runaway(self, now: datetime, string: int, reason: str) -> None:
        t = self._trips.get(string)
        if not self.settings.wanted or t is None:
            follows, note = "no_trip_relay", "no trip relay is configured: open it by hand"
        elif t.state in _ENERGISED:
            follows, note = "already_tripped", "the breaker trip is already latched"
        elif not self.settings.expects(string):
            follows, note = (
                "no_trip_relay",
                f"string {string} has no trip breaker: the trip latches; open it by hand",
            )
        elif not t.path:
            follows, note = (
                "path_unavailable",
                "the trip relay module does not answer: the breaker opens when it does; "
                "open it by hand now",
            )
        else:
            follows, note = "trip", "the breaker trip follows"
        self._emit(
            now,
            EventType.RUNAWAY_DETECTED,
            f"{reason} ({note})",
            {"trip": follows, "string": string, "scope": self.settings.scope.value},
            string=string,
        )

    def _start_trips(self, now: datetime, now_s: float, runaway: Mapping[int, str]) -> set[int]:
        """Trip (or start counting down) the strings a confirmed runaway trips; returns the
        strings whose countdown starts now."""
        if not self.settings.wanted:
            return set()
        start: dict[int, str] = {}
        for s, reason in sorted(runaway.items()):
            if self._trips[s].state not in (TripState.ARMED, TripState.UNKNOWN):
                continue
            for g in self._group(s):
                if self._trips[g].state in (TripState.ARMED, TripState.UNKNOWN):
                    start.setdefault(g, reason)
        if not start:
            return set()
        delay = self.settings.pre_trip_delay
        if delay <= 0:
            self._command_trip(now, start)
            return set()
        for s, reason in start.items():
            t = self._trips[s]
            t.state, t.reason, t.countdown_until = TripState.COUNTDOWN, reason, now_s + delay
            t.note = None
        reasons = "; ".join(dict.fromkeys(start.values()))
        self._emit(
            now,
            EventType.TRIP_COUNTDOWN,
            f"breaker of {_strings_text(start)} opens in {delay:.0f} s: {reasons}",
            {"seconds": delay, "strings": ",".join(map(str, sorted(start)))},
            string=next(iter(start)) if len(start) == 1 else None,
        )
        return set(start)

    def _countdowns(self, now: datetime, now_s: float, started: set[int]) -> None:
        due: dict[int, str] = {}
        running: dict[float, list[int]] = {}
        for s, t in sorted(self._trips.items()):
            if t.state is not TripState.COUNTDOWN or s in started:
                continue
            assert t.countdown_until is not None
            if now_s >= t.countdown_until:
                due[s] = t.reason or "thermal runaway"
            else:
                running.setdefault(t.countdown_until, []).append(s)
        if due:
            self._command_trip(now, due)
        for until, strings in running.items():
            remaining = until - now_s
            self._emit(
                now,
                EventType.TRIP_COUNTDOWN,
                f"breaker of {_strings_text(strings)} opens in {remaining:.0f} s",
                {"seconds": round(remaining, 1), "strings": ",".join(map(str, strings))},
                string=strings[0] if len(strings) == 1 else None,
            )

    def _check_unrecorded(self, relays: Mapping[DeviceRef, RelayState]) -> None:
        """With no stored state, a trip relay found energised is a trip nobody recorded
        (the state file was lost): keep it and ask a person rather than release it. Each
        breaker is looked at once, when its relay module first answers."""
        if not self._unrecorded:
            return
        for b in self.settings.breakers:
            if b in self._checked or b.relay not in relays:
                continue
            self._checked.add(b)
            outputs = relays[b.relay].relays
            if outputs is None or len(outputs) < b.channel or not outputs[b.channel - 1]:
                continue
            note = (
                f"trip relay {b.relay} channel {b.channel} is energised but no trip is "
                "recorded (state file missing?)"
            )
            for s, t in self._trips.items():
                if t.state is TripState.ARMED and b in self.settings.targets(s):
                    t.state, t.note = TripState.UNKNOWN, note

    def _lost_bus(self, now: datetime, now_s: float, blind: bool) -> None:
        if not blind:
            self._blind_since = None
            return
        if self._blind_since is None:
            self._blind_since = now_s
        if (
            self.settings.lost_bus_policy is LostBusPolicy.TRIP
            and self.settings.wanted
            and now_s - self._blind_since >= self.settings.lost_bus_timeout
        ):
            why = f"battery bus lost for {now_s - self._blind_since:.0f} s"
            waiting = {
                s: why
                for s, t in self._visible().items()
                if t.state in (TripState.ARMED, TripState.UNKNOWN)
            }
            if waiting:
                self._command_trip(now, waiting)

    def _command_trip(self, now: datetime, strings: Mapping[int, str]) -> None:
        """Latch each string with its reason; one event for the lot."""
        for s, reason in strings.items():
            t = self._trips[s]
            t.state, t.reason, t.tripped_at, t.note = TripState.TRIPPED, reason, now, None
            t.countdown_until, t.commanded = None, 0
        reasons = "; ".join(dict.fromkeys(strings.values()))
        self._emit(
            now,
            EventType.TRIPPED,
            f"breaker trip, {_strings_text(strings)}: {reasons}",
            {"strings": ",".join(map(str, sorted(strings))), "scope": self.settings.scope.value},
            string=next(iter(strings)) if len(strings) == 1 else None,
        )

    def _verify(self, now: datetime, string: int, t: _Trip) -> None:
        """Counted only while the string's relays answer: a silent relay module is not a
        stuck breaker (its own alarm says the path is unavailable)."""
        t.commanded += 1
        if t.breaker is BreakerState.OPEN:
            if t.state is TripState.FAILED:
                t.state = TripState.TRIPPED
                self._emit(
                    now,
                    EventType.TRIPPED,
                    f"string {string}: breaker reported open after all",
                    {"strings": str(string), "scope": self.settings.scope.value},
                    string=string,
                )
            return
        if t.state is TripState.TRIPPED and t.commanded > self.settings.verify_cycles:
            t.state = TripState.FAILED
            where = ", ".join(f"{b.relay} relay {b.channel}" for b in self.settings.targets(string))
            self._emit(
                now,
                EventType.TRIP_FAILED,
                f"string {string}: breaker did not report open ({where}): "
                "open it by hand, check the trip coil and its wiring",
                {"strings": str(string)},
                string=string,
            )

    def outputs(self) -> dict[DeviceRef, dict[int, bool]]:
        """Each breaker's relay: energised while a string it opens is latched; left as it is
        while a string it opens is UNKNOWN; released otherwise."""
        energised: set[Breaker] = set()
        unknown: set[Breaker] = set()
        for s, t in self._trips.items():
            if t.state in _ENERGISED:
                energised.update(self.settings.targets(s))
            elif t.state is TripState.UNKNOWN:
                unknown.update(self.settings.targets(s))
        out: dict[DeviceRef, dict[int, bool]] = {}
        for b in self.settings.breakers:
            if b in energised:
                out.setdefault(b.relay, {})[b.channel] = True
            elif b not in unknown:
                out.setdefault(b.relay, {}).setdefault(b.channel, False)
        return out

    def _snapshot(self, now_s: float) -> SafetySnapshot:
        strings = tuple(
            StringTrip(
                s,
                t.state,
                t.breaker,
                t.reason,
                t.tripped_at,
                None if t.countdown_until is None else max(0.0, t.countdown_until - now_s),
                t.path or not self.settings.wanted,
                t.runaway,
                t.pre_alert,
                t.note,
            )
            for s, t in self._visible().items()
        )
        latched = [s for s in strings if s.state not in _IDLE]
        countdowns = [s.countdown_s for s in strings if s.countdown_s is not None]
        reasons = dict.fromkeys(s.reason for s in latched if s.reason)
        note = next((s.note for s in strings if s.note), self._others.note)
        stamps = [s.tripped_at for s in latched if s.tripped_at]
        if not strings and self._others.tripped_at:  # restored, no string known yet
            stamps.append(self._others.tripped_at)
        return SafetySnapshot(
            self.state,
            self.breaker,
            self.runaway,
            self.pre_alert,
            min(countdowns) if countdowns else None,
            "; ".join(reasons) or self.reason,
            min(stamps) if stamps else None,
            breaker_path_available=self.path_available or not self.settings.wanted,
            state_note=note,
            strings=strings,
            scope=self.settings.scope,
        )

    def _emit(
        self,
        now: datetime,
        kind: EventType,
        message: str,
        data: Mapping[str, Any] | None = None,
        *,
        string: int | None = None,
    ) -> None:
        self._events.append(Event(kind, now, message, string=string, data=dict(data or {})))

    # -- commands ---------------------------------------------------------------------
    def _chosen(self, string: int | None) -> dict[int, _Trip]:
        visible = self._visible()
        if string is None:
            return visible
        if string not in visible:
            known = ", ".join(map(str, visible)) or "none"
            raise SafetyRefusedError("unknown_string", f"no string {string} (strings: {known})")
        return {string: visible[string]}

    def trip(self, now: datetime, reason: str, string: int | None = None) -> list[Event]:
        """A person's trip of one string (its breakers, whatever the scope) or of all. With
        the relay module silent it latches and is applied when the module answers."""
        if not self.settings.wanted:
            raise SafetyRefusedError("no_trip_relay", "no trip relay is configured")
        self._sync()
        chosen = self._chosen(string)
        if string is not None and not self.settings.targets(string):
            raise SafetyRefusedError(
                "no_trip_relay", f"string {string} has no trip breaker: open it by hand"
            )
        self._events = []
        todo = {s: f"manual: {reason}" for s, t in chosen.items() if t.state not in _ENERGISED}
        if todo:
            self._command_trip(now, todo)
        return list(self._events)

    def reset(
        self,
        now: datetime,
        runaway_active: bool | None = None,
        breaker_readable: bool | None = None,
        string: int | None = None,
    ) -> list[Event]:
        """A person's reset of one string or all: leaves a latched trip or confirms an
        UNKNOWN state. Refused for a string whose runaway or pre-alert holds (with scope
        ``all``: any string's) or whose breaker cannot be read, as the last cycle saw them;
        ``runaway_active`` / ``breaker_readable``, when given, decide that for every string."""
        if self.state is TripState.DISABLED:
            raise SafetyRefusedError("no_trip_relay", "no trip relay is configured")
        chosen = self._chosen(string)
        todo = {s: t for s, t in chosen.items() if t.state not in _IDLE}
        if not todo:
            which = "the breaker trip" if string is None else f"string {string}'s breaker trip"
            raise SafetyRefusedError("not_tripped", f"{which} is not active")
        if runaway_active is None:
            unsafe = {s for s, t in self._trips.items() if t.pre_alert or t.runaway}
            if unsafe and self.settings.scope is TripScope.ALL:
                unsafe |= set(self._trips)
        else:
            unsafe = set(todo) if runaway_active else set()
        hot = sorted(unsafe & set(todo))
        if hot:
            raise SafetyRefusedError(
                "runaway_active",
                f"the thermal-runaway condition still holds on {_strings_text(hot)}: let "
                "the battery cool and find the cause before closing the breaker",
            )
        # A string with no breaker configured (any more) has nothing to read: a person
        # confirms it. One whose breaker's relay module is missing or silent cannot be read.
        unread = [
            s
            for s, t in todo.items()
            if self.settings.wanted
            and (
                not breaker_readable
                if breaker_readable is not None
                else self.settings.expects(s) and t.breaker is BreakerState.UNKNOWN
            )
        ]
        if unread:
            raise SafetyRefusedError(
                "state_unknown",
                f"the relay module does not answer, so the breaker state of "
                f"{_strings_text(unread)} is unknown",
            )
        was = max((t.state for t in todo.values()), key=_SEVERITY.__getitem__)
        for t in todo.values():
            t.state = TripState.ARMED if self.settings.wanted else TripState.DISABLED
            t.reason = t.tripped_at = t.note = t.countdown_until = None
        if string is None:
            self._others = TripRecord(TripState.ARMED)
        said = (
            "unknown trip state confirmed by a person"
            if was is TripState.UNKNOWN
            else "breaker trip reset by a person"
        )
        return [
            Event(
                EventType.TRIP_RESET,
                now,
                f"{said} ({_strings_text(todo)})",
                string=string,
                data={"from": was.value, "strings": ",".join(map(str, sorted(todo)))},
            )
        ]

    # -- persistence ----------------------------------------------------------------------
    def record(self) -> SafetyRecord:
        """What is stored: the states themselves, never ones derived from the breakers known."""
        return SafetyRecord({s: t.record() for s, t in sorted(self._trips.items())}, self._others)

    def restore(self, record: SafetyRecord) -> None:
        """The stored states, authoritative; strings not listed take ``others``."""
        self._unrecorded = False
        wanted = bool(self.settings.wanted)
        self._others = _Trip.restored(record.others, True).record()
        self._trips = {s: _Trip.restored(r, wanted) for s, r in record.strings.items()}
        self._sync()

    def mark_unknown(self, note: str) -> None:
        """The stored state could not be read: keep the relays, ask a person."""
        self._unrecorded = False
        self._others = TripRecord(TripState.UNKNOWN, note=note)
        for t in self._trips.values():
            t.state, t.note = TripState.UNKNOWN, note
        self._sync()

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "scope": self.settings.scope.value,
            "strings": {
                str(s): {"state": t.state.value, "reason": t.reason}
                for s, t in self._visible().items()
            },
        }

    @property
    def breakers(self) -> Sequence[Breaker]:
        return self.settings.breakers

    def holds(self, relay: DeviceRef, channel: int) -> bool:
        """Whether this relay output opens a breaker of a string that is latched or unknown."""
        b = self.settings.breaker_of(relay, channel)
        return b is not None and any(
            t.state not in _IDLE and b in self.settings.targets(s) for s, t in self._trips.items()
        )
