"""Thermal-runaway detection per string (battery-domain.md §2.3), confirmed over cycles.

Signals: a block's temperature above ambient, its rise rate, and the float current against
its own temperature-normalised baseline. Ambient is the environment sensor when it reads
well, else the string's median block temperature. Only readings of quality OK count, and a
temperature that jumps faster than a battery's thermal mass allows is set aside for a while,
so a spike, a stuck or a dead sensor never trips a breaker.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..snapshot import ChargeState


@dataclass(frozen=True, slots=True)
class RunawaySettings:
    pre_alert_delta: float = 5.0  # K above ambient: stop shunts, warn
    alarm_delta: float = 10.0  # K above ambient, with a fast rise or a high current: trip
    trip_delta: float = 15.0  # K above ambient alone: trip
    max_temperature: float = 60.0  # °C absolute: trip
    pre_alert_rate: float = 2.0  # K/h on float
    alarm_rate: float = 5.0  # K/h
    pre_alert_current_ratio: float = 2.0  # × float-current baseline
    alarm_current_ratio: float = 3.0
    confirm_cycles: int = 2
    rate_window_s: float = 1800.0
    max_step: float = 2.0  # K between two polls: more is a sensor fault, not a battery
    implausible_hold_s: float = 600.0
    after_discharge_s: float = 4 * 3600.0  # float-current rule off while recharging
    pre_alert_hold_s: float = 600.0  # a pre-alert stands at least this long (no flapping)


@dataclass(frozen=True, slots=True)
class StringThermal:
    index: int
    temperatures: Sequence[float | None]  # per block, None unless quality OK
    ambient: float | None  # environment sensor, None if unusable
    current: float | None  # A, string current sensor
    charge_state: ChargeState
    balancing: bool = False  # shunts raise the string current on purpose: current rule off


@dataclass(frozen=True, slots=True)
class RunawayStatus:
    pre_alert: bool
    criteria: bool  # trip criteria hold this cycle
    confirmed: bool  # held for confirm_cycles consecutive cycles
    strings: frozenset[int]  # strings where the criteria hold
    reason: str | None
    # (string, position) of the blocks it cannot watch this cycle: no temperature of quality
    # OK (stale, missing, out of range) or one set aside as implausible.
    unwatched: frozenset[tuple[int, int]] = frozenset()
    # Per string: where a runaway is confirmed (with why), and where a pre-alert stands.
    confirmed_strings: Mapping[int, str] = field(default_factory=dict)
    pre_alert_strings: frozenset[int] = frozenset()


@dataclass
class _Block:
    last: float | None = None
    hold_until: float = -1.0
    history: deque[tuple[float, float]] = field(default_factory=deque)


@dataclass
class _String:
    blocks: list[_Block] = field(default_factory=list)
    baseline: float | None = None  # A at 25 °C
    last_discharge_s: float = -1e12
    consecutive: int = 0


class RunawayDetector:
    def __init__(self, settings: RunawaySettings | None = None) -> None:
        self.settings = settings or RunawaySettings()
        self._strings: dict[int, _String] = {}
        self._pre_alert_until: dict[int, float] = {}  # per string

    def update(self, now_s: float, strings: Sequence[StringThermal]) -> RunawayStatus:
        s = self.settings
        holding: set[int] = set()
        reasons: list[str] = []
        confirmed: dict[int, str] = {}
        unwatched: set[tuple[int, int]] = set()
        for st in strings:
            state = self._strings.setdefault(st.index, _String())
            while len(state.blocks) < len(st.temperatures):
                state.blocks.append(_Block())
            temps = [
                self._plausible(now_s, state.blocks[i], t) for i, t in enumerate(st.temperatures)
            ]
            unwatched.update((st.index, i + 1) for i, t in enumerate(temps) if t is None)
            usable = [t for t in temps if t is not None]
            if not usable:
                continue  # nothing trustworthy: neither trip nor clear a confirmation
            ambient = st.ambient if st.ambient is not None else statistics.median(usable)
            ratio = self._current_ratio(now_s, state, st, usable)
            string_pre = ratio is not None and ratio > s.pre_alert_current_ratio
            string_trip = False
            why = ""
            for i, t in enumerate(temps):
                if t is None:
                    continue
                delta = t - ambient
                rate = self._rate(state.blocks[i])
                if delta > s.pre_alert_delta or (
                    rate is not None
                    and rate > s.pre_alert_rate
                    and st.charge_state is ChargeState.FLOAT
                ):
                    string_pre = True
                fast = rate is not None and rate > s.alarm_rate
                high_current = ratio is not None and ratio > s.alarm_current_ratio
                if t > s.max_temperature:
                    string_trip, why = True, f"block {i + 1} at {t:.1f} °C"
                elif delta > s.trip_delta:
                    string_trip, why = True, f"block {i + 1} {delta:.1f} K above ambient"
                elif delta > s.alarm_delta and (fast or high_current):
                    cause = f"rising {rate:.1f} K/h" if fast else f"float current ×{ratio:.1f}"
                    string_trip, why = True, f"block {i + 1} {delta:.1f} K above ambient, {cause}"
            if string_pre or string_trip:
                self._pre_alert_until[st.index] = now_s + s.pre_alert_hold_s
            if string_trip:
                state.consecutive += 1
                holding.add(st.index)
                reasons.append(f"string {st.index}: {why}")
                if state.consecutive >= s.confirm_cycles:
                    confirmed[st.index] = reasons[-1]
            else:
                state.consecutive = 0
        pre_alerts = frozenset(i for i, until in self._pre_alert_until.items() if now_s < until)
        return RunawayStatus(
            bool(pre_alerts),
            bool(holding),
            bool(confirmed),
            frozenset(holding),
            "; ".join(reasons) or None,
            frozenset(unwatched),
            confirmed,
            pre_alerts,
        )

    def _plausible(self, now_s: float, block: _Block, t: float | None) -> float | None:
        s = self.settings
        if t is None:
            return None
        last, block.last = block.last, t
        if last is not None and abs(t - last) > s.max_step:
            block.hold_until = now_s + s.implausible_hold_s
            block.history.clear()
        if now_s < block.hold_until:
            return None
        block.history.append((now_s, t))
        while block.history and block.history[0][0] < now_s - s.rate_window_s:
            block.history.popleft()
        return t

    @staticmethod
    def _rate(block: _Block) -> float | None:
        """K/h by least squares; needs 5 minutes of data."""
        h = block.history
        if len(h) < 3 or h[-1][0] - h[0][0] < 300:
            return None
        n = len(h)
        mt = sum(x for x, _ in h) / n
        mv = sum(v for _, v in h) / n
        den = sum((x - mt) ** 2 for x, _ in h)
        return 3600.0 * sum((x - mt) * (v - mv) for x, v in h) / den if den else None

    def _current_ratio(
        self, now_s: float, state: _String, st: StringThermal, temps: list[float]
    ) -> float | None:
        """Float current against its baseline, both normalised to 25 °C (×2 per 10 K)."""
        if st.current is None:
            return None
        if st.charge_state is ChargeState.DISCHARGE:
            state.last_discharge_s = now_s
            return None
        if (
            st.balancing
            or st.charge_state is not ChargeState.FLOAT
            or (now_s - state.last_discharge_s < self.settings.after_discharge_s)
        ):
            return None
        mean_t = sum(temps) / len(temps)
        expected = 2 ** ((mean_t - 25.0) / 10.0)  # float current at mean_t per A at 25 °C
        current = max(st.current, 0.0)
        if state.baseline is None and current > 0:
            # Learned from the first float reading; a zero current (a sensor's offset, a
            # string at rest) is no baseline: every later current would look like a runaway.
            state.baseline = current / expected
        if state.baseline is None:
            return None
        ratio = current / (state.baseline * expected)
        if ratio < self.settings.pre_alert_current_ratio:
            # Follows slow ageing over days, never a current that already looks wrong.
            state.baseline += (current / expected - state.baseline) * 0.001
        return ratio

    def state_dict(self) -> dict[str, Any]:
        return {str(k): {"baseline": v.baseline} for k, v in self._strings.items()}

    def restore(self, data: dict[str, Any]) -> None:
        """Baselines saved by ``state_dict``; a damaged record is skipped, never trusted."""
        for k, v in data.items():
            try:
                index = int(k)
                baseline = float(v["baseline"])
            except (ValueError, TypeError, KeyError):
                continue
            if math.isfinite(baseline) and baseline > 0:
                self._strings.setdefault(index, _String()).baseline = baseline
