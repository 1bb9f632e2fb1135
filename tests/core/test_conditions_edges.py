"""The manager's own safety alarms at their edges (bacs_core/manager/conditions.py): which
condition holds for which trip state, at which severity, for which block or device, and which
clears. Pure functions, plain inputs; messages are checked only for what a person must learn
from them (which relay, which block, why)."""

from __future__ import annotations

import pytest

from bacs_core.bus.readings import DeviceIdentity, ModuleReading
from bacs_core.manager.alarms import Condition
from bacs_core.manager.charge_state import ChargeStateTracker
from bacs_core.manager.conditions import (
    FAILED_KEY,
    LISTED,
    NOT_SAVED_KEY,
    PATH_KEY,
    RECOVERED_KEY,
    UNKNOWN_KEY,
    UNWATCHED_KEY,
    breaker_gaps,
    failed_key,
    is_failed_key,
    safety_conditions,
    stale_conditions,
    stale_devices,
    unwatched_blocks,
    unwatched_condition,
)
from bacs_core.manager.equalization import EqualizationController
from bacs_core.manager.presence import Presence
from bacs_core.manager.safety import Breaker, TripSettings
from bacs_core.manager.topology import StringRuntime, Topology
from bacs_core.model import DeviceKind, Quality, Status
from bacs_core.snapshot import (
    MISSING,
    BreakerState,
    DeviceRef,
    SafetySnapshot,
    Severity,
    StringTrip,
    TripState,
    UnwatchedBlock,
    Value,
)

M1, M2, M3 = DeviceRef("a", 1), DeviceRef("a", 2), DeviceRef("a", 3)
RELAY, RELAY2 = DeviceRef("a", 100), DeviceRef("b", 101)
SENSOR, ENV = DeviceRef("b", 50), DeviceRef("b", 60)


def trip(
    string: int,
    state: TripState = TripState.ARMED,
    *,
    path: bool = True,
    breaker: BreakerState = BreakerState.CLOSED,
    note: str | None = None,
) -> StringTrip:
    return StringTrip(string, state, breaker, breaker_path_available=path, note=note)


def snap(
    state: TripState,
    *,
    path: bool = True,
    note: str | None = None,
    strings: tuple[StringTrip, ...] | None = None,
) -> SafetySnapshot:
    """The whole trip; by default two strings in ``state`` with the same path."""
    return SafetySnapshot(
        trip_state=state,
        breaker=BreakerState.CLOSED,
        runaway=False,
        pre_alert=False,
        countdown_s=None,
        reason=None,
        tripped_at=None,
        breaker_path_available=path,
        state_note=note,
        strings=(trip(1, state, path=path), trip(2, state, path=path))
        if strings is None
        else strings,
    )


def by_key(conditions: list[Condition]) -> dict[str, Condition]:
    keys = [c.key for c in conditions]
    assert len(keys) == len(set(keys)), "each key passed once"
    return {c.key: c for c in conditions}


def identity(unit: int, kind: DeviceKind) -> DeviceIdentity:
    return DeviceIdentity(unit, kind, 1000 + unit, "1.0", 1, 0)


def topology(with_relays: tuple[DeviceRef, ...] = ()) -> Topology:
    topo = Topology(["a", "b"])
    for ref in (M1, M2, M3):
        topo.devices[ref] = identity(ref.unit, DeviceKind.C20)
    topo.devices[SENSOR] = identity(SENSOR.unit, DeviceKind.CS200)
    topo.devices[ENV] = identity(ENV.unit, DeviceKind.ENVIRONMENT)
    for ref in with_relays:
        topo.devices[ref] = identity(ref.unit, DeviceKind.GX_R_AUX)
    topo.strings = [
        StringRuntime(
            1, "S1", [M1, M2, M3], SENSOR, 100.0, EqualizationController(), ChargeStateTracker(100)
        )
    ]
    return topo


def module(quality: Quality = Quality.OK, temperature: Value | None = None) -> ModuleReading:
    return ModuleReading(
        unit=1,
        kind=DeviceKind.C20,
        quality=quality,
        status=Status.MEASUREMENT_VALID,
        sequence=1,
        voltage=Value(13.5),
        temperature=Value(25.0) if temperature is None else temperature,
    )


# --- safety_conditions: one condition per key, every cycle -------------------------------------


def test_every_key_is_passed_every_cycle_and_all_clear_when_armed() -> None:
    out = by_key(safety_conditions(snap(TripState.ARMED), True, [], None, None))
    assert set(out) == {
        UNKNOWN_KEY,
        RECOVERED_KEY,
        NOT_SAVED_KEY,
        PATH_KEY,
        failed_key(1),
        failed_key(2),
    }
    assert all(c.severity is None for c in out.values())
    assert all(c.source == "safety" for c in out.values())


def test_unknown_state_is_critical_and_carries_its_note() -> None:
    out = by_key(
        safety_conditions(snap(TripState.UNKNOWN, note="relay 1 energised"), True, [], None, None)
    )
    c = out[UNKNOWN_KEY]
    assert (c.code, c.severity) == ("trip_state_unknown", Severity.CRITICAL)
    assert "relay 1 energised" in c.message
    assert "(string" not in c.message  # every string is concerned: none named
    others = [k for k, v in out.items() if v.severity is not None]
    assert others == [UNKNOWN_KEY]


def test_unknown_state_without_a_note_says_the_file_was_unreadable() -> None:
    c = by_key(safety_conditions(snap(TripState.UNKNOWN), True, [], None, None))[UNKNOWN_KEY]
    assert c.severity is Severity.CRITICAL
    assert ": state file unreadable." in c.message


def test_one_unknown_string_is_named_with_its_own_note() -> None:
    strings = (trip(1), trip(2, TripState.UNKNOWN, note="relay 2 energised"), trip(3))
    s = snap(TripState.UNKNOWN, note="room note", strings=strings)
    c = by_key(safety_conditions(s, True, [], None, None))[UNKNOWN_KEY]
    assert c.severity is Severity.CRITICAL
    assert "(string 2)" in c.message and "relay 2 energised" in c.message
    assert "room note" not in c.message
    two = (trip(1, TripState.UNKNOWN), trip(2), trip(3, TripState.UNKNOWN))
    c = by_key(
        safety_conditions(
            snap(TripState.UNKNOWN, note="room note", strings=two), True, [], None, None
        )
    )[UNKNOWN_KEY]
    assert "(strings 1, 3)" in c.message and "room note" in c.message


def test_an_unknown_string_alone_raises_the_unknown_alarm() -> None:
    strings = (trip(1), trip(2, TripState.UNKNOWN))
    c = by_key(safety_conditions(snap(TripState.ARMED, strings=strings), True, [], None, None))[
        UNKNOWN_KEY
    ]
    assert c.severity is Severity.CRITICAL


def test_recovered_state_is_a_warning_naming_the_copy() -> None:
    out = by_key(safety_conditions(snap(TripState.TRIPPED), True, [], "state.json.bak", None))
    c = out[RECOVERED_KEY]
    assert (c.code, c.severity) == ("state_recovered", Severity.WARNING)
    assert "state.json.bak" in c.message
    assert out[NOT_SAVED_KEY].severity is None


def test_state_not_saved_is_an_alarm_with_its_cause() -> None:
    out = by_key(safety_conditions(snap(TripState.ARMED), True, [], None, "disk full"))
    c = out[NOT_SAVED_KEY]
    assert (c.code, c.severity) == ("state_not_saved", Severity.ALARM)
    assert "disk full" in c.message
    assert out[RECOVERED_KEY].severity is None


def test_trip_failed_is_critical_per_string_only_in_failed_and_latches() -> None:
    for state in TripState:
        strings = (trip(1), trip(2, state))
        out = by_key(safety_conditions(snap(state, strings=strings), True, [], None, None))
        one, two = out[failed_key(1)], out[failed_key(2)]
        assert (one.code, one.severity, one.string, one.latch) == ("trip_failed", None, 1, True)
        assert (two.code, two.string, two.latch) == ("trip_failed", 2, True)
        assert two.severity is (Severity.CRITICAL if state is TripState.FAILED else None), state
        assert two.message.startswith("string 2: ")
    assert [failed_key(n) for n in (1, 12)] == [f"{FAILED_KEY}:1", f"{FAILED_KEY}:12"]


def test_failed_keys_are_told_apart_by_string() -> None:
    assert is_failed_key(failed_key(3), 3) and is_failed_key(failed_key(3), None)
    assert not is_failed_key(failed_key(3), 4)
    assert not is_failed_key(FAILED_KEY, None)
    assert not is_failed_key(f"{FAILED_KEY}:x", None)
    assert not is_failed_key(f"{PATH_KEY}:3", 3)


@pytest.mark.parametrize(
    ("state", "severity"),
    [
        (TripState.ARMED, Severity.ALARM),
        (TripState.UNKNOWN, Severity.ALARM),
        (TripState.DISABLED, Severity.ALARM),
        (TripState.COUNTDOWN, Severity.CRITICAL),
        (TripState.TRIPPED, Severity.CRITICAL),
        (TripState.FAILED, Severity.CRITICAL),
    ],
)
def test_unavailable_breaker_path_severity_depends_on_the_latch(
    state: TripState, severity: Severity
) -> None:
    c = by_key(safety_conditions(snap(state, path=False), True, [str(RELAY)], None, None))[PATH_KEY]
    assert (c.code, c.severity) == ("trip_path_unavailable", severity)
    assert f"trip relay module {RELAY} does not answer" in c.message
    # A latched trip that cannot reach the breaker tells the person to open it by hand.
    assert ("by hand" in c.message) is (severity is Severity.CRITICAL)


def test_a_latched_string_without_its_path_is_critical_and_named() -> None:
    strings = (trip(1, path=False), trip(2, TripState.TRIPPED, path=False), trip(3))
    c = by_key(
        safety_conditions(
            snap(TripState.ARMED, path=False, strings=strings), True, ["r/1"], None, None
        )
    )[PATH_KEY]
    assert c.severity is Severity.CRITICAL
    assert "latched (string 2) but" in c.message  # the latched one, not every blocked one
    armed = (trip(1, path=False), trip(2), trip(3, path=False))
    c = by_key(
        safety_conditions(
            snap(TripState.ARMED, path=False, strings=armed), True, ["r/1"], None, None
        )
    )[PATH_KEY]
    assert c.severity is Severity.ALARM
    assert "unavailable (strings 1, 3):" in c.message


def test_a_string_without_a_breaker_is_named_when_no_relay_is_missing() -> None:
    strings = (trip(1), trip(2, path=False, breaker=BreakerState.UNKNOWN))
    s = snap(TripState.ARMED, path=False, strings=strings)
    c = by_key(safety_conditions(s, True, [], None, None))[PATH_KEY]
    assert c.severity is Severity.ALARM
    assert "no trip breaker for string 2" in c.message
    # A breaker whose state is known has one: it is its relay module that does not answer.
    known = (trip(1), trip(2, path=False))
    s = snap(TripState.ARMED, path=False, strings=known)
    c = by_key(safety_conditions(s, True, [], None, None))[PATH_KEY]
    assert "the trip relay module does not answer" in c.message
    # A missing relay module is named rather than the string.
    c = by_key(
        safety_conditions(
            snap(TripState.ARMED, path=False, strings=strings), True, ["r/9"], None, None
        )
    )[PATH_KEY]
    assert "trip relay module r/9 does not answer" in c.message
    assert "no trip breaker" not in c.message


def test_breaker_path_alarm_needs_a_wanted_trip_and_a_missing_path() -> None:
    no_trip = by_key(safety_conditions(snap(TripState.ARMED, path=False), False, [], None, None))
    assert no_trip[PATH_KEY].severity is None and no_trip[PATH_KEY].message == ""
    available = by_key(safety_conditions(snap(TripState.TRIPPED), True, ["x"], None, None))
    assert available[PATH_KEY].severity is None


def test_long_lists_are_cut_with_a_count_of_the_rest() -> None:
    names = [f"r/{i}" for i in range(LISTED + 3)]
    c = by_key(safety_conditions(snap(TripState.ARMED, path=False), True, names, None, None))[
        PATH_KEY
    ]
    assert f"trip relay module {', '.join(names[:LISTED])} and 3 more does not answer" in (
        c.message
    )
    exact = by_key(
        safety_conditions(snap(TripState.ARMED, path=False), True, names[:LISTED], None, None)
    )[PATH_KEY]
    assert "more" not in exact.message
    one_more = by_key(
        safety_conditions(snap(TripState.ARMED, path=False), True, names[: LISTED + 1], None, None)
    )[PATH_KEY]
    assert "and 1 more" in one_more.message


# --- breaker_gaps ------------------------------------------------------------------------------


def test_breaker_gaps_names_missing_and_silent_relays_once_each() -> None:
    settings = TripSettings(
        breakers=(Breaker(RELAY, 1, 1), Breaker(RELAY, 2, 2), Breaker(RELAY2, 1, 1))
    )
    presence = Presence()
    # RELAY2 not in the topology; RELAY found and answering: only RELAY2 is a gap.
    assert breaker_gaps(settings, topology((RELAY,)), presence) == [str(RELAY2)]
    # RELAY found but silent: named once although two breakers use it.
    presence.online[RELAY] = False
    assert breaker_gaps(settings, topology((RELAY,)), presence) == [str(RELAY2), str(RELAY)]
    presence.online[RELAY] = True
    assert breaker_gaps(settings, topology((RELAY, RELAY2)), presence) == []


def test_breaker_gaps_counts_relay_modules_not_found_yet() -> None:
    # auto-trip for 5 strings needs two relay modules; none is known.
    settings = TripSettings(expected=5)
    assert breaker_gaps(settings, topology(), Presence()) == ["not found yet"]


# --- unwatched blocks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (None, "missing"),
        (module(Quality.MISSING), "missing"),
        (module(Quality.STALE), "stale"),
        (module(temperature=Value(25.0, Quality.STALE)), "stale"),
        (module(temperature=Value(99.0, Quality.OUT_OF_RANGE)), "out_of_range"),
        (module(temperature=MISSING), "missing"),
        (module(), "implausible"),
    ],
)
def test_unwatched_block_reason(reading: ModuleReading | None, reason: str) -> None:
    readings = {} if reading is None else {M2: reading}
    assert unwatched_blocks([(1, 2)], topology(), readings) == (UnwatchedBlock(1, 2, M2, reason),)


def test_unwatched_blocks_are_sorted_and_positions_beyond_the_string_have_no_device() -> None:
    out = unwatched_blocks([(1, 3), (1, 1), (1, 4), (2, 1)], topology(), {})
    assert [(b.string, b.position, b.device, b.reason) for b in out] == [
        (1, 1, M1, "missing"),
        (1, 3, M3, "missing"),
        (1, 4, None, "missing"),
        (2, 1, None, "missing"),
    ]


def test_unwatched_condition_names_each_block_and_clears_when_none() -> None:
    blocks = (UnwatchedBlock(1, 2, M2, "stale"), UnwatchedBlock(1, 3, M3, "missing"))
    c = unwatched_condition(blocks)
    assert (c.key, c.code, c.severity) == (UNWATCHED_KEY, "runaway_unwatched", Severity.ALARM)
    assert "string 1 block 2 (stale)" in c.message
    assert "string 1 block 3 (missing)" in c.message
    cleared = unwatched_condition(())
    assert (cleared.key, cleared.severity, cleared.message) == (UNWATCHED_KEY, None, "")


# --- frozen (stale) devices --------------------------------------------------------------------


def test_stale_devices_are_those_whose_exchange_is_stale() -> None:
    readings = {M1: module(Quality.STALE), M2: module(), M3: module(Quality.MISSING)}
    assert stale_devices(readings) == frozenset({M1})


def test_stale_conditions_one_per_device_and_cleared_once_it_moves_again() -> None:
    topo = topology()
    known: set[DeviceRef] = set()
    first = by_key(stale_conditions(frozenset({M2, SENSOR}), topo, known))
    assert set(first) == {f"stale:{M2}", f"stale:{SENSOR}"}
    block = first[f"stale:{M2}"]
    assert (block.code, block.severity, block.source) == ("stale", Severity.WARNING, "module")
    assert (block.device, block.string) == (M2, 1)
    assert "string 1 block 2" in block.message
    sensor = first[f"stale:{SENSOR}"]
    assert (sensor.source, sensor.device, sensor.string) == ("current_sensor", SENSOR, None)
    assert known == {M2, SENSOR}
    # M2 moves again: its condition is passed once more, cleared; then it is forgotten.
    second = by_key(stale_conditions(frozenset({SENSOR}), topo, known))
    assert second[f"stale:{M2}"].severity is None
    assert second[f"stale:{SENSOR}"].severity is Severity.WARNING
    assert known == {SENSOR}
    third = by_key(stale_conditions(frozenset(), topo, known))
    assert set(third) == {f"stale:{SENSOR}"} and third[f"stale:{SENSOR}"].severity is None
    assert known == set()
    assert stale_conditions(frozenset(), topo, known) == []


def test_stale_conditions_name_the_source_of_every_family_and_unknown_devices() -> None:
    topo = topology((RELAY,))
    unknown = DeviceRef("c", 9)
    out = by_key(stale_conditions(frozenset({RELAY, ENV, unknown}), topo, set()))
    assert out[f"stale:{RELAY}"].source == "relay"
    assert out[f"stale:{ENV}"].source == "environment"
    assert out[f"stale:{unknown}"].source == "module"
    assert str(unknown) in out[f"stale:{unknown}"].message
    assert [c.device for c in stale_conditions(frozenset({ENV, RELAY, M1}), topo, set())] == [
        M1,
        RELAY,
        ENV,
    ]
