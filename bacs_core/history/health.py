"""State-of-health estimates per block from one discharge and the resistance trend.

The method and its assumptions are in docs/history.md ("State of health"). In short:
- a capacity test (the string reached the end voltage): a block's capacity is the Ah
  delivered when it reached the end voltage itself, against the rating at this rate;
- a partial discharge: a block that fell δ volts beyond the string's mean drop behaves as if
  it were deeper in its curve, by δ / |dV/dAh| Ah, where dV/dAh is the string's own slope
  near the end, so C_block / C_string ≈ 1 / (1 + δ / (|dV/dAh| · Ah)) (first order);
- resistance: R / R_baseline = 1 + 2 (1 − C/C0) (battery-domain.md §4.5; +40 % ⇔ 80 %).
The lower of the available estimates is reported: the weaker evidence governs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

REPLACE_SOH_PCT = 80.0  # IEEE 450/1188 practice: replace below 80 % of rated capacity


def rated_capacity_at_rate(
    rated_ah: float, mean_current_a: float, mean_temperature_c: float | None
) -> float:
    """The rated (C10) capacity scaled to this discharge's rate and temperature (§4.3):
    Peukert k 1.05 below the 10 h current, 1.2 above; f_T 0.64 %/°C below 25 °C."""
    i10 = rated_ah / 10.0
    rel = max(mean_current_a / i10, 1e-3)
    k = 1.05 if rel <= 1.0 else 1.2
    c = rated_ah * math.pow(1.0 / rel, k - 1.0)
    t = 25.0 if mean_temperature_c is None else mean_temperature_c
    f_t = 1.0 + 0.0064 * (t - 25.0) if t < 25.0 else 1.0 + 0.002 * (t - 25.0)
    return c * max(0.5, min(1.05, f_t))


def end_slope_v_per_ah(curve: Sequence[tuple[float, float]], tail: float = 0.25) -> float | None:
    """Least-squares slope of the string's mean block voltage against Ah delivered, over the
    last ``tail`` of the Ah (where the blocks are compared). None if flat or too few points."""
    if len(curve) < 4:
        return None
    total = curve[-1][0]
    points = [(a, v) for a, v in curve if a >= total * (1.0 - tail)]
    if len(points) < 4:
        points = list(curve[-4:])
    n = len(points)
    mean_a = sum(a for a, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    sxx = sum((a - mean_a) ** 2 for a, _ in points)
    if sxx <= 0:
        return None
    slope = sum((a - mean_a) * (v - mean_v) for a, v in points) / sxx
    return slope if slope < 0 else None


def relative_capacity(shortfall_v: float, slope_v_per_ah: float, ah: float) -> float:
    """C_block / C_string from the block's offset-corrected shortfall at the end (first order)."""
    depth_ah = shortfall_v / abs(slope_v_per_ah)
    return 1.0 / max(1e-6, 1.0 + depth_ah / ah)


def soh_from_resistance(ratio: float | None) -> float | None:
    if ratio is None or ratio <= 0:
        return None
    return clamp_pct(100.0 * (1.0 - (ratio - 1.0) / 2.0))


def clamp_pct(value: float) -> float:
    return round(max(0.0, min(100.0, value)), 1)


def combined(*estimates: float | None) -> float | None:
    known = [e for e in estimates if e is not None]
    return min(known) if known else None
