"""./scripts/bench fleet [--json]: a fleet of simulated sites publishing to a real broker.

N sites (each a Manager on an in-process ``sim://``-style room, real time, its own MQTT
publisher) in this one process publish to Debian's mosquitto on a loopback port. A subscriber
in another process (a SCADA: persistent session, QoS 1) records every event with its arrival
time. Modules are made to stop answering and come back on a schedule, so the managers detect
``device_lost`` / ``alarm_raised`` / ``alarm_cleared``; halfway through, the broker is stopped
and started again. Then one 330-module appliance (``bacs run`` against ``bacs simulate`` on two
TCP buses, publishing to the same broker) is measured for CPU and memory.

Figures: ``messages_per_s`` (everything the fleet sent), ``alarm_latency_ms_p99`` (event time,
i.e. the manager's detection, to the subscriber's receipt; alarms raised while the broker was
up), ``lost_alarms`` (durable events a publisher handed over that never arrived),
``cpu_per_site_ms_per_cycle`` (this process's CPU, simulator physics included, per site and
cycle), ``naive_messages`` (one message per value per cycle) and ``appliance_*``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import platform
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bacs_core.manager import Manager, MemoryStorage, validate_config  # noqa: E402
from bacs_core.mqtt import mqtt_settings  # noqa: E402
from bacs_core.mqtt.publisher import DURABLE_EVENTS, MqttPublisher  # noqa: E402
from bacs_core.sim.loopback import LoopbackTransport  # noqa: E402
from bacs_core.sim.room import Room, RoomConfig  # noqa: E402

ALARM_TYPES = {"alarm_raised", "device_lost", "alarm_escalated", "tripped", "runaway_detected"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Broker:
    def __init__(self, directory: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nuser {getpass.getuser()}\nallow_anonymous true\n"
            f"persistence true\npersistence_location {directory}/\nmax_queued_messages 0\n"
        )
        self.log = directory / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=log
            )
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


# -- the subscriber (a separate process, so its receipt times do not wait on our GIL) -----
def subscriber_main(port: int, out: str, ready: str) -> None:
    from paho.mqtt.client import Client
    from paho.mqtt.enums import CallbackAPIVersion

    f = open(out, "a", buffering=1)  # noqa: SIM115
    client = Client(CallbackAPIVersion.VERSION2, client_id="bench-scada", clean_session=False)

    def on_connect(c: Any, *_: Any) -> None:
        c.subscribe("bacs/+/event", qos=1)
        Path(ready).touch()

    def on_message(c: Any, u: Any, m: Any) -> None:
        now = time.time()
        e = json.loads(m.payload)
        key = [e["site"], e["type"], e["time"], e["message"]]
        f.write(json.dumps({"id": e["id"], "type": e["type"], "key": key, "rx": now}) + "\n")

    client.on_connect = on_connect
    client.on_message = on_message
    client.reconnect_delay_set(0.1, 1)
    client.connect("127.0.0.1", port)
    client.loop_forever(retry_first_connection=True)


# -- one site ---------------------------------------------------------------------------
class Site:
    def __init__(self, n: int, blocks: int, interval: float, port: int, state: Path) -> None:
        self.room = Room(
            RoomConfig(strings=2, blocks=blocks // 2, seed=n, settle_days=1, environment=True)
        )
        self.manager = Manager(
            validate_config(
                {
                    "buses": [{"id": "bus1", "url": f"sim://site{n}"}],
                    "string_count": 2,
                    "poll_interval": interval,
                    "trip": {"auto": True},
                }
            ),
            storage=MemoryStorage(),
            transports={"bus1": LoopbackTransport(self.room, clock=time.monotonic)},
        )
        settings = mqtt_settings({"host": "127.0.0.1", "port": port, "keepalive": 10})
        self.publisher = MqttPublisher(
            self.manager,
            settings,
            site_id=f"site{n:03d}",
            site_name=f"Site {n:03d}",
            state_dir=state,
            simulated=True,
        )
        self.site_id = f"site{n:03d}"
        self.durable: list[dict[str, Any]] = []
        self.manager.add_event_listener(self._on_event)
        self.sim_cpu_s = 0.0
        step = self.room.step

        def timed_step(dt_s: float) -> None:  # the simulator's share of this process's CPU
            t = time.thread_time()
            step(dt_s)
            self.sim_cpu_s += time.thread_time() - t

        self.room.step = timed_step  # type: ignore[method-assign]

    def _on_event(self, event: Any) -> None:
        """The manager emits an event when it has detected it: the start of the latency."""
        if event.type in DURABLE_EVENTS:
            key = (self.site_id, event.type.value, event.timestamp.isoformat(), event.message)
            self.durable.append({"type": event.type.value, "key": key, "emitted": time.time()})


def run_fleet(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    broker = Broker(work)
    broker.start()
    rx_file, ready = work / "received.jsonl", work / "subscriber.ready"
    sub = subprocess.Popen(
        [sys.executable, __file__, "--subscriber", str(broker.port), str(rx_file), str(ready)]
    )
    try:
        for _ in range(200):
            if ready.exists():
                break
            time.sleep(0.05)
        return asyncio.run(fleet(args, work, broker, rx_file))
    finally:
        sub.terminate()
        sub.wait(10)
        broker.stop()


async def fleet(
    args: argparse.Namespace, work: Path, broker: Broker, rx_file: Path
) -> dict[str, Any]:
    sites = [
        Site(n, args.blocks, args.interval, broker.port, work / "state") for n in range(args.sites)
    ]
    for site in sites:  # one after the other: their cycles spread over the interval
        await site.manager.start()
        site.publisher.start()
        await asyncio.sleep(args.interval / args.sites)
    await asyncio.sleep(args.interval)  # the first full publish of every site
    rng = random.Random(1)
    cpu0, t0 = time.process_time(), time.monotonic()
    sim0 = sum(s.sim_cpu_s for s in sites)
    snaps0 = sum(s.publisher.stats.snapshots for s in sites)
    msgs0 = sum(s.publisher.stats.messages for s in sites)
    worker0 = sum(s.publisher.stats.worker_cpu_s for s in sites)
    outage: tuple[float, float] | None = None
    dead: list[tuple[float, Site, int]] = []
    deadline = t0 + args.duration
    restart_at = t0 + args.duration / 2
    next_fault = t0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if outage is None and now >= restart_at:
            down = time.time()
            broker.stop()
            await asyncio.sleep(args.outage)
            broker.start()
            outage = (down, time.time())
        if now >= next_fault and now < deadline - 4 * args.interval:
            site = rng.choice(sites)
            unit = rng.randint(1, args.blocks)
            site.room.buses[0].dead.add(unit)
            dead.append((now + rng.uniform(3, 6) * args.interval, site, unit))
            next_fault = now + args.duration / args.faults
        for item in [d for d in dead if d[0] <= now]:
            item[1].room.buses[0].dead.discard(item[2])
            dead.remove(item)
        await asyncio.sleep(0.2)
    for _, site, unit in dead:
        site.room.buses[0].dead.discard(unit)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - t0
    sim_cpu = sum(s.sim_cpu_s for s in sites) - sim0
    cycles = sum(s.publisher.stats.snapshots for s in sites) - snaps0
    messages = sum(s.publisher.stats.messages for s in sites) - msgs0
    # Let every queue drain (the broker is back), then count what arrived.
    for _ in range(300):
        if all(s.publisher.queued() == 0 for s in sites):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)
    worker = sum(s.publisher.stats.worker_cpu_s for s in sites) - worker0
    naive = sum(s.publisher.projection.values_per_update for s in sites) / len(sites) * cycles
    handed = sum(len(s.durable) for s in sites)
    total_messages = sum(s.publisher.stats.messages for s in sites)
    total_naive = sum(
        s.publisher.projection.values_per_update * s.publisher.stats.snapshots for s in sites
    )
    for site in sites:
        await site.manager.stop()
    for site in sites:
        await site.publisher.stop()
    received: dict[str, dict[str, Any]] = {}
    for line in rx_file.read_text().splitlines():
        r = json.loads(line)
        received.setdefault(r["id"], r)  # QoS 1 is at least once: count each event once
    durable_rx = [r for r in received.values() if r["type"] in {e.value for e in DURABLE_EVENTS}]
    alarms = [r for r in durable_rx if r["type"] in ALARM_TYPES]
    emitted = {tuple(e["key"]): e["emitted"] for s in sites for e in s.durable}
    lat_up, lat_all, since_reading = [], [], []
    for r in alarms:
        t = emitted.get(tuple(r["key"]))
        if t is None:
            continue
        ms = (r["rx"] - t) * 1000
        lat_all.append(ms)
        if outage is None or not (outage[0] - 2 <= t <= outage[1] + 30):
            lat_up.append(ms)
            # From the cycle's own time stamp (when the readings were taken) instead.
            since_reading.append((r["rx"] - datetime.fromisoformat(r["key"][2]).timestamp()) * 1000)
    handed_alarms = sum(1 for s in sites for e in s.durable if e["type"] in ALARM_TYPES)

    def p99(values: list[float]) -> float | None:
        if not values:
            return None
        return round(statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0], 1)

    return {
        "sites": args.sites,
        "blocks_per_site": args.blocks,
        "poll_interval_s": args.interval,
        "duration_s": round(wall, 1),
        "cycles": cycles,
        "messages_per_s": round(messages / wall, 1),
        "messages": messages,
        "naive_messages": round(naive),
        "reduction": round(naive / messages, 1) if messages else None,
        "messages_total_with_startup": total_messages,
        "naive_messages_total_with_startup": total_naive,
        "alarms_handed": handed_alarms,
        "alarms_received": len(alarms),
        "lost_alarms": max(0, handed_alarms - len(alarms)),
        "durable_events_handed": handed,
        "lost_durable_events": max(0, handed - len(durable_rx)),
        "alarm_latency_ms_p50": round(statistics.median(lat_up), 1) if lat_up else None,
        "alarm_latency_ms_p99": p99(lat_up),
        "alarm_latency_ms_max_across_outage": round(max(lat_all), 1) if lat_all else None,
        "alarm_latency_from_reading_ms_p99": p99(since_reading),
        "broker_outage_s": round(outage[1] - outage[0], 1) if outage else None,
        "cpu_per_site_ms_per_cycle": round(cpu / cycles * 1000, 2) if cycles else None,
        "simulator_cpu_ms_per_site_cycle": round(sim_cpu / cycles * 1000, 2) if cycles else None,
        "publisher_cpu_ms_per_site_cycle": round(worker / cycles * 1000, 3) if cycles else None,
        "process_cpu_share": round(cpu / wall, 3),
        "fleet_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


# -- one 330-module appliance --------------------------------------------------------------
def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def measure_appliance(args: argparse.Namespace, work: Path, transport: str) -> dict[str, Any]:
    """``bacs run`` on 330 modules: over Modbus TCP (no line to wait for), or over RTU on
    pseudo-terminals with the simulator emulating 19 200 baud lines (as on RS-485)."""
    work = work / f"appliance-{transport}"
    work.mkdir()
    broker = Broker(work)
    broker.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sim_cmd = [sys.executable, "-m", "bacs_core", "simulate", "--strings", "10", "--blocks",
               "33", "--settle-days", "1"]  # fmt: skip
    if transport == "rtu":
        paths = [work / "bus1", work / "bus2"]
        sim_cmd += ["--baud", "19200", "--turnaround-ms", "5"]
        sim_cmd += [a for p in paths for a in ("--listen", f"pty://{p}")]
        urls = [f"serial://{p}?baudrate=19200" for p in paths]
    else:
        ports = [free_port(), free_port()]
        sim_cmd += ["--turnaround-ms", "0"]
        sim_cmd += [a for p in ports for a in ("--listen", f"tcp://127.0.0.1:{p}")]
        urls = [f"tcp://127.0.0.1:{p}" for p in ports]
    sim = subprocess.Popen(sim_cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    site = work / "site.yaml"
    site.write_text(
        "site: {name: Appliance 330, id: a330}\n"
        f"buses:\n  - {{id: bus1, url: '{urls[0]}'}}\n"
        f"  - {{id: bus2, url: '{urls[1]}'}}\n"
        f"string_count: 10\npoll_interval: {args.appliance_interval}\ntrip: {{auto: true}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n"
    )
    app = None
    try:
        for _ in range(300):
            if transport == "rtu" and all(p.exists() for p in paths):
                break
            if transport == "tcp" and all(_listening(p) for p in ports):
                break
            time.sleep(0.1)
        app = subprocess.Popen(
            [sys.executable, "-m", "bacs_core", "run", "--config", str(site), "--state-dir",
             str(work / "state"), "--log-level", "warning"],
            env=env, cwd=ROOT, stderr=(work / "appliance.log").open("w"),
        )  # fmt: skip
        time.sleep(args.appliance_warmup)
        if app.poll() is not None:
            raise RuntimeError(f"bacs run exited: {(work / 'appliance.log').read_text()[-2000:]}")
        cpu0, t0 = proc_cpu_s(app.pid), time.monotonic()
        rss_samples = []
        while time.monotonic() - t0 < args.appliance_seconds:
            time.sleep(1)
            rss_samples.append(proc_rss_mb(app.pid)[0])
        cpu = proc_cpu_s(app.pid) - cpu0
        wall = time.monotonic() - t0
        _, hwm = proc_rss_mb(app.pid)
        key = "appliance" if transport == "tcp" else "appliance_rtu19200"
        return {
            f"{key}_modules": 330,
            f"{key}_poll_interval_s": args.appliance_interval,
            f"{key}_rss_mb": round(max(rss_samples), 1),
            f"{key}_rss_peak_mb": round(hwm, 1),
            f"{key}_cpu_percent_one_core": round(cpu / wall * 100, 2),
        }
    finally:
        if app is not None:
            app.terminate()  # SIGTERM: shunts off (330 writes on the line), state saved
            try:
                app.wait(120)
            except subprocess.TimeoutExpired:
                app.kill()
                print("bench: bacs run did not stop within 120 s of SIGTERM", file=sys.stderr)
        sim.terminate()
        sim.wait(10)
        broker.stop()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--subscriber":
        subscriber_main(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--blocks", type=int, default=64, help="blocks per site (2 strings)")
    parser.add_argument("--interval", type=float, default=10.0, help="poll interval (s)")
    parser.add_argument("--duration", type=float, default=180.0, help="measured seconds")
    parser.add_argument("--faults", type=int, default=60, help="modules that stop answering")
    parser.add_argument("--outage", type=float, default=5.0, help="broker down (s)")
    parser.add_argument("--appliance-interval", type=float, default=10.0)
    parser.add_argument("--appliance-warmup", type=float, default=40.0)
    parser.add_argument("--appliance-seconds", type=float, default=60.0)
    parser.add_argument("--no-appliance", action="store_true")
    parser.add_argument("--no-fleet", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bacs-bench-fleet-"))
    try:
        result: dict[str, Any] = {
            "machine": f"{platform.machine()} {os.cpu_count()} CPU, "
            f"{platform.python_implementation()} {platform.python_version()}",
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        if not args.no_fleet:
            result.update(run_fleet(args, work))
        if not args.no_appliance:
            result.update(measure_appliance(args, work, "tcp"))
            result.update(measure_appliance(args, work, "rtu"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    targets = {}
    if "sites" in result:
        targets = {
            "sites >= 100 of 64 blocks": result["sites"] >= 100 and result["blocks_per_site"] >= 64,
            "alarm latency p99 < 1000 ms": (result["alarm_latency_ms_p99"] or 1e9) < 1000,
            "0 lost alarms": result["lost_alarms"] == 0 and result["lost_durable_events"] == 0,
            ">= 10x fewer messages": (result["reduction"] or 0) >= 10,
        }
    for key in ("appliance", "appliance_rtu19200"):
        if f"{key}_rss_mb" in result:
            targets[f"{key} < 150 MB"] = result[f"{key}_rss_mb"] < 150
            targets[f"{key} < 5 % of a core"] = result[f"{key}_cpu_percent_one_core"] < 5
    result["targets_met"] = all(targets.values())
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:40s} {value}")
        for name, ok in targets.items():
            print(f"{'PASS' if ok else 'FAIL'} {name}")
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
