"""The evidence that a block is beyond the equalizer's reach, at its edges
(bacs_core/manager/equalization_reach.py): a block the controller left outside the set it
holds, pinned where it was left — above target at its maximum shunt (or the whole string
current), or below target with its shunt off — for out_of_range_lags of its own lag (never
less than out_of_range_min_s) while the trend of its deviation would not close it. A low block
counts only while the held set's authority is spent. track_reach is driven directly with plain
block states, one call per minute."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bacs_core.manager.equalization_reach import (
    ERROR_HISTORY_S,
    BlockState,
    closing,
    track_reach,
)
from bacs_core.manager.equalization_types import BlockInput, EqualizationSettings, StringInputs
from bacs_core.manager.plant_estimate import PlantEstimate
from bacs_core.snapshot import ChargeState

S = EqualizationSettings()
LIMIT = S.out_of_range_deviation  # 10 mV
SHUNT = 0.5  # A, every module's maximum here
I_STR = 1.0  # A, the string's float current
# An identified lag short enough that the minimum evidence time (7200 s) applies.
FAST = PlantEstimate(0.06, theta_as=60.0, identified=True, lag_identified=True)
UNKNOWN_LAG = PlantEstimate(0.06, theta_as=60.0, identified=False, lag_identified=False)
POINTS = round(S.out_of_range_min_s / ERROR_HISTORY_S)  # the trend's window, per minute
BACK = POINTS // 2  # the history must cover half of it before anything counts


def inputs(n: int = 3, capacity: float = 100.0) -> StringInputs:
    block = BlockInput(13.6, 25.0, 30.0, 6, SHUNT)
    return StringInputs([block] * n, ChargeState.FLOAT, I_STR, capacity)


def high(command: float = SHUNT) -> BlockState:
    """Outside the held set, needing less current than it: shunted down."""
    return BlockState(command=command, member=False, side=1)


def low(command: float = 0.0) -> BlockState:
    """Outside the held set, needing more current than it: its shunt off."""
    return BlockState(command=command, member=False, side=-1)


def held(command: float = 0.0) -> BlockState:
    return BlockState(command=command)


def blocks(*states: BlockState) -> list[BlockState]:
    return list(states)


def run(
    bs: list[BlockState],
    deviation: Sequence[float | None] | None = None,
    minutes: int = 1,
    *,
    start: int = 0,
    plant: PlantEstimate = FAST,
    step: float = ERROR_HISTORY_S,
    deviations: Sequence[Sequence[float | None]] | None = None,
    spent: bool = True,
    capacity: float = 100.0,
) -> None:
    """Call track_reach ``minutes`` times, ``step`` seconds apart, keeping the commands."""
    for k in range(minutes):
        dev = deviations[k] if deviations is not None else deviation
        assert dev is not None
        commands = [b.command for b in bs]
        track_reach(
            bs,
            S,
            (start + k) * step,
            step,
            inputs(len(bs), capacity),
            dev,
            list(range(len(bs))),
            plant,
            I_STR,
            spent=spent,
        )
        if not any(b.out_of_range for b in bs):
            for b, c in zip(bs, commands, strict=True):
                b.command = c  # the controller would hold them where they were


# The first BACK-1 minutes only fill the history; then two hours of evidence (7200 s).
FIRST_EVIDENCE = BACK
RIPE = FIRST_EVIDENCE + POINTS - 1  # calls in all


def ripe_after(window_s: float) -> int:
    """Calls until a block is reported with this evidence time."""
    points = round(window_s / ERROR_HISTORY_S)
    return points // 2 + points - 1


def test_a_block_too_high_at_its_maximum_is_out_of_range_after_the_evidence_time() -> None:
    bs = blocks(high(), held(), held())
    dev = [0.02, 0.0, 0.0]
    run(bs, dev, RIPE - 1)
    assert not any(b.out_of_range for b in bs)
    assert bs[0].beyond_s == pytest.approx(S.out_of_range_min_s - ERROR_HISTORY_S)
    run(bs, dev, 1, start=RIPE - 1)
    b = bs[0]
    assert b.out_of_range
    assert b.command == 0.0 and b.level is None and b.beyond_s == 0.0
    now = (RIPE - 1) * ERROR_HISTORY_S
    assert b.retry_at == pytest.approx(now + S.retry_after_s)
    assert not bs[1].out_of_range and not bs[2].out_of_range


def test_the_history_must_cover_half_the_evidence_time_before_anything_counts() -> None:
    bs = blocks(high(), held(), held())
    run(bs, [0.02, 0.0, 0.0], BACK - 1)
    assert bs[0].beyond_s == 0.0
    assert len(bs[0].history) == BACK - 1
    run(bs, [0.02, 0.0, 0.0], 1, start=BACK - 1)
    assert bs[0].beyond_s == ERROR_HISTORY_S


def test_the_history_keeps_one_deviation_per_minute() -> None:
    bs = blocks(held(), held(), held())
    run(bs, [-0.004, 0.0, 0.003], 6, step=30.0)  # 3 minutes, called every 30 s
    assert list(bs[0].history) == [0.004] * 3
    assert list(bs[2].history) == [0.003] * 3


@pytest.mark.parametrize(
    ("command", "deviation", "counts"),
    [
        (SHUNT, 0.02, True),
        (0.98 * SHUNT, 0.02, True),  # "at the maximum" allows 2 % short of it
        (0.97 * SHUNT, 0.02, False),  # still has authority
        (SHUNT, LIMIT, False),  # on the limit is within the promise
        (SHUNT, LIMIT + 0.001, True),
        (SHUNT, None, False),  # no reading: no evidence
    ],
)
def test_too_high_needs_its_shunt_at_the_maximum_and_beyond_the_limit(
    command: float, deviation: float | None, counts: bool
) -> None:
    bs = blocks(high(command), held(), held())
    run(bs, [deviation, 0.0, 0.0], FIRST_EVIDENCE)
    assert (bs[0].beyond_s > 0) is counts


def test_the_whole_string_current_counts_as_the_maximum_when_it_is_less() -> None:
    """A shunt cannot take more than the string carries: 0.98 of it is "pinned" too."""
    quick = PlantEstimate(0.06, theta_as=0.01, identified=True, lag_identified=True)
    track = [0.02, 0.0, 0.0]
    for command, counts in ((0.98 * 0.3, True), (0.97 * 0.3, False)):
        bs = blocks(high(command), held(), held())
        for k in range(FIRST_EVIDENCE):
            track_reach(bs, S, k * 60.0, 60.0, inputs(3), track, [0, 1, 2], quick, 0.3, spent=True)
        assert (bs[0].beyond_s > 0) is counts


@pytest.mark.parametrize(
    ("state", "deviation"),
    [
        (held(SHUNT), 0.02),  # in the held set: the controller is still bringing it in
        (low(SHUNT), 0.02),  # outside, but on the side that needs more current
        (high(0.0), -0.02),  # outside above it, yet below target: nothing to judge
        (low(0.0), 0.02),
    ],
)
def test_only_a_block_outside_the_set_on_its_own_side_is_judged(
    state: BlockState, deviation: float
) -> None:
    bs = blocks(state, held(), held())
    run(bs, [deviation, 0.0, 0.0], RIPE + 5)
    assert not bs[0].out_of_range and bs[0].beyond_s == 0.0


@pytest.mark.parametrize(
    ("command", "deviation", "counts"),
    [
        (0.0, -0.02, True),
        (1e-4, -0.02, True),  # off, to a tenth of a milliampere
        (2e-4, -0.02, False),  # still shunted: not yet all the string can give it
        (0.0, -LIMIT, False),  # on the limit is within the promise
        (0.0, -LIMIT - 0.001, True),
    ],
)
def test_too_low_needs_its_own_shunt_off_and_beyond_the_limit(
    command: float, deviation: float, counts: bool
) -> None:
    bs = blocks(low(command), held(SHUNT), held(SHUNT))
    run(bs, [deviation, 0.0, 0.0], FIRST_EVIDENCE)
    assert (bs[0].beyond_s > 0) is counts


def test_a_low_block_out_of_range_keeps_no_shunt() -> None:
    bs = blocks(low(), held(SHUNT), held(SHUNT))
    run(bs, [-0.02, 0.0, 0.0], RIPE)
    assert bs[0].out_of_range and bs[0].command == 0.0
    assert not bs[1].out_of_range and not bs[2].out_of_range


def test_a_low_block_gathers_no_evidence_while_the_set_could_give_it_more() -> None:
    """Its need is an extrapolation from below target: until the string current has been
    raised as far as the set allows, being low proves nothing."""
    bs = blocks(low(), held(), held())
    run(bs, [-0.05, 0.0, 0.0], RIPE + 30, spent=False)
    assert not bs[0].out_of_range and bs[0].beyond_s == 0.0
    run(bs, [-0.05, 0.0, 0.0], 1, start=RIPE + 30)
    assert bs[0].beyond_s == ERROR_HISTORY_S


def test_a_deviation_that_is_closing_is_no_evidence() -> None:
    bs = blocks(high(), held(), held())
    # 60 mV closing by 0.3 mV a minute: the 50 mV beyond the limit go in under 3 hours.
    devs = [[LIMIT + 0.05 - 0.0003 * k, 0.0, 0.0] for k in range(RIPE + 10)]
    run(bs, minutes=RIPE + 10, deviations=devs)
    assert not bs[0].out_of_range
    assert bs[0].beyond_s == 0.0


def test_a_deviation_closing_slower_than_its_horizon_is_evidence() -> None:
    bs = blocks(high(), held(), held())
    # 0.1 mV a minute: the 50 mV would take over 8 hours, beyond 2.5 evidence windows (5 h).
    devs = [[LIMIT + 0.05 - 0.0001 * k, 0.0, 0.0] for k in range(RIPE)]
    run(bs, minutes=RIPE, deviations=devs)
    assert bs[0].out_of_range


HORIZON = 5 * 3600.0


@pytest.mark.parametrize(
    ("minutes_to_close", "closes"),
    [(0.9 * HORIZON / 60, True), (1.1 * HORIZON / 60, False)],
)
def test_closing_is_the_trend_reaching_the_limit_within_the_horizon(
    minutes_to_close: float, closes: bool
) -> None:
    excess = 0.02
    rate = excess / minutes_to_close  # V per minute
    history = [LIMIT + excess + rate * (119 - k) for k in range(120)]
    assert closing(history, 120, LIMIT, HORIZON) is closes


def test_closing_looks_at_the_trend_of_the_window_not_two_samples() -> None:
    """±3 mV of noise on a deviation closing by 3 mV an hour: two samples half a window
    apart often say "opening"; the line through all of them does not."""
    noise = [0.003 * (1 if k % 7 == 0 else -1) for k in range(120)]
    history = [LIMIT + 0.01 - 0.00005 * k + noise[k] for k in range(120)]
    assert history[-1] > history[-61]  # what a two-sample comparison would have seen
    assert closing(history, 120, LIMIT, HORIZON)
    flat = [LIMIT + 0.01 + noise[k] for k in range(120)]
    assert not closing(flat, 120, LIMIT, HORIZON)


def test_only_the_last_window_of_the_history_counts() -> None:
    old_fall = [LIMIT + 0.05 - 0.001 * k for k in range(40)]  # closed fast, long ago
    stuck = [LIMIT + 0.01] * 120
    assert not closing(old_fall + stuck, 120, LIMIT, HORIZON)
    assert closing(old_fall + stuck, 160, LIMIT, HORIZON)


def test_a_short_history_is_never_closing() -> None:
    assert not closing([0.05, 0.04], 120, LIMIT, HORIZON)


def test_a_noisy_cycle_lowers_the_tally_by_a_quarter_of_its_time_not_to_zero() -> None:
    bs = blocks(high(), held(), held())
    run(bs, [0.02, 0.0, 0.0], FIRST_EVIDENCE + 9)  # 10 minutes of evidence
    assert bs[0].beyond_s == 600.0
    run(bs, [0.0, 0.0, 0.0], 1, start=FIRST_EVIDENCE + 9)
    assert bs[0].beyond_s == 600.0 - ERROR_HISTORY_S / 4
    run(bs, [0.0, 0.0, 0.0], 100, start=FIRST_EVIDENCE + 10)
    assert bs[0].beyond_s == 0.0  # never below zero


def test_without_an_identified_lag_the_slowest_plausible_one_is_assumed() -> None:
    # Unidentified: lag = 7200 s x design current (0.001 A/Ah x 300 Ah) / the block's current
    # (1 - 0.5 A) = 4320 s; four of them: 17280 s of evidence instead of the minimum 7200 s.
    window = S.out_of_range_lags * S.unidentified_lag_s * 0.3 / (I_STR - SHUNT)
    assert window == pytest.approx(17280.0)
    ripe = ripe_after(window)
    bs = blocks(high(), held(), held())
    run(bs, [0.02, 0.0, 0.0], ripe - 1, plant=UNKNOWN_LAG, capacity=300.0)
    assert not bs[0].out_of_range
    assert bs[0].beyond_s == pytest.approx(window - ERROR_HISTORY_S)
    run(bs, [0.02, 0.0, 0.0], 1, start=ripe - 1, plant=UNKNOWN_LAG, capacity=300.0)
    assert bs[0].out_of_range


def test_an_identified_long_lag_sets_the_evidence_time() -> None:
    # θ = 1200 A·s at the block's 0.5 A: a 2400 s lag, four of them 9600 s.
    plant = PlantEstimate(0.06, theta_as=1200.0, identified=True, lag_identified=True)
    window = S.out_of_range_lags * 1200.0 / (I_STR - SHUNT)
    ripe = ripe_after(window)
    bs = blocks(high(), held(), held())
    run(bs, [0.02, 0.0, 0.0], ripe - 1, plant=plant)
    assert not bs[0].out_of_range
    run(bs, [0.02, 0.0, 0.0], 1, start=ripe - 1, plant=plant)
    assert bs[0].out_of_range


def test_every_ripe_block_is_reported_and_the_others_keep_their_evidence() -> None:
    """The held set is chosen jointly, so no exclusion waits for another; a block whose
    evidence is not ripe keeps what it has gathered."""
    bs = blocks(high(), low(), held(), high())
    devs = [[0.02, -0.03, 0.0, 0.02 if k >= BACK + 30 else 0.0] for k in range(RIPE)]
    run(bs, minutes=RIPE, deviations=devs)
    assert [b.out_of_range for b in bs] == [True, True, False, False]
    assert bs[3].beyond_s > 0


@pytest.mark.parametrize(
    ("deviation", "window"),
    [
        (0.03, 7200.0),  # three limits off: the slow polarisation could still bring it in
        (0.06, 3600.0),  # twice that far: half the time
        (0.12, 1800.0),  # four times: the floor, half an hour
        (0.5, 1800.0),  # a soft short: never less than the floor
    ],
)
def test_a_block_far_beyond_the_limit_needs_less_evidence(deviation: float, window: float) -> None:
    ripe = ripe_after(window)
    bs = blocks(high(), held(), held())
    run(bs, [deviation, 0.0, 0.0], ripe - 1)
    assert not bs[0].out_of_range
    run(bs, [deviation, 0.0, 0.0], 1, start=ripe - 1)
    assert bs[0].out_of_range


def test_a_block_back_in_the_set_is_not_reported_whatever_its_tally() -> None:
    """Evidence gathered while it was outside stays (leaking), but a member is never
    reported: the set it is held in says it is within reach."""
    bs = blocks(high(), held(), held())
    run(bs, [0.02, 0.0, 0.0], RIPE - 1)
    bs[0].member, bs[0].side = True, 0
    run(bs, [0.02, 0.0, 0.0], 5, start=RIPE - 1)
    assert not bs[0].out_of_range and bs[0].beyond_s > 0
    bs[0].member, bs[0].side = False, 1
    run(bs, [0.02, 0.0, 0.0], 2, start=RIPE + 4)  # the five leaked minutes' quarter back
    assert not bs[0].out_of_range
    run(bs, [0.02, 0.0, 0.0], 1, start=RIPE + 6)
    assert bs[0].out_of_range and not bs[0].member and not bs[0].fits


def test_a_judged_block_remembers_whether_it_is_closing() -> None:
    falling = blocks(high(), held(), held())
    run(falling, minutes=BACK + 5, deviations=[[0.06 - 0.0003 * k, 0.0, 0.0] for k in range(80)])
    assert falling[0].closing
    stalled = blocks(high(), held(), held())
    run(stalled, [0.03, 0.0, 0.0], BACK + 5)
    assert not stalled[0].closing
    run(stalled, [0.0, 0.0, 0.0], 1, start=BACK + 5)  # back within the limit: not judged
    assert stalled[0].closing


def test_forgetting_a_block_starts_every_judgement_afresh() -> None:
    """After a pause: commands, filters, the held set's view and the evidence start again."""
    b = BlockState(command=0.3, filtered=13.7, level=0.1, need=0.2, member=False, side=-1)
    b.closing, b.closing_at = False, 60.0
    b.beyond_s, b.history_at, b.settled_current, b.settled_since = 900.0, 60.0, 0.1, 5.0
    b.history.extend([0.02] * 3)
    b.window.push(0.0, 13.7, 0.1)
    b.forget()
    assert (b.command, b.filtered, b.level, b.need) == (0.0, None, None, None)
    assert (b.member, b.side, b.beyond_s, b.closing, b.closing_at) == (True, 0, 0.0, True, None)
    assert not b.history and b.history_at == -1e18
    assert not b.window.samples
    assert b.settled_current is None and b.settled_since == -1e18
