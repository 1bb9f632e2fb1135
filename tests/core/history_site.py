"""A simulated room, the real manager and a history recorder, in accelerated time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bacs_core.events import Event
from bacs_core.history import DischargeRecord, HistoryConfig, HistoryRecorder, HistoryStore
from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.physics import ChargerMode
from bacs_core.sim.room import Fault, Room, RoomConfig
from bacs_core.snapshot import SystemSnapshot

EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
POLL_S = 10.0
CONFIG = {
    "buses": [{"id": "bus1", "url": "sim://x"}],
    "string_count": 2,
    "capacity_ah": 40,
    "trip": {"auto": True},
    "poll_interval": POLL_S,
}


class HistorySite:
    """The room steps, then the manager polls, then the recorder hears about it."""

    def __init__(
        self,
        room: Room,
        directory: Path,
        config: HistoryConfig | None = None,
        *,
        start_s: float = 0.0,
        manager_config: dict[str, object] | None = None,
    ) -> None:
        self.room = room
        self.clock = [start_s]
        self.events: list[Event] = []
        self.manager = Manager(
            validate_config(CONFIG | (manager_config or {})),
            storage=MemoryStorage(),
            transports={"bus1": LoopbackTransport(room)},
            clock=lambda: self.clock[0],
            wall_clock=self.now,
        )
        self.manager.add_event_listener(self.events.append)
        self.store = HistoryStore(directory, config)
        self.recorder = HistoryRecorder(self.store, clock=self.now)
        self.delivered_ah = {s.index: 0.0 for s in room.strings}  # the simulator's truth
        self.announced: list[DischargeRecord] = []

    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.clock[0])

    async def start(self) -> None:
        await self.recorder.start()
        self.recorder.attach(self.manager)
        await self.manager.start(run_loop=False)

    async def stop(self) -> None:
        await self.manager.stop()
        await self.recorder.stop()

    async def cycles(self, n: int) -> SystemSnapshot:
        snap = None
        for _ in range(n):
            self.room.step(POLL_S)
            for s in self.room.strings:
                self.delivered_ah[s.index] += max(0.0, -s.physics.string_current_a) * POLL_S / 3600
            self.clock[0] += POLL_S
            snap = await self.manager.poll_once()
        assert snap is not None
        return snap

    def flush(self) -> None:
        assert self.recorder.writer.flush(10.0)


WEAK = 7  # the weak block of the discharge below: capacity ×0.75, Ri ×1.4, string 1
LOAD_A = 8.0  # C/5 on 40 Ah


async def discharge_with_a_weak_block(directory: Path) -> tuple[HistorySite, SystemSnapshot]:
    """Two hours at C/5 on string 1 (string 2 stays on float), then 15 minutes of recovery;
    returns the site and the snapshot of the cycle before the discharge began. The history and
    report tests share one (tests/core/conftest.py: ``discharged``)."""
    room = Room(
        RoomConfig(
            strings=2,
            blocks=16,
            capacity_ah=40,
            settle_days=1,
            seed=4,
            faults=(Fault.parse(f"weak:1:{WEAK}"),),
        )
    )
    site = HistorySite(room, directory, HistoryConfig(recovery_s=600.0))
    await site.start()
    site.recorder.add_discharge_listener(site.announced.append)
    await site.cycles(6)
    before = await site.cycles(1)
    room.set_mode(1, ChargerMode.DISCHARGE, LOAD_A)
    await site.cycles(360 * 2)  # two hours at C/5
    room.set_mode(1, ChargerMode.FLOAT)
    await site.cycles(90)  # 15 min: past the 10 min recovery reading
    site.flush()
    await site.stop()
    return site, before
