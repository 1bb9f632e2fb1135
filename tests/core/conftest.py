"""Fixtures: a simulated room served over the real wire protocols on this machine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bacs_core.bus import BusClient, open_transport
from bacs_core.sim.room import Room, RoomConfig
from bacs_core.sim.server import PtyBusServer, TcpBusServer

if TYPE_CHECKING:
    from bacs_core.snapshot import SystemSnapshot
    from tests.core.history_site import HistorySite


@pytest.fixture
def room() -> Room:
    return Room(RoomConfig(strings=2, blocks=8, seed=3, settle_days=0.5))


@pytest.fixture
async def tcp_server(room: Room) -> AsyncIterator[TcpBusServer]:
    server = TcpBusServer(room, 0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def tcp_client(tcp_server: TcpBusServer) -> AsyncIterator[BusClient]:
    client = BusClient(open_transport(tcp_server.url, timeout=0.2, retries=1), backoff_min_s=0.05)
    await client.connect()
    yield client
    await client.close()


@pytest.fixture
async def pty_server(room: Room, tmp_path: Path) -> AsyncIterator[PtyBusServer]:
    server = PtyBusServer(room, 0, str(tmp_path / "bus0"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def discharged(tmp_path_factory: pytest.TempPathFactory) -> tuple[HistorySite, SystemSnapshot]:
    """One simulated discharge with a known weak block (about ten seconds), read, never
    changed, by the history and the report tests alike. (Imported here, not at the top: the
    mutation bench copies this file without the history helpers.)"""
    from tests.core.history_site import discharge_with_a_weak_block

    return asyncio.run(discharge_with_a_weak_block(tmp_path_factory.mktemp("discharge")))
