"""How a battery module measures its block: what a controller sees instead of the truth.

A real module's voltage reading carries white noise, a per-module offset and gain error
(calibration, ±3–5 mV at 14 V is good practice, battery-domain.md §3.6) and the charger's
ripple, sampled at an arbitrary phase. Offsets and gain errors are drawn once per module.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SensingOptions:
    noise_v: float = 0.002  # σ of white noise per reading
    offset_v: float = 0.0  # per-module offset, uniform in ±offset_v
    gain_error: float = 0.0  # per-module gain error, uniform in ±gain_error (0.0002 = 0.02 %)
    ripple_v: float = 0.0  # charger ripple amplitude seen at an arbitrary phase


@dataclass(frozen=True, slots=True)
class ModuleCalibration:
    """One module's fixed errors: reading = (1 + gain)·V + offset (+ noise, ripple)."""

    offset_v: float = 0.0
    gain: float = 0.0

    @classmethod
    def draw(cls, options: SensingOptions, rng: random.Random) -> ModuleCalibration:
        return cls(
            rng.uniform(-options.offset_v, options.offset_v),
            rng.uniform(-options.gain_error, options.gain_error),
        )


def measure(
    true_v: float,
    cal: ModuleCalibration,
    noise_v: float,
    ripple_v: float,
    rng: random.Random,
) -> float:
    """One reading of a block at ``true_v``."""
    v = true_v * (1.0 + cal.gain) + cal.offset_v
    v += rng.gauss(0.0, noise_v)
    if ripple_v:
        v += ripple_v * math.sin(rng.uniform(0.0, 2.0 * math.pi))
    return v
