"""What the manager keeps across restarts, in a versioned form."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from ..snapshot import DeviceRef
from .trend import ResistanceTrend

FORMAT_VERSION = 1


@dataclass
class PersistedState:
    alarms: dict[str, Any] = field(default_factory=dict)
    safety: dict[str, Any] = field(default_factory=dict)
    runaway: dict[str, Any] = field(default_factory=dict)
    trends: dict[DeviceRef, ResistanceTrend] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "alarms": self.alarms,
            "safety": self.safety,
            "runaway": self.runaway,
            "trends": {str(k): v.state_dict() for k, v in self.trends.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersistedState:
        trends: dict[DeviceRef, ResistanceTrend] = {}
        for key, value in data.get("trends", {}).items():
            bus, _, unit = key.rpartition("/")
            with contextlib.suppress(ValueError, TypeError, KeyError):
                trend = ResistanceTrend()
                trend.restore(value)
                trends[DeviceRef(bus, int(unit))] = trend
        return cls(data.get("alarms", {}), data.get("safety", {}), data.get("runaway", {}), trends)
