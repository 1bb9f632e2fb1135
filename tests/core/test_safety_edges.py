"""The breaker trip at its edges: trip, reset and trip again; breakers on different relays and
inputs; every event asserted and each emitted exactly once; the escalation counted afresh for
every trip; the lost-bus policy at its timeout; persistence of the latch.

The trip is a pure engine: plain inputs each cycle (runaway confirmed?, relay states, blind?)
and plain decisions (relay outputs, events, a snapshot). Messages are not pinned word for word,
only that they carry the facts a person needs (the reason, the seconds left).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bacs_core.events import Event, EventType
from bacs_core.manager.breakers import Feedback, breaker_state
from bacs_core.manager.safety import (
    Breaker,
    LostBusPolicy,
    RelayState,
    Safety,
    SafetyDecision,
    SafetyRefusedError,
    TripRecord,
    TripSettings,
)
from bacs_core.snapshot import BreakerState, DeviceRef, TripState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
R1 = DeviceRef("bus1", 67)
R2 = DeviceRef("bus2", 68)


def relay(inputs: tuple[bool, ...] | None, outputs: tuple[bool, ...] | None = None) -> RelayState:
    return RelayState(outputs if outputs is not None else (False,) * 4, inputs)


def closed() -> dict[DeviceRef, RelayState]:
    return {R1: relay((True,) * 4)}


def opened() -> dict[DeviceRef, RelayState]:
    return {R1: relay((False,) * 4)}


def make(
    *,
    delay: float = 0.0,
    verify: int = 3,
    breakers: tuple[Breaker, ...] = (Breaker(R1, 2, 3),),
    policy: LostBusPolicy = LostBusPolicy.HOLD,
    timeout: float = 300.0,
) -> Safety:
    return Safety(TripSettings(breakers, delay, verify, policy, timeout))


class Run:
    """Drives a Safety cycle by cycle, 10 s apart, and keeps every event it emitted."""

    def __init__(self, safety: Safety) -> None:
        self.safety = safety
        self.now_s = 0.0
        self.events: list[Event] = []

    def cycle(
        self,
        runaway: bool = False,
        relays: dict[DeviceRef, RelayState] | None = None,
        *,
        reason: str | None = "string 1: block 3 16.0 K above ambient",
        pre_alert: bool | None = None,
        blind: bool = False,
        dt: float = 10.0,
    ) -> SafetyDecision:
        self.now_s += dt
        decision = self.safety.update(
            T0 + timedelta(seconds=self.now_s),
            self.now_s,
            runaway,
            reason if runaway else None,
            runaway if pre_alert is None else pre_alert,
            closed() if relays is None else relays,
            blind,
        )
        self.events += decision.events
        return decision

    def types(self) -> list[EventType]:
        return [e.type for e in self.events]

    def count(self) -> Counter[EventType]:
        return Counter(self.types())


# -- disabled ------------------------------------------------------------------------------


def test_without_a_breaker_the_trip_is_disabled_and_refuses_commands() -> None:
    s = Safety(TripSettings())
    d = s.update(T0, 0.0, True, "hot", True, closed(), False)
    assert s.state is TripState.DISABLED
    assert d.outputs == {}
    trip_events = {EventType.TRIPPED, EventType.TRIP_COUNTDOWN, EventType.TRIP_FAILED}
    assert not [e for e in d.events if e.type in trip_events]
    assert d.snapshot.trip_state is TripState.DISABLED
    assert d.snapshot.breaker is BreakerState.UNKNOWN
    with pytest.raises(SafetyRefusedError) as err:
        s.trip(T0, "test")
    assert err.value.code == "no_trip_relay"
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, runaway_active=False, breaker_readable=True)
    assert err.value.code == "no_trip_relay"


# -- armed, nothing wrong --------------------------------------------------------------------


def test_armed_and_quiet_commands_every_breaker_off_and_says_nothing() -> None:
    two = (Breaker(R1, 2, 3), Breaker(R2, 1, 1))
    run = Run(make(breakers=two))
    relays = {R1: relay((False, False, True, False)), R2: relay((True, False))}
    for _ in range(5):
        d = run.cycle(relays=relays)
    assert d.outputs == {R1: {2: False}, R2: {1: False}}
    assert run.events == []
    snap = d.snapshot
    assert snap.trip_state is TripState.ARMED
    assert snap.breaker is BreakerState.CLOSED
    assert snap.runaway is False
    assert snap.pre_alert is False
    assert snap.countdown_s is None
    assert snap.reason is None
    assert snap.tripped_at is None


def test_pre_alert_is_reported_without_tripping() -> None:
    run = Run(make())
    d = run.cycle(pre_alert=True)
    assert d.snapshot.pre_alert is True
    assert d.snapshot.runaway is False
    assert run.safety.state is TripState.ARMED
    assert run.events == []


# -- the breaker's feedback inputs ---------------------------------------------------------


def test_each_breaker_is_read_on_its_own_relay_and_input() -> None:
    two = (Breaker(R1, 2, 3), Breaker(R2, 1, 1))

    def read(relays: dict[DeviceRef, RelayState]) -> BreakerState:
        return (
            make(breakers=two).update(T0, 0.0, False, None, False, relays, False).snapshot.breaker
        )

    # Input 3 of R1 and input 1 of R2 say closed; every other input says the opposite.
    both = {R1: relay((False, False, True, False)), R2: relay((True, False, False))}
    assert read(both) is BreakerState.CLOSED
    # One open, one closed: the battery is still connected.
    one = {R1: relay((True, True, False, True)), R2: relay((True, False, False))}
    assert read(one) is BreakerState.CLOSED
    other = {R1: relay((False, False, True, False)), R2: relay((False, True, True))}
    assert read(other) is BreakerState.CLOSED
    # Both open.
    none = {R1: relay((True, True, False, True)), R2: relay((False, True, True))}
    assert read(none) is BreakerState.OPEN


def test_an_unreadable_breaker_is_unknown() -> None:
    two = (Breaker(R1, 2, 3), Breaker(R2, 1, 1))

    def read(breakers: tuple[Breaker, ...], relays: dict[DeviceRef, RelayState]) -> BreakerState:
        return breaker_state(breakers, Feedback().read(breakers, relays))

    good = relay((False, False, False))
    assert read(two, {R1: good}) is BreakerState.UNKNOWN  # R2 missing
    assert read(two, {R1: good, R2: relay(None)}) is BreakerState.UNKNOWN
    short = {R1: relay((False, False)), R2: good}
    assert read(two, short) is BreakerState.UNKNOWN
    # Exactly as many inputs as the highest one used is enough.
    exact = {R1: relay((False, False, False)), R2: relay((False,))}
    assert read(two, exact) is BreakerState.OPEN
    assert read((), {R1: good}) is BreakerState.UNKNOWN


# -- the trip --------------------------------------------------------------------------------


def test_a_confirmed_runaway_trips_at_once_and_says_so_once() -> None:
    run = Run(make())
    d = run.cycle(runaway=True)
    assert run.safety.state is TripState.TRIPPED
    assert d.outputs == {R1: {2: True}}
    assert [e.type for e in d.events] == [EventType.RUNAWAY_DETECTED, EventType.TRIPPED]
    assert "block 3" in d.events[0].message
    assert "block 3" in d.events[1].message
    snap = d.snapshot
    assert snap.trip_state is TripState.TRIPPED
    assert snap.runaway is True
    assert snap.reason == "string 1: block 3 16.0 K above ambient"
    assert snap.tripped_at == T0 + timedelta(seconds=10)
    assert snap.countdown_s is None
    # The breaker opens: the trip stays, quietly, with the relay still energised.
    for _ in range(10):
        d = run.cycle(runaway=True, relays=opened())
    assert d.outputs == {R1: {2: True}}
    assert run.safety.state is TripState.TRIPPED
    assert d.snapshot.breaker is BreakerState.OPEN
    assert run.count() == Counter({EventType.RUNAWAY_DETECTED: 1, EventType.TRIPPED: 1})
    # The runaway ends; the trip stays latched until a person resets it.
    for _ in range(10):
        d = run.cycle(relays=opened())
    assert run.safety.state is TripState.TRIPPED
    assert d.outputs == {R1: {2: True}}
    assert d.snapshot.reason == "string 1: block 3 16.0 K above ambient"
    assert run.count() == Counter({EventType.RUNAWAY_DETECTED: 1, EventType.TRIPPED: 1})


def test_a_runaway_without_a_reason_still_has_one() -> None:
    run = Run(make())
    d = run.cycle(runaway=True, reason=None)
    assert d.snapshot.reason
    assert all(e.message for e in d.events)


def test_the_pre_trip_countdown() -> None:
    run = Run(make(delay=30.0))
    d = run.cycle(runaway=True)  # t = 10: breaker opens at t = 40
    assert run.safety.state is TripState.COUNTDOWN
    assert d.outputs == {R1: {2: False}}
    assert [e.type for e in d.events] == [EventType.RUNAWAY_DETECTED, EventType.TRIP_COUNTDOWN]
    assert d.events[1].data == {"seconds": 30.0, "strings": "1"}
    assert "30 s" in d.events[1].message
    assert "block 3" in d.events[1].message
    assert d.snapshot.countdown_s == 30.0
    assert d.snapshot.tripped_at is None
    d = run.cycle(runaway=True, dt=10.0)  # t = 20
    assert [e.type for e in d.events] == [EventType.TRIP_COUNTDOWN]
    assert d.events[0].data == {"seconds": 20.0, "strings": "1"}
    assert "20 s" in d.events[0].message
    assert d.snapshot.countdown_s == 20.0
    d = run.cycle(runaway=False, dt=19.5)  # t = 39.5: the countdown runs on regardless
    assert run.safety.state is TripState.COUNTDOWN
    assert d.events[0].data == {"seconds": 0.5, "strings": "1"}
    d = run.cycle(runaway=False, dt=0.5)  # t = 40: exactly at the end
    assert run.safety.state is TripState.TRIPPED
    assert d.outputs == {R1: {2: True}}
    assert [e.type for e in d.events] == [EventType.TRIPPED]
    assert "block 3" in d.events[0].message
    assert d.snapshot.countdown_s is None
    assert d.snapshot.tripped_at == T0 + timedelta(seconds=40)
    assert run.count() == Counter(
        {EventType.RUNAWAY_DETECTED: 1, EventType.TRIP_COUNTDOWN: 3, EventType.TRIPPED: 1}
    )


def test_a_countdown_that_has_run_out_trips_on_the_next_cycle_whatever_the_gap() -> None:
    run = Run(make(delay=30.0))
    run.cycle(runaway=True)
    d = run.cycle(runaway=True, dt=100.0)
    assert run.safety.state is TripState.TRIPPED
    assert d.snapshot.countdown_s is None


# -- verification and escalation ----------------------------------------------------------


def test_a_breaker_that_does_not_open_is_escalated_once_after_verify_cycles() -> None:
    run = Run(make(verify=3))
    run.cycle(runaway=True)  # trip cycle
    for _ in range(2):
        d = run.cycle(runaway=True)
        assert run.safety.state is TripState.TRIPPED
    d = run.cycle(runaway=True)  # the third cycle after the trip: escalated
    assert run.safety.state is TripState.FAILED
    assert d.snapshot.trip_state is TripState.FAILED
    assert d.outputs == {R1: {2: True}}  # keep commanding the coil
    assert [e.type for e in d.events] == [EventType.TRIP_FAILED]
    assert d.events[0].message
    for _ in range(10):
        d = run.cycle(runaway=True)
    assert run.count()[EventType.TRIP_FAILED] == 1
    assert d.outputs == {R1: {2: True}}
    # Opened by hand at last (two polls agree): tripped, said once.
    run.cycle(runaway=True, relays=opened())
    run.cycle(runaway=True, relays=opened())
    assert run.safety.state is TripState.TRIPPED
    for _ in range(10):
        run.cycle(relays=opened())
    assert run.count() == Counter(
        {EventType.RUNAWAY_DETECTED: 1, EventType.TRIPPED: 2, EventType.TRIP_FAILED: 1}
    )
    assert run.safety.state is TripState.TRIPPED


def test_a_breaker_that_opens_in_time_is_never_escalated() -> None:
    run = Run(make(verify=3))
    run.cycle(runaway=True)
    run.cycle(runaway=True)
    for _ in range(20):
        run.cycle(runaway=True, relays=opened())
    assert run.safety.state is TripState.TRIPPED
    assert EventType.TRIP_FAILED not in run.types()


# -- reset, and trip again -------------------------------------------------------------------


def test_reset_is_refused_while_unsafe_and_accepted_after() -> None:
    s = make()
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, runaway_active=False, breaker_readable=True)
    assert err.value.code == "not_tripped"
    assert str(err.value)
    s.trip(T0, "test")
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, runaway_active=True, breaker_readable=True)
    assert err.value.code == "runaway_active"
    assert str(err.value)
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, runaway_active=False, breaker_readable=False)
    assert err.value.code == "state_unknown"
    assert str(err.value)
    assert s.state is TripState.TRIPPED  # refusals change nothing
    events = s.reset(T0 + timedelta(seconds=5), runaway_active=False, breaker_readable=True)
    assert [e.type for e in events] == [EventType.TRIP_RESET]
    assert events[0].timestamp == T0 + timedelta(seconds=5)
    assert events[0].message
    assert s.state is TripState.ARMED
    assert s.reason is None
    assert s.tripped_at is None


def test_a_failed_trip_can_be_reset_once_safe() -> None:
    run = Run(make(verify=1))
    run.cycle(runaway=True)
    run.cycle(runaway=True)
    assert run.safety.state is TripState.FAILED
    run.safety.reset(T0, runaway_active=False, breaker_readable=True)
    d = run.cycle()
    assert run.safety.state is TripState.ARMED
    assert d.outputs == {R1: {2: False}}


def test_trip_reset_trip_again_counts_the_escalation_afresh() -> None:
    run = Run(make(verify=3))
    run.cycle(runaway=True)
    for _ in range(5):
        run.cycle(runaway=True)  # breaker stuck: escalated
    assert run.safety.state is TripState.FAILED
    # Freed by hand and reset by a person.
    run.cycle(relays=opened())
    run.safety.reset(T0, runaway_active=False, breaker_readable=True)
    d = run.cycle()
    assert d.outputs == {R1: {2: False}}
    assert d.snapshot.reason is None
    run.events.clear()
    # A second runaway: a fresh trip, a fresh reason, and the full verify time again.
    d = run.cycle(runaway=True, reason="string 2: block 7 at 61.0 °C")
    assert [e.type for e in d.events] == [EventType.RUNAWAY_DETECTED, EventType.TRIPPED]
    assert d.snapshot.reason == "string 2: block 7 at 61.0 °C"
    assert d.snapshot.tripped_at == T0 + timedelta(seconds=run.now_s)
    for _ in range(2):
        run.cycle(runaway=True)
        assert run.safety.state is TripState.TRIPPED
    run.cycle(runaway=True)
    assert run.safety.state is TripState.FAILED
    assert run.count() == Counter(
        {EventType.RUNAWAY_DETECTED: 1, EventType.TRIPPED: 1, EventType.TRIP_FAILED: 1}
    )


def test_a_countdown_after_a_reset_starts_from_its_full_delay() -> None:
    run = Run(make(delay=30.0))
    run.cycle(runaway=True)
    run.cycle(runaway=True, dt=40.0)
    assert run.safety.state is TripState.TRIPPED
    run.safety.reset(T0, runaway_active=False, breaker_readable=True)
    d = run.cycle()
    assert d.snapshot.countdown_s is None
    d = run.cycle(runaway=True)
    assert run.safety.state is TripState.COUNTDOWN
    assert d.snapshot.countdown_s == 30.0


# -- manual trip -----------------------------------------------------------------------------


def test_a_manual_trip_latches_and_a_second_one_changes_nothing() -> None:
    run = Run(make())
    events = run.safety.trip(T0, "test of the coil")
    assert [e.type for e in events] == [EventType.TRIPPED]
    assert "test of the coil" in events[0].message
    assert run.safety.reason is not None and "test of the coil" in run.safety.reason
    assert run.safety.reason.startswith("manual")
    assert run.safety.tripped_at == T0
    assert run.safety.trip(T0 + timedelta(seconds=1), "again") == []
    assert run.safety.reason.endswith("test of the coil")
    d = run.cycle(relays=opened())
    assert d.outputs == {R1: {2: True}}
    assert d.events == ()
    assert run.safety.state is TripState.TRIPPED
    # A confirmed runaway while tripped trips nothing more.
    d = run.cycle(runaway=True, relays=opened())
    assert EventType.TRIPPED not in [e.type for e in d.events]
    assert d.snapshot.tripped_at == T0


def test_a_manual_trip_during_a_countdown_trips_at_once() -> None:
    run = Run(make(delay=60.0))
    run.cycle(runaway=True)
    events = run.safety.trip(T0, "now")
    assert [e.type for e in events] == [EventType.TRIPPED]
    d = run.cycle(runaway=True)
    assert d.snapshot.countdown_s is None
    assert d.outputs == {R1: {2: True}}


def test_a_failed_trip_is_not_downgraded_by_a_manual_trip() -> None:
    run = Run(make(verify=1))
    run.cycle(runaway=True)
    run.cycle(runaway=True)
    assert run.safety.trip(T0, "again") == []
    assert run.safety.state is TripState.FAILED


# -- lost bus --------------------------------------------------------------------------------


def test_lost_bus_hold_never_trips() -> None:
    run = Run(make(policy=LostBusPolicy.HOLD, timeout=60.0))
    for _ in range(100):
        d = run.cycle(blind=True)
    assert run.safety.state is TripState.ARMED
    assert d.events == ()


def test_lost_bus_trip_at_exactly_its_timeout_and_once() -> None:
    run = Run(make(policy=LostBusPolicy.TRIP, timeout=60.0))
    run.cycle(blind=True)  # t = 10: blind since 10
    for _ in range(5):
        run.cycle(blind=True)  # t = 20 … 60: 50 s
    assert run.safety.state is TripState.ARMED
    d = run.cycle(blind=True)  # t = 70: 60 s
    assert run.safety.state is TripState.TRIPPED
    assert [e.type for e in d.events] == [EventType.TRIPPED]
    assert run.safety.reason is not None and "60 s" in run.safety.reason
    assert d.outputs == {R1: {2: True}}
    for _ in range(5):
        run.cycle(blind=True, relays=opened())
    assert run.count() == Counter({EventType.TRIPPED: 1})


def test_lost_bus_time_restarts_when_the_bus_answers_again() -> None:
    run = Run(make(policy=LostBusPolicy.TRIP, timeout=60.0))
    for _ in range(5):
        run.cycle(blind=True)  # 40 s blind
    run.cycle()
    for _ in range(6):
        run.cycle(blind=True)  # 50 s blind again
    assert run.safety.state is TripState.ARMED
    run.cycle(blind=True)
    assert run.safety.state is TripState.TRIPPED


def test_lost_bus_trip_does_not_override_a_countdown_or_an_earlier_trip() -> None:
    run = Run(make(policy=LostBusPolicy.TRIP, timeout=10.0, delay=600.0))
    run.cycle(runaway=True)
    run.cycle(blind=True)
    run.cycle(blind=True)
    assert run.safety.state is TripState.COUNTDOWN
    assert run.safety.reason is not None and "block 3" in run.safety.reason


# -- persistence -----------------------------------------------------------------------------
# What is stored; how it is restored belongs to the manager's state tests.


def test_a_trip_is_stored_with_its_reason_and_time() -> None:
    run = Run(make())
    assert run.safety.record().strings[1] == TripRecord(TripState.ARMED)
    assert run.safety.record().others == TripRecord(TripState.ARMED)
    run.cycle(runaway=True)
    saved = run.safety.record().strings[1]
    assert saved.state is TripState.TRIPPED
    assert saved.reason == "string 1: block 3 16.0 K above ambient"
    assert saved.tripped_at == T0 + timedelta(seconds=10)
    assert json.loads(json.dumps(run.safety.state_dict()))["state"] == "tripped"


def test_a_failed_trip_and_a_countdown_are_stored_as_such() -> None:
    run = Run(make(verify=1))
    run.cycle(runaway=True)
    run.cycle(runaway=True)
    assert run.safety.record().strings[1].state is TripState.FAILED
    run = Run(make(delay=600.0))
    run.cycle(runaway=True)
    assert run.safety.record().strings[1].state is TripState.COUNTDOWN
    assert run.safety.record().strings[1].reason == "string 1: block 3 16.0 K above ambient"


def test_breakers_property_lists_the_configured_breakers() -> None:
    two = (Breaker(R1, 2, 3), Breaker(R2, 1, 1))
    assert tuple(make(breakers=two).breakers) == two


# -- what a person reads, and when ---------------------------------------------------------


def test_every_event_carries_the_time_of_its_cycle() -> None:
    run = Run(make(delay=20.0, verify=1))
    for _ in range(6):
        d = run.cycle(runaway=True)
        assert all(e.timestamp == T0 + timedelta(seconds=run.now_s) for e in d.events)
    for _ in range(2):
        d = run.cycle(runaway=True, relays=opened())
        assert all(e.timestamp == T0 + timedelta(seconds=run.now_s) for e in d.events)
    assert run.types().count(EventType.TRIPPED) == 2  # commanded, and open after all
    assert EventType.TRIP_FAILED in run.types()
    lost = Run(make(policy=LostBusPolicy.TRIP, timeout=10.0))
    lost.cycle(blind=True)
    d = lost.cycle(blind=True)
    assert [e.timestamp for e in d.events] == [T0 + timedelta(seconds=20)]
    assert lost.safety.tripped_at == T0 + timedelta(seconds=20)


def test_a_fresh_trip_knows_nothing_yet() -> None:
    """Before its first cycle (a reset can come right after a start) nothing is assumed."""
    s = make()
    assert s.runaway is False
    assert s.pre_alert is False
    assert s.breaker is BreakerState.UNKNOWN
    assert s.state is TripState.ARMED
    assert s.reason is None
    assert s.tripped_at is None


def test_the_words_a_person_reads() -> None:
    """Refusals and fixed event texts, word for word: Home Assistant shows them as they are."""
    disabled = Safety(TripSettings())
    with pytest.raises(SafetyRefusedError, match=r"^no trip relay is configured$"):
        disabled.trip(T0, "test")
    with pytest.raises(SafetyRefusedError, match=r"^no trip relay is configured$"):
        disabled.reset(T0, runaway_active=False, breaker_readable=True)
    s = make()
    with pytest.raises(SafetyRefusedError, match=r"^the breaker trip is not active$"):
        s.reset(T0, runaway_active=False, breaker_readable=True)
    s.trip(T0, "test")
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, runaway_active=True, breaker_readable=True)
    assert str(err.value) == (
        "the thermal-runaway condition still holds: let the battery cool and find the cause "
        "before closing the breaker"
    )
    with pytest.raises(SafetyRefusedError) as err:
        s.reset(T0, runaway_active=False, breaker_readable=False)
    assert str(err.value) == "the relay module does not answer, so the breaker state is unknown"
    (reset,) = s.reset(T0, runaway_active=False, breaker_readable=True)
    assert reset.message == "breaker trip reset by a person"
    run = Run(make(verify=1))
    d = run.cycle(runaway=True, reason=None)
    assert d.snapshot.reason == "thermal runaway"
    d = run.cycle(runaway=True)
    (failed,) = d.events
    assert failed.message == (
        "string 1: breaker did not report open (bus1/67 relay 2): open it by hand, check the "
        "trip coil and its wiring"
    )
    assert failed.string == 1
    run.cycle(runaway=True, relays=opened())
    run.cycle(runaway=True, relays=opened())
    after_all = [e for e in run.events if e.type is EventType.TRIPPED][-1]
    assert after_all.message == "string 1: breaker reported open after all"


def test_a_countdown_of_under_a_second_is_a_countdown() -> None:
    run = Run(make(delay=0.5))
    d = run.cycle(runaway=True)
    assert run.safety.state is TripState.COUNTDOWN
    assert d.snapshot.countdown_s == 0.5
    run.cycle(runaway=True, dt=0.5)
    assert run.safety.state is TripState.TRIPPED


def test_countdown_seconds_are_reported_to_a_tenth() -> None:
    run = Run(make(delay=30.0))
    run.cycle(runaway=True)
    d = run.cycle(runaway=True, dt=10.04)
    assert d.events[0].data == {"seconds": 20.0, "strings": "1"}  # 19.96 s left, to a tenth
    assert d.snapshot.countdown_s == pytest.approx(19.96)
    d = run.cycle(runaway=True, dt=19.46)
    assert d.snapshot.countdown_s == pytest.approx(0.5)
