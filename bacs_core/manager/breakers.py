"""The breakers the trip drives: which string each one opens, the trip settings, and what the
breakers' auxiliary contacts are believed to say.

A breaker names its string: relay n of an auto-wired relay module opens string n; a
configured breaker may name one (``string``). A breaker that names none is common to every
string (a main battery breaker): it opens whichever string trips, as a single breaker did
before strings were told apart. With ``scope = string`` a string's trip opens its own
breakers (the common ones when it has none); with ``scope = all`` a trip on any string opens
every breaker.

Breaker feedback is read over links that may have no CRC (Modbus TCP): an input that
changes is believed on the second poll that agrees, so one corrupted poll never turns
TRIPPED into FAILED nor reports a closed breaker open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from ..snapshot import BreakerState, DeviceRef, TripScope

__all__ = [
    "Breaker",
    "Feedback",
    "LostBusPolicy",
    "RelayState",
    "TripScope",
    "TripSettings",
    "breaker_state",
]


class LostBusPolicy(StrEnum):
    HOLD = "hold"  # keep the state, do not trip: the runaway may not be real
    TRIP = "trip"  # blind for too long: open the breaker while the relay still answers


@dataclass(frozen=True, slots=True)
class Breaker:
    relay: DeviceRef
    channel: int  # 1-based relay output that opens the breaker
    feedback_input: int  # 1-based digital input: closed = breaker closed
    string: int | None = None  # the string it opens; None: common to every string


@dataclass(frozen=True, slots=True)
class RelayState:
    relays: tuple[bool, ...] | None
    inputs: tuple[bool, ...] | None


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
    scope: TripScope = TripScope.STRING
    strings: tuple[int, ...] = ()  # the strings the topology knows (1-based)

    @property
    def wanted(self) -> int:
        return max(self.expected, len(self.breakers))

    @property
    def string_indices(self) -> tuple[int, ...]:
        """Every string the trip watches: those known and those a breaker names. A trip
        with no string known yet watches one (a room with a breaker is at least a string)."""
        named = {b.string for b in self.breakers if b.string is not None}
        indices = tuple(sorted(set(self.strings) | named))
        return indices or ((1,) if self.wanted else ())

    def targets(self, string: int) -> tuple[Breaker, ...]:
        """The breakers a trip of ``string`` opens and verifies."""
        own = tuple(b for b in self.breakers if b.string == string)
        common = tuple(b for b in self.breakers if b.string is None)
        if self.scope is TripScope.ALL:
            return own + common
        return own or common

    def expects(self, string: int) -> bool:
        """Whether the string has, or should have, a breaker (auto-trip: every string, its
        relay module maybe not found yet)."""
        return bool(self.targets(string)) or string <= self.expected

    def breaker_of(self, relay: DeviceRef, channel: int) -> Breaker | None:
        return next((b for b in self.breakers if b.relay == relay and b.channel == channel), None)


def breaker_state(
    breakers: Iterable[Breaker], closed: Mapping[Breaker, bool | None]
) -> BreakerState:
    """OPEN only when every breaker reads open: one closed breaker still connects a battery.
    UNKNOWN with no breaker or one that cannot be read."""
    states = [closed.get(b) for b in breakers]
    if not states or any(s is None for s in states):
        return BreakerState.UNKNOWN
    return BreakerState.CLOSED if any(states) else BreakerState.OPEN


class Feedback:
    """The breakers' auxiliary inputs as believed: the first reading as read, a change only
    when the next poll agrees."""

    def __init__(self) -> None:
        self._inputs: dict[tuple[DeviceRef, int], bool] = {}
        self._doubt: dict[tuple[DeviceRef, int], bool] = {}  # a change seen once

    def read(
        self, breakers: Iterable[Breaker], relays: Mapping[DeviceRef, RelayState]
    ) -> dict[Breaker, bool | None]:
        """Each breaker closed (True), open (False) or unreadable (None) this cycle."""
        out: dict[Breaker, bool | None] = {}
        seen: dict[tuple[DeviceRef, int], bool] = {}  # one belief step per input and cycle
        for b in breakers:
            r = relays.get(b.relay)
            if r is None or r.inputs is None or len(r.inputs) < b.feedback_input:
                out[b] = None
                continue
            key = (b.relay, b.feedback_input)
            if key not in seen:
                seen[key] = self._believe(key, r.inputs[b.feedback_input - 1])
            out[b] = seen[key]
        return out

    def _believe(self, key: tuple[DeviceRef, int], value: bool) -> bool:
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
