"""What a remote appliance's messages mean here: its capabilities for a remote reader, and
its event JSON (docs/mqtt.md, "Events") back into ``Event`` objects, each told once."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ..events import Event, EventType
from ..mqtt.snapshot_codec import ApplianceState
from ..snapshot import Capability, DeviceRef

SEEN_EVENT_IDS = 2000  # QoS 1 delivers at least once: events are deduplicated on their id

# What the consumer can read from an appliance whatever its site file enables.
READ_CAPABILITIES = frozenset(
    {
        Capability.EQUALIZE,
        Capability.TRIP,
        Capability.RUNAWAY_DETECTION,
        Capability.PER_BLOCK_RESISTANCE,
        Capability.STATE_OF_CHARGE,
        Capability.DISCHARGE_ANALYSIS,
        Capability.GENERAL_FLAGS,
    }
)
# Commands that bring a capability of their own (the others act on what is read above).
COMMAND_CAPABILITIES = {"acknowledge": Capability.ACKNOWLEDGE, "identify": Capability.IDENTIFY}


def remote_capabilities(state: ApplianceState) -> frozenset[Capability]:
    """What a consumer may offer for this appliance: what its manager can do and its site
    file lets a remote reader do (never a rescan, a measurement or a relay output)."""
    caps = state.snapshot.capabilities
    out = set(caps & READ_CAPABILITIES)
    for command, capability in COMMAND_CAPABILITIES.items():
        if command in state.commands and capability in caps:
            out.add(capability)
    return frozenset(out)


def event_from_payload(raw: Mapping[str, Any]) -> Event:
    """The publisher's event JSON back into an ``Event``; KeyError/ValueError when it is not
    one."""
    device = raw.get("device")
    ref: DeviceRef | None = None
    if device:
        bus, _, unit = str(device).rpartition("/")
        ref = DeviceRef(bus, int(unit))
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise ValueError("data is not an object")
    string = raw.get("string")
    return Event(
        type=EventType(raw["type"]),
        timestamp=datetime.fromisoformat(raw["time"]),
        message=str(raw.get("message", "")),
        device=ref,
        string=int(string) if string is not None else None,
        data=dict(data),
    )


class SeenIds:
    """The ids of the last events told, to drop QoS 1's second delivery."""

    def __init__(self, size: int = SEEN_EVENT_IDS) -> None:
        self._order: deque[str] = deque(maxlen=size)
        self._set: set[str] = set()

    def first_time(self, event_id: str) -> bool:
        if not event_id:
            return True  # no id to go by: tell it
        if event_id in self._set:
            return False
        if len(self._order) == self._order.maxlen:
            self._set.discard(self._order[0])
        self._order.append(event_id)
        self._set.add(event_id)
        return True


class EventGate:
    """Events wait here for the snapshot of their cycle: the appliance sends a cycle's events
    before its snapshot, and the manager itself tells them once that snapshot is in place (a
    listener reading ``trip_state`` sees the state they led to). An event whose snapshot
    does not come (a command's, a cycle with nothing new to show) goes after ``hold_s``."""

    def __init__(self, tell: Callable[[Event], None], hold_s: float) -> None:
        self.tell = tell
        self.hold_s = hold_s
        self._held: list[Event] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, event: Event, snapshot_time: datetime | None) -> None:
        self._held.append(event)
        if snapshot_time is not None and event.timestamp <= snapshot_time:
            self.release(snapshot_time)
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.hold_s, self.release, None)

    def release(self, upto: datetime | None) -> None:
        """Tell the held events up to ``upto`` (every one with None), in order."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        n = 0
        while n < len(self._held) and (upto is None or self._held[n].timestamp <= upto):
            n += 1
        ready, self._held = self._held[:n], self._held[n:]
        if self._held:
            self._timer = asyncio.get_running_loop().call_later(self.hold_s, self.release, None)
        for event in ready:
            self.tell(event)

    def close(self) -> None:
        """Received means told: every held event goes now; no timer outlives the source."""
        self.release(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
