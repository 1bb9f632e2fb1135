"""./scripts/bench equalization [--json] [--quick]: Monte Carlo of equalization on real sensors.

For each scenario family, many seeded strings: block spread, plant constants the controller
is not told (polarisation lag, Tafel slope, a slow component, a temperature gradient along
the rack) and module sensing (noise, per-module offset and gain error, ripple) are drawn per
seed. Each string floats unbalanced for 30 days (the spread a site shows when BACS is
installed), then each controller runs from that same state: ``adaptive``
(bacs_core.manager.equalization, identifies the plant online) and ``legacy`` (the controller
before issue 10, which carried the simulator's constants). The fast path: controller against
the physics in process at an accelerated clock, no wire; every 10 s the controller reads
what the modules would report (to 1 mV) and its commands become the shunt currents.

Judged on the TRUE block voltages, never on what the controller believes:
- reach: which blocks any controller could hold, from the block parameters alone (the
  largest set whose needed float currents at the common target lie within one module's
  shunt maximum of each other, battery-domain.md §3.5). Blocks within 90 % of the maximum
  must be held; blocks beyond 100 % must be reported; in between (``grey``) either is right;
- held: at the end, every reachable block within ±10 mV of the reachable blocks' mean, for
  the whole last hour; converge_h: the start of that final in-band stretch;
- false out of range: blocks the controller reported out of range (at any time) that the
  criterion says must be held; missed: blocks beyond reach not reported at the end.
Percentiles count a string that never holds as +inf (reported as null when it decides them).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eq_legacy import EqualizationController as LegacyController

from bacs_core.manager.equalization import (
    BlockInput,
    EqualizationController,
    StringInputs,
)
from bacs_core.model import MODULE_SPECS, DeviceKind
from bacs_core.sim.physics import PlantOptions, StringPhysics, make_string
from bacs_core.sim.sensing import ModuleCalibration, SensingOptions, measure
from bacs_core.snapshot import ChargeState

DT = 10.0
BAND = 0.010
JUDGE_EVERY = 6  # steps (one minute)
HELD_FOR_S = 3600.0


@dataclass
class Family:
    name: str
    blocks: int
    kind: DeviceKind
    capacity: float
    spread: float = 0.6
    days: float = 30.0
    hours: float = 10.0
    sensing: SensingOptions = field(
        default_factory=lambda: SensingOptions(0.005, 0.003, 0.0001, 0.002)
    )
    lag_min: tuple[float, float] = (10.0, 120.0)  # log-uniform per string
    tafel: tuple[float, float] = (0.6, 1.4)
    lag_spread: float = 0.2  # σ of ln C_dl block to block
    slow_fraction: float = 0.05
    gradient_c: tuple[float, float] = (0.0, 4.0)
    current_noise_a: float = 0.001
    faults: Callable[[StringPhysics, random.Random], None] | None = None


def weak_blocks(s: StringPhysics, rng: random.Random) -> None:
    """A soft short no shunt can outrun and a strong dry-out outlier (both unreachable)."""
    s.soft_short(rng.randrange(s.n), 0.25)
    s.set_i0_factor(rng.randrange(s.n), 20.0)


FAMILIES = [
    Family("vrla12v_40ah_64", 64, DeviceKind.C20, 40.0),
    Family("cell2v_1000ah_24", 24, DeviceKind.C40, 1000.0),
    Family("vrla6v_200ah_48", 48, DeviceKind.C30, 200.0),
    Family("vrla12v_100ah_64_faults", 64, DeviceKind.C20, 100.0, faults=weak_blocks),
]


def plant_for(family: Family, rng: random.Random) -> PlantOptions:
    lo, hi = family.lag_min
    return PlantOptions(
        lag_s=60.0 * math.exp(rng.uniform(math.log(lo), math.log(hi))),
        tafel_factor=rng.uniform(*family.tafel),
        lag_spread=family.lag_spread,
        slow_fraction=family.slow_fraction,
        rack_gradient_c=rng.uniform(*family.gradient_c),
    )


def prepare(family: Family, seed: int) -> tuple[StringPhysics, PlantOptions]:
    rng = random.Random(seed * 7_777 + len(family.name))
    plant = plant_for(family, rng)
    cells = MODULE_SPECS[family.kind].cells
    s = StringPhysics(
        make_string(family.blocks, cells, family.capacity, family.spread, seed, plant=plant)
    )
    if family.faults is not None:
        family.faults(s, rng)
    for _ in range(round(family.days * 24)):
        s.step(3600.0)
    for _ in range(12):  # let the fast dynamics of the big steps settle
        s.step(300.0)
    return s, plant


# -- the reach criterion: from the block parameters only --------------------------------------
def _current_at(s: StringPhysics, i: int, volts: float) -> float:
    """Float current block i carries in steady state at terminal voltage ``volts``."""
    b = s.blocks[i]
    e = s._e(i)
    r = s._r(i) + b.slow_r_ohm
    bv = s._b(i)
    i0 = s._i0(i)
    lo, hi = 0.0, 50.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        v = e + r * mid + bv * math.asinh(mid / (2 * i0))
        lo, hi = (mid, hi) if v < volts else (lo, mid)
    i_sd = (b.i_sd_a + s.i_sd_extra[i]) * 2 ** ((s.temperatures[i] - 25.0) / 10.0)
    return 0.5 * (lo + hi) + i_sd


def _voltage_at(s: StringPhysics, i: int, amps: float) -> float:
    b = s.blocks[i]
    i_sd = (b.i_sd_a + s.i_sd_extra[i]) * 2 ** ((s.temperatures[i] - 25.0) / 10.0)
    side = max(amps - i_sd, 1e-9)
    return s._e(i) + (s._r(i) + b.slow_r_ohm) * amps + s._b(i) * math.asinh(side / (2 * s._i0(i)))


def reachable(s: StringPhysics, shunt_max: float) -> set[int]:
    """The largest set of blocks every shunt can hold at one common voltage (§3.5).

    Called with 0.9 × the maximum for the blocks that must be held, and with the full
    maximum for those a controller may not call out of range: in between is a grey band
    where both answers are right (temperature and noise decide).

    The common voltage depends on the set (the blocks left out carry the string current
    unshunted and take their share of the charger's voltage), so the set is a fixed point:
    the widest window of needs at the target of that same window. Where the iteration
    cycles instead (two sets, each making the other's target), only a set whose own needs
    fit at its own target counts; failing that, the window is narrowed at that target
    until it does.
    """
    v_chg = s._float_setpoint()
    inside = set(range(s.n))
    feasible: list[set[int]] = []  # sets whose needs fit at their own target
    seen: list[set[int]] = []
    width = shunt_max
    for _ in range(60):
        target = _common_target(s, inside, v_chg)
        need = {i: _current_at(s, i, target) for i in range(s.n)}
        if max(need[i] for i in inside) - min(need[i] for i in inside) <= shunt_max:
            feasible.append(inside)
        order = sorted(need, key=need.__getitem__)
        best, left = (0, 0, 0), 0
        for right, i in enumerate(order):
            while need[i] - need[order[left]] > width:
                left += 1
            if right - left + 1 >= best[0]:
                best = (right - left + 1, left, right)
        window = set(order[best[1] : best[2] + 1])
        if window == inside:
            break  # a fixed point: it fits at its own target
        if window in seen:  # a cycle
            if feasible:
                break
            width *= 0.98  # no set of the cycle fits at its own target: narrow the window
        seen.append(inside)
        inside = window
    if not feasible:
        return inside
    return _grow(s, max(feasible, key=len), shunt_max, v_chg)


def _fits(s: StringPhysics, inside: set[int], shunt_max: float, v_chg: float) -> bool:
    target = _common_target(s, inside, v_chg)
    need = [_current_at(s, i, target) for i in inside]
    return max(need) - min(need) <= shunt_max


def _grow(s: StringPhysics, inside: set[int], shunt_max: float, v_chg: float) -> set[int]:
    """Add the next block on either side of the set's needs while it still fits at its own
    target: the narrowing of a cycle can leave out blocks the set could hold."""
    while len(inside) < s.n:
        target = _common_target(s, inside, v_chg)
        need = {i: _current_at(s, i, target) for i in range(s.n)}
        outside = [i for i in range(s.n) if i not in inside]
        least = min(need[j] for j in inside)
        most = max(need[j] for j in inside)
        lo = max((i for i in outside if need[i] < least), default=None, key=need.__getitem__)
        hi = min((i for i in outside if need[i] > most), default=None, key=need.__getitem__)
        grown = [inside | {i} for i in (lo, hi) if i is not None]
        grown = [g for g in grown if _fits(s, g, shunt_max, v_chg)]
        if not grown:
            return inside
        inside = grown[0]
    return inside


def _common_target(s: StringPhysics, inside: set[int], v_chg: float) -> float:
    """Target voltage for the set: the string voltage minus the outsiders' (unshunted)."""
    outside = [i for i in range(s.n) if i not in inside]
    lo, hi = v_chg / s.n - 1.0, v_chg / s.n + 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        i_str = max(_current_at(s, i, mid) for i in inside)
        total = mid * len(inside) + sum(_voltage_at(s, j, i_str) for j in outside)
        lo, hi = (mid, hi) if total < v_chg else (lo, mid)
    return 0.5 * (lo + hi)


# -- one run ------------------------------------------------------------------------------------
def run(family: Family, start: StringPhysics, controller: str, seed: int) -> dict[str, Any]:
    s = copy.deepcopy(start)
    spec = MODULE_SPECS[family.kind]
    rng = random.Random(seed)
    cal_rng = random.Random(seed * 31 + 7)
    cal = [ModuleCalibration.draw(family.sensing, cal_rng) for _ in range(s.n)]
    ctrl: Any = EqualizationController() if controller == "adaptive" else LegacyController()
    reach_any = reachable(s, spec.shunt_max_a)  # may not be called out of range
    # Must be held: reachable with a 10 % margin AND within the full window. The two largest
    # windows can sit at different places along the needs; a block in the narrow one but
    # outside the full one would be both "must hold" and "must report" (grey, either is right).
    reach = reachable(s, 0.9 * spec.shunt_max_a) & reach_any or reach_any
    steps = round(family.hours * 3600 / DT)
    energy_wh = 0.0
    reported: set[int] = set()
    out_now: frozenset[int] = frozenset()
    in_band_since: float | None = None
    worst_last_hour = 0.0
    t = 0.0
    cpu = time.process_time()
    plant = None
    for k in range(steps):
        measured = [
            round(measure(v, cal[i], family.sensing.noise_v, family.sensing.ripple_v, rng), 3)
            for i, v in enumerate(s.voltages)
        ]
        current = round(s.string_current_a + rng.gauss(0.0, family.current_noise_a), 3)
        temps = s.temperatures
        inputs = StringInputs(
            [
                BlockInput(v, temps[i], temps[i], spec.cells, spec.shunt_max_a)
                for i, v in enumerate(measured)
            ],
            ChargeState.FLOAT,
            current,
            family.capacity,
        )
        commands = ctrl.update(t, inputs)
        s.shunt_a = list(commands.shunt)
        out_now = commands.out_of_range
        reported |= out_now
        plant = getattr(commands, "plant", None)
        energy_wh += sum(a * v for a, v in zip(s.shunt_a, s.voltages, strict=True)) * DT / 3600
        s.step(DT)
        t += DT
        if k % JUDGE_EVERY == 0 or k == steps - 1:
            true_target = sum(s.voltages[i] for i in reach) / len(reach)
            worst = max(abs(s.voltages[i] - true_target) for i in reach)
            if worst <= BAND:
                in_band_since = t if in_band_since is None else in_band_since
            else:
                in_band_since = None
            if t >= family.hours * 3600 - HELD_FOR_S:
                worst_last_hour = max(worst_last_hour, worst)
    held = in_band_since is not None and in_band_since <= family.hours * 3600 - HELD_FOR_S
    unreachable = set(range(s.n)) - reach
    beyond = set(range(s.n)) - reach_any  # beyond even the full maximum
    row: dict[str, Any] = {
        "family": family.name,
        "controller": controller,
        "seed": seed,
        "converge_h": round(in_band_since / 3600, 3) if held and in_band_since else None,
        "held": held,
        "worst_last_hour_v": round(worst_last_hour, 4),
        "unreachable": len(beyond),
        "grey": len(unreachable - beyond),
        "false_out_of_range": len(reported - unreachable),
        "missed_out_of_range": len(beyond - out_now),
        "shunt_energy_wh": round(energy_wh, 2),
        "cpu_s": round(time.process_time() - cpu, 1),
    }
    if plant is not None:
        row["identified_b_per_cell"] = round(plant.b_per_cell, 4)
        row["identified"] = plant.identified
        row["true_b_per_cell"] = round(s.blocks[0].b_cell, 4)
        row["identified_lag_min"] = round(plant.lag_s(0.001 * family.capacity) / 60, 1)
    return row


def one_seed(job: tuple[Family, int, str]) -> dict[str, Any]:
    family, seed, controller = job
    start, plant = prepare(family, seed)
    row = run(family, start, controller, seed)
    row["true_lag_min"] = round(plant.lag_s / 60, 1)
    row["tafel_factor"] = round(plant.tafel_factor, 2)
    return row


def percentile(values: list[float], q: float, digits: int = 2) -> float | None:
    """Nearest-rank percentile; +inf entries (never held) may decide it (then None)."""
    if not values:
        return None
    ordered = sorted(values)
    v = ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
    return None if math.isinf(v) else round(v, digits)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    converge = [r["converge_h"] if r["converge_h"] is not None else math.inf for r in rows]
    false_oor = [float(r["false_out_of_range"]) for r in rows]
    return {
        "family": rows[0]["family"],
        "controller": rows[0]["controller"],
        "seeds": len(rows),
        "converge_h_p50": percentile(converge, 0.5),
        "converge_h_p90": percentile(converge, 0.9),
        "held_fraction": round(sum(1 for r in rows if r["held"]) / len(rows), 3),
        "false_out_of_range_p50": percentile(false_oor, 0.5),
        "false_out_of_range_max": max(false_oor),
        "missed_out_of_range_p50": percentile([float(r["missed_out_of_range"]) for r in rows], 0.5),
        "shunt_energy_wh_p50": percentile([r["shunt_energy_wh"] for r in rows], 0.5),
        "worst_last_hour_v_p50": percentile([r["worst_last_hour_v"] for r in rows], 0.5, 4),
        "worst_last_hour_v_p90": percentile([r["worst_last_hour_v"] for r in rows], 0.9, 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="8 seeds per family, 8 h runs")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--family", choices=[f.name for f in FAMILIES], action="append")
    parser.add_argument("--controller", choices=["adaptive", "legacy"], action="append")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--rows", type=Path, help="write every seed's row here (JSON lines)")
    parser.add_argument("--from-rows", type=Path, help="summarise a --rows file, run nothing")
    args = parser.parse_args()
    seeds = 8 if args.quick else args.seeds
    controllers = tuple(args.controller or ["adaptive", "legacy"])
    families = [f for f in FAMILIES if not args.family or f.name in args.family]
    if args.quick:
        for f in families:
            f.hours = 8.0
    jobs = [
        (f, args.first_seed + k, c) for c in controllers for f in families for k in range(seeds)
    ]
    started = time.time()
    if args.from_rows:
        text = args.from_rows.read_text(encoding="utf-8")
        results = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        results = []
        rows_out = args.rows.open("w", encoding="utf-8") if args.rows else None
        with multiprocessing.get_context("fork").Pool(args.jobs, initializer=_nice) as pool:
            for row in pool.imap_unordered(one_seed, jobs):
                results.append(row)
                if rows_out is not None:  # as they come: a long run can be read half way
                    rows_out.write(json.dumps(row) + "\n")
                    rows_out.flush()
        if rows_out is not None:
            rows_out.close()
    ok = True
    header = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "wall_s": round(time.time() - started),
    }
    if args.json:
        print(json.dumps(header), flush=True)
    for f in families:
        for c in controllers:
            rows = [r for r in results if r["family"] == f.name and r["controller"] == c]
            if not rows:
                continue
            summary = summarise(rows)
            if c == "adaptive":
                ok &= summary["held_fraction"] >= 0.9
                if f.name == "vrla12v_40ah_64":
                    ok &= (summary["converge_h_p50"] or math.inf) <= 2.0
                    ok &= (summary["converge_h_p90"] or math.inf) <= 4.0
                    ok &= summary["held_fraction"] >= 0.95
                    ok &= summary["false_out_of_range_p50"] == 0
            if args.json:
                print(json.dumps(summary), flush=True)
            else:
                print(
                    f"{f.name:<26} {c:<9} seeds {summary['seeds']:>3}  converge p50 "
                    f"{summary['converge_h_p50']} h p90 {summary['converge_h_p90']} h  held "
                    f"{summary['held_fraction']:.2f}  false OOR p50 "
                    f"{summary['false_out_of_range_p50']} (max "
                    f"{summary['false_out_of_range_max']:.0f})  energy p50 "
                    f"{summary['shunt_energy_wh_p50']} Wh",
                    flush=True,
                )
    if not args.json:
        print(f"({header['machine']}, {header['wall_s']} s)", file=sys.stderr)
    return 0 if ok else 1


def _nice() -> None:
    os.nice(10)


if __name__ == "__main__":
    sys.exit(main())
