"""Which breaker a string's trip opens, which strings expect one, and the breakers' feedback
as it is believed: the pure rules of bacs_core/manager/breakers.py, and what the trip engine
makes of them.

A room of two strings on one relay module R (relay n opens string n, its input n reads it
back) plus, where a test says so, a common main breaker on relay 3 that names no string.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bacs_core.events import EventType
from bacs_core.manager.breakers import Breaker, Feedback, RelayState, TripSettings
from bacs_core.manager.safety import Safety
from bacs_core.snapshot import BreakerState, DeviceRef, TripScope, TripState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
R = DeviceRef("bus1", 40)
OTHER = DeviceRef("bus1", 41)
B1 = Breaker(R, 1, 1, 1)
B2 = Breaker(R, 2, 2, 2)
MAIN = Breaker(R, 3, 3)  # names no string: common to every string


def settings(
    breakers: tuple[Breaker, ...] = (B1, B2),
    scope: TripScope = TripScope.STRING,
    expected: int = 0,
    strings: tuple[int, ...] = (1, 2),
) -> TripSettings:
    return TripSettings(breakers, scope=scope, expected=expected, strings=strings)


def relays(inputs: tuple[bool, ...] = (True,) * 4) -> dict[DeviceRef, RelayState]:
    return {R: RelayState((False,) * 4, inputs)}


# -- which breakers a string's trip opens ----------------------------------------------------
def test_a_strings_own_breakers_with_scope_string_and_the_main_one_too_with_scope_all() -> None:
    one = settings((B1, B2, MAIN))
    assert one.targets(1) == (B1,)
    assert one.targets(2) == (B2,)
    every = settings((B1, B2, MAIN), TripScope.ALL)
    assert every.targets(1) == (B1, MAIN)
    assert every.targets(2) == (B2, MAIN)
    # A string with no breaker of its own: the common one, whatever the scope.
    assert settings((B1, MAIN)).targets(2) == (MAIN,)
    assert settings((B1, MAIN), TripScope.ALL).targets(2) == (MAIN,)
    assert settings((B1,)).targets(2) == ()


@pytest.mark.parametrize(
    ("scope", "outputs"),
    [
        (TripScope.STRING, {1: True, 2: False, 3: False}),
        (TripScope.ALL, {1: True, 2: False, 3: True}),
    ],
)
def test_a_manual_trip_of_one_string_energises_its_breakers_as_the_scope_says(
    scope: TripScope, outputs: dict[int, bool]
) -> None:
    s = Safety(settings((B1, B2, MAIN), scope))
    s.trip(T0, "test", 1)
    assert s.outputs() == {R: outputs}
    assert s.string_state(1) is TripState.TRIPPED
    assert s.string_state(2) is TripState.ARMED


# -- which strings expect a breaker ------------------------------------------------------------
def test_a_string_expects_a_breaker_when_it_has_one_or_the_auto_trip_counts_it() -> None:
    named = settings()  # configured, named breakers: nothing expected beyond them
    assert named.expects(1) and named.expects(2)
    assert not named.expects(3)
    auto = settings((B1,), expected=2)  # string 2's relay module not found yet
    assert auto.expects(1) and auto.expects(2)
    assert not auto.expects(3)


def _announced(s: Safety, string: int) -> tuple[str, str]:
    d = s.update(
        T0,
        10.0,
        True,
        None,
        True,
        relays(),
        False,
        runaway_strings={string: f"string {string}: block 1 hot"},
        pre_alert_strings={string},
    )
    (event,) = [e for e in d.events if e.type is EventType.RUNAWAY_DETECTED]
    assert event.string == string
    return str(event.data["trip"]), event.message


def test_a_runaway_on_a_string_with_its_own_breaker_says_the_trip_follows() -> None:
    follows, message = _announced(Safety(settings()), 2)
    assert follows == "trip"
    assert message == "string 2: block 1 hot (the breaker trip follows)"


def test_a_runaway_on_the_string_whose_breaker_is_not_found_yet_waits_for_it() -> None:
    s = Safety(settings((B1,), expected=2))
    follows, message = _announced(s, 2)
    assert follows == "path_unavailable"
    assert message == (
        "string 2: block 1 hot (the trip relay module does not answer: the breaker opens when "
        "it does; open it by hand now)"
    )
    assert s.string_state(2) is TripState.TRIPPED  # latched, applied when it answers


def test_a_runaway_on_a_string_no_breaker_serves_is_latched_and_left_to_a_person() -> None:
    s = Safety(settings((B1,), strings=(1, 2, 3), expected=2))
    follows, message = _announced(s, 3)
    assert follows == "no_trip_relay"
    assert (
        message
        == "string 3: block 1 hot (string 3 has no trip breaker: the trip latches; open it by hand)"
    )


# -- which relay output belongs to a breaker of a latched string -----------------------------
def test_holds_names_exactly_the_output_of_a_latched_strings_breaker() -> None:
    s = Safety(settings((B1, B2)))
    s.trip(T0, "test", 1)
    assert s.holds(R, 1)
    assert not s.holds(R, 2)  # string 2's breaker, string 2 armed
    assert not s.holds(R, 3)  # no breaker on that output
    assert not s.holds(OTHER, 1)  # the same channel on another module
    assert s.settings.breaker_of(R, 2) == B2
    assert s.settings.breaker_of(R, 3) is None
    assert s.settings.breaker_of(OTHER, 1) is None


# -- the feedback inputs ------------------------------------------------------------------------
def test_an_unreadable_breaker_does_not_hide_the_ones_after_it() -> None:
    first = Breaker(OTHER, 1, 1, 1)  # its module did not answer
    second = Breaker(R, 2, 2, 2)
    out = Feedback().read((first, second), {R: RelayState(None, (True, False))})
    assert out == {first: None, second: False}


def test_a_string_whose_breaker_is_readable_is_not_unknown_for_the_other_ones_module() -> None:
    first = Breaker(OTHER, 1, 1, 1)
    second = Breaker(R, 2, 2, 2)
    s = Safety(settings((first, second)))
    d = s.update(T0, 10.0, False, None, False, {R: RelayState(None, (True, True))}, False)
    assert d.snapshot.string(1).breaker is BreakerState.UNKNOWN  # type: ignore[union-attr]
    assert d.snapshot.string(2).breaker is BreakerState.CLOSED  # type: ignore[union-attr]
    assert d.snapshot.breaker is BreakerState.UNKNOWN


def _believed(readings: list[bool]) -> list[bool | None]:
    feedback = Feedback()
    return [feedback.read((B1,), relays((value,)))[B1] for value in readings]


def test_a_change_is_believed_on_the_second_poll_that_agrees() -> None:
    assert _believed([True, False, False]) == [True, True, False]
    assert _believed([True, False, True, False, False]) == [True, True, True, True, False]


def test_after_a_believed_change_one_poll_back_is_doubted_again() -> None:
    # Closed, then open (two polls agree), then one corrupted poll says closed: still open.
    assert _believed([True, False, False, True, False]) == [True, True, False, False, False]
    # ... and two polls saying closed are believed.
    assert _believed([True, False, False, True, True]) == [True, True, False, False, True]
