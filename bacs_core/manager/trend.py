"""Internal-resistance baselines and trends: when will this block need replacing?

The baseline is the median of a block's first measurements (IEEE 1188 practice: compare a
block with itself). The trend is a Theil–Sen slope, robust to the odd bad measurement, over
a bounded history; the projection says when the resistance crosses the replace threshold.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

BASELINE_SAMPLES = 3
HISTORY = 60
MIN_TREND_SPAN_S = 7 * 86400.0


@dataclass
class ResistanceTrend:
    replace_ratio: float = 1.5
    baseline: float | None = None
    _first: list[float] = field(default_factory=list)
    _history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    _last_sequence: int | None = None

    def add(self, when: datetime, mohm: float, sequence: int | None = None) -> None:
        """One new measurement (ignored when the module's ri_sequence did not move)."""
        if sequence is not None and sequence == self._last_sequence:
            return
        self._last_sequence = sequence
        if self.baseline is None:
            self._first.append(mohm)
            if len(self._first) >= BASELINE_SAMPLES:
                self.baseline = statistics.median(self._first)
        self._history.append((when.timestamp(), mohm))

    def reset(self) -> None:
        """A new block: learn again."""
        self.baseline = None
        self._first.clear()
        self._history.clear()
        self._last_sequence = None

    def slope_per_day(self) -> float | None:
        points = list(self._history)
        if len(points) < 4 or points[-1][0] - points[0][0] < MIN_TREND_SPAN_S:
            return None
        slopes = [
            (b[1] - a[1]) / (b[0] - a[0])
            for i, a in enumerate(points)
            for b in points[i + 1 :]
            if b[0] > a[0]
        ]
        return statistics.median(slopes) * 86400.0 if slopes else None

    def replace_by(self) -> date | None:
        """Projected date the resistance reaches replace_ratio × baseline; None if flat."""
        slope = self.slope_per_day()
        if self.baseline is None or slope is None or slope <= 0 or not self._history:
            return None
        t, value = self._history[-1]
        limit = self.replace_ratio * self.baseline
        days = max(0.0, (limit - value) / slope)
        if days > 365 * 30:
            return None
        return (datetime.fromtimestamp(t, UTC) + timedelta(days=days)).date()

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "first": self._first, "history": list(self._history)}

    def restore(self, data: dict[str, Any]) -> None:
        self.baseline = data.get("baseline")
        self._first = [float(x) for x in data.get("first", [])]
        self._history = deque(
            ((float(t), float(v)) for t, v in data.get("history", [])), maxlen=HISTORY
        )
