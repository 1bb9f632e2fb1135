"""Equalization's memory per block, and the evidence that a block is beyond reach.

A block is ``OUT_OF_RANGE`` only on evidence: its own shunt at the maximum (too high) or
the others' shunts used up (too low, or on target only at the price of a block pinned above
it), for several of its own lags at its own current, while its deviation is not closing.
One block at a time; the others' evidence starts again after each exclusion.
"""

from __future__ import annotations

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
    member: bool = True  # in the set the shunts can hold together (the target's mean)
    fits: bool = True  # its steady need fits the held set (a pinned block may: it is slow)
    need: float | None = None  # A: the block's steady current on target, smoothed
    reach_efolds: float = 0.0  # how far (e-folds of current) its need is extrapolated
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
        self.history.clear()
        self.history_at = -1e18
        self.window.clear()
        self.settled_current = None
        self.settled_since = -1e18


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
) -> None:
    """Out of range on evidence (battery-domain.md §3.6, made relative to the lag).

    Too high: its own shunt at the maximum while the others still have authority. Too low:
    its shunt off, the median of the others' shunts at ≥ 90 % of their maximum, and the
    block still low or held only at the price of a pinned block. Either for
    ``out_of_range_lags`` of the block's own lags at its own current, while its deviation
    has not closed by a fifth over half that time.
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
        return max(s.out_of_range_lags * min(lag, MAX_LAG_S), s.out_of_range_min_s)

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
        low = not block.member and block.side < 0 and e < -limit and block.command <= 1e-4
        window = window_for(i)
        back = round(window / 2 / ERROR_HISTORY_S)
        if not (high or low) or len(block.history) <= back:
            # A leaky tally: a noisy cycle that breaks the condition does not reset it.
            block.beyond_s = max(0.0, block.beyond_s - dt / 4)
            continue
        then = block.history[-1 - back]
        if abs(e) - limit > 0.8 * (then - limit):  # not closing
            block.beyond_s += dt
    # The held set is chosen jointly, so every block whose evidence is ripe is reported.
    for i in active:
        block = blocks[i]
        if block.beyond_s < window_for(i):
            continue
        block.beyond_s = 0.0
        block.out_of_range = True
        block.retry_at = now_s + s.retry_after_s
        block.command = 0.0
        block.level = None
