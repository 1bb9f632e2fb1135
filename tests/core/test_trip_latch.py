"""Each string's latch (bacs_core/manager/latch.py) at its edges: what is stored and restored,
word for word; why a reset is refused and for which strings; the snapshot per string and of
the whole; which strings a command chooses; a trip relay found energised with no trip
recorded; strings that come and go.

The trip engine on plain inputs: relay module R, relay n opens string n, input n reads it back
(closed = True); OTHER is a second module, silent unless a test says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bacs_core.manager.breakers import Breaker, RelayState, TripSettings
from bacs_core.manager.latch import StringLatch, affix, strings_text
from bacs_core.manager.safety import (
    Safety,
    SafetyDecision,
    SafetyRecord,
    SafetyRefusedError,
    TripRecord,
)
from bacs_core.snapshot import DeviceRef, TripScope, TripState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
R = DeviceRef("bus1", 40)
OTHER = DeviceRef("bus1", 41)
B1, B2, B3 = Breaker(R, 1, 1, 1), Breaker(R, 2, 2, 2), Breaker(R, 3, 3, 3)


def engine(
    breakers: tuple[Breaker, ...] = (B1, B2),
    *,
    scope: TripScope = TripScope.STRING,
    strings: tuple[int, ...] = (1, 2),
    verify: int = 3,
) -> Safety:
    return Safety(TripSettings(breakers, 0.0, verify, scope=scope, strings=strings))


def relays(
    inputs: tuple[bool, ...] | None = (True,) * 4,
    outputs: tuple[bool, ...] | None = (False,) * 4,
) -> dict[DeviceRef, RelayState]:
    return {R: RelayState(outputs, inputs)}


def cycle(
    s: Safety,
    t: float = 10.0,
    runaway: dict[int, str] | None = None,
    modules: dict[DeviceRef, RelayState] | None = None,
) -> SafetyDecision:
    runaway = runaway or {}
    return s.update(
        T0 + timedelta(seconds=t),
        t,
        bool(runaway),
        None,
        bool(runaway),
        relays() if modules is None else modules,
        False,
        runaway_strings=runaway,
        pre_alert_strings=set(runaway),
    )


# -- words ----------------------------------------------------------------------------------------
def test_strings_in_words() -> None:
    assert strings_text([2], [1, 2]) == "string 2"
    assert strings_text([3, 1], [1, 2, 3]) == "strings 1, 3"
    assert strings_text([2, 1], [1, 2]) == "every string"
    assert strings_text([1], [1]) == ""  # a room of one string: naming it says nothing
    assert strings_text([], []) == ""
    assert affix("string 2") == " string 2"
    assert affix("string 2", " of ") == " of string 2"
    assert affix("string 2", " (", ")") == " (string 2)"
    assert affix("") == "" and affix("", " (", ")") == ""


# -- stored and restored --------------------------------------------------------------------------
def test_every_field_of_every_string_is_stored_and_restored() -> None:
    record = SafetyRecord(
        {
            1: TripRecord(TripState.TRIPPED, "manual: test", T0, None),
            2: TripRecord(TripState.UNKNOWN, None, None, "state file damaged"),
            3: TripRecord(TripState.FAILED, "string 3: block 2 hot", T1, "recovered"),
        },
        TripRecord(TripState.TRIPPED, "old trip", T0, "migrated"),
    )
    s = engine((B1, B2, B3), strings=(1, 2, 3))
    s.restore(record)
    assert s.record() == record
    d = cycle(s)
    snap = d.snapshot
    assert [(t.state, t.reason, t.tripped_at, t.note) for t in snap.strings] == [
        (TripState.TRIPPED, "manual: test", T0, None),
        (TripState.UNKNOWN, None, None, "state file damaged"),
        (TripState.FAILED, "string 3: block 2 hot", T1, "recovered"),
    ]
    assert snap.state_note == "state file damaged"
    assert snap.tripped_at == T0
    assert s.tripped_at == T0


def test_a_restored_countdown_trips_and_keeps_what_it_knew() -> None:
    record = TripRecord(TripState.COUNTDOWN, "string 1: block 1 hot", T0, "note")
    latch = StringLatch.restored(record, True)
    assert latch.record() == TripRecord(TripState.TRIPPED, "string 1: block 1 hot", T0, "note")
    armed = TripRecord(TripState.DISABLED, "old", T0, "n")
    assert StringLatch.restored(armed, True).record() == TripRecord(TripState.ARMED, "old", T0, "n")
    assert StringLatch.restored(armed, False).state is TripState.DISABLED


def test_the_state_for_other_strings_is_stored_armed_whatever_the_breakers() -> None:
    for settings in (TripSettings((B1,), strings=(1,)), TripSettings()):
        s = Safety(settings)
        s.restore(SafetyRecord({}, TripRecord(TripState.DISABLED)))
        assert s.record().others == TripRecord(TripState.ARMED)


def test_a_stored_armed_string_restores_armed_when_a_trip_is_configured() -> None:
    s = engine()
    s.restore(SafetyRecord({2: TripRecord(TripState.DISABLED)}, TripRecord(TripState.ARMED)))
    assert s.string_state(2) is TripState.ARMED
    assert s.state is TripState.ARMED
    off = Safety(TripSettings(strings=(1, 2)))
    off.restore(SafetyRecord({2: TripRecord(TripState.ARMED)}, TripRecord(TripState.ARMED)))
    assert off.string_state(2) is TripState.DISABLED
    assert off.state is TripState.DISABLED


def test_a_trip_restored_before_any_string_is_known() -> None:
    """No breaker and no string known yet (the topology comes later): the stored trip is the
    whole state, its reason and time included, and a reset names no string."""
    s = Safety(TripSettings())
    s.restore(SafetyRecord({}, TripRecord(TripState.TRIPPED, "old trip", T0)))
    snap = cycle(s).snapshot
    assert snap.strings == ()
    assert snap.trip_state is TripState.TRIPPED
    assert snap.reason == "old trip"
    assert snap.tripped_at == T0
    assert s.reason == "old trip" and s.tripped_at == T0
    with pytest.raises(SafetyRefusedError, match=r"^no string 1 \(strings: none\)$"):
        s.reset(T0, string=1)


def test_an_old_whole_room_trip_reset_string_by_string_leaves_nothing_latched() -> None:
    s = engine()
    s.restore(SafetyRecord({}, TripRecord(TripState.TRIPPED, "old trip", T0)))
    snap = cycle(s).snapshot
    assert [t.state for t in snap.strings] == [TripState.TRIPPED] * 2
    assert snap.reason == "old trip" and snap.tripped_at == T0
    s.reset(T0, string=1)
    s.reset(T0, string=2)
    snap = cycle(s, 20.0).snapshot
    assert snap.trip_state is TripState.ARMED
    assert snap.reason is None  # the stored "others" trip is no string's reason
    assert snap.tripped_at is None
    assert s.record().others.state is TripState.TRIPPED  # a string found later still latches


def test_the_stored_state_note_shows_before_any_string_is_known() -> None:
    s = Safety(TripSettings())
    s.mark_unknown("state file damaged")
    snap = cycle(s).snapshot
    assert snap.trip_state is TripState.UNKNOWN
    assert snap.state_note == "state file damaged"


def test_an_unreadable_state_makes_every_string_unknown_with_its_note() -> None:
    s = engine()
    cycle(s)
    s.mark_unknown("state file damaged")
    assert s.record() == SafetyRecord(
        {
            1: TripRecord(TripState.UNKNOWN, None, None, "state file damaged"),
            2: TripRecord(TripState.UNKNOWN, None, None, "state file damaged"),
        },
        TripRecord(TripState.UNKNOWN, note="state file damaged"),
    )
    d = cycle(s, 20.0)
    assert d.outputs == {}  # every relay left as it is


# -- the whole, from its strings ------------------------------------------------------------------
def test_the_whole_speaks_with_the_most_severe_strings_reason() -> None:
    s = engine(verify=1)
    s.trip(T0, "first", 1)
    cycle(s, 10.0, modules=relays((False, True, True, True)))  # string 1 opens
    s.trip(T1, "second", 2)
    cycle(s, 20.0, modules=relays((False, True, True, True)))
    d = cycle(s, 30.0, modules=relays((False, True, True, True)))  # string 2 stuck
    assert s.string_state(2) is TripState.FAILED and s.string_state(1) is TripState.TRIPPED
    assert s.reason == "manual: second"
    assert s.tripped_at == T0
    assert d.snapshot.reason == "manual: first; manual: second"
    assert d.snapshot.tripped_at == T0


# -- why a reset is refused ------------------------------------------------------------------
def test_a_reset_refused_for_the_hot_string_names_it() -> None:
    s = engine()
    s.trip(T0, "test")
    cycle(s, 10.0, {2: "string 2: block 4 hot"})
    for string in (2, None):
        with pytest.raises(SafetyRefusedError) as err:
            s.reset(T0, string=string)
        assert err.value.code == "runaway_active"
        assert str(err.value) == (
            "the thermal-runaway condition still holds on string 2: let the battery cool and "
            "find the cause before closing the breaker"
        )
    s.reset(T0, string=1)
    assert s.string_state(1) is TripState.ARMED


def test_with_scope_all_one_hot_string_holds_the_others_reset() -> None:
    s = engine(scope=TripScope.ALL)
    cycle(s, 10.0, {2: "string 2: block 4 hot"})
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, string=1)
    assert str(err.value).startswith("the thermal-runaway condition still holds on string 1:")
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0)
    assert str(err.value).startswith("the thermal-runaway condition still holds on every string:")


def test_a_reset_refused_for_an_unreadable_breaker_names_its_string() -> None:
    s = engine((B1, Breaker(OTHER, 1, 1, 2)))
    s.trip(T0, "test")
    cycle(s)  # R answers, OTHER does not
    for string in (2, None):
        with pytest.raises(SafetyRefusedError) as err:
            s.reset(T0, string=string)
        assert err.value.code == "state_unknown"
        assert str(err.value) == (
            "the relay module does not answer, so the breaker state of string 2 is unknown"
        )
    s.reset(T0, string=1)
    assert s.string_state(1) is TripState.ARMED


# -- which strings a command chooses --------------------------------------------------------------
def test_a_command_for_a_string_that_does_not_exist_lists_those_that_do() -> None:
    s = engine()
    s.trip(T0, "test")
    with pytest.raises(SafetyRefusedError, match=r"^no string 5 \(strings: 1, 2\)$") as err:
        s.reset(T0, string=5)
    assert err.value.code == "unknown_string"
    with pytest.raises(SafetyRefusedError, match=r"^no string 5 \(strings: 1, 2\)$"):
        s.trip(T0, "test", 5)


def test_a_latched_string_the_topology_lost_stays_and_an_armed_one_goes() -> None:
    s = engine((B1, B2, B3), strings=(1, 2, 3))
    s.trip(T0, "test", 2)
    s.reconfigure(TripSettings((B1,), strings=(1,)))
    d = cycle(s)
    assert [t.string for t in d.snapshot.strings] == [1, 2]  # 3 armed: gone; 2 latched: kept
    assert s.state is TripState.TRIPPED
    assert set(s.state_dict()["strings"]) == {"1", "2"}
    s.reset(T0, string=2, breaker_readable=True)
    assert [t.string for t in cycle(s, 20.0).snapshot.strings] == [1]


# -- a trip relay energised with no trip recorded -------------------------------------------------
def test_an_energised_relay_with_no_record_makes_its_string_unknown_and_says_why() -> None:
    s = engine()
    d = cycle(s, modules=relays(outputs=(False, True, False, False)))
    assert s.string_state(2) is TripState.UNKNOWN and s.string_state(1) is TripState.ARMED
    assert d.snapshot.string(2).note == (  # type: ignore[union-attr]
        "trip relay bus1/40 channel 2 is energised but no trip is recorded (state file missing?)"
    )
    assert d.snapshot.state_note == d.snapshot.string(2).note  # type: ignore[union-attr]


def test_each_breaker_is_looked_at_once() -> None:
    s = engine()
    cycle(s, modules=relays(outputs=(False, True, False, False)))
    s.reset(T0, string=2)
    d = cycle(s, 20.0, modules=relays(outputs=(False, True, False, False)))  # still energised
    assert s.string_state(2) is TripState.ARMED
    assert d.outputs == {R: {1: False, 2: False}}  # released now


def test_a_silent_module_does_not_hide_the_next_breakers_energised_relay() -> None:
    s = engine((Breaker(OTHER, 1, 1, 1), B2))
    cycle(s, modules=relays(outputs=(False, True, False, False)))
    assert s.string_state(2) is TripState.UNKNOWN
    assert s.string_state(1) is TripState.ARMED


def test_the_last_output_of_a_module_is_looked_at_too() -> None:
    s = engine((Breaker(R, 4, 4, 1),), strings=(1,))
    cycle(s, modules=relays(outputs=(False, False, False, True)))
    assert s.string_state(1) is TripState.UNKNOWN
    short = engine((Breaker(R, 4, 4, 1),), strings=(1,))
    cycle(short, modules=relays(outputs=(True, True, True)))  # no output 4: nothing to see
    assert short.string_state(1) is TripState.ARMED
    unread = engine((Breaker(R, 4, 4, 1),), strings=(1,))
    cycle(unread, modules=relays(outputs=None))
    assert unread.string_state(1) is TripState.ARMED
