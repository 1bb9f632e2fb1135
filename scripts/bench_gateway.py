"""./scripts/bench gateway [--json]: 330 modules in 10 strings behind the SCADA/NMS gateway.

The room is served by a simulator subprocess over Modbus TCP on loopback (no line emulation:
the manager's cycle is CPU-bound, the case where anything else on the machine slows it most).
The manager runs its own loop at the fastest poll interval the configuration allows (1 s, so
the gateway gets a new image every second); the cycle durations are the manager's own
(``poll_duration_s``). The gateway serves every snapshot from its own process.
20 clients (4 processes × 5, at nice 15, below the gateway's 10: they stand for SCADA/NMS hosts
that would be other machines) alternate a full Modbus read (registers 1000–1059, our header, string
and module blocks: 25 requests) and an SNMP GETBULK walk of the module and string tables
(net-snmp's snmpbulkwalk where installed; --bulk sets max-repetitions, 10 = net-snmp's
default), flat out. Idle and
loaded phases alternate so that drift on a shared machine hits both alike.
Prints one JSON object (with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

STRINGS, BLOCKS = 10, 33
BULKWALK = shutil.which("snmpbulkwalk")
POLL_INTERVAL_S = 1.0  # the fastest the configuration allows: a new image every second
MODULES = STRINGS * BLOCKS


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def p99(samples: list[float]) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


# -- clients (separate processes) ----------------------------------------------------------


def client_process(
    port: int, snmp: int, count: int, bulk: int, go: Any, quit_: Any, out: Any
) -> None:
    with contextlib.suppress(OSError):
        os.nice(15)
    out.put(asyncio.run(_clients(port, snmp, count, bulk, go, quit_)))


async def _clients(
    port: int, snmp: int, count: int, bulk: int, go: Any, quit_: Any
) -> dict[str, list[float]]:
    from pymodbus.client import AsyncModbusTcpClient

    from bacs_core.bus.pymodbus_compat import unit_kwargs

    UNIT = unit_kwargs(1)

    from bacs_core.gateway import block as b
    from bacs_core.generex import cs141_map as m
    from bacs_core.generex.snmp_client import SnmpClient, SnmpTarget

    reads = [(1000, 60), (b.HEADER_START, b.HEADER_COUNT), (b.STRING_START, STRINGS * 10)]
    words = MODULES * b.MODULE_STRIDE
    reads += [(b.MODULE_START + o, min(120, words - o)) for o in range(0, words, 120)]
    modbus_ms: list[float] = []
    snmp_ms: list[float] = []

    async def one() -> None:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
        await client.connect()
        target = SnmpTarget("127.0.0.1", snmp, timeout=5, retries=0)
        async with SnmpClient(target) as agent:
            while not quit_.is_set():
                if not go.is_set():
                    await asyncio.sleep(0.05)
                    continue
                t0 = time.perf_counter()
                for address, n in reads:
                    r = await client.read_holding_registers(address, count=n, **UNIT)
                    if r.isError():
                        raise RuntimeError(f"read {address}: {r}")
                modbus_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                if BULKWALK:  # net-snmp, as an NMS would walk (its default 10 repetitions)
                    proc = await asyncio.create_subprocess_exec(
                        BULKWALK, "-v2c", f"-Cr{bulk}", "-c", "public", "-On", f"127.0.0.1:{snmp}",
                        ".1.3.6.1.2.1.33.5.2", stdout=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                    out, _ = await proc.communicate()
                    n = out.count(b" = INTEGER: ")
                else:
                    n = len(await agent.walk(m.MODULE_TABLE, bulk=bulk))
                    n += len(await agent.walk(m.STRING_TABLE, bulk=bulk))
                snmp_ms.append((time.perf_counter() - t0) * 1000)
                if n != MODULES * 5 + STRINGS * 4:
                    raise RuntimeError(f"walk returned {n} rows")
        client.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return {"modbus_ms": modbus_ms, "snmp_ms": snmp_ms}


# -- the manager side -------------------------------------------------------------------------


async def wait_port(port: int) -> None:
    for _ in range(300):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"port {port} did not open")


class CycleLog:
    """The manager's own cycle durations (``SystemSnapshot.poll_duration_s``), from a listener."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.event = asyncio.Event()
        self.snapshots: dict[int, Any] = {}  # the last few, by 16-bit cycle (as served)

    def __call__(self, snap: Any) -> None:
        if sum(len(s.modules) for s in snap.strings) != MODULES:
            raise RuntimeError("modules missing")
        self.durations.append(snap.poll_duration_s)
        self.snapshots[snap.cycle & 0xFFFF] = snap
        if len(self.snapshots) > 10:
            del self.snapshots[min(self.snapshots)]
        self.event.set()

    async def next(self, n: int) -> list[float]:
        start = len(self.durations)
        while len(self.durations) < start + n:
            self.event.clear()
            await self.event.wait()
        return self.durations[start : start + n]


async def roundtrip(log: CycleLog, gateway: Any) -> dict[str, float]:
    from pymodbus.client import AsyncModbusTcpClient

    from bacs_core.bus.pymodbus_compat import unit_kwargs

    UNIT = unit_kwargs(1)

    from bacs_core.generex.adapter import GenerexAdapter
    from bacs_core.generex.url import parse_generex_url

    async def served_cycle() -> int:
        r = await client.read_holding_registers(20000, count=16, **UNIT)
        if r.isError():
            raise RuntimeError(f"header: {r}")
        return int(r.registers[7])

    url = f"generex://127.0.0.1:{gateway.modbus_port}?snmp={gateway.snmp_port}&timeout=5"
    client = AsyncModbusTcpClient("127.0.0.1", port=gateway.modbus_port, timeout=2)
    await client.connect()
    try:
        for _ in range(20):  # the manager keeps cycling: compare one cycle with itself
            before = await served_cycle()
            adapter = GenerexAdapter(parse_generex_url(url))
            back = await adapter.read()
            await adapter.close()
            if before == await served_cycle() and before in log.snapshots:
                snap = log.snapshots[before]
                break
        else:
            raise RuntimeError("the gateway never held one cycle through a whole read")
    finally:
        client.close()
    ours = [mod for s in snap.strings for mod in s.modules]
    if len(back.modules) != len(ours):
        raise RuntimeError(f"{len(back.modules)} modules came back, {len(ours)} served")
    err = {"voltage_v": 0.0, "temperature_c": 0.0, "resistance_mohm": 0.0, "current_a": 0.0}
    for got, mod in zip(back.modules, ours, strict=True):
        for key, a, b in (
            ("voltage_v", got.voltage.value, mod.voltage.value),
            ("temperature_c", got.temperature.value, mod.temperature.value),
            ("resistance_mohm", got.resistance.value, mod.resistance.value),
        ):
            if a is None or b is None:
                raise RuntimeError(f"module {got.module_id}: {key} missing")
            err[key] = max(err[key], abs(a - b))
    for got_s, s in zip(back.strings, snap.strings, strict=True):
        current = got_s.current.value
        err["current_a"] = max(err["current_a"], abs((current or 0.0) - (s.current or 0.0)))
    return {k: round(v, 5) for k, v in err.items()}


async def measure(n_clients: int, rounds: int, per_phase: int, bulk: int) -> dict[str, Any]:
    from bacs_core.gateway.options import GatewayOptions
    from bacs_core.gateway.service import Gateway
    from bacs_core.manager import Manager, validate_config

    ports = [free_port(), free_port()]
    sim = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "bacs_core", "simulate", "--strings", str(STRINGS),
         "--blocks", str(BLOCKS), "--settle-days", "0.5",
         *[a for p in ports for a in ("--listen", f"tcp://127.0.0.1:{p}")]],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    procs: list[Any] = []
    try:
        for p in ports:
            await wait_port(p)
        config = validate_config(
            {
                "buses": [
                    {"id": f"bus{i + 1}", "url": f"tcp://127.0.0.1:{p}"}
                    for i, p in enumerate(ports)
                ],  # fmt: skip
                "string_count": STRINGS,
                "poll_interval": POLL_INTERVAL_S,
            }
        )
        manager = Manager(config)
        log = CycleLog()
        manager.add_snapshot_listener(log)
        await manager.start()
        await log.next(3)
        no_gateway = await log.next(per_phase)
        gateway = Gateway(manager, GatewayOptions(modbus=("127.0.0.1", 0), snmp=("127.0.0.1", 0)))
        await gateway.start()
        await log.next(2)
        ctx = multiprocessing.get_context("spawn")
        go, quit_, out = ctx.Event(), ctx.Event(), ctx.Queue()
        per_proc = [n_clients // 4 + (1 if i < n_clients % 4 else 0) for i in range(4)]
        for count in per_proc:
            if count:
                proc = ctx.Process(
                    target=client_process,
                    args=(gateway.modbus_port, gateway.snmp_port, count, bulk, go, quit_, out),
                )
                proc.start()
                procs.append(proc)
        await asyncio.sleep(3)  # the client processes import and connect
        idle: list[float] = []
        loaded: list[float] = []
        for _ in range(rounds):
            idle += await log.next(per_phase)
            go.set()
            await log.next(1)  # every client is polling before the cycles count
            loaded += await log.next(per_phase)
            go.clear()
            await log.next(1)
        quit_.set()
        modbus_ms: list[float] = []
        snmp_ms: list[float] = []
        for _ in procs:
            result = await asyncio.get_running_loop().run_in_executor(None, out.get, True, 120)
            modbus_ms += result["modbus_ms"]
            snmp_ms += result["snmp_ms"]
        await log.next(1)
        errors = await roundtrip(log, gateway)
        await gateway.stop()
        await manager.stop()
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
        sim.terminate()
        sim.wait(10)
    return {
        "modules": MODULES,
        "clients": n_clients,
        "modbus_full_read_ms_p99": round(p99(modbus_ms), 1),
        "snmp_walk_ms_p99": round(p99(snmp_ms), 1),
        "roundtrip_max_error": errors,
        "poll_cycle_slowdown": round(statistics.median(loaded) / statistics.median(idle), 3),
        "modbus_full_reads": len(modbus_ms),
        "snmp_walks": len(snmp_ms),
        "modbus_full_read_ms_median": round(statistics.median(modbus_ms), 1) if modbus_ms else None,
        "snmp_walk_ms_median": round(statistics.median(snmp_ms), 1) if snmp_ms else None,
        "poll_cycle_ms_idle": round(1000 * statistics.median(idle), 1),
        "poll_cycle_ms_loaded": round(1000 * statistics.median(loaded), 1),
        "poll_cycle_ms_no_gateway": round(1000 * statistics.median(no_gateway), 1),
        "cycles_per_phase": len(idle),
        "snmp_client": "net-snmp snmpbulkwalk" if BULKWALK else "bacs_core SnmpClient",
        "snmp_max_repetitions": bulk,
        "machine": f"{os.cpu_count()}-core {platform.machine()}, "
        f"Python {platform.python_version()}",
        "date": datetime.now(UTC).date().isoformat(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--cycles", type=int, default=5, help="manager cycles per phase")
    parser.add_argument("--bulk", type=int, default=10, help="GETBULK max-repetitions")
    args = parser.parse_args()
    result = asyncio.run(measure(args.clients, args.rounds, args.cycles, args.bulk))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    ok = (
        result["modbus_full_read_ms_p99"] < 100
        and result["snmp_walk_ms_p99"] < 1000
        and result["poll_cycle_slowdown"] <= 1.05
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
