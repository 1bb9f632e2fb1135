"""The fan-out every source uses: a consumer's bug or a double unsubscribe costs nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from bacs_core.events import Event, EventType
from bacs_core.listeners import Listeners

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _event(message: str) -> Event:
    return Event(EventType.TRIPPED, NOW, message)


def test_failing_listener_does_not_starve_the_others(caplog: pytest.LogCaptureFixture) -> None:
    listeners = Listeners()
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("consumer bug")

    listeners.add_event_listener(broken)
    listeners.add_event_listener(lambda e: seen.append(e.message))
    with caplog.at_level(logging.ERROR):
        listeners.emit([_event("a"), _event("b")])
    assert seen == ["a", "b"]
    assert caplog.text.count("event listener failed") == 2


def test_unsubscribe_stops_delivery_and_is_idempotent() -> None:
    listeners = Listeners()
    seen: list[str] = []
    unsubscribe = listeners.add_event_listener(lambda e: seen.append(e.message))
    listeners.emit([_event("before")])
    unsubscribe()
    unsubscribe()  # a consumer torn down twice
    listeners.emit([_event("after")])
    assert seen == ["before"]


def test_snapshot_listener_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    listeners = Listeners()
    got: list[object] = []

    def broken(snapshot: object) -> None:
        raise ValueError("consumer bug")

    listeners.add_snapshot_listener(broken)
    unsubscribe = listeners.add_snapshot_listener(got.append)
    snapshot = object()
    listeners.publish(snapshot)  # type: ignore[arg-type]
    unsubscribe()
    listeners.publish(snapshot)  # type: ignore[arg-type]
    assert got == [snapshot]
    assert "snapshot listener failed" in caplog.text
