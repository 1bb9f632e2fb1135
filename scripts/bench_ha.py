"""Home Assistant benchmark: 330 blocks in 10 strings on float, inside a real HA test instance.

Two battery buses (one config entry each: 5 strings of 33 blocks, their current sensors,
relay modules and an environment sensor) on the in-process simulator. Each cycle advances
the simulated room by the poll interval (10 s of float with measurement noise), runs one
manager cycle per bus and lets the integration update its entities. Reported:

- entities: entities created (and how many are enabled);
- state_writes_per_hour: state_changed events (what the recorder stores) per hour at a 10 s
  poll interval, with the integration's write-on-change rule;
- naive_state_writes_per_hour: the same run where every entity writes on every cycle at
  full resolution (what a plain CoordinatorEntity would do);
- update_cpu_ms: CPU time of the integration's part of one cycle (snapshot listener: index,
  every entity's update, the writes), median and max over the measured cycles.

Usage: ./scripts/bench ha [--json] [--cycles N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeassistant import loader  # noqa: E402
from homeassistant.helpers import entity_registry as er  # noqa: E402
from homeassistant.helpers.entity import Entity  # noqa: E402
from pytest_homeassistant_custom_component.common import (  # noqa: E402
    MockConfigEntry,
    async_test_home_assistant,
)

import custom_components  # noqa: E402, F401  (ours before PHCC's testing_config package)
from custom_components.bacs import sensor_entity  # noqa: E402
from custom_components.bacs.entity import BacsEntity  # noqa: E402

POLL_S = 10.0
BUSES = 2
STRINGS_PER_BUS = 5
BLOCKS = 33


def _entry(n: int) -> MockConfigEntry:
    url = (
        f"sim://bench{n}?strings={STRINGS_PER_BUS}&blocks={BLOCKS}&speed=0"
        f"&settle_days=2&seed={n + 1}"
    )
    return MockConfigEntry(
        domain="bacs",
        title=f"Bus {n + 1}",
        unique_id=f"sim:bench{n}",
        data={
            "kind": "simulator",
            "name": f"bench{n}",
            "strings": STRINGS_PER_BUS,
            "blocks": BLOCKS,
            "url": url,
        },
        # The loop's own interval is long: the bench drives every cycle itself.
        options={"string_count": STRINGS_PER_BUS, "poll_interval": 60.0, "trip": {"auto": True}},
    )


async def _run(cycles: int, naive: bool) -> dict[str, Any]:
    async with async_test_home_assistant() as hass:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)  # allow custom integrations
        entries = [_entry(n) for n in range(BUSES)]
        if naive:  # before setup: entities bind their update callback when added
            BacsEntity._handle_coordinator_update = _naive_update  # type: ignore[method-assign]
            sensor_entity.BacsSensor.native_value = property(_naive_value)  # type: ignore[assignment]
        for entry in entries:
            entry.add_to_hass(hass)
            assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        registry = er.async_get(hass)
        all_entities = [
            e
            for entry in entries
            for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        ]
        cpu: list[float] = []
        for entry in entries:
            runtime = entry.runtime_data
            runtime.unsubscribe.pop(0)()  # re-register the snapshot listener, timed
            coordinator = runtime.coordinator

            def timed(snap: Any, handle: Any = coordinator.handle_snapshot) -> None:
                started = time.process_time()
                handle(snap)
                cpu.append(time.process_time() - started)

            runtime.unsubscribe.insert(0, runtime.manager.add_snapshot_listener(timed))

        async def one_cycle() -> None:
            for entry in entries:
                entry.runtime_data.transport.room.step(POLL_S)
                await entry.runtime_data.manager.poll_once()
            await hass.async_block_till_done()

        for _ in range(5):  # warm-up: link-quality windows fill, equalization settles in
            await one_cycle()
        cpu.clear()
        counts = {"writes": 0, "state_changed": 0}
        write = Entity.async_write_ha_state

        def counted_write(self: Entity) -> None:
            counts["writes"] += 1
            write(self)

        def changed(_event: Any) -> None:
            counts["state_changed"] += 1

        Entity.async_write_ha_state = counted_write  # type: ignore[method-assign]
        unsub = hass.bus.async_listen("state_changed", changed)
        for _ in range(cycles):
            await one_cycle()
        unsub()
        Entity.async_write_ha_state = write  # type: ignore[method-assign]
        for entry in entries:
            await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        await hass.async_stop(force=True)
        per_hour = 3600 / POLL_S / cycles
        writes = counts["writes"]
        return {
            "entities": len(all_entities),
            "entities_enabled": sum(1 for e in all_entities if e.disabled_by is None),
            "writes_per_cycle": round(writes / cycles, 1),
            "writes_per_hour": round(writes * per_hour),
            "changes_per_hour": round(counts["state_changed"] * per_hour),
            "update_cpu_ms_median": round(statistics.median(cpu) * 1000 * BUSES, 2),
            "update_cpu_ms_max": round(max(cpu) * 1000 * BUSES, 2),
        }


def _naive_update(self: BacsEntity) -> None:
    self.async_write_ha_state()


def _naive_value(self: Any) -> Any:
    src = self.source()
    return None if src is None else self.entity_description.value_fn(src)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cycles", type=int, default=60, help="measured cycles (10 s each)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    ours = asyncio.run(_run(args.cycles, naive=False))
    naive = asyncio.run(_run(args.cycles, naive=True))
    result = {
        "blocks": BUSES * STRINGS_PER_BUS * BLOCKS,
        "strings": BUSES * STRINGS_PER_BUS,
        "buses": BUSES,
        "poll_interval_s": POLL_S,
        "cycles": args.cycles,
        "entities": ours["entities"],
        "entities_enabled": ours["entities_enabled"],
        "state_writes_per_cycle": ours["writes_per_cycle"],
        "state_writes_per_hour": ours["writes_per_hour"],
        "naive_state_writes_per_hour": naive["writes_per_hour"],
        "recorded_states_per_hour": ours["changes_per_hour"],
        "naive_recorded_states_per_hour": naive["changes_per_hour"],
        "write_reduction": round(naive["writes_per_hour"] / max(1, ours["writes_per_hour"]), 1),
        "update_cpu_ms": ours["update_cpu_ms_median"],
        "update_cpu_ms_max": ours["update_cpu_ms_max"],
        "naive_update_cpu_ms": naive["update_cpu_ms_median"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:30} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
