"""The manager sets every module's watchdog from its poll interval (issue 10).

A module switches its shunt off when its setpoint is not rewritten within its watchdog;
the manager must keep that longer than its own cycle (3 intervals) or every shunt drops each
cycle, and short enough that a dead manager stops the shunts within 3 cycles.
"""

from __future__ import annotations

import pytest

from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.manager.actuators import watchdog_for
from bacs_core.model import Status
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Room, RoomConfig


@pytest.mark.parametrize(("interval", "expected"), [(1, 3), (10, 30), (30, 90), (60, 180)])
def test_watchdog_is_three_intervals(interval: float, expected: int) -> None:
    assert watchdog_for(interval) == expected
    assert watchdog_for(3600) == 600  # the register's maximum


async def test_balancing_holds_at_30_s_and_stops_when_the_manager_stops_writing() -> None:
    room = Room(RoomConfig(strings=1, blocks=8, capacity_ah=40, settle_days=2, seed=4))
    clock = [0.0]
    manager = Manager(
        validate_config(
            {"buses": [{"id": "bus1", "url": "sim://x"}], "capacity_ah": 40, "poll_interval": 30}
        ),
        storage=MemoryStorage(),
        transports={"bus1": LoopbackTransport(room)},
        clock=lambda: clock[0],
    )
    await manager.start(run_loop=False)
    modules = room.string(1).modules
    on: set[int] = set()
    for _ in range(40):  # 20 minutes at a 30 s interval
        room.step(30.0)
        clock[0] += 30.0
        await manager.poll_once()
        shunting = {k for k, d in enumerate(modules) if d.shunt_current() > 0}
        on |= shunting
        assert not any(d.status & Status.WATCHDOG_EXPIRED for d in modules)
    assert on, "some module must balance on this unbalanced string"
    balancing = [d for d in modules if d.control["balance_setpoint"] > 0]
    assert balancing
    assert all(d.control["watchdog"] == 90 for d in balancing)
    # The manager stops writing (crashed, bus cut): within 3 intervals every shunt is off.
    room.step(60.0)
    assert any(d.shunt_current() > 0 for d in balancing)  # 2 missed cycles: still on
    room.step(31.0)
    assert all(d.shunt_current() == 0 for d in modules)
    assert all(d.status & Status.WATCHDOG_EXPIRED for d in balancing)
