"""Who answers: each device online or lost, each bus answering or lost, with the events.

A device is lost after ``comm_lost_cycles`` polls without an answer (one missed poll on a
noisy line is not news); a bus is lost when it is disconnected or none of its devices answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from ..bus import AnyReading, BusClient
from ..events import Event, EventType
from ..model import Quality
from ..snapshot import DeviceRef

_LOG = logging.getLogger(__name__)


class Presence:
    def __init__(self) -> None:
        self.last_seen: dict[DeviceRef, datetime] = {}
        self.online: dict[DeviceRef, bool] = {}
        self.bus_ok: dict[str, bool] = {}

    def is_online(self, ref: DeviceRef) -> bool:
        """A device never polled counts as online (it was just found)."""
        return self.online.get(ref, True)

    def all_online(self) -> bool:
        return all(self.online.values())

    def track(
        self,
        now: datetime,
        readings: Mapping[DeviceRef, AnyReading],
        clients: Mapping[str, BusClient],
        lost_after: int,
    ) -> list[Event]:
        events: list[Event] = []
        for ref, reading in readings.items():
            answered = reading.quality is not Quality.MISSING
            if answered:
                self.last_seen[ref] = now
            online = answered or clients[ref.bus].consecutive_failures(ref.unit) < lost_after
            before = self.online.get(ref)
            if before is not None and before != online:
                kind = EventType.DEVICE_FOUND if online else EventType.DEVICE_LOST
                said = "answers again" if online else "stopped answering"
                events.append(Event(kind, now, f"{ref} {said}", device=ref))
            self.online[ref] = online
        for bus_id, client in clients.items():
            devices = [r for r in readings if r.bus == bus_id]
            ok = client.connected and (
                not devices or any(readings[r].quality is not Quality.MISSING for r in devices)
            )
            before = self.bus_ok.get(bus_id)
            if before is not None and before != ok:
                kind = EventType.BUS_RESTORED if ok else EventType.BUS_LOST
                events.append(Event(kind, now, f"bus {bus_id} {'is back' if ok else 'is lost'}"))
                log = _LOG.info if ok else _LOG.warning
                log("bus %s %s", bus_id, "restored" if ok else "lost")
            self.bus_ok[bus_id] = ok
        return events
