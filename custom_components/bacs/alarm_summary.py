"""Alarms as text people read: the alarm-text sensors, problem reasons and notifications.

Generic over alarm kinds: everything comes from the manager's ``Alarm`` records (their message
says where, what, the value and the limit), so a new kind of alarm in bacs_core shows here
without a change. The breaker trip is not an alarm of the engine; it leads the hub's text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bacs_core.snapshot import Alarm, SafetySnapshot, Severity, TripState

STATE_MAX = 255  # Home Assistant's limit for a state
NO_ALARMS = "No alarms"
_RANK = {Severity.CRITICAL: 0, Severity.ALARM: 1, Severity.WARNING: 2}


def ordered(alarms: Iterable[Alarm]) -> list[Alarm]:
    """Worst first: severity, standing before latched, unacknowledged first, oldest first."""
    return sorted(
        alarms,
        key=lambda a: (_RANK.get(a.severity, 3), not a.active, a.acknowledged, a.since, a.key),
    )


def _where(safety: SafetySnapshot, state: TripState) -> str:
    """ " (string 2)" when only some strings are in ``state``; "" when all are (or one)."""
    strings = [t.string for t in safety.strings if t.state is state]
    if not strings or len(strings) == len(safety.strings):
        return ""
    return f" ({'string' if len(strings) == 1 else 'strings'} {', '.join(map(str, strings))})"


def safety_line(safety: SafetySnapshot) -> str | None:
    """The breaker trip (or the runaway pre-alert) in words, None when all is normal."""
    reason = safety.reason or "no reason recorded"
    state = safety.trip_state
    where = _where(safety, state)
    if state is TripState.FAILED:
        return f"Breaker trip FAILED{where}, the breaker did not report open: {reason}"
    if state is TripState.TRIPPED:
        return f"Breaker tripped{where}: {reason}"
    if state is TripState.COUNTDOWN:
        return f"Thermal runaway, the breaker trip countdown is running{where}: {reason}"
    if state is TripState.UNKNOWN:
        return (
            f"Breaker trip state unknown{where} (the saved state could not be read): "
            "check the breaker"
        )
    if safety.runaway:
        return f"Thermal runaway detected: {reason}"
    if safety.pre_alert:
        return f"Thermal runaway pre-alert: {reason}"
    return None


def _line(alarm: Alarm) -> str:
    if not alarm.active:
        return f"{alarm.message} (cleared, not yet acknowledged)"
    return alarm.message


def summary(alarms: Sequence[Alarm], lead: str | None = None) -> str:
    """One line: the worst alarm's message and how many more, within a state's 255 chars."""
    lines = ([lead] if lead else []) + [_line(a) for a in ordered(alarms)]
    if not lines:
        return NO_ALARMS
    text = lines[0]
    if len(lines) > 1:
        more = f" (+{len(lines) - 1} more)"
        text = _cut(text, STATE_MAX - len(more)) + more
    return _cut(text, STATE_MAX)


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def attributes(alarms: Sequence[Alarm], lead: str | None = None) -> dict[str, Any]:
    """The whole list (an unrecorded attribute) and counts that match it."""
    items: list[dict[str, Any]] = []
    if lead:
        items.append({"key": "safety", "severity": Severity.CRITICAL.value, "message": lead})
    for a in ordered(alarms):
        items.append(
            {
                "key": a.key,
                "code": a.code,
                "severity": a.severity.value,
                "message": a.message,
                "source": a.source,
                "device": str(a.device) if a.device else None,
                "string": a.string,
                "value": a.value,
                "threshold": a.threshold,
                "unit": a.unit,
                "since": a.since.isoformat(),
                "active": a.active,
                "latched": a.latched,
                "acknowledged": a.acknowledged,
            }
        )
    return {
        "alarm_count": sum(1 for a in alarms if a.severity is not Severity.WARNING),
        "warning_count": sum(1 for a in alarms if a.severity is Severity.WARNING),
        "unacknowledged_count": sum(1 for a in alarms if not a.acknowledged),
        "alarms": items,
    }


def reasons(alarms: Iterable[Alarm]) -> list[str]:
    """The messages behind a problem binary sensor, worst first."""
    return [_line(a) for a in ordered(alarms)]
