"""Electrochemical and thermal model of series battery strings (docs/simulator.md).

Follows ../shared/specs/battery-domain.md §4: per block V = E(SOC) + R·I + eta, a
polarisation eta on a double-layer capacitance fed by the block current and drained by
the overcharge side reaction (Tafel, doubling per +10 °C) and the charge reaction; a
Shepherd-type discharge curve; one thermal node per block. Each step is solved
implicitly (Newton with a Schur complement, O(N)) so 1–300 s steps stay stable.
Sign: current > 0 charges the block.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from enum import StrEnum

V_CELL_FLOAT = 2.27  # V/cell, VRLA float at 25 °C (§1.2)
V_CELL_BOOST = 2.35
B_CELL = 0.043  # V per e-fold of side-reaction current, per cell (§4.1)
GAMMA_CHARGE = 1.0 / 3600.0  # g_c = 1 /h, in 1/s (§4.3)
SHEPHERD_R = 0.035  # V/cell at the 10 h rate (§4.4)
SHEPHERD_A = 0.12
SHEPHERD_B = 25.0
SHUNT_HEAT_COUPLING = 0.1  # share of a module's shunt heat that reaches its block


class ChargerMode(StrEnum):
    FLOAT = "float"
    BOOST = "boost"
    DISCHARGE = "discharge"
    REST = "rest"  # charger off, no load


@dataclass(slots=True)
class BlockParams:
    """One block (or cell). Values at 25 °C."""

    cells: int
    capacity_ah: float
    r_mohm: float
    i0_25_a: float  # side-reaction exchange current
    c_dl_f: float  # double-layer capacitance, sets the 10–30 min polarisation lag
    i_sd_a: float  # self-discharge at 25 °C
    c_th_j_per_k: float
    r_th_k_per_w: float
    soc: float = 1.0
    extra_heat_w: float = 0.0  # internal heat of a fault (dry-out, developing short)
    b_cell: float = B_CELL  # Tafel slope, V per e-fold per cell
    slow_r_ohm: float = 0.0  # a slow polarisation (diffusion) in series: R ‖ C, off at 0
    slow_tau_s: float = 6 * 3600.0
    ambient_offset_c: float = 0.0  # where it stands in the rack (warmer at the top)

    @property
    def b_v(self) -> float:
        return self.b_cell * self.cells


@dataclass(frozen=True, slots=True)
class PlantOptions:
    """What a controller must not assume: the plant's constants, varied per string.

    ``lag_s`` is the float polarisation time constant at 1 mA/Ah (the presets use 20 min);
    ``tafel_factor`` scales the Tafel slope; ``lag_spread`` varies the double layer block to
    block (σ of ln); ``slow_fraction`` adds a slow series element whose resistance is that
    share of the block's float dynamic resistance b/I, with time constant ``slow_tau_s``;
    ``rack_gradient_c`` warms the blocks linearly from the first (0) to the last.
    """

    lag_s: float = 20 * 60.0
    tafel_factor: float = 1.0
    lag_spread: float = 0.0
    slow_fraction: float = 0.0
    slow_tau_s: float = 6 * 3600.0
    rack_gradient_c: float = 0.0


def block_preset(cells: int, capacity_ah: float, plant: PlantOptions | None = None) -> BlockParams:
    """Typical healthy block of this size (§4.3 scaling)."""
    plant = plant or PlantOptions()
    if cells == 1:
        r_mohm = 0.35 * (1000.0 / capacity_ah) ** 0.9  # 2 V cells: 0.2–0.5 mΩ at 500–1000 Ah
    else:
        r_mohm = 20.0 * (capacity_ah / 5.0) ** -0.47 * cells / 6.0
    i_float = 0.001 * capacity_ah  # 1 mA/Ah at 2.27 V/cell (§0)
    # Calibrate I0 so the side reaction of a full block carries i_float at 2.27 V/cell.
    eta_float = V_CELL_FLOAT - (1.98 + 0.17) - r_mohm / 1000.0 / cells * i_float
    b_cell = B_CELL * plant.tafel_factor
    i0 = i_float / (2.0 * math.sinh(eta_float / b_cell))
    tau_s = plant.lag_s  # polarisation time constant ~20 min by default
    c_dl = tau_s * i_float / (b_cell * cells)
    mass_kg = capacity_ah * cells / 6.0 * 0.3  # ~30 kg per 12 V 100 Ah
    return BlockParams(
        cells=cells,
        capacity_ah=capacity_ah,
        r_mohm=r_mohm,
        i0_25_a=i0,
        c_dl_f=c_dl,
        i_sd_a=0.03 * capacity_ah / (30 * 24),  # 3 %/month
        c_th_j_per_k=max(800.0 * mass_kg, 500.0),
        r_th_k_per_w=min(3.0, 0.5 * (100.0 * 6 / (capacity_ah * cells)) ** 0.5),
        b_cell=b_cell,
        slow_r_ohm=plant.slow_fraction * b_cell * cells / i_float,
        slow_tau_s=plant.slow_tau_s,
    )


@dataclass(slots=True)
class StringParams:
    blocks: list[BlockParams]
    float_v_per_cell: float = V_CELL_FLOAT
    boost_v_per_cell: float = V_CELL_BOOST
    temp_comp_v_per_c_cell: float = -0.003  # charger compensation (§1.2); 0 = none
    current_limit_c: float = 0.1  # charger current limit as a fraction of C10

    @property
    def cells(self) -> int:
        return sum(b.cells for b in self.blocks)


def make_string(
    blocks: int,
    cells: int,
    capacity_ah: float,
    spread_sigma: float = 0.6,
    seed: int = 0,
    *,
    soc: float = 1.0,
    plant: PlantOptions | None = None,
) -> StringParams:
    """A string whose float currents spread lognormally (σ of ln I0, §4.3); seeded."""
    rng = random.Random(seed)
    plant = plant or PlantOptions()
    out: list[BlockParams] = []
    for k in range(blocks):
        p = block_preset(cells, capacity_ah, plant)
        p.i0_25_a *= math.exp(rng.gauss(0.0, spread_sigma))
        p.r_mohm *= 1.0 + rng.gauss(0.0, 0.05)
        p.soc = soc
        if plant.lag_spread:
            p.c_dl_f *= math.exp(rng.gauss(0.0, plant.lag_spread))
        if plant.rack_gradient_c and blocks > 1:
            p.ambient_offset_c = plant.rack_gradient_c * k / (blocks - 1)
        out.append(p)
    return StringParams(out)


class StringPhysics:
    """A series string on a charger, its load and its breaker."""

    def __init__(self, params: StringParams, ambient_c: float = 25.0) -> None:
        self.params = params
        self.blocks = params.blocks
        self.n = len(self.blocks)
        self.mode = ChargerMode.FLOAT
        self.load_a = 0.0
        self.breaker_closed = True
        self.ambient_c = ambient_c
        self.temp_comp_enabled = True
        self.time_s = 0.0
        self.shunt_a = [0.0] * self.n
        self.temperatures = [ambient_c + b.ambient_offset_c for b in self.blocks]
        self.r_factor = [1.0] * self.n
        self.i0_factor = [1.0] * self.n
        self.i_sd_extra = [0.0] * self.n
        self.cell_loss = [0] * self.n  # shorted cells
        self.soc = [b.soc for b in self.blocks]
        self.ah_out = [0.0] * self.n
        self.string_current_a = 0.0
        self.block_currents = [0.0] * self.n
        self._runaway: dict[int, tuple[float, float]] = {}
        # Start in float equilibrium: polarisation carrying the float current.
        self.eta = [
            self._eta_for_current(i, 0.001 * b.capacity_ah) for i, b in enumerate(self.blocks)
        ]
        self.slow_v = [b.slow_r_ohm * 0.001 * b.capacity_ah for b in self.blocks]
        self.voltages = [0.0] * self.n
        self._update_voltages()

    # -- model pieces -------------------------------------------------------------
    def _cells(self, i: int) -> int:
        return self.blocks[i].cells - self.cell_loss[i]

    def _e(self, i: int) -> float:
        return self._cells(i) * (1.98 + 0.17 * self.soc[i])

    def _r(self, i: int) -> float:
        """Ohmic resistance in Ω at the block's temperature and state."""
        t = self.temperatures[i]
        return self.blocks[i].r_mohm / 1000.0 * self.r_factor[i] * (1.0 - 0.005 * (t - 25.0))

    def resistance_mohm(self, i: int) -> float:
        return self._r(i) * 1000.0

    @property
    def resistances_mohm(self) -> list[float]:
        return [self.resistance_mohm(i) for i in range(self.n)]

    def _i0(self, i: int) -> float:
        return (
            self.blocks[i].i0_25_a
            * self.i0_factor[i]
            * math.pow(2.0, (self.temperatures[i] - 25.0) / 10.0)
        )

    def _b(self, i: int) -> float:
        return self.blocks[i].b_cell * max(self._cells(i), 1)

    def _f(self, i: int, eta: float) -> tuple[float, float]:
        """Current consumed by the reactions at polarisation eta, and its derivative."""
        b = self._b(i)
        i0 = self._i0(i)
        x = max(min(eta / b, 60.0), -60.0)
        side = 2.0 * i0 * math.sinh(x)
        dside = 2.0 * i0 * math.cosh(x) / b
        cap = self.blocks[i].capacity_ah
        w = 0.05 * max(self._cells(i), 1)
        y = max(min(eta / w, 30.0), -30.0)
        k = GAMMA_CHARGE * 3600.0 * cap * (1.0 - self.soc[i])  # g_c·C·(1−SOC), A
        main = k * math.tanh(y)
        dmain = k * (1.0 - math.tanh(y) ** 2) / w
        return side + main, dside + dmain

    def _eta_for_current(self, i: int, current: float) -> float:
        b = self._b(i)
        return b * math.asinh(current / (2.0 * self._i0(i)))

    def _float_setpoint(self) -> float:
        p = self.params
        per_cell = p.boost_v_per_cell if self.mode is ChargerMode.BOOST else p.float_v_per_cell
        if self.temp_comp_enabled:
            mean_t = sum(self.temperatures) / self.n
            per_cell += p.temp_comp_v_per_c_cell * (mean_t - 25.0)
        return per_cell * p.cells

    # -- stepping -------------------------------------------------------------------
    def step(self, dt_s: float) -> None:
        """Advance by dt_s seconds (implicit, stable for 0.1–300 s)."""
        if dt_s <= 0:
            return
        charging = self.breaker_closed and self.mode in (ChargerMode.FLOAT, ChargerMode.BOOST)
        if charging:
            current = self._solve_cv(dt_s)
        else:
            current = (
                -self.load_a
                if (self.breaker_closed and self.mode is ChargerMode.DISCHARGE)
                else 0.0
            )
            self._solve_fixed(dt_s, current)
        self.string_current_a = current
        for i in range(self.n):
            ib = self.block_currents[i]
            cap = self.blocks[i].capacity_ah
            i_sd = (self.blocks[i].i_sd_a + self.i_sd_extra[i]) * math.pow(
                2.0, (self.temperatures[i] - 25.0) / 10.0
            )
            if current >= 0:
                main = self._f(i, self.eta[i])[0] - 2.0 * self._i0(i) * math.sinh(
                    self.eta[i] / self._b(i)
                )
                dsoc = (main - i_sd) * dt_s / (3600.0 * cap)
            else:
                dsoc = (ib - i_sd) * dt_s / (3600.0 * cap)
            self.soc[i] = min(1.0, max(0.0, self.soc[i] + dsoc))
        self._update_voltages()
        self._step_thermal(dt_s)
        self.time_s += dt_s

    def _solve_cv(self, dt_s: float) -> float:
        """Charger holds the string voltage; unknowns eta_i and I_str (Schur complement)."""
        v_chg = self._float_setpoint()
        i_lim = self.params.current_limit_c * self.blocks[0].capacity_ah
        eta0 = list(self.eta)
        eta = list(self.eta)
        current = (
            self.string_current_a
            if self.string_current_a > 0
            else 0.001 * self.blocks[0].capacity_ah
        )
        slow = [self._slow(i, dt_s) for i in range(self.n)]
        e = [self._e(i) + slow[i][0] for i in range(self.n)]
        r = [self._r(i) + slow[i][1] for i in range(self.n)]
        sum_r = sum(r)
        for _ in range(30):
            g: list[float] = []
            a: list[float] = []
            h = -v_chg
            for i in range(self.n):
                c = self.blocks[i].c_dl_f / dt_s
                f, df = self._f(i, eta[i])
                ii = current - self.shunt_a[i]
                g.append(c * (eta[i] - eta0[i]) - ii + f)
                a.append(c + df)
                h += e[i] + r[i] * ii + eta[i]
            s_inv = sum(1.0 / ai for ai in a)
            d_i = (-h + sum(gi / ai for gi, ai in zip(g, a, strict=True))) / (s_inv + sum_r)
            max_step = 0.0
            for i in range(self.n):
                d_eta = (-g[i] + d_i) / a[i]
                d_eta = max(min(d_eta, 0.1), -0.1)
                eta[i] += d_eta
                max_step = max(max_step, abs(d_eta))
            current += d_i
            if max_step < 1e-7 and abs(d_i) < 1e-7:
                break
        if current > i_lim:
            self.eta = eta0
            self._solve_fixed(dt_s, i_lim)
            return i_lim
        self.eta = eta
        self.block_currents = [current - s for s in self.shunt_a]
        self._step_slow(dt_s)
        return current

    def _slow(self, i: int, dt_s: float) -> tuple[float, float]:
        """The slow element's voltage after dt at block current I, as a + k·I (implicit)."""
        b = self.blocks[i]
        if b.slow_r_ohm <= 0:
            return 0.0, 0.0
        share = b.slow_tau_s / (b.slow_tau_s + dt_s)
        return self.slow_v[i] * share, b.slow_r_ohm * (1.0 - share)

    def _step_slow(self, dt_s: float) -> None:
        for i in range(self.n):
            a, k = self._slow(i, dt_s)
            self.slow_v[i] = a + k * self.block_currents[i]

    def _solve_fixed(self, dt_s: float, current: float) -> None:
        """String current imposed (current limit, discharge, rest): blocks independent."""
        self.block_currents = [current - s if current != 0 or s else 0.0 for s in self.shunt_a]
        for i in range(self.n):
            ii = self.block_currents[i]
            if current < 0 and ii < 0:
                # Discharge: polarisation collapses quickly; the Shepherd curve gives V.
                self.eta[i] *= math.exp(-dt_s / 600.0)
                continue
            c = self.blocks[i].c_dl_f / dt_s
            x = self.eta[i]
            for _ in range(30):
                f, df = self._f(i, x)
                gi = c * (x - self.eta[i]) - ii + f
                dx = max(min(-gi / (c + df), 0.1), -0.1)
                x += dx
                if abs(dx) < 1e-9:
                    break
            self.eta[i] = x
        self._step_slow(dt_s)

    def _update_voltages(self) -> None:
        out = []
        discharging = self.string_current_a < 0
        for i in range(self.n):
            ii = self.block_currents[i]
            if discharging and ii < 0:
                out.append(self._discharge_voltage(i, -ii))
            else:
                out.append(self._e(i) + self._r(i) * ii + self.eta[i] + self.slow_v[i])
        self.voltages = out

    def _discharge_voltage(self, i: int, amps: float) -> float:
        b = self.blocks[i]
        i10 = b.capacity_ah / 10.0
        rel = amps / i10
        k = 1.05 if rel <= 1.0 else 1.2
        t = self.temperatures[i]
        f_t = max(0.5, min(1.05, 1.0 + 0.0064 * (t - 25.0) if t < 25 else 1.0 + 0.002 * (t - 25.0)))
        c_eff = b.capacity_ah * math.pow(1.0 / max(rel, 1e-3), k - 1.0) * f_t
        s = max(0.0, 1.0 - (1.0 - self.soc[i]) * b.capacity_ah / c_eff)
        per_cell = 1.98 + 0.17 * s - SHEPHERD_R * rel - SHEPHERD_A * math.exp(-SHEPHERD_B * s)
        nominal_r = block_preset(b.cells, b.capacity_ah).r_mohm / 1000.0
        extra_r = self._r(i) - nominal_r  # aged blocks and loose straps drop more
        cells = self._cells(i)
        return max(0.0, cells * per_cell - extra_r * amps)

    def _step_thermal(self, dt_s: float) -> None:
        for i in range(self.n):
            b = self.blocks[i]
            ii = self.block_currents[i]
            side = 2.0 * self._i0(i) * math.sinh(max(min(self.eta[i] / self._b(i), 60), -60))
            p = max(side, 0.0) * self.voltages[i] + ii * ii * self._r(i)
            p += SHUNT_HEAT_COUPLING * self.shunt_a[i] * self.voltages[i] + b.extra_heat_w
            runaway = self._runaway.get(i)
            r_th = b.r_th_k_per_w
            if runaway:
                # Dry-out and a developing internal short: heat and self-discharge grow, the
                # block takes more charge current, the string current rises (§2.1).
                severity, started = runaway
                hours = (self.time_s - started) / 3600.0
                scale = b.capacity_ah / 100.0 * b.cells / 6.0
                p += severity * (3.0 + 3.0 * hours) * b.cells / 6.0
                self.i_sd_extra[i] = severity * 0.1 * (1.0 + hours) * scale
                r_th *= 2.0
            tau = b.c_th_j_per_k * r_th
            t_eq = self.ambient_c + b.ambient_offset_c + p * r_th
            self.temperatures[i] = t_eq + (self.temperatures[i] - t_eq) * math.exp(-dt_s / tau)

    # -- faults -----------------------------------------------------------------------
    def age_block(self, i: int, capacity_factor: float, r_factor: float) -> None:
        self.blocks[i] = replace(
            self.blocks[i], capacity_ah=self.blocks[i].capacity_ah * capacity_factor
        )
        self.r_factor[i] *= r_factor

    def set_i0_factor(self, i: int, factor: float) -> None:
        """÷10–30: high-voltage outlier; ×10–30: low-voltage outlier (§4.6)."""
        self.i0_factor[i] = factor

    def soft_short(self, i: int, amps: float) -> None:
        self.i_sd_extra[i] = amps

    def shorted_cell(self, i: int) -> None:
        if self._cells(i) > 1:
            self.cell_loss[i] += 1
            self.i0_factor[i] *= 3.0

    def loose_connection(self, i: int, r_factor: float) -> None:
        self.r_factor[i] *= r_factor

    def thermal_runaway(self, i: int, severity: float = 1.0) -> None:
        """Dry-out and internal heat: temperature and float current run away (§2.1)."""
        self._runaway[i] = (severity, self.time_s)

    def end_runaway(self, i: int) -> bool:
        """The runaway's cause removed (dry-out stopped, the short burnt open): its heat and
        self-discharge stop and the block cools by the thermal model, not at once. Returns
        whether a runaway was running."""
        if self._runaway.pop(i, None) is None:
            return False
        self.i_sd_extra[i] = 0.0
        return True

    def set_ambient(self, celsius: float) -> None:
        self.ambient_c = celsius

    def replace_block(self, i: int, params: BlockParams) -> None:
        self.blocks[i] = params
        self.r_factor[i] = 1.0
        self.i0_factor[i] = 1.0
        self.i_sd_extra[i] = 0.0
        self.cell_loss[i] = 0
        self._runaway.pop(i, None)
        self.soc[i] = params.soc
        self.temperatures[i] = self.ambient_c + params.ambient_offset_c
        self.slow_v[i] = params.slow_r_ohm * max(self.string_current_a, 0.0)
        self.eta[i] = self._eta_for_current(i, max(self.string_current_a, 1e-4))
        self._update_voltages()
