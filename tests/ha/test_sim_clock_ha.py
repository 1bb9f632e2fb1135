"""One clock in Home Assistant too: an entry whose bus is a ``bacs simulate --speed N`` with a
control channel (an advanced-mode field; ./scripts/demo sets it) runs its manager on the
simulator's time, so the poll interval, the equalization lags and the timers pass N× faster
with the plant. Every other entry keeps the monotonic clock.

The room runs in this process at SPEED with its real JSON control channel on a loopback port;
the bus is the in-process transport onto the same room (a scan over TCP would wait for every
silent unit)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from bacs_core.sim.control import serve_control
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Room, RoomConfig
from bacs_core.snapshot import SystemSnapshot
from custom_components.bacs import bus as bus_helpers
from custom_components.bacs.const import DOMAIN

from .conftest import make_entry, setup

SPEED = 20.0  # simulated seconds per real second
INTERVAL = 10.0  # the poll interval, on the manager's clock
OPTIONS = {"string_count": 1, "poll_interval": INTERVAL}


def tcp_data(control: str | None) -> dict[str, Any]:
    data = {
        "kind": "tcp",
        "host": "127.0.0.1",
        "tcp_port": 1502,
        "framing": "modbus_tcp",
        "url": "tcp://127.0.0.1:1502",
    }
    return data | ({"sim_control": control} if control else {})


@pytest.fixture
async def simulator(socket_enabled: None) -> AsyncIterator[tuple[Room, str]]:
    """A room running at SPEED, and the HOST:PORT of its control channel (a loopback socket:
    PHCC's ``socket_enabled``)."""
    room = Room(RoomConfig(strings=1, blocks=4, settle_days=0, seed=5))
    control = await serve_control(room, "127.0.0.1", 0)
    runner = asyncio.get_running_loop().create_task(room.run(SPEED, tick_s=0.05))
    yield room, f"127.0.0.1:{control.sockets[0].getsockname()[1]}"
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    control.close()
    await control.wait_closed()


async def cycles_in_simulated_time(
    hass: HomeAssistant, room: Room, control: str | None
) -> list[float]:
    """The room's time at each of three poll cycles of the manager's own loop."""
    with patch.object(bus_helpers, "make_transport", return_value=LoopbackTransport(room)):
        entry = await setup(hass, make_entry(data=tcp_data(control), options=OPTIONS))
    seen: list[float] = []
    stamped: list[float] = []  # the snapshots' wall times, on the manager's wall clock
    three = asyncio.Event()

    def on_snapshot(snap: SystemSnapshot) -> None:
        seen.append(room.time_s)
        stamped.append(snap.timestamp.timestamp())
        if len(seen) == 3:
            three.set()

    unsubscribe = entry.runtime_data.manager.add_snapshot_listener(on_snapshot)
    try:
        # ×20: two intervals are one real second (the monotonic clock would take 20 s)
        await asyncio.wait_for(three.wait(), 60)
        if control is not None:
            # The times follow the plant too (a discharge's duration, Ah and Wh in the
            # history and the report): the snapshots' and the history recorder's clock.
            walls = [later - earlier for earlier, later in itertools.pairwise(stamped)]
            assert all(0.8 * INTERVAL <= gap <= 3 * INTERVAL for gap in walls), walls
            history = entry.runtime_data.history
            assert history is not None
            ahead = history._clock().timestamp() - stamped[-1]
            assert 0 <= ahead <= 3 * INTERVAL, ahead
    finally:
        unsubscribe()
        assert await hass.config_entries.async_unload(entry.entry_id)
    return seen


async def test_the_manager_takes_the_simulators_time(
    hass: HomeAssistant, simulator: tuple[Room, str]
) -> None:
    room, control = simulator
    seen = await cycles_in_simulated_time(hass, room, control)
    gaps = [later - earlier for earlier, later in itertools.pairwise(seen)]
    # Each gap is one interval of the manager's clock, measured on the room's: 10 simulated
    # seconds (a tick of the room, 1 s, and a late wake-up of the loop on top), where the
    # monotonic clock would make it 10 real seconds, 200 simulated ones.
    assert all(0.8 * INTERVAL <= gap <= 3 * INTERVAL for gap in gaps), gaps


async def test_without_the_control_channel_the_clock_is_monotonic(
    hass: HomeAssistant, simulator: tuple[Room, str]
) -> None:
    room, _ = simulator
    with patch.object(bus_helpers, "make_transport", return_value=LoopbackTransport(room)):
        entry = await setup(hass, make_entry(data=tcp_data(None), options=OPTIONS))
    manager = entry.runtime_data.manager
    cycles = manager.snapshot.cycle
    await asyncio.sleep(1.0)  # 20 simulated seconds: two intervals on the simulator's clock
    assert manager.snapshot.cycle == cycles  # none on the monotonic clock
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_silent_control_channel_retries_the_setup(
    hass: HomeAssistant, simulator: tuple[Room, str], unused_tcp_port: int
) -> None:
    room, _ = simulator
    with patch.object(bus_helpers, "make_transport", return_value=LoopbackTransport(room)):
        entry = make_entry(data=tcp_data(f"127.0.0.1:{unused_tcp_port}"), options=OPTIONS)
        entry.add_to_hass(hass)
        assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "simulator control" in (entry.reason or "")


async def test_the_field_is_for_advanced_mode_and_checked_before_the_entry(
    hass: HomeAssistant, simulator: tuple[Room, str], unused_tcp_port: int
) -> None:
    room, control = simulator
    gateway = {"host": "127.0.0.1", "tcp_port": 1502, "framing": "modbus_tcp"}

    async def tcp_form(advanced: bool) -> dict[str, Any]:
        result = await hass.config_entries.flow.async_init(
            DOMAIN,
            context={"source": config_entries.SOURCE_USER, "show_advanced_options": advanced},
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "tcp"}
        )
        assert result["type"] is FlowResultType.FORM and result["step_id"] == "tcp"
        return dict(result)

    plain = await tcp_form(False)
    assert "sim_control" not in plain["data_schema"].schema
    hass.config_entries.flow.async_abort(plain["flow_id"])

    form = await tcp_form(True)
    assert "sim_control" in form["data_schema"].schema
    with patch.object(bus_helpers, "make_transport", return_value=LoopbackTransport(room)):
        result = await hass.config_entries.flow.async_configure(
            form["flow_id"], gateway | {"sim_control": "no port"}
        )
        assert result["errors"] == {"sim_control": "invalid_sim_control"}
        result = await hass.config_entries.flow.async_configure(
            form["flow_id"], gateway | {"sim_control": f"127.0.0.1:{unused_tcp_port}"}
        )
        assert result["errors"] == {"sim_control": "sim_control_unreachable"}
        result = await hass.config_entries.flow.async_configure(
            form["flow_id"], gateway | {"sim_control": control}
        )
        assert result["type"] is FlowResultType.FORM and result["step_id"] == "strings"
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {"name": "Demo room", "string_count": 1, "capacity_ah": 100, "chemistry": "vrla"},
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"]["sim_control"] == control
        await hass.async_block_till_done()
        entry = result["result"]
        assert await hass.config_entries.async_unload(entry.entry_id)
