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
from collections.abc import Collection
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
    identified: bool  # both the slope and the lag come from data
    lag_identified: bool = False  # the lag does (the slope may still be the prior)

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
        return len(self.samples) >= 4 and self.spans() >= 0.8 * self.span_s

    def spans(self) -> float:
        """Seconds between the first and the last sample."""
        return self.samples[-1][0] - self.samples[0][0] if self.samples else 0.0

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


GRID = 25  # κ values, log-spaced over the bounds below
STEADY = 0.1  # a window is quasi-steady when κ·dV/dt is below this share of the current
MAX_POINTS = 12  # operating points remembered per block
MIN_POINT_SAMPLES = 1  # windows (each a slope window's mean) that make an operating point


@dataclass
class PlantEstimator:
    """Two fits from the same windows; see the module docstring.

    b comes from the operating points the controller has moved each block through: the mean
    of each stretch in which a block's current stayed put and its voltage settled (κ·dV/dt
    small against I). Means, not samples: within a stretch the controller's own reaction
    to measurement noise correlates current and voltage and would bias b low (the classic
    trap of identification in closed loop); between stretches the moves are the
    controller's, tens of percent of current, and the noise averages out. κ comes
    from every excited window, with b fixed: the κ on a log grid whose model leaves the
    least residual.
    """

    prior_b_per_cell: float
    prior_lag_s: float
    prior_current_a: float
    forget_s: float = 24 * 3600.0
    slowest_lag_s: float = 0.0  # at prior_current_a: what "settled" must allow for
    estimate: PlantEstimate | None = None
    kappas: list[float] = field(default_factory=list)
    moments: list[list[_Moments]] = field(default_factory=list)  # [κ][block], excited
    points: list[dict[float, list[float]]] = field(default_factory=list)  # [block]{stretch: n,x,y}
    refused: list[float] = field(default_factory=list)  # weight of samples κ cannot explain
    weight: float = 0.0
    b_fit: float | None = None
    kappa_fit: float | None = None

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

    @property
    def kappa(self) -> float:
        est = self.current
        return self.kappa_fit or est.theta_as / est.b_per_cell

    def add(
        self,
        index: int,
        cells: int,
        window: BlockWindow,
        dt_s: float,
        *,
        excited: bool,
        stretch: float | None,
        undisturbed: bool = False,
    ) -> None:
        """One window of block ``index``: its means and slope. ``stretch`` names the period
        since its current last moved, once that is several lags old (the caller knows its
        own commands); None while it is not. ``undisturbed``: the controller has not moved
        anything yet, the window is its short first look and counts as steady (a string on
        float for hours is; its slope over a minute is noise)."""
        v, amps, slope = window.means_and_slope()
        if amps <= 0:
            return
        keep = math.exp(-dt_s / self.forget_s)
        y = v / cells
        rate = slope / cells
        while len(self.points) <= index:
            self.points.append({})
        # Settled by the slowest plausible lag, not only the identified one: a lag
        # identified short would take a block still creeping towards its new operating
        # point for settled, and every such point pulls b low.
        slowest = self.slowest_lag_s * self.prior_current_a / self.current.b_per_cell
        steady = undisturbed or abs(max(self.kappa, slowest) * rate) < STEADY * amps
        if stretch is not None and steady:
            point = self.points[index].setdefault(stretch, [0.0, 0.0, 0.0])
            point[0] += 1.0
            point[1] += math.log(amps)
            point[2] += y
            while len(self.points[index]) > MAX_POINTS:
                del self.points[index][min(self.points[index])]
        if not excited:
            return
        self.weight = self.weight * keep + 1.0
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

    @staticmethod
    def _pool(row: list[_Moments]) -> tuple[float, float, float, float, int]:
        cxx = cxy = cyy = n_eff = 0.0
        groups = 0
        for m in row:
            a, b, c, n = m.centred()
            if n < 2:
                continue
            cxx += a
            cxy += b
            cyy += c
            n_eff += n
            groups += 1
        return cxx, cxy, cyy, n_eff, groups

    def _fit_slope(self, trusted: Collection[int] | None) -> None:
        """b from the operating points, demeaned per block (the intercepts drop out).

        Only the ``trusted`` blocks (the set the controller holds) count: a block with a
        soft short or dried out carries current no Tafel law explains, and pooled with the
        others it drags b low, and every extrapolated need with it.
        """
        cxx = cxy = cyy = 0.0
        n = 0
        blocks = 0
        for index, stretches in enumerate(self.points):
            if trusted is not None and index not in trusted:
                continue
            means = [(x / k, y / k) for k, x, y in stretches.values() if k >= MIN_POINT_SAMPLES]
            if len(means) < 2:
                continue
            mx = sum(x for x, _ in means) / len(means)
            my = sum(y for _, y in means) / len(means)
            for x, y in means:
                cxx += (x - mx) ** 2
                cxy += (x - mx) * (y - my)
                cyy += (y - my) ** 2
            n += len(means)
            blocks += 1
        dof = n - blocks - 1
        if blocks < 2 or dof < 3 or cxx < 0.1:  # moves of ~0.3 e-fold in a few blocks
            return
        slope = cxy / cxx
        se = math.sqrt(max(cyy - slope * cxy, 0.0) / dof / cxx)
        if MIN_B_PER_CELL <= slope <= MAX_B_PER_CELL and se < 0.1 * slope:
            self.b_fit = slope

    def solve(self, trusted: Collection[int] | None = None) -> PlantEstimate:
        """Refit; keep the last belief when the data cannot pin the fit down."""
        self._fit_slope(trusted)
        b = self.b_fit or self.prior_b_per_cell
        rss: list[float | None] = []
        for k in range(len(self.kappas)):
            cxx, cxy, cyy, n_eff, groups = self._pool(self.moments[k])
            if (
                self.refused[k] > 0.05 * self.weight
                or groups < 2
                or n_eff < 30
                or cxx <= 0.002 * n_eff  # too little movement to see a lag
            ):
                rss.append(None)
            else:
                rss.append((cyy - 2 * b * cxy + b * b * cxx) / n_eff)
        valid = [k for k, r in enumerate(rss) if r is not None]
        if valid:
            k = min(valid, key=lambda j: rss[j] or 0.0)
            # Only a minimum with a worse fit on both sides is a lag. A minimum at the short
            # end is what noise in the slope does to any plant (it favours "no double
            # layer"), so it identifies nothing.
            left, right = rss[k - 1] if k > 0 else None, rss[k + 1] if k + 1 < GRID else None
            if left is not None and right is not None:
                self.kappa_fit = self.kappas[k]
        if self.kappa_fit is not None:
            self.estimate = PlantEstimate(
                b, self.kappa_fit * b, self.b_fit is not None, lag_identified=True
            )
        return self.current
