"""./scripts/bench safety [--json]: does the trip come fast on a runaway, and never otherwise?

Every scenario runs the real Manager on the in-process simulator (LoopbackTransport, same
registers and faults as the wire) in accelerated time, polling every 10 s:
- runaway scenarios (severities, blocks, with and without an environment sensor): count the
  poll cycles from the first cycle whose readings meet the trip criteria to the relay command;
- float and discharge scenarios with sensor noise, temperature spikes, a dead module, a stuck
  module, bus timeouts and CRC errors: any trip is a false trip;
- a breaker that does not open: the trip must be escalated (TRIP_FAILED).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys

from bacs_core.events import Event, EventType
from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.physics import ChargerMode
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.snapshot import TripState

DT = 10.0
RUNAWAY_CYCLES = 8640  # 24 simulated hours: a severity-1 runaway takes about 9 to develop


async def scenario(
    room: Room,
    cycles: int,
    spikes: list[tuple[int, int]] | None = None,
    inject: list[tuple[int, Fault]] | None = None,
) -> dict[str, object]:
    config = validate_config(
        {
            "buses": [{"id": "bus1", "url": "sim://bench"}],
            "string_count": room.config.strings,
            "capacity_ah": room.config.capacity_ah,
            "trip": {"auto": True},
            "poll_interval": DT,
        }
    )
    clock = [0.0]
    events: list[Event] = []
    manager = Manager(
        config,
        storage=MemoryStorage(),
        transports={"bus1": LoopbackTransport(room)},
        clock=lambda: clock[0],
    )
    manager.add_event_listener(events.append)
    await manager.start(run_loop=False)
    criteria_cycle: int | None = None
    trip_cycle: int | None = None
    original = manager.runaway.update

    def spy(now_s: float, strings: object) -> object:
        nonlocal criteria_cycle
        status = original(now_s, strings)  # type: ignore[arg-type]
        if status.criteria and criteria_cycle is None:
            criteria_cycle = cycle
        return status

    manager.runaway.update = spy  # type: ignore[method-assign]
    cycle = 0
    for cycle in range(1, cycles + 1):
        for when, fault in inject or []:
            if when == cycle:
                room.inject(fault)
        for when, unit in spikes or []:
            dev = room.buses[0].devices[unit]
            if when == cycle:
                dev.frozen = True
                dev.temperature += 40.0  # a one-cycle spike on the wire
            elif when + 1 == cycle:
                dev.frozen = False
        room.step(DT)
        clock[0] += DT
        snap = await manager.poll_once()
        if snap.safety.trip_state is not TripState.ARMED and trip_cycle is None:
            trip_cycle = cycle
        if trip_cycle is not None and cycle >= trip_cycle + 10:
            break  # enough for the breaker check (verify_cycles) to conclude
    await manager.stop()
    return {
        "tripped": trip_cycle is not None,
        "criteria": criteria_cycle is not None,
        "cycles_to_trip": None
        if trip_cycle is None or criteria_cycle is None
        else trip_cycle - criteria_cycle + 1,
        "failed": any(e.type is EventType.TRIP_FAILED for e in events),
        "hours_to_trip": None if trip_cycle is None else round(trip_cycle * DT / 3600, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    runaway_cycles: list[int] = []
    runaway_missed = 0
    developed = 0
    runaway_count = 0
    hours: dict[str, list[float]] = {}
    for severity in (1.0, 2.0, 3.0):
        for block in (1, 5):
            for environment in (True, False):
                room = Room(
                    RoomConfig(
                        strings=1,
                        blocks=8,
                        capacity_ah=100,
                        settle_days=1,
                        environment=environment,
                        seed=rng.randrange(1000),
                    )
                )
                result = await scenario(
                    room,
                    RUNAWAY_CYCLES,
                    inject=[(5, Fault(FaultKind.RUNAWAY, 1, block, severity))],
                )
                runaway_count += 1
                if args.verbose:
                    print(severity, block, environment, result, file=sys.stderr)
                if result["criteria"]:
                    developed += 1
                if result["hours_to_trip"] is not None:
                    hours.setdefault(f"{severity:g}", []).append(
                        float(str(result["hours_to_trip"]))
                    )
                if result["tripped"] and result["cycles_to_trip"] is not None:
                    runaway_cycles.append(int(str(result["cycles_to_trip"])))
                elif result["criteria"]:
                    runaway_missed += 1  # the criteria held and no trip followed
    false_trips = 0
    normal = 0
    kinds = ["noise", "spike", "dead", "stuck", "timeouts", "crc", "discharge"]
    for k in range(args.scenarios):
        kind = kinds[k % len(kinds)]
        room = Room(
            RoomConfig(
                strings=1, blocks=8, capacity_ah=100, settle_days=0.5, seed=rng.randrange(10000)
            )
        )
        block = rng.randrange(1, 9)
        inject: list[tuple[int, Fault]] = []
        spikes: list[tuple[int, int]] = []
        if kind == "noise":
            inject.append((2, Fault(FaultKind.NOISE, 1, block, 0.05)))
        elif kind == "spike":
            spikes = [(rng.randrange(5, 60), block) for _ in range(3)]
        elif kind == "dead":
            inject.append((rng.randrange(2, 30), Fault(FaultKind.DEAD, 1, block)))
        elif kind == "stuck":
            inject.append((rng.randrange(2, 30), Fault(FaultKind.STUCK, 1, block)))
        elif kind == "timeouts":
            inject.append((2, Fault(FaultKind.TIMEOUTS, 1, value=0.05)))
        elif kind == "crc":
            inject.append((2, Fault(FaultKind.CRC, 1, value=0.05)))
        else:
            room.set_mode(1, ChargerMode.DISCHARGE, 20.0)
        result = await scenario(room, 90, spikes=spikes, inject=inject)
        normal += 1
        false_trips += bool(result["tripped"])
    stuck = Room(
        RoomConfig(
            strings=1, blocks=8, settle_days=0.5, faults=(Fault(FaultKind.BREAKER_STUCK, 1),)
        )
    )
    stuck_result = await scenario(
        stuck, RUNAWAY_CYCLES, inject=[(5, Fault(FaultKind.RUNAWAY, 1, 3, 3.0))]
    )
    return {
        "runaway_scenarios": runaway_count,
        "runaway_developed": developed,  # scenarios whose readings met the trip criteria
        "runaway_missed": runaway_missed,
        "runaway_trip_cycles_max": max(runaway_cycles) if runaway_cycles else None,
        # simulated hours from the fault to the trip, by severity (min, max)
        "runaway_hours_to_trip": {k: [min(v), max(v)] for k, v in sorted(hours.items())},
        "scenarios": normal,
        "false_trips": false_trips,
        "breaker_failure_detected": bool(stuck_result["failed"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scenarios", type=int, default=105)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    ok = (
        result["runaway_missed"] == 0
        and result["false_trips"] == 0
        and result["breaker_failure_detected"]
        and int(str(result["runaway_trip_cycles_max"])) <= 2
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
