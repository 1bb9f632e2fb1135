"""Finding devices without stopping the cycle: missing trip relay modules, and after a fast
start the addresses not probed yet.

A full scan of a sparse bus costs one timeout per empty address (25 s for 247 addresses at
0.1 s), and no cycle runs meanwhile. So a restart probes the devices it knew first and scans
the rest a batch per cycle; a trip relay module that is missing is looked for every cycle at
the addresses where one was seen (or is configured), and elsewhere a batch every 30 s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from ..bus import BusClient
from ..model import FACTORY_UNIT_ID, RELAY_CHANNELS, DeviceFamily
from ..snapshot import DeviceRef
from .safety import TripSettings
from .topology import Topology

SEARCH_S = 30.0  # a missing trip relay module: the unknown addresses probed this often
BATCH = 16  # addresses per bus and search (a silent address costs one timeout)
NEAR = 4  # addresses just above the highest used one, probed every search


def by_bus(refs: Iterable[DeviceRef]) -> dict[str, list[int]]:
    units: dict[str, list[int]] = {}
    for ref in refs:
        units.setdefault(ref.bus, []).append(ref.unit)
    return units


def missing_relays(settings: TripSettings, topology: Topology) -> list[DeviceRef | None]:
    """Breaker relay modules the trip needs but the topology lacks (None: one not found at
    all yet, as with auto-trip before any relay module answered)."""
    missing: list[DeviceRef | None] = [
        b.relay for b in settings.breakers if b.relay not in topology.devices
    ]
    needed = math.ceil(settings.expected / RELAY_CHANNELS)
    missing += [None] * max(0, needed - len({b.relay for b in settings.breakers}))
    return missing


class DeviceSearch:
    def __init__(self, clients: Mapping[str, BusClient], topology: Topology) -> None:
        self._clients = clients
        self._topology = topology
        self.relay_hints: list[DeviceRef] = []  # relay modules seen before (persisted)
        self.known: tuple[DeviceRef, ...] = ()  # devices seen before (persisted)
        self._backlog: dict[str, list[int]] = {}  # addresses still to scan, per bus
        self._cursor: dict[str, int] = {}
        self._next_search = -math.inf

    def remember_relays(self) -> None:
        for ref in self._topology.relays:
            if ref not in self.relay_hints:
                self.relay_hints.append(ref)

    async def fast_start(self) -> None:
        """Probe the devices seen before; the other addresses go to the backlog."""
        units = by_bus(self.known)
        await self._topology.discover(self._clients, units)
        self._backlog = {
            bus: [u for u in range(1, FACTORY_UNIT_ID + 1) if u not in units.get(bus, ())]
            for bus in self._clients
        }

    async def scan_some(self) -> list[DeviceRef]:
        """One batch of the backlog per bus; returns the devices found."""
        if not self._backlog:
            return []
        units = {}
        for bus_id, backlog in list(self._backlog.items()):
            units[bus_id] = backlog[:BATCH]
            del backlog[:BATCH]
            if not backlog:
                del self._backlog[bus_id]
        return await self._topology.discover(self._clients, units)

    async def relays(self, now_s: float, missing: Sequence[DeviceRef | None]) -> list[DeviceRef]:
        """Look for the missing trip relay modules; only relay modules are added."""
        if not missing:
            return []
        hinted = (*self.relay_hints, *(r for r in missing if r))
        units = by_bus(dict.fromkeys(r for r in hinted if r not in self._topology.devices))
        if now_s >= self._next_search and None in missing:
            self._next_search = now_s + SEARCH_S
            for bus_id in self._clients:
                units.setdefault(bus_id, []).extend(self._next_batch(bus_id))
        if not units:
            return []
        return await self._topology.discover(self._clients, units, family=DeviceFamily.RELAY)

    def _next_batch(self, bus_id: str) -> list[int]:
        """Installers address devices in sequence: the gaps among the used addresses and the
        few just above them first, every time; then the rest, a batch at a time."""
        used = {r.unit for r in self._topology.devices if r.bus == bus_id}
        free = [u for u in range(1, FACTORY_UNIT_ID) if u not in used]
        top = max(used, default=0) + NEAR
        near = [u for u in free if u <= top][:BATCH]
        rest = [u for u in free if u > top]
        if not rest:
            return near
        start = self._cursor.get(bus_id, 0) % len(rest)
        batch = (rest[start:] + rest[:start])[:BATCH]
        self._cursor[bus_id] = start + len(batch)
        return near + batch
