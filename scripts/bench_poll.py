"""./scripts/bench poll [--json]: one poll cycle of 330 modules in 10 strings on 2 buses.

The simulator runs in a subprocess (its CPU is not counted) and emulates the RS-485 line:
each answer arrives when request, gap, module turnaround and response would have crossed
the wire. The lower bound is the same arithmetic (battery-domain.md §6); the ratio says how
much the client adds. CPU is this process's time per cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bacs_core import registers as reg
from bacs_core.bus import BusClient, DeviceIdentity, open_transport
from bacs_core.bus.timing import LineTiming, read_frame_sizes
from bacs_core.model import DeviceFamily

STRINGS, BLOCKS, TURNAROUND_MS = 10, 33, 5.0


def wire_bound_s(devices: list[DeviceIdentity], timing: LineTiming) -> float:
    total = 0.0
    for dev in devices:
        request, response = read_frame_sizes(reg.measurement_block(dev.kind).count)
        total += timing.exchange_bound_s(request, response)
    return total


async def wait_for(path_or_port: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if path_or_port.startswith("/"):
            if Path(path_or_port).exists():
                return
        else:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", int(path_or_port))
                w.close()
                return
            except OSError:
                pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"simulator did not come up ({path_or_port})")


async def measure(transport: str, baud: int | None, cycles: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="bacs-bench-"))
    if transport == "rtu":
        listen = [f"pty://{tmp}/bus{i}" for i in (1, 2)]
        urls = [f"serial://{tmp}/bus{i}?baudrate={baud}" for i in (1, 2)]
        probes = [f"{tmp}/bus{i}" for i in (1, 2)]
    else:
        ports = [35020 + os.getpid() % 1000 * 2 + i for i in (0, 1)]
        listen = [f"tcp://127.0.0.1:{p}" for p in ports]
        urls = [f"tcp://127.0.0.1:{p}" for p in ports]
        probes = [str(p) for p in ports]
    cmd = [
        sys.executable,
        "-m",
        "bacs_core",
        "simulate",
        "--strings",
        str(STRINGS),
        "--blocks",
        str(BLOCKS),
        "--settle-days",
        "0",
        "--turnaround-ms",
        str(TURNAROUND_MS),
    ]
    for url in listen:
        cmd += ["--listen", url]
    if baud:
        cmd += ["--baud", str(baud)]
    sim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: ASYNC220
    clients: list[BusClient] = []
    try:
        for probe in probes:
            await wait_for(probe, time.monotonic() + 30)
        clients = [BusClient(open_transport(u, timeout=0.5)) for u in urls]
        for c in clients:
            await c.connect()
        per_bus = [list((await c.scan(range(1, 180), timeout=0.05)).devices) for c in clients]
        modules = sum(d.family is DeviceFamily.BATTERY_MODULE for bus in per_bus for d in bus)
        await asyncio.gather(*(c.poll(d) for c, d in zip(clients, per_bus, strict=True)))
        cycle_times: list[float] = []
        cpu_times: list[float] = []
        for _ in range(cycles):
            cpu0, t0 = time.process_time(), time.perf_counter()
            results = await asyncio.gather(
                *(c.poll(d) for c, d in zip(clients, per_bus, strict=True))
            )
            cycle_times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - cpu0)
            bad = sum(r.quality.value == "missing" for res in results for r in res.values())
            if bad:
                raise RuntimeError(f"{bad} devices did not answer")
        cycle = statistics.median(cycle_times)
        bound = None
        if baud:
            timing = LineTiming(baud, turnaround_s=TURNAROUND_MS / 1000)
            bound = max(wire_bound_s(devs, timing) for devs in per_bus)
        return {
            "transport": transport,
            "baud": baud,
            "modules": modules,
            "buses": len(clients),
            "cycle_s": round(cycle, 4),
            "wire_bound_s": round(bound, 4) if bound else None,
            "ratio": round(cycle / bound, 3) if bound else None,
            "cpu_s": round(statistics.median(cpu_times), 4),
            "cpu_share": round(statistics.median(cpu_times) / cycle, 3),
        }
    finally:
        for c in clients:
            await c.close()
        sim.terminate()
        sim.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    runs = [("rtu", 19200), ("rtu", 115200), ("tcp", None)]
    ok = True
    for transport, baud in runs:
        result = asyncio.run(measure(transport, baud, args.cycles))
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            ratio = f"ratio {result['ratio']}" if result["ratio"] else "no line bound"
            print(
                f"{transport:>3} {baud or '':>6}: {result['modules']} modules, cycle "
                f"{result['cycle_s']} s, bound {result['wire_bound_s']} s, {ratio}, "
                f"CPU {result['cpu_s']} s ({100 * float(result['cpu_share']):.1f} %)",
                flush=True,
            )
        if transport == "rtu" and (
            float(result["ratio"]) > 1.15 or float(result["cpu_share"]) >= 0.10
        ):
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
