"""What the per-string trip engine says and does, word for word: every event's type, string,
data and message, each emitted once; the refusals of a person's commands; the state kept for
the next start. Both scopes (string, all), rooms of one, two and three strings.

The engine (bacs_core/manager/safety.py) alone, cycle by cycle, on plain inputs: a relay module
R whose relay n opens string n's breaker and whose input n reads it back (closed = True).
Messages are pinned whole here because Home Assistant shows them as they are.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bacs_core.events import Event, EventType
from bacs_core.manager.breakers import Breaker, RelayState, TripSettings
from bacs_core.manager.safety import (
    Safety,
    SafetyDecision,
    SafetyRecord,
    SafetyRefusedError,
    TripRecord,
)
from bacs_core.snapshot import BreakerState, DeviceRef, TripScope, TripState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
R = DeviceRef("bus1", 40)
OTHER = DeviceRef("bus1", 41)
B1, B2, B3 = Breaker(R, 1, 1, 1), Breaker(R, 2, 2, 2), Breaker(R, 3, 3, 3)
MAIN = Breaker(R, 4, 4)  # names no string: common to every string
HOT1, HOT2, HOT3 = "string 1: block 1 hot", "string 2: block 4 hot", "string 3: block 2 hot"


def engine(
    breakers: tuple[Breaker, ...] = (B1, B2),
    *,
    scope: TripScope = TripScope.STRING,
    delay: float = 0.0,
    verify: int = 3,
    strings: tuple[int, ...] = (1, 2),
) -> Safety:
    return Safety(TripSettings(breakers, delay, verify, scope=scope, strings=strings))


def relays(
    inputs: tuple[bool, ...] = (True,) * 4, outputs: tuple[bool, ...] | None = (False,) * 4
) -> dict[DeviceRef, RelayState]:
    return {R: RelayState(outputs, inputs)}


class Run:
    """Cycles 10 s apart (unless told), every event kept."""

    def __init__(self, safety: Safety) -> None:
        self.safety = safety
        self.t = 0.0
        self.events: list[Event] = []

    def cycle(
        self,
        runaway: dict[int, str] | None = None,
        *,
        modules: dict[DeviceRef, RelayState] | None = None,
        dt: float = 10.0,
    ) -> SafetyDecision:
        self.t += dt
        runaway = runaway or {}
        d = self.safety.update(
            T0 + timedelta(seconds=self.t),
            self.t,
            bool(runaway),
            None,
            bool(runaway),
            relays() if modules is None else modules,
            False,
            runaway_strings=runaway,
            pre_alert_strings=set(runaway),
        )
        self.events += d.events
        return d

    def of(self, kind: EventType) -> list[Event]:
        return [e for e in self.events if e.type is kind]


# -- the runaway, announced per string ---------------------------------------------------------
@pytest.mark.parametrize("scope", [TripScope.STRING, TripScope.ALL])
def test_a_runaway_is_announced_on_its_string_with_the_trip_that_follows(
    scope: TripScope,
) -> None:
    run = Run(engine(scope=scope))
    d = run.cycle({2: HOT2})
    detected = d.events[0]
    assert detected.type is EventType.RUNAWAY_DETECTED and detected.string == 2
    assert detected.data == {"trip": "trip", "string": 2, "scope": scope.value}
    assert detected.message == f"{HOT2} (the breaker trip follows)"
    for _ in range(3):
        run.cycle({2: HOT2}, modules=relays((False,) * 4))
    assert len(run.of(EventType.RUNAWAY_DETECTED)) == 1


def test_a_runaway_on_a_string_already_tripped_says_so() -> None:
    run = Run(engine())
    run.safety.trip(T0, "test", 2)
    d = run.cycle({2: HOT2})
    (detected,) = d.events  # nothing is tripped again
    assert detected.data == {"trip": "already_tripped", "string": 2, "scope": "string"}
    assert detected.message == f"{HOT2} (the breaker trip is already latched)"
    assert run.safety.reason == "manual: test"


def test_a_runaway_with_no_trip_relay_configured_is_announced_and_trips_nothing() -> None:
    run = Run(Safety(TripSettings(strings=(1, 2))))
    d = run.cycle({2: HOT2})
    (detected,) = d.events
    assert detected.string == 2
    assert detected.data == {"trip": "no_trip_relay", "string": 2, "scope": "string"}
    assert detected.message == f"{HOT2} (no trip relay is configured: open it by hand)"
    assert run.safety.state is TripState.DISABLED
    assert d.outputs == {}


def test_without_per_string_inputs_a_runaway_is_taken_as_on_every_string() -> None:
    """The fail-safe reading of a plain ``runaway_confirmed`` (no ``runaway_strings``)."""
    s = engine()
    d = s.update(T0, 10.0, True, "hot", True, relays(), False)
    assert [e.string for e in d.events if e.type is EventType.RUNAWAY_DETECTED] == [1, 2]
    (tripped,) = [e for e in d.events if e.type is EventType.TRIPPED]
    assert tripped.data == {"strings": "1,2", "scope": "string"}
    assert tripped.message == "breaker trip, every string: hot"
    assert tripped.string is None
    assert s.string_state(1) is TripState.TRIPPED and s.string_state(2) is TripState.TRIPPED
    # No string known at all: it is string 1.
    lone = Safety(TripSettings())
    d = lone.update(T0, 10.0, True, None, True, relays(), False)
    (detected,) = d.events
    assert detected.string == 1 and detected.data["string"] == 1
    assert detected.message == "thermal runaway (no trip relay is configured: open it by hand)"


def test_without_per_string_inputs_a_pre_alert_holds_every_string() -> None:
    s = engine()
    s.trip(T0, "test")
    d = s.update(T0, 10.0, False, None, True, relays(), False)
    assert [t.pre_alert for t in d.snapshot.strings] == [True, True]
    assert [t.runaway for t in d.snapshot.strings] == [False, False]
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, string=1)
    assert err.value.code == "runaway_active"
    assert str(err.value) == (
        "the thermal-runaway condition still holds on string 1: let the battery cool and find "
        "the cause before closing the breaker"
    )
    d = s.update(T0, 20.0, False, None, False, relays(), False)
    assert [t.pre_alert for t in d.snapshot.strings] == [False, False]
    s.reset(T0, string=1)
    assert s.string_state(1) is TripState.ARMED


def test_a_runaway_on_a_string_the_trip_did_not_know_latches_it() -> None:
    run = Run(engine())
    d = run.cycle({3: HOT3})
    detected, tripped = d.events
    assert detected.string == 3 and detected.data["trip"] == "no_trip_relay"
    assert detected.message == (
        f"{HOT3} (string 3 has no trip breaker: the trip latches; open it by hand)"
    )
    assert tripped.type is EventType.TRIPPED and tripped.string == 3
    assert tripped.data == {"strings": "3", "scope": "string"}
    assert tripped.message == f"breaker trip, string 3: {HOT3}"
    assert run.safety.string_state(3) is TripState.TRIPPED
    assert [t.string for t in d.snapshot.strings] == [1, 2, 3]
    assert d.outputs == {R: {1: False, 2: False}}
    assert run.safety.string_state(9) is None


def test_a_string_the_trip_did_not_know_takes_the_stored_state_for_other_strings() -> None:
    s = engine()
    s.restore(SafetyRecord({1: TripRecord(TripState.ARMED)}, TripRecord(TripState.ARMED)))
    Run(s).cycle({3: HOT3})
    assert s.string_state(3) is TripState.TRIPPED
    assert s.record().strings[3] == TripRecord(
        TripState.TRIPPED, HOT3, T0 + timedelta(seconds=10), None
    )


# -- starting and commanding trips ---------------------------------------------------------------
def test_a_string_already_tripped_does_not_stop_the_next_one_tripping() -> None:
    run = Run(engine())
    run.safety.trip(T0, "test", 1)
    d = run.cycle({1: HOT1, 2: HOT2})
    (tripped,) = [e for e in d.events if e.type is EventType.TRIPPED]
    assert tripped.data == {"strings": "2", "scope": "string"}
    assert tripped.message == f"breaker trip, string 2: {HOT2}"
    assert run.safety.string_state(2) is TripState.TRIPPED
    assert run.safety.record().strings[1].reason == "manual: test"


def test_two_strings_tripped_at_once_one_event_with_both_reasons() -> None:
    run = Run(engine((B1, B2, B3), strings=(1, 2, 3)))
    d = run.cycle({1: HOT1, 3: HOT3})
    (tripped,) = [e for e in d.events if e.type is EventType.TRIPPED]
    assert tripped.string is None
    assert tripped.data == {"strings": "1,3", "scope": "string"}
    assert tripped.message == f"breaker trip, strings 1, 3: {HOT1}; {HOT3}"
    assert d.snapshot.reason == f"{HOT1}; {HOT3}"
    assert d.outputs == {R: {1: True, 2: False, 3: True}}


def test_one_reason_for_many_strings_is_said_once() -> None:
    run = Run(engine(scope=TripScope.ALL))
    d = run.cycle({2: HOT2})
    (tripped,) = [e for e in d.events if e.type is EventType.TRIPPED]
    assert tripped.message == f"breaker trip, every string: {HOT2}"
    assert tripped.data == {"strings": "1,2", "scope": "all"}


def test_in_a_room_of_one_string_the_string_is_not_named() -> None:
    run = Run(engine((Breaker(R, 1, 1),), strings=(1,), delay=30.0))
    d = run.cycle({1: HOT1})
    assert d.events[1].message == f"breaker opens in 30 s: {HOT1}"
    d = run.cycle({1: HOT1})
    assert d.events[0].message == "breaker opens in 20 s"
    d = run.cycle(dt=20.0)
    assert d.events[0].message == f"breaker trip: {HOT1}"
    (reset,) = run.safety.reset(T0)
    assert reset.message == "breaker trip reset by a person"


# -- countdowns ----------------------------------------------------------------------------------
def test_a_countdown_of_one_string_names_it_in_every_event() -> None:
    run = Run(engine(delay=30.0))
    d = run.cycle({2: HOT2})
    countdown = d.events[1]
    assert (countdown.type, countdown.string) == (EventType.TRIP_COUNTDOWN, 2)
    assert countdown.data == {"seconds": 30.0, "strings": "2"}
    assert countdown.message == f"breaker of string 2 opens in 30 s: {HOT2}"
    d = run.cycle({2: HOT2})
    (running,) = d.events
    assert (running.type, running.string) == (EventType.TRIP_COUNTDOWN, 2)
    assert running.data == {"seconds": 20.0, "strings": "2"}
    assert running.message == "breaker of string 2 opens in 20 s"
    d = run.cycle(dt=20.0)
    (tripped,) = d.events
    assert tripped.string == 2 and tripped.message == f"breaker trip, string 2: {HOT2}"
    assert Counter(e.type for e in run.events) == Counter(
        {EventType.RUNAWAY_DETECTED: 1, EventType.TRIP_COUNTDOWN: 2, EventType.TRIPPED: 1}
    )


def test_countdowns_of_two_strings_started_together_run_as_one() -> None:
    run = Run(engine(delay=30.0))
    d = run.cycle({1: HOT1, 2: HOT2})
    (countdown,) = [e for e in d.events if e.type is EventType.TRIP_COUNTDOWN]
    assert countdown.string is None
    assert countdown.data == {"seconds": 30.0, "strings": "1,2"}
    assert countdown.message == f"breaker of every string opens in 30 s: {HOT1}; {HOT2}"
    d = run.cycle({1: HOT1, 2: HOT2})
    (running,) = d.events
    assert running.string is None
    assert running.data == {"seconds": 20.0, "strings": "1,2"}
    assert running.message == "breaker of every string opens in 20 s"
    d = run.cycle(dt=20.0)
    (tripped,) = d.events
    assert tripped.string is None and tripped.data == {"strings": "1,2", "scope": "string"}
    assert tripped.message == f"breaker trip, every string: {HOT1}; {HOT2}"


def test_countdowns_of_two_strings_started_apart_are_told_apart() -> None:
    run = Run(engine((B1, B2, B3), strings=(1, 2, 3), delay=30.0))
    run.cycle({1: HOT1})  # t = 10: string 1 until 40
    d = run.cycle({1: HOT1, 3: HOT3})  # t = 20: string 3 until 50
    assert [(e.type, e.string, e.message) for e in d.events] == [
        (EventType.RUNAWAY_DETECTED, 3, f"{HOT3} (the breaker trip follows)"),
        (EventType.TRIP_COUNTDOWN, 3, f"breaker of string 3 opens in 30 s: {HOT3}"),
        (EventType.TRIP_COUNTDOWN, 1, "breaker of string 1 opens in 20 s"),
    ]
    d = run.cycle({1: HOT1, 3: HOT3})  # t = 30
    assert [(e.string, e.data["seconds"], e.message) for e in d.events] == [
        (1, 10.0, "breaker of string 1 opens in 10 s"),
        (3, 20.0, "breaker of string 3 opens in 20 s"),
    ]


def test_a_countdown_from_an_unknown_state_clears_its_note() -> None:
    s = engine(delay=30.0)
    s.mark_unknown("state file damaged")
    Run(s).cycle({2: HOT2})
    assert s.string_state(2) is TripState.COUNTDOWN
    assert s.record().strings[2] == TripRecord(TripState.COUNTDOWN, HOT2, None, None)
    assert s.record().strings[1] == TripRecord(TripState.UNKNOWN, None, None, "state file damaged")


# -- verification per string ---------------------------------------------------------------------
def test_the_breaker_of_one_string_that_does_not_open_and_then_does() -> None:
    run = Run(engine(verify=3))
    run.safety.trip(T0, "test", 2)
    for _ in range(3):
        run.cycle()
    assert run.safety.string_state(2) is TripState.TRIPPED
    d = run.cycle()
    (failed,) = d.events
    assert (failed.type, failed.string) == (EventType.TRIP_FAILED, 2)
    assert failed.data == {"strings": "2"}
    assert failed.message == (
        "string 2: breaker did not report open (bus1/40 relay 2): open it by hand, check the "
        "trip coil and its wiring"
    )
    assert run.safety.string_state(1) is TripState.ARMED
    string_2_open = relays((True, False, True, True))
    run.cycle(modules=string_2_open)
    d = run.cycle(modules=string_2_open)  # two polls agree
    (after_all,) = d.events
    assert (after_all.type, after_all.string) == (EventType.TRIPPED, 2)
    assert after_all.data == {"strings": "2", "scope": "string"}
    assert after_all.message == "string 2: breaker reported open after all"
    assert Counter(e.type for e in run.events) == Counter(
        {EventType.TRIP_FAILED: 1, EventType.TRIPPED: 1}
    )


def test_a_failed_trip_names_every_breaker_of_its_string() -> None:
    run = Run(engine((B1, B2, MAIN), scope=TripScope.ALL, verify=1))
    run.safety.trip(T0, "test", 2)
    run.cycle()
    (failed,) = run.cycle().events
    assert failed.message == (
        "string 2: breaker did not report open (bus1/40 relay 2, bus1/40 relay 4): open it by "
        "hand, check the trip coil and its wiring"
    )


def test_a_silent_relay_module_is_not_a_stuck_breaker() -> None:
    run = Run(engine(verify=1))
    run.safety.trip(T0, "test", 2)
    for _ in range(10):
        d = run.cycle(modules={})
    assert run.safety.string_state(2) is TripState.TRIPPED
    assert run.events == []
    assert d.snapshot.string(2).breaker is BreakerState.UNKNOWN  # type: ignore[union-attr]
    run.cycle()
    run.cycle()
    assert run.safety.string_state(2) is TripState.FAILED  # it answers: counted now


# -- what the snapshot says of each string's path ------------------------------------------------
def test_each_strings_path_is_its_own_relay_module() -> None:
    s = engine((B1, Breaker(OTHER, 1, 1, 2)))
    d = Run(s).cycle()  # R answers, OTHER is silent
    assert d.snapshot.string(1).breaker_path_available is True  # type: ignore[union-attr]
    assert d.snapshot.string(2).breaker_path_available is False  # type: ignore[union-attr]
    assert d.snapshot.breaker_path_available is False
    none = Run(Safety(TripSettings(strings=(1, 2)))).cycle()  # no trip: nothing to wait for
    assert [t.breaker_path_available for t in none.snapshot.strings] == [True, True]
    assert none.snapshot.breaker_path_available is True


def test_a_fresh_trip_assumes_no_path_until_its_modules_answer() -> None:
    assert engine().path_available is False
    assert Safety(TripSettings()).path_available is True


# -- a person's commands ------------------------------------------------------------------------
def test_a_manual_trip_of_a_string_with_no_breaker_is_refused() -> None:
    s = engine(strings=(1, 2, 3))
    with pytest.raises(
        SafetyRefusedError, match=r"^string 3 has no trip breaker: open it by hand$"
    ):
        s.trip(T0, "test", 3)
    with pytest.raises(SafetyRefusedError) as err:
        s.trip(T0, "test", 3)
    assert err.value.code == "no_trip_relay"
    assert s.string_state(3) is TripState.ARMED
    assert [e.data["strings"] for e in s.trip(T0, "test")] == ["1,2,3"]  # all: the lot latches


def test_the_reset_of_a_string_that_is_not_tripped_names_it() -> None:
    s = engine()
    s.trip(T0, "test", 2)
    with pytest.raises(SafetyRefusedError, match=r"^string 1's breaker trip is not active$"):
        s.reset(T0, string=1)


def test_reset_events_name_their_strings_and_the_state_left() -> None:
    s = engine()
    # String 1: its relay energised with no trip recorded (UNKNOWN); string 2 tripped.
    Run(s).cycle(modules=relays(outputs=(True, False, False, False)))
    s.trip(T0, "test", 2)
    assert s.string_state(1) is TripState.UNKNOWN
    (reset,) = s.reset(T0)
    assert reset.string is None
    assert reset.data == {"from": "tripped", "strings": "1,2"}  # the most severe state left
    assert reset.message == "breaker trip reset by a person (every string)"
    s = engine()
    Run(s).cycle(modules=relays(outputs=(False, True, False, False)))
    (reset,) = s.reset(T0, string=2)
    assert reset.string == 2
    assert reset.data == {"from": "unknown", "strings": "2"}
    assert reset.message == "unknown trip state confirmed by a person (string 2)"
    s.trip(T0, "test", 2)
    (reset,) = s.reset(T0, string=2)
    assert reset.message == "breaker trip reset by a person (string 2)"
    assert reset.data == {"from": "tripped", "strings": "2"}


def test_reset_of_two_of_three_strings() -> None:
    s = engine((B1, B2, B3), strings=(1, 2, 3))
    s.trip(T0, "a", 1)
    s.trip(T0, "b", 3)
    with pytest.raises(SafetyRefusedError) as err:  # no cycle yet: no breaker read
        s.reset(T0)
    assert err.value.code == "state_unknown"
    assert str(err.value) == (
        "the relay module does not answer, so the breaker state of strings 1, 3 is unknown"
    )
    Run(s).cycle()
    (reset,) = s.reset(T0)
    assert reset.message == "breaker trip reset by a person (strings 1, 3)"
    assert reset.data == {"from": "tripped", "strings": "1,3"}


def test_a_reset_after_the_breakers_were_removed_leaves_the_trip_disabled() -> None:
    s = engine()
    s.trip(T0, "test", 2)
    s.reconfigure(TripSettings(strings=(1, 2)))
    assert s.state is TripState.TRIPPED  # still latched: a person decides
    s.reset(T0, string=2)
    assert s.string_state(2) is TripState.DISABLED
    assert s.state is TripState.DISABLED


# -- what is stored, and an energised relay nobody recorded -------------------------------------
def test_after_a_restore_an_energised_relay_is_the_trip_releasing_it() -> None:
    s = engine()
    s.restore(SafetyRecord({1: TripRecord(TripState.ARMED), 2: TripRecord(TripState.ARMED)}))
    d = Run(s).cycle(modules=relays(outputs=(False, True, False, False)))
    assert s.string_state(2) is TripState.ARMED
    assert d.outputs == {R: {1: False, 2: False}}


def test_after_a_person_confirms_an_unknown_state_the_relay_is_released() -> None:
    s = engine()
    s.mark_unknown("state file damaged")
    s.reset(T0, runaway_active=False, breaker_readable=True)
    d = Run(s).cycle(modules=relays(outputs=(False, True, False, False)))
    assert s.string_state(2) is TripState.ARMED
    assert d.outputs == {R: {1: False, 2: False}}


def test_state_dict_per_string() -> None:
    s = engine(scope=TripScope.ALL)
    s.trip(T0, "test", 2)
    assert s.state_dict() == {
        "state": "tripped",
        "scope": "all",
        "strings": {
            "1": {"state": "armed", "reason": None},
            "2": {"state": "tripped", "reason": "manual: test"},
        },
    }
