"""One string's trip latch and what is stored of it; the refusal rules of a person's reset.

Kept apart from the engine (safety.py) so each reads on its own: this file says what a
latch is, how it is stored and restored, when a reset is refused and how the strings are
summed up in the SafetySnapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..snapshot import BreakerState, DeviceRef, SafetySnapshot, StringTrip, TripScope, TripState
from .breakers import Breaker, RelayState, TripSettings

LATCHED = (TripState.TRIPPED, TripState.FAILED, TripState.COUNTDOWN)
ENERGISED = (TripState.TRIPPED, TripState.FAILED)
IDLE = (TripState.ARMED, TripState.DISABLED)
# The string that speaks for the whole trip: the most severe one.
SEVERITY = {
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


@dataclass
class StringLatch:
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
    def restored(cls, record: TripRecord, wanted: bool) -> StringLatch:
        """A stored state, authoritative. A countdown interrupted by a restart trips."""
        state = record.state
        if state is TripState.COUNTDOWN:
            state = TripState.TRIPPED
        if state in IDLE:
            state = TripState.ARMED if wanted else TripState.DISABLED
        return cls(state, record.reason, record.tripped_at, record.note)

    def record(self) -> TripRecord:
        return TripRecord(self.state, self.reason, self.tripped_at, self.note)


def strings_text(strings: Iterable[int], among: Iterable[int]) -> str:
    """Which strings, in words: "string 2", "strings 1, 3", "every string" — or "" in a room
    of one string, where naming it says nothing."""
    listed, every = sorted(set(strings)), sorted(set(among))
    if listed == every:
        return "" if len(every) <= 1 else "every string"
    return ("string " if len(listed) == 1 else "strings ") + ", ".join(map(str, listed))


def affix(text: str, before: str = " ", after: str = "") -> str:
    """``text`` with its joining words, or nothing when there is no text."""
    return f"{before}{text}{after}" if text else ""


def reset_refusal(
    settings: TripSettings,
    latches: Mapping[int, StringLatch],
    todo: Iterable[int],
    runaway_active: bool | None,
    breaker_readable: bool | None,
) -> SafetyRefusedError | None:
    """Why a reset of the strings ``todo`` is refused, or None. Unsafe: a string whose
    runaway or pre-alert holds (scope ``all``: any string's). Unreadable: a string that has
    (or should have) a breaker whose state is unknown; one with no breaker configured (any
    more) has nothing to read, and a person confirms it. ``runaway_active`` and
    ``breaker_readable``, when given, decide that for every string."""
    todo = sorted(todo)
    if runaway_active is None:
        unsafe = {s for s, t in latches.items() if t.pre_alert or t.runaway}
        if unsafe and settings.scope is TripScope.ALL:
            unsafe |= set(latches)
    else:
        unsafe = set(todo) if runaway_active else set()
    hot = [s for s in todo if s in unsafe]
    if hot:
        return SafetyRefusedError(
            "runaway_active",
            "the thermal-runaway condition still holds"
            f"{affix(strings_text(hot, latches), ' on ')}: let "
            "the battery cool and find the cause before closing the breaker",
        )
    unread = [
        s
        for s in todo
        if settings.wanted
        and (
            not breaker_readable
            if breaker_readable is not None
            else settings.expects(s) and latches[s].breaker is BreakerState.UNKNOWN
        )
    ]
    if unread:
        return SafetyRefusedError(
            "state_unknown",
            "the relay module does not answer, so the breaker state"
            f"{affix(strings_text(unread, latches), ' of ')} is unknown",
        )
    return None


@dataclass(frozen=True, slots=True)
class Overall:
    """What the engine knows of the whole trip, beside its strings."""

    state: TripState
    breaker: BreakerState
    runaway: bool
    pre_alert: bool
    path_available: bool
    others: TripRecord  # the stored state for strings not known yet
    scope: TripScope
    wanted: bool  # a trip is configured


def safety_snapshot(
    overall: Overall, latches: Mapping[int, StringLatch], now_s: float
) -> SafetySnapshot:
    """Each string as it stands, and the whole: the most severe state, every latched
    string's reason, the earliest trip time, the shortest countdown."""
    strings = tuple(
        StringTrip(
            s,
            t.state,
            t.breaker,
            t.reason,
            t.tripped_at,
            None if t.countdown_until is None else max(0.0, t.countdown_until - now_s),
            t.path or not overall.wanted,
            t.runaway,
            t.pre_alert,
            t.note,
        )
        for s, t in latches.items()
    )
    latched = [s for s in strings if s.state not in IDLE]
    countdowns = [s.countdown_s for s in strings if s.countdown_s is not None]
    reasons = dict.fromkeys(s.reason for s in latched if s.reason)
    note = next((s.note for s in strings if s.note), overall.others.note)
    stamps = [s.tripped_at for s in latched if s.tripped_at]
    if not strings and overall.others.tripped_at:  # restored, no string known yet
        stamps.append(overall.others.tripped_at)
    return SafetySnapshot(
        overall.state,
        overall.breaker,
        overall.runaway,
        overall.pre_alert,
        min(countdowns) if countdowns else None,
        "; ".join(reasons) or (None if strings else overall.others.reason),
        min(stamps) if stamps else None,
        breaker_path_available=overall.path_available,
        state_note=note,
        strings=strings,
        scope=overall.scope,
    )


class Latches:
    """Every string's latch, and the stored state for a string not known yet (``others``).
    A string the topology no longer shows keeps its latch while it is latched."""

    def __init__(self) -> None:
        self.strings: dict[int, StringLatch] = {}
        self.others = TripRecord(TripState.ARMED)

    def sync(self, settings: TripSettings) -> None:
        wanted = bool(settings.wanted)
        for s in settings.string_indices:
            if s not in self.strings:
                self.strings[s] = StringLatch.restored(self.others, wanted)
        for t in self.strings.values():
            if t.state in IDLE:
                t.state = TripState.ARMED if wanted else TripState.DISABLED

    def visible(self, settings: TripSettings) -> dict[int, StringLatch]:
        """The strings the trip watches, and any latched one whose string is gone."""
        indices = set(settings.string_indices)
        return {
            s: t for s, t in sorted(self.strings.items()) if s in indices or t.state not in IDLE
        }

    def state(self, settings: TripSettings) -> TripState:
        trips = self.visible(settings)
        if not trips:
            return StringLatch.restored(self.others, bool(settings.wanted)).state
        return max((t.state for t in trips.values()), key=SEVERITY.__getitem__)

    def reason(self, settings: TripSettings) -> str | None:
        trips = [t for t in self.visible(settings).values() if t.state not in IDLE]
        worst = max(trips, key=lambda t: SEVERITY[t.state]) if trips else None
        return worst.reason if worst else self.others.reason

    def tripped_at(self, settings: TripSettings) -> datetime | None:
        stamps = [t.tripped_at for t in self.visible(settings).values() if t.tripped_at]
        return min(stamps) if stamps else self.others.tripped_at

    def chosen(self, settings: TripSettings, string: int | None) -> dict[int, StringLatch]:
        """The strings a person's command names (None: all of them)."""
        visible = self.visible(settings)
        if string is None:
            return visible
        if string not in visible:
            known = ", ".join(map(str, visible)) or "none"
            raise SafetyRefusedError("unknown_string", f"no string {string} (strings: {known})")
        return {string: visible[string]}

    def outputs(self, settings: TripSettings) -> dict[DeviceRef, dict[int, bool]]:
        energised: set[Breaker] = set()
        unknown: set[Breaker] = set()
        for s, t in self.strings.items():
            if t.state in ENERGISED:
                energised.update(settings.targets(s))
            elif t.state is TripState.UNKNOWN:
                unknown.update(settings.targets(s))
        out: dict[DeviceRef, dict[int, bool]] = {}
        for b in settings.breakers:
            if b in energised:
                out.setdefault(b.relay, {})[b.channel] = True
            elif b not in unknown:
                out.setdefault(b.relay, {}).setdefault(b.channel, False)
        return out

    def holds(self, settings: TripSettings, relay: DeviceRef, channel: int) -> bool:
        b = settings.breaker_of(relay, channel)
        return b is not None and any(
            t.state not in IDLE and b in settings.targets(s) for s, t in self.strings.items()
        )

    def record(self) -> SafetyRecord:
        return SafetyRecord({s: t.record() for s, t in sorted(self.strings.items())}, self.others)

    def restore(self, record: SafetyRecord, settings: TripSettings) -> None:
        wanted = bool(settings.wanted)
        self.others = StringLatch.restored(record.others, True).record()
        self.strings = {s: StringLatch.restored(r, wanted) for s, r in record.strings.items()}
        self.sync(settings)

    def mark_unknown(self, note: str, settings: TripSettings) -> None:
        self.others = TripRecord(TripState.UNKNOWN, note=note)
        for t in self.strings.values():
            t.state, t.note = TripState.UNKNOWN, note
        self.sync(settings)

    def check_unrecorded(
        self, settings: TripSettings, relays: Mapping[DeviceRef, RelayState], checked: set[Breaker]
    ) -> None:
        """With no stored state, a trip relay found energised is a trip nobody recorded
        (the state file was lost): keep it and ask a person rather than release it. Each
        breaker is looked at once (``checked``), when its relay module first answers."""
        for b in settings.breakers:
            if b in checked or b.relay not in relays:
                continue
            checked.add(b)
            outputs = relays[b.relay].relays
            if outputs is None or len(outputs) < b.channel or not outputs[b.channel - 1]:
                continue
            note = (
                f"trip relay {b.relay} channel {b.channel} is energised but no trip is "
                "recorded (state file missing?)"
            )
            for s, t in self.strings.items():
                if t.state is TripState.ARMED and b in settings.targets(s):
                    t.state, t.note = TripState.UNKNOWN, note
