"""Equalization's memory per block, which blocks are within reach, and the evidence that
one is not.

The held set: the largest set of blocks whose estimated steady needs lie within one shunt
maximum (``choose_held_set``); the string current is steered to the least total shortfall of
the set's asks (``steered_level``); blocks at their maximum and still far above target leave
the target's mean while they fall (``pin_far_blocks``). A block is ``OUT_OF_RANGE`` only on
evidence: outside the held set and pinned where the controller left it (at its maximum and
still high, or off and still low) for several of its own lags at its own current, while its
deviation is not closing (``track_reach``).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .equalization_types import EqualizationSettings, StringInputs
from .plant_estimate import MAX_LAG_S, BlockWindow, PlantEstimate

ERROR_HISTORY_S = 60.0  # spacing of the remembered deviations ("is it closing?")


@dataclass
class BlockState:
    """What the controller remembers about one block between cycles."""

    command: float = 0.0  # A, the shunt commanded last cycle
    filtered: float | None = None  # V
    level: float | None = None  # ln(A): the block current steered towards, smoothed
    beyond_s: float = 0.0  # time the evidence has said "beyond reach"
    out_of_range: bool = False
    pinned: bool = False  # at its maximum and still above target: not in the target's mean
    at_max_since: float | None = None  # s: since when its command is the module maximum
    closing: bool = True  # outside the set: whether its deviation's trend is closing
    closing_at: float | None = None  # the history point ``closing`` was computed on
    member: bool = True  # in the set the shunts can hold together (the target's mean)
    fits: bool = True  # its steady need fits the held set (a pinned block may: it is slow)
    need: float | None = None  # A: the block's steady current on target, smoothed
    reach_efolds: float = 0.0  # how far its need is extrapolated: e-folds, + above target
    side: int = 0  # outside the held set: +1 needs less current than it (high), −1 more
    retry_at: float = 0.0
    history: deque[float] = field(
        default_factory=lambda: deque(maxlen=1500)
    )  # 25 h  # |e| per minute
    history_at: float = -1e18
    window: BlockWindow = field(default_factory=lambda: BlockWindow(300.0))
    settled_current: float | None = None  # A: the block current since ``settled_since``
    settled_since: float = -1e18  # untouched by us: as settled as its slope says

    def forget(self) -> None:
        self.command = 0.0
        self.filtered = None
        self.level = None
        self.need = None
        self.member = True
        self.side = 0
        self.beyond_s = 0.0
        self.closing = True
        self.closing_at = None
        self.history.clear()
        self.history_at = -1e18
        self.window.clear()
        self.settled_current = None
        self.settled_since = -1e18


def pin_far_blocks(
    blocks: list[BlockState],
    s: EqualizationSettings,
    now_s: float,
    inputs: StringInputs,
    targets: Sequence[float | None],
) -> None:
    """Blocks held above target at their shunt maximum leave the target's mean.

    They fall only as fast as their own reaction lets them; counted in the mean, they
    would make every other block look low, the low ones would ask for more string
    current, and that current would keep the pinned blocks up: a trap.
    """
    candidates: list[tuple[float, int]] = []
    for i, b in enumerate(inputs.blocks):
        block = blocks[i]
        if block.command < 0.98 * b.shunt_max:
            block.at_max_since = None
        elif block.at_max_since is None:
            block.at_max_since = now_s
        block.pinned = False
        t = targets[i]
        if block.filtered is None or t is None or block.at_max_since is None:
            continue
        # At its maximum for an approach time: not a first move (which may well be the
        # maximum), a block the shunt cannot bring down as fast as it is asked to.
        if block.filtered - t > s.out_of_range_deviation and (
            now_s - block.at_max_since >= s.approach_s
        ):
            candidates.append((block.filtered - t, i))
    # The farthest, never more than a third of the string: the target stays the mean of
    # most blocks, so leaving it cannot cascade (each exclusion lowers the mean and makes
    # the next block look high).
    for _, i in sorted(candidates, reverse=True)[: len(inputs.blocks) // 3]:
        blocks[i].pinned = True


def choose_held_set(
    blocks: list[BlockState],
    inputs: StringInputs,
    active: list[int],
    doubt: float,
    hysteresis: float = 0.0,
) -> None:
    """The largest set of blocks whose steady needs lie within one shunt maximum.

    The block that needs the most current of the set carries the string current; every
    other member shunts the difference, which no module can make larger than its maximum
    (docs/simulator.md, "What reachable means", here from the controller's own estimates).
    Blocks outside are not chased: they leave the target's mean, so the blocks that can
    be held are held to each other instead of being pulled after a block that cannot
    follow. Of two sets as large, the one that keeps more of the present members. A
    block pinned above target at its maximum stays outside while it falls.

    A block far from target is judged with the benefit of the doubt: its need is
    extrapolated over ``reach_efolds``, and what the model leaves out (a series
    resistance, a slow polarisation) makes that extrapolation overshoot, too large from
    below and too small from above. Only the share ``1 − doubt`` of the extrapolation
    counts; the evidence of ``track_reach`` decides the rest as the block comes closer.

    A present member leaves only when its need lies beyond the set by more than
    ``hysteresis`` of a shunt maximum: a block held on target at the edge of the set would
    otherwise flicker in and out with the noise of its estimate, and every flicker moves
    the string current for all.
    """
    judged = {i: (blocks[i].need or 0.0) * math.exp(doubt * blocks[i].reach_efolds) for i in active}
    order = sorted(active, key=judged.__getitem__)
    needs = [judged[i] for i in order]
    kept = list(itertools.accumulate((blocks[i].member for i in order), initial=0))
    width = max(inputs.blocks[i].shunt_max for i in active)
    best = (0, 0, 0, 0)  # size, members kept, left, right
    left = 0
    for right, need in enumerate(needs):
        while need - needs[left] > width * (1 + 1e-9):  # exactly one maximum still fits
            left += 1
        size = (right - left + 1, kept[right + 1] - kept[left])
        if size > best[:2]:
            best = (*size, left, right)
    _, _, lo, hi = best
    slack = width * (1 + hysteresis)
    for k, i in enumerate(order):
        block = blocks[i]
        stays = block.member and (
            (k > hi and needs[k] - needs[lo] <= slack) or (k < lo and needs[hi] - needs[k] <= slack)
        )
        block.fits = lo <= k <= hi or stays
        outside = not block.fits
        block.side = (
            1 if (outside and k < lo) or block.pinned else (-1 if outside and k > hi else 0)
        )
        block.member = block.side == 0


def steered_level(
    levels: list[float], width: float, weights: Sequence[float] | None = None
) -> float:
    """The block current the string is steered to (the one block with its shunt off).

    In steady state, the most any block of the set asks for: every other shunts the
    difference. While the set's asks span more than one shunt maximum (blocks far above
    target asking to be discharged, blocks below asking to be charged), the least level
    that leaves as much weight of blocks short of what they ask above it as below it: the
    smallest total shortfall. Serving the lowest blocks first would hold the string current
    up and leave the high ones, at their maximum shunt, to fall at a trickle. ``weights``
    (1 each by default) let the controller count a pinned block, which it has already let
    fall at its own pace, for less than a member it has committed to hold.
    """
    pairs = sorted(zip(levels, weights or [1.0] * len(levels), strict=True))
    ordered = [level for level, _ in pairs]
    cumulative = list(itertools.accumulate((w for _, w in pairs), initial=0.0))
    total = cumulative[-1]
    for cand in sorted(set(ordered + [x + width for x in ordered])):
        above = total - cumulative[bisect.bisect_right(ordered, cand)]
        below = cumulative[bisect.bisect_right(ordered, cand - width)]
        if below >= above - 1e-12:
            return cand
    return ordered[-1]


def closing(history: Sequence[float], points: int, limit: float, horizon_s: float) -> bool:
    """Whether the deviation's trend would bring it inside ``limit`` within ``horizon_s``.

    A least-squares line through the last ``points`` per-minute deviations: a slow plant
    (diffusion polarisation takes hours) closes by a few mV an hour, which two noisy samples
    cannot tell from a block that does not move at all.
    """
    ys = list(itertools.islice(history, max(len(history) - points, 0), None))
    n = len(ys)
    if n < 3:
        return False
    mean_t = (n - 1) / 2
    mean_y = sum(ys) / n
    sxy = sum((k - mean_t) * (y - mean_y) for k, y in enumerate(ys))
    sxx = n * (n * n - 1) / 12
    slope = sxy / sxx / ERROR_HISTORY_S  # V/s, of |deviation|
    excess = mean_y + slope * ERROR_HISTORY_S * (n - 1 - mean_t) - limit
    return slope < 0 and excess < -slope * horizon_s


def track_reach(
    blocks: list[BlockState],
    s: EqualizationSettings,
    now_s: float,
    dt: float,
    inputs: StringInputs,
    deviation: Sequence[float | None],
    active: list[int],
    plant: PlantEstimate,
    i_str: float,
    *,
    spent: bool,
) -> None:
    """Out of range on evidence (battery-domain.md §3.6, made relative to the lag).

    Too high: its own shunt at the maximum while the others still have authority. Too low:
    its shunt off while the set's authority is ``spent`` (the string current raised until
    the set's lowest member shunts nearly its maximum), and the block still low. Either for
    ``out_of_range_lags`` of the block's own lags at its own current (never less than
    ``out_of_range_min_s``), while the trend of its deviation over that window would not
    close it within ``closing_windows`` windows.
    """
    limit = s.out_of_range_deviation
    design = s.design_float_current_per_ah * inputs.capacity_ah

    def window_for(i: int) -> float:
        # The block's own lag at its own current: a block shunted to a trickle answers
        # slowly, and slow is not "beyond reach".
        amps = max(i_str - blocks[i].command, 0.01 * i_str)
        if plant.lag_identified:
            lag = plant.lag_s(amps)
        else:  # no evidence of the lag yet: assume the slowest plausible one
            lag = s.unidentified_lag_s * design / amps
        # The slow polarisation moves a block by some tens of mV over hours: near the limit
        # that takes hours to rule out; a block several times as far is beyond it sooner.
        far = abs(deviation[i] or 0.0) / (s.out_of_range_far * limit)
        floor = min(
            max(s.out_of_range_min_s / max(far, 1e-9), s.out_of_range_far_s), s.out_of_range_min_s
        )
        return max(s.out_of_range_lags * min(lag, MAX_LAG_S), floor)

    for i in active:
        block = blocks[i]
        b = inputs.blocks[i]
        e = deviation[i] or 0.0
        if now_s - block.history_at >= ERROR_HISTORY_S:
            block.history.append(abs(e))
            block.history_at = now_s
        # Outside the held set, pinned where the controller left it: at the maximum
        # (or the whole string current) and still high, or with its shunt off and still low.
        pinned_high = block.command >= 0.98 * min(b.shunt_max, i_str)
        high = not block.member and block.side > 0 and e > limit and pinned_high
        low = spent and not block.member and block.side < 0 and e < -limit and block.command <= 1e-4
        window = window_for(i)
        points = round(window / ERROR_HISTORY_S)
        if not (high or low) or len(block.history) < points // 2:
            # A leaky tally: a noisy cycle that breaks the condition does not reset it.
            block.beyond_s = max(0.0, block.beyond_s - dt / 4)
            block.closing, block.closing_at = True, None
            continue
        if block.closing_at != block.history_at:  # the trend changes once a minute, not a cycle
            block.closing = closing(block.history, points, limit, s.closing_windows * window)
            block.closing_at = block.history_at
        if not block.closing:
            block.beyond_s += dt
    # The held set is chosen jointly, so every block whose evidence is ripe is reported.
    for i in active:
        block = blocks[i]
        if block.member or block.beyond_s < window_for(i):
            continue  # a block back in the set keeps its tally, but is not reported
        block.beyond_s = 0.0
        block.out_of_range = True
        block.member = block.fits = False
        block.retry_at = now_s + s.retry_after_s
        block.command = 0.0
        block.level = None
