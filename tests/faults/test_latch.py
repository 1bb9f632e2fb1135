"""End to end: the ``bacs run`` process killed with SIGKILL while tripped (or counting down)
and started again keeps the latch, against a simulated room served over Modbus TCP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.sim.server import TcpBusServer

ROOT = Path(__file__).resolve().parents[2]
HOT = {"pre_alert_delta": 1, "alarm_delta": 2, "trip_delta": 3, "confirm_cycles": 1}
WAIT_S = 60.0  # a guard against a hung process, not a measurement


class Room_:
    """The room, its Modbus TCP server and its clock (600 simulated seconds per second)."""

    def __init__(self) -> None:
        self.room = Room(RoomConfig(strings=2, blocks=4, capacity_ah=40, settle_days=0.2, seed=5))
        self.server = TcpBusServer(self.room, 0)
        self.task: asyncio.Task[None] | None = None

    def relay_energised(self) -> bool:
        s = self.room.string(1)
        return bool(s.relay.relays[s.channel])

    def forget_relay_outputs(self) -> None:
        """The relay module restarted: its outputs are off until the manager writes them."""
        self.room.string(1).relay.control["relay_setpoint"] = 0

    def cool_down(self) -> None:
        physics = self.room.string(1).physics
        physics.replace_block(1, physics.blocks[0])


@pytest.fixture
async def site() -> AsyncIterator[Room_]:
    s = Room_()
    await s.server.start()
    s.task = asyncio.get_running_loop().create_task(s.room.run(speed=600.0, tick_s=0.1))
    yield s
    s.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await s.task
    await s.server.stop()


class Run:
    """One ``bacs run`` process; its JSON events read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, url: str, config: Path) -> Run:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bacs_core",
            "run",
            url,
            "--config",
            str(config),
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        return cls(proc)

    async def wait_for(self, kind: str, **data: Any) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            assert self.proc.stdout is not None
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"bacs run ended before {kind}: {await self._stderr()}")
                event = json.loads(line)
                self.events.append(event)
                if event["type"] == kind and all(
                    event["data"].get(k) == v for k, v in data.items()
                ):
                    return event

        return await asyncio.wait_for(read(), WAIT_S)

    async def _stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode(errors="replace")[-2000:]

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        assert self.proc.returncode == -signal.SIGKILL

    async def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), WAIT_S)
        return await self._stderr()


def write_config(tmp: Path, **trip: Any) -> Path:
    config = tmp / "config.json"
    config.write_text(
        json.dumps(
            {
                "string_count": 2,
                "poll_interval": 1.0,
                "storage_path": str(tmp / "state" / "bacs.json"),
                "runaway": HOT,
                "trip": {"auto": True, **trip},
            }
        )
    )
    return config


def seen_before(tmp: Path, room: Room) -> None:
    """A state file from an earlier run that knew the devices: starts probe those first."""
    units = [f"bus1/{u}" for u in sorted(room.buses[0].devices)]
    state = tmp / "state" / "bacs.json"
    state.parent.mkdir()
    stored = {"version": 2, "safety": {"state": "armed"}, "topology": {"units": units}}
    state.write_text(json.dumps(stored))


def stored_state(tmp: Path, string: int = 1) -> str:
    """A string's trip state in the state file (format 3: one per string)."""
    safety = json.loads((tmp / "state" / "bacs.json").read_text())["safety"]
    return str(safety["strings"][str(string)]["state"])


async def until(check: Any) -> None:
    """Wait (polling, at most WAIT_S) until ``check()`` holds."""
    loop = asyncio.get_running_loop()

    deadline = loop.time() + WAIT_S
    while not check():
        assert loop.time() < deadline, f"{check} never held"
        await asyncio.sleep(0.05)


def running(tmp: Path) -> Any:
    """The manager has completed a cycle: its state file holds a trip state."""
    return lambda: "safety" in json.loads((tmp / "state" / "bacs.json").read_text())


async def test_sigkill_while_tripped_keeps_the_latch(site: Room_, tmp_path: Path) -> None:
    """One installation's life: tripped, killed, restarted and killed twice (the relay module
    forgot its outputs each time), then stopped cleanly: the breaker relay never drops."""
    config = write_config(tmp_path)
    seen_before(tmp_path, site.room)  # else the first start scans all 247 addresses (25 s)
    run = await Run.start(site.server.url, config)
    await until(running(tmp_path))
    site.room.inject(Fault(FaultKind.RUNAWAY, 1, 2, 3.0))
    await run.wait_for("runaway_detected", trip="trip")
    await run.wait_for("tripped")
    await until(site.relay_energised)
    await run.kill()
    assert stored_state(tmp_path) == "tripped"
    assert stored_state(tmp_path, 2) == "armed"  # relay n trips string n only
    site.cool_down()  # the cause is gone: only the stored latch can keep the breaker open
    for _ in range(2):  # restarts probe the known devices first: seconds, not a full scan
        site.forget_relay_outputs()
        again = await Run.start(site.server.url, config)
        await until(site.relay_energised)  # re-applied by the restarted manager
        await again.kill()
        assert stored_state(tmp_path) == "tripped"
        assert not any(e["type"] == "trip_reset" for e in again.events)

    site.forget_relay_outputs()
    last = await Run.start(site.server.url, config)
    await until(site.relay_energised)
    stderr = await last.stop()  # a clean stop keeps it too
    assert "Traceback" not in stderr
    assert stored_state(tmp_path) == "tripped"
    assert site.relay_energised()


def status_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("cycle ")]


async def run_sim(config: Path, cycles: int) -> tuple[int, str]:
    """``bacs run sim://…`` (the room inside the process) for a few cycles."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bacs_core",
        "run",
        "sim://fault?strings=2&blocks=4&settle_days=0&seed=5&speed=600",
        "--config",
        str(config),
        "--cycles",
        str(cycles),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), WAIT_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_sigkill_during_the_countdown_trips_at_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path, pre_trip_delay=3600)
    state = tmp_path / "state" / "bacs.json"
    state.parent.mkdir()
    stored = {"version": 2, "safety": {"state": "countdown", "reason": "string 1: block 2 hot"}}
    state.write_text(json.dumps(stored))  # what a process killed in its countdown leaves
    code, out = await run_sim(config, 2)
    assert code == 0, out
    assert all(line.endswith("trip tripped") for line in status_lines(out)), out
    assert stored_state(tmp_path) == stored_state(tmp_path, 2) == "tripped"  # every string
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "damage",
    [b"{", b"\xff\xfe", b'{"version": 2, "safety": {"state": "armed", "reason": 5}}', b"[]"],
)
async def test_damaged_state_file_is_unknown_in_the_cli(tmp_path: Path, damage: bytes) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state" / "bacs.json"
    state.parent.mkdir()
    state.write_bytes(damage)
    code, out = await run_sim(config, 2)
    assert code == 0, out
    assert all(line.endswith("trip unknown") for line in status_lines(out)), out
    assert "Traceback" not in out
    assert stored_state(tmp_path) == stored_state(tmp_path, 2) == "unknown"


async def test_state_path_that_is_a_directory_is_unknown_not_a_crash(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state" / "bacs.json").mkdir(parents=True)
    code, out = await run_sim(config, 2)
    assert code == 0, out
    assert all(line.endswith("trip unknown") for line in status_lines(out)), out
    assert "Traceback" not in out
