"""A module is known by its serial: re-addressed, it keeps its resistance history and its old
address is forgotten; a new module wired in at an old address starts a history of its own."""

from __future__ import annotations

from bacs_core.manager import MemoryStorage
from bacs_core.sim.room import Room, RoomConfig
from bacs_core.snapshot import DeviceRef
from tests.core.test_manager_sim import Site


def _room() -> Room:
    return Room(RoomConfig(strings=2, blocks=8, capacity_ah=40, settle_days=1, seed=2))


async def test_a_readdressed_module_keeps_its_history_and_leaves_its_old_address() -> None:
    room = _room()
    site = Site(room, MemoryStorage())
    await site.manager.start(run_loop=False)
    await site.cycles(3)
    bus = room.buses[0]
    module = room.strings[0].modules[2]
    old = DeviceRef("bus1", module.unit)
    trend = site.manager.observer.trends[old]
    assert trend.state_dict()  # it has learned something
    del bus.devices[module.unit]
    module.unit = 60
    bus.devices[60] = module
    added = await site.manager.rescan()
    new = DeviceRef("bus1", 60)
    assert added == [new]
    assert old not in site.manager.devices  # no ghost polled (and reported lost) forever
    assert site.manager.devices[new].serial == module.serial
    assert site.manager.observer.trends[new] is trend
    assert old not in site.manager.observer.trends
    snap = await site.cycles(1)
    units = [m.info.ref.unit for s in snap.strings for m in s.modules]
    assert 60 in units and old.unit not in units
    assert len(units) == 16
    await site.manager.stop()


async def test_a_module_replaced_at_the_same_address_starts_a_new_history() -> None:
    room = _room()
    site = Site(room, MemoryStorage())
    await site.manager.start(run_loop=False)
    await site.cycles(3)
    module = room.strings[0].modules[2]
    ref = DeviceRef("bus1", module.unit)
    before = site.manager.observer.trends[ref]
    module.serial = 990001  # another module wired in at the same address
    added = await site.manager.rescan()
    assert added == [ref]  # announced as a new device
    assert site.manager.devices[ref].serial == 990001
    await site.cycles(1)
    assert site.manager.observer.trends[ref] is not before
    await site.manager.stop()
