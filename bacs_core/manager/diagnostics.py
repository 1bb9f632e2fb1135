"""JSON-safe facts for a bug report; hosts, credentials and serial numbers are left out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..bus import BusClient
from ..bus.url import parse_bus_url
from ..snapshot import SystemSnapshot
from .config import ManagerConfig
from .presence import Presence
from .safety import Safety
from .topology import Topology


def diagnostics(
    config: ManagerConfig,
    topology: Topology,
    presence: Presence,
    clients: Mapping[str, BusClient],
    safety: Safety,
    snapshot: SystemSnapshot | None,
    cycle: int,
    equalization: bool,
) -> dict[str, Any]:
    return {
        "config": {
            "buses": [
                {
                    "id": b.id,
                    "url": parse_bus_url(b.url).redacted(),
                    "timeout": b.timeout,
                    "retries": b.retries,
                }
                for b in config.buses
            ],
            "string_count": len(topology.strings),
            "poll_interval": config.poll_interval,
            "chemistry": config.chemistry.value,
            "equalization": equalization,
            "trip_breakers": len(safety.breakers),
        },
        "devices": {
            str(ref): {
                "kind": d.kind.name,
                "firmware": d.firmware,
                "online": presence.is_online(ref),
            }
            for ref, d in sorted(topology.devices.items(), key=lambda x: (x[0].bus, x[0].unit))
        },
        "buses": [
            {
                "id": c.bus_id,
                "connected": c.connected,
                "link_quality": c.link_quality,
                "requests": c.requests,
                "failures": c.failures,
                "last_error": c.last_error,
            }
            for c in clients.values()
        ],
        "cycle": cycle,
        "status": snapshot.status.value if snapshot else None,
        "safety": safety.state_dict(),
        "alarms": [
            {
                "key": a.key,
                "severity": a.severity.value,
                "active": a.active,
                "latched": a.latched,
            }
            for a in (snapshot.alarms if snapshot else ())
        ],
    }
