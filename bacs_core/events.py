"""What the manager announces: consumers (CLI, Home Assistant's event bus) subscribe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .snapshot import DeviceRef


class EventType(StrEnum):
    ALARM_RAISED = "alarm_raised"
    ALARM_ESCALATED = "alarm_escalated"  # a standing warning became an alarm
    ALARM_CLEARED = "alarm_cleared"
    ALARM_ACKNOWLEDGED = "alarm_acknowledged"
    RUNAWAY_PRE_ALERT = "runaway_pre_alert"
    RUNAWAY_DETECTED = "runaway_detected"
    TRIP_COUNTDOWN = "trip_countdown"
    TRIPPED = "tripped"
    TRIP_FAILED = "trip_failed"  # breaker did not report open: escalation
    TRIP_RESET = "trip_reset"
    BALANCING_STARTED = "balancing_started"
    BALANCING_FINISHED = "balancing_finished"
    OUT_OF_EQUALIZATION_RANGE = "out_of_equalization_range"
    DEVICE_LOST = "device_lost"
    DEVICE_FOUND = "device_found"
    DEVICE_ADDED = "device_added"
    BUS_LOST = "bus_lost"
    BUS_RESTORED = "bus_restored"
    CHARGE_STATE_CHANGED = "charge_state_changed"


type EventValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    timestamp: datetime
    message: str
    device: DeviceRef | None = None
    string: int | None = None
    data: Mapping[str, EventValue] = field(default_factory=dict)
