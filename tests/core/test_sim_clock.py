"""One clock: ``bacs run --clock sim:…`` against ``bacs simulate --speed 60`` over TCP.

The manager's lags, intervals and out-of-range timers must run on the simulator's time, so
equalization over the wire converges in as many simulated seconds as the in-process twin
(same room, same seed, the manager stepped on the simulated clock). Without the simulator's
clock the manager would measure real seconds against a plant 60× faster. (60×: this string
needs ~50 simulated minutes — the controller's 30-minute slope window is slow on a plant with
a 5-minute lag — which at 10× would make a 5-minute test.)
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.sim.clock import SimClock
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.physics import PlantOptions
from bacs_core.sim.room import Room, RoomConfig

BACS = [sys.executable, "-m", "bacs_core"]
ROOM = {"blocks": 8, "settle_days": 0.01, "seed": 2, "lag_min": 5.0}
SPEED = 60
BAND = 0.020  # measured spread: every block within ±10 mV
SPREAD = re.compile(r"spread (\d+)mV")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def twin_seconds() -> float:
    """Simulated seconds the in-process manager needs, stepped on the room's clock."""
    room = Room(
        RoomConfig(
            strings=1,
            blocks=int(ROOM["blocks"]),
            capacity_ah=40,
            settle_days=ROOM["settle_days"],
            seed=int(ROOM["seed"]),
            plant=PlantOptions(lag_s=ROOM["lag_min"] * 60),
        )
    )
    manager = Manager(
        validate_config(
            {"buses": [{"id": "bus1", "url": "sim://x"}], "capacity_ah": 40, "poll_interval": 10}
        ),
        storage=MemoryStorage(),
        transports={"bus1": LoopbackTransport(room)},
        clock=lambda: room.time_s,
    )
    await manager.start(run_loop=False)
    start = room.time_s
    for _ in range(720):
        room.step(10.0)
        snap = await manager.poll_once()
        spread = snap.strings[0].spread
        if spread is not None and spread <= BAND:
            return room.time_s - start
    raise AssertionError("the twin never converged")


async def sim_time(clock: SimClock) -> float:
    await clock.start()
    try:
        return clock()
    finally:
        await clock.stop()


async def test_sim_clock_reads_the_simulators_time_and_speed() -> None:
    port = free_port()

    async def status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(json.dumps({"ok": True, "status": {"time_s": 500.0, "speed": 10}}).encode())
        writer.write(b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(status, "127.0.0.1", port)
    async with server:
        clock = SimClock.parse(f"sim:127.0.0.1:{port}")
        await clock.start()
        first = clock()
        await asyncio.sleep(0.2)
        assert clock.rate == 10
        assert 500.0 <= first < 502.0
        assert clock() - first > 1.0  # 0.2 s real at 10× is ~2 simulated seconds
        await clock.stop()


def test_run_over_tcp_converges_in_the_twins_simulated_time(tmp_path: Path) -> None:
    twin = asyncio.run(twin_seconds())
    bus, control = free_port(), free_port()
    sim = subprocess.Popen(
        [
            *BACS,
            "simulate",
            "--strings",
            "1",
            "--blocks",
            str(ROOM["blocks"]),
            "--capacity",
            "40",
            "--settle-days",
            str(ROOM["settle_days"]),
            "--seed",
            str(ROOM["seed"]),
            "--lag-min",
            str(ROOM["lag_min"]),
            "--speed",
            str(SPEED),
            "--listen",
            f"tcp://127.0.0.1:{bus}",
            "--control",
            f"tcp://127.0.0.1:{control}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    config = tmp_path / "bacs.json"
    config.write_text(json.dumps({"capacity_ah": 40}), encoding="utf-8")
    run = None
    try:
        assert sim.stdout is not None
        assert "devices" in sim.stdout.readline()
        assert "control" in sim.stdout.readline()
        clock = f"sim:127.0.0.1:{control}"
        run = subprocess.Popen(
            [
                *BACS,
                "run",
                f"tcp://127.0.0.1:{bus}",
                "--config",
                str(config),
                "--interval",
                "10",
                "--clock",
                clock,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert run.stdout is not None
        started: float | None = None
        deadline = time.monotonic() + 3 * twin / SPEED + 30
        for line in run.stdout:
            match = SPREAD.search(line)
            if match is None:
                continue
            now = asyncio.run(sim_time(SimClock.parse(clock)))
            if started is None:
                started = now - 10.0  # the first cycle ran one interval ago at most
                continue
            if int(match.group(1)) <= BAND * 1000:
                wire = now - started
                break
            assert time.monotonic() < deadline, "no convergence over the wire"
        else:
            raise AssertionError("bacs run ended early")
    finally:
        for proc in (run, sim):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    print(f"converged over the wire in {wire:.0f} simulated s, in process in {twin:.0f} s")
    assert abs(wire - twin) <= 0.2 * twin, (wire, twin)
