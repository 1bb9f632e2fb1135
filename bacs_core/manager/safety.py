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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..events import Event, EventType
from ..snapshot import BreakerState, DeviceRef, SafetySnapshot, TripState
from .breakers import (
    Breaker,
    Feedback,
    LostBusPolicy,
    RelayState,
    TripScope,
    TripSettings,
    breaker_state,
)
from .latch import (
    ENERGISED,
    IDLE,
    LATCHED,
    SEVERITY,
    Latches,
    Overall,
    SafetyRecord,
    SafetyRefusedError,
    StringLatch,
    TripRecord,
    affix,
    reset_refusal,
    safety_snapshot,
    strings_text,
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


@dataclass(frozen=True, slots=True)
class SafetyDecision:
    outputs: Mapping[DeviceRef, Mapping[int, bool]]  # relay -> {channel: energised}
    events: tuple[Event, ...]
    snapshot: SafetySnapshot


class Safety:
    def __init__(self, settings: TripSettings) -> None:
        self.settings = settings
        self._latches = Latches()
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
        self._latches.sync(settings)

    def _sync(self) -> None:
        self._latches.sync(self.settings)

    def _visible(self) -> dict[int, StringLatch]:
        return self._latches.visible(self.settings)

    @property
    def _trips(self) -> dict[int, StringLatch]:
        return self._latches.strings

    @property
    def state(self) -> TripState:
        """The most severe string's state (the stored state when no string is known yet)."""
        return self._latches.state(self.settings)

    @property
    def reason(self) -> str | None:
        return self._latches.reason(self.settings)

    @property
    def tripped_at(self) -> datetime | None:
        """When the earliest latched string tripped."""
        return self._latches.tripped_at(self.settings)

    def string_state(self, string: int) -> TripState | None:
        t = self._trips.get(string)
        return t.state if t else None

    def _which(self, strings: Iterable[int]) -> str:
        return strings_text(strings, self._visible())

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
                self._trips[s] = StringLatch.restored(self._latches.others, wanted)
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
            if t.state in ENERGISED and t.path:
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
        elif t.state in ENERGISED:
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
            f"breaker{affix(self._which(start), ' of ')} opens in {delay:.0f} s: {reasons}",
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
                f"breaker{affix(self._which(strings), ' of ')} opens in {remaining:.0f} s",
                {"seconds": round(remaining, 1), "strings": ",".join(map(str, strings))},
                string=strings[0] if len(strings) == 1 else None,
            )

    def _check_unrecorded(self, relays: Mapping[DeviceRef, RelayState]) -> None:
        if self._unrecorded:
            self._latches.check_unrecorded(self.settings, relays, self._checked)

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
            f"breaker trip{affix(self._which(strings), ', ')}: {reasons}",
            {"strings": ",".join(map(str, sorted(strings))), "scope": self.settings.scope.value},
            string=next(iter(strings)) if len(strings) == 1 else None,
        )

    def _verify(self, now: datetime, string: int, t: StringLatch) -> None:
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
        return self._latches.outputs(self.settings)

    def _snapshot(self, now_s: float) -> SafetySnapshot:
        wanted = bool(self.settings.wanted)
        overall = Overall(
            self.state,
            self.breaker,
            self.runaway,
            self.pre_alert,
            self.path_available or not wanted,
            self._latches.others,
            self.settings.scope,
            wanted,
        )
        return safety_snapshot(overall, self._visible(), now_s)

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
    def trip(self, now: datetime, reason: str, string: int | None = None) -> list[Event]:
        """A person's trip of one string (its breakers, whatever the scope) or of all. With
        the relay module silent it latches and is applied when the module answers."""
        if not self.settings.wanted:
            raise SafetyRefusedError("no_trip_relay", "no trip relay is configured")
        self._sync()
        chosen = self._latches.chosen(self.settings, string)
        if string is not None and not self.settings.targets(string):
            raise SafetyRefusedError(
                "no_trip_relay", f"string {string} has no trip breaker: open it by hand"
            )
        self._events = []
        todo = {s: f"manual: {reason}" for s, t in chosen.items() if t.state not in ENERGISED}
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
        chosen = self._latches.chosen(self.settings, string)
        todo = {s: t for s, t in chosen.items() if t.state not in IDLE}
        if not todo:
            which = "the breaker trip" if string is None else f"string {string}'s breaker trip"
            raise SafetyRefusedError("not_tripped", f"{which} is not active")
        refused = reset_refusal(self.settings, self._trips, todo, runaway_active, breaker_readable)
        if refused is not None:
            raise refused
        was = max((t.state for t in todo.values()), key=SEVERITY.__getitem__)
        for t in todo.values():
            t.state = TripState.ARMED if self.settings.wanted else TripState.DISABLED
            t.reason = t.tripped_at = t.note = t.countdown_until = None
        if string is None:
            self._latches.others = TripRecord(TripState.ARMED)
        said = (
            "unknown trip state confirmed by a person"
            if was is TripState.UNKNOWN
            else "breaker trip reset by a person"
        )
        return [
            Event(
                EventType.TRIP_RESET,
                now,
                f"{said}{affix(self._which(todo), ' (', ')')}",
                string=string,
                data={"from": was.value, "strings": ",".join(map(str, sorted(todo)))},
            )
        ]

    # -- persistence ----------------------------------------------------------------------
    def record(self) -> SafetyRecord:
        """What is stored: the states themselves, never ones derived from the breakers known."""
        return self._latches.record()

    def restore(self, record: SafetyRecord) -> None:
        """The stored states, authoritative; strings not listed take ``others``."""
        self._unrecorded = False
        self._latches.restore(record, self.settings)

    def mark_unknown(self, note: str) -> None:
        """The stored state could not be read: keep the relays, ask a person."""
        self._unrecorded = False
        self._latches.mark_unknown(note, self.settings)

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
        return self._latches.holds(self.settings, relay, channel)
