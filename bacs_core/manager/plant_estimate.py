"""What equalization learns about the batteries online, instead of assuming it.

A float block is a double layer charged through a reaction whose current grows
exponentially with overvoltage (the oxygen cycle, Tafel-like): ``C·dV/dt = I − f(V)``,
``f = I0_i·exp(V/b)``. The slope b (V per e-fold, per cell) and the capacitance C are
properties of the battery model, shared by the blocks of a string; I0_i differs from block
to block (that is the imbalance). Rearranged per cell, with the block current I = I_str −
I_shunt known to the manager and dV/dt measured:

    V/cells = a_i + b·ln(I − κ·dV/dt/cells)              (κ = C per cell, A·s/V)

For a fixed κ this is linear in b with one intercept per block, so ``PlantEstimator`` keeps,
for a grid of κ, pooled within-block least-squares moments (the intercepts drop out) with
exponential forgetting, and picks the κ whose fit leaves the least residual. The small-signal
lag follows: τ = κ·b / I. Only samples in which the controller's own moves excite a block
are used (in a quiet hold the slope is noise). Nothing here is a constant of any particular
battery: the estimator starts from a deliberately rough prior and replaces it once the data
pin the fit down.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

MIN_B_PER_CELL = 0.01  # V per e-fold: bounds that no lead-acid (or NiCd) plant leaves
MAX_B_PER_CELL = 0.15
MIN_LAG_S = 60.0
MAX_LAG_S = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class PlantEstimate:
    """The current belief: slope per cell, θ (lag × current), and whether data backs it."""

    b_per_cell: float
    theta_as: float  # A·s: lag at current I is θ / I
    identified: bool

    def lag_s(self, current_a: float) -> float:
        return min(max(self.theta_as / max(current_a, 1e-6), MIN_LAG_S), MAX_LAG_S)


@dataclass
class BlockWindow:
    """One block's recent samples, kept as running sums for an O(1) least-squares slope."""

    span_s: float
    samples: deque[tuple[float, float, float]] = field(default_factory=deque)  # t, V, I
    t0: float | None = None
    _s: list[float] = field(default_factory=lambda: [0.0] * 6)  # n, t, V, I, t², t·V

    def clear(self) -> None:
        self.samples.clear()
        self.t0 = None
        self._s = [0.0] * 6

    def _add(self, t: float, v: float, x: float, sign: float) -> None:
        s = self._s
        s[0] += sign
        s[1] += sign * t
        s[2] += sign * v
        s[3] += sign * x
        s[4] += sign * t * t
        s[5] += sign * t * v

    def push(self, t_abs: float, volts: float, amps: float) -> None:
        if self.t0 is None:
            self.t0 = t_abs
        t = t_abs - self.t0
        self.samples.append((t, volts, amps))
        self._add(t, volts, amps, 1.0)
        while self.samples and self.samples[0][0] < t - self.span_s:
            self._add(*self.samples.popleft(), -1.0)

    def full(self) -> bool:
        return (
            len(self.samples) >= 4 and self.samples[-1][0] - self.samples[0][0] >= 0.8 * self.span_s
        )

    def means_and_slope(self) -> tuple[float, float, float]:
        """(mean V, mean I, dV/dt) over the window, all at its mean time."""
        n, st, sv, sx, stt, stv = self._s
        den = stt - st * st / n
        slope = (stv - st * sv / n) / den if den > 1e-9 else 0.0
        return sv / n, sx / n, slope


@dataclass
class _Moments:
    """Exponentially forgotten sums of one block's (X, Y) samples: n, x, y, xx, xy, yy."""

    s: list[float] = field(default_factory=lambda: [0.0] * 6)

    def add(self, x: float, y: float, keep: float) -> None:
        s = self.s
        s[0] = s[0] * keep + 1.0
        s[1] = s[1] * keep + x
        s[2] = s[2] * keep + y
        s[3] = s[3] * keep + x * x
        s[4] = s[4] * keep + x * y
        s[5] = s[5] * keep + y * y

    def centred(self) -> tuple[float, float, float, float]:
        """Within-block cxx, cxy, cyy (× weight) and the weight."""
        n, sx, sy, sxx, sxy, syy = self.s
        if n <= 1.0:
            return 0.0, 0.0, 0.0, n
        return sxx - sx * sx / n, sxy - sx * sy / n, syy - sy * sy / n, n


GRID = 17  # κ values, log-spaced over the bounds below


@dataclass
class PlantEstimator:
    """Grid over κ, pooled forgetting least squares for b; see the module docstring."""

    prior_b_per_cell: float
    prior_lag_s: float
    prior_current_a: float
    forget_s: float = 12 * 3600.0
    estimate: PlantEstimate | None = None
    kappas: list[float] = field(default_factory=list)
    moments: list[list[_Moments]] = field(default_factory=list)  # [κ][block]
    refused: list[float] = field(default_factory=list)  # weight of samples κ cannot explain
    weight: float = 0.0

    def __post_init__(self) -> None:
        self.estimate = PlantEstimate(
            self.prior_b_per_cell, self.prior_lag_s * self.prior_current_a, False
        )
        lo = MIN_LAG_S * self.prior_current_a / MAX_B_PER_CELL
        hi = MAX_LAG_S * self.prior_current_a / MIN_B_PER_CELL
        self.kappas = [lo * (hi / lo) ** (k / (GRID - 1)) for k in range(GRID)]
        self.moments = [[] for _ in self.kappas]
        self.refused = [0.0] * GRID

    @property
    def current(self) -> PlantEstimate:
        assert self.estimate is not None
        return self.estimate

    def add(self, index: int, cells: int, window: BlockWindow, dt_s: float) -> None:
        """One excited sample of block ``index`` (its window's means and slope)."""
        v, amps, slope = window.means_and_slope()
        keep = math.exp(-dt_s / self.forget_s)
        self.weight = self.weight * keep + 1.0
        y = v / cells
        rate = slope / cells
        for k, kappa in enumerate(self.kappas):
            self.refused[k] *= keep
            row = self.moments[k]
            while len(row) <= index:
                row.append(_Moments())
            f = amps - kappa * rate
            if f <= 0.05 * amps:
                self.refused[k] += 1.0  # this κ says the reaction would run backwards
                continue
            row[index].add(math.log(f), y, keep)

    def solve(self) -> PlantEstimate:
        """Refit; keep the last belief when the data cannot pin the fit down."""
        best: tuple[float, float, float] | None = None  # rss per dof, b, κ
        for k, kappa in enumerate(self.kappas):
            if self.refused[k] > 0.05 * self.weight:
                continue
            cxx = cxy = cyy = n_eff = 0.0
            groups = 0
            for m in self.moments[k]:
                a, b, c, n = m.centred()
                if n < 3:
                    continue
                cxx += a
                cxy += b
                cyy += c
                n_eff += n
                groups += 1
            dof = n_eff - groups - 1
            if groups < 2 or dof < 30 or cxx <= 0.02 * n_eff:
                continue  # too little movement of ln I to see a slope
            slope = cxy / cxx
            rss = max(cyy - slope * cxy, 0.0) / dof
            se = math.sqrt(rss / cxx)
            if not MIN_B_PER_CELL <= slope <= MAX_B_PER_CELL or se > 0.1 * slope:
                continue
            if best is None or rss < best[0]:
                best = (rss, slope, kappa)
        if best is not None:
            _, b, kappa = best
            self.estimate = PlantEstimate(b, kappa * b, True)
        return self.current
