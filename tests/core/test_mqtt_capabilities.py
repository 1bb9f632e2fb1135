"""MQTT discovery offers only what the source can do: a read-only GENEREX system gets no trip,
breaker, runaway, equalization or state-of-charge entities of ours (no broker needed)."""

from __future__ import annotations

from dataclasses import replace

from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.mqtt.projection import Projection
from bacs_core.mqtt.topics import Topics
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Room, RoomConfig
from bacs_core.snapshot import Capability, SystemSnapshot
from bacs_core.source import GENEREX_CAPABILITIES, MANAGER_CAPABILITIES

CONFIG = {"buses": [{"id": "bus1", "url": "sim://x"}], "string_count": 1, "trip": {"auto": True}}
OURS_ONLY = {
    "trip_state",
    "breaker",
    "thermal_runaway",
    "runaway_pre_alert",
    "state_of_charge",
    "discharge_weakest_block",
    "balancing",
    "balancing_current",
    "deviation",
}


async def _snapshot() -> SystemSnapshot:
    room = Room(RoomConfig(strings=1, blocks=4, seed=3, settle_days=0))
    clock = [0.0]
    manager = Manager(
        validate_config(CONFIG),
        storage=MemoryStorage(),
        transports={"bus1": LoopbackTransport(room)},
        clock=lambda: clock[0],
    )
    await manager.start(run_loop=False)
    try:
        room.step(10.0)
        clock[0] += 10.0
        return await manager.poll_once()
    finally:
        await manager.stop()


def _keys(snap: SystemSnapshot) -> set[str]:
    projection = Projection(Topics("bacs", "t1", "homeassistant"), "Test room", diagnostics=True)
    return {spec.key for t in projection.targets(snap) for spec in t.specs}


async def test_a_read_only_source_gets_no_controls_or_estimates_of_ours() -> None:
    snap = await _snapshot()
    assert snap.capabilities == MANAGER_CAPABILITIES
    assert _keys(snap) >= OURS_ONLY
    generex = _keys(replace(snap, capabilities=GENEREX_CAPABILITIES))
    assert not OURS_ONLY & generex
    # What a CS141 does report stays: the readings, the per-block resistance, the problems.
    assert {"voltage", "temperature", "internal_resistance", "problem", "status"} <= generex


async def test_without_per_block_resistance_the_resistance_sensor_goes() -> None:
    snap = await _snapshot()
    caps = MANAGER_CAPABILITIES - {Capability.PER_BLOCK_RESISTANCE}
    keys = _keys(replace(snap, capabilities=caps))
    assert "internal_resistance" not in keys
    assert "voltage" in keys
