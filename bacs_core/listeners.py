"""Fan-out of snapshots and events from a source to its consumers.

Every source (the bus Manager, the GENEREX source, a remote appliance) hands each new
snapshot and each event to whoever subscribed. One consumer's bug must never stop the source
or starve the others, and unsubscribing twice (a consumer torn down by two paths) is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from .events import Event
from .snapshot import SystemSnapshot

_LOG = logging.getLogger(__name__)

type SnapshotListener = Callable[[SystemSnapshot], None]
type EventListener = Callable[[Event], None]


class Listeners:
    """The subscribers of one source."""

    def __init__(self) -> None:
        self._snapshot: list[SnapshotListener] = []
        self._event: list[EventListener] = []

    def add_snapshot_listener(self, cb: SnapshotListener) -> Callable[[], None]:
        self._snapshot.append(cb)
        return lambda: _discard(self._snapshot, cb)

    def add_event_listener(self, cb: EventListener) -> Callable[[], None]:
        self._event.append(cb)
        return lambda: _discard(self._event, cb)

    def publish(self, snapshot: SystemSnapshot) -> None:
        for cb in list(self._snapshot):
            try:
                cb(snapshot)
            except Exception:  # a consumer's bug never stops the source
                _LOG.exception("snapshot listener failed")

    def emit(self, events: Iterable[Event]) -> None:
        for event in events:
            for cb in list(self._event):
                try:
                    cb(event)
                except Exception:  # a consumer's bug never stops the source
                    _LOG.exception("event listener failed")


def _discard[T](items: list[T], item: T) -> None:
    if item in items:
        items.remove(item)
