"""The demo: the battery-room simulator and a real Home Assistant with the integration on it.

Run through ``./scripts/demo``, which prepares the environment. Everything the demo keeps lives
in one directory (``.demo`` by default): the Home Assistant configuration, the ports it chose
and the demo password, so a second run starts where the first stopped. The integration is set
up the way a person would do it, through Home Assistant's own onboarding, login and config
flow APIs; nothing is written into Home Assistant's storage behind its back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from demo_dashboard import build_dashboard

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ROOT / "blueprints" / "automation" / "bacs"
# Automations the demo makes from the blueprints (its own ids: written again on every start).
DEMO_AUTOMATIONS = {
    "bacs_demo_alarm_notification": ("Battery alarm notification", "battery_alarm_notification"),
    "bacs_demo_runaway_response": ("Thermal runaway response", "thermal_runaway_response"),
    "bacs_demo_discharge_report": ("Battery discharge report", "discharge_report"),
}
SCENARIOS = ("float", "discharge", "thermal-runaway")
# Simulated seconds per second by scenario: a severity-3 runaway takes about 4 simulated
# hours to meet the trip criteria, a C/10 discharge 10 hours; float is shown in real time.
DEFAULT_SPEED = {"float": 1.0, "discharge": 10.0, "thermal-runaway": 60.0}
# A discharge is a mains outage: after this many simulated minutes the demo gives the strings
# their charger back, the discharge ends and its report follows (0: discharge until told).
DEFAULT_OUTAGE_MIN = 30.0
OUTAGE_POLL_S = 1.0
STRINGS, BLOCKS = 2, 32
WEAK_BLOCK = "weak:1:7"  # the aged block the demo room always has (capacity ×0.75, Ri ×1.4)
HA_START_TIMEOUT_S = 300.0
ONBOARDING_EXTRAS = {"google_translate", "met", "radio_browser", "shopping_list"}
ENTITIES_TIMEOUT_S = 120.0


SOURCE_BUS = "bus"  # the simulator serves our module bus; the integration adds it over TCP
SOURCE_GENEREX = "generex"  # the simulator impersonates a GENEREX CS141 (Modbus TCP + SNMP)
SOURCES = (SOURCE_BUS, SOURCE_GENEREX)


class DemoError(Exception):
    """Something the person running the demo can act on; printed without a traceback."""


@dataclass
class DemoState:
    """What a second run must find again: the simulator's ports are stored in the config entry."""

    sim_port: int
    control_port: int
    password: str
    source: str = SOURCE_BUS  # what the simulator plays: our module bus, or a GENEREX CS141
    snmp_port: int = 0  # the CS141's SNMP agent (--source generex)

    @classmethod
    def load(cls, path: Path) -> DemoState | None:
        try:
            raw = json.loads(path.read_text())
            return cls(
                int(raw["sim_port"]),
                int(raw["control_port"]),
                str(raw["password"]),
                str(raw.get("source", SOURCE_BUS)),
                int(raw.get("snmp_port", 0)),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as err:
            raise DemoError(f"{path} is damaged ({err}); start again with --fresh") from err

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


# -- the Home Assistant configuration directory ------------------------------------------------

CONFIGURATION_YAML = """\
# Written by ./scripts/demo on every start; your own changes belong in demo_local.yaml.
homeassistant:
  name: BACS demo battery room
  unit_system: metric
  time_zone: {time_zone}
  latitude: 52.52
  longitude: 13.40
  elevation: 34
  country: DE
  currency: EUR
  packages:
    local: !include demo_local.yaml

http:
  server_host: 127.0.0.1
  server_port: {port}

# The parts of default_config that a battery room needs, and nothing that scans the network.
frontend:
config:
history:
logbook:
recorder:
  purge_keep_days: 3
  commit_interval: 5
system_health:
automation: !include automations.yaml
script: !include scripts.yaml
logger:
  default: warning
  logs:
    custom_components.bacs: info
    bacs_core: info
"""


def prepare_config(config: Path, port: int) -> None:
    config.mkdir(parents=True, exist_ok=True)
    time_zone = os.environ.get("TZ") or "Europe/Berlin"
    (config / "configuration.yaml").write_text(
        CONFIGURATION_YAML.format(port=port, time_zone=time_zone)
    )
    for name, empty in (("demo_local.yaml", "{}\n"), ("automations.yaml", "[]\n")):
        if not (config / name).exists():
            (config / name).write_text(empty)
    if not (config / "scripts.yaml").exists():
        (config / "scripts.yaml").write_text("{}\n")
    _link(config / "custom_components" / "bacs", ROOT / "custom_components" / "bacs")
    install_blueprints(config)


def install_blueprints(config: Path) -> None:
    """The working tree's blueprints, copied afresh on every start: Home Assistant's blueprint
    search (a recursive glob) does not follow a symlinked folder, so a link showed none."""
    target = config / "blueprints" / "automation" / "bacs"
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(BLUEPRINTS, target)


def _link(link: Path, target: Path) -> None:
    """The demo runs the working tree's integration, not a copy of it."""
    if not target.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.is_symlink() and link.resolve() == target.resolve():
            return
        if link.is_symlink() or link.is_file():
            link.unlink()
        else:
            shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=True)


# -- child processes ----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Children are in their own session (Ctrl-C reaches only the demo), so a demo killed
    without a chance to clean up must still take them along: Linux's parent-death signal."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A child in its own process group: Ctrl-C reaches the demo, which stops children in order."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log

    @classmethod
    async def start(cls, name: str, argv: list[str], log: Path) -> Child:
        handle = log.open("ab")
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=handle,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            cwd=ROOT,
        )
        handle.close()
        return cls(name, proc, log)

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, sig: signal.Signals, timeout: float) -> None:
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            print(f"   {self.name} did not stop within {timeout:.0f} s; killing it", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


async def start_simulator(args: argparse.Namespace, state: DemoState, logs: Path) -> Child:
    argv = [
        venv_bin("bacs"),
        "simulate",
        f"--strings={STRINGS}",
        f"--blocks={BLOCKS}",
        "--capacity=100",
        f"--seed={args.seed}",
        f"--speed={args.speed}",
        f"--scenario={args.scenario}",
        f"--fault={WEAK_BLOCK}",
        *(f"--fault={spec}" for spec in args.fault),
        f"--listen=tcp://127.0.0.1:{state.sim_port}",
        f"--control=tcp://127.0.0.1:{state.control_port}",
    ]
    if state.source == SOURCE_GENEREX:
        argv += ["--as=generex", f"--snmp=127.0.0.1:{state.snmp_port}"]
    for port in (state.sim_port, state.control_port):
        if port_in_use(port):
            raise DemoError(
                f"port {port} (the simulator's) is in use: is another demo running? "
                "Stop it, or start this one with --dir pointing elsewhere."
            )
    child = await Child.start("simulator", argv, logs / "simulator.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not child.running:
            raise DemoError(f"the simulator stopped at start:\n{child.tail()}")
        if "control:" in child.tail():
            return child
        await asyncio.sleep(0.2)
    await child.stop(signal.SIGINT, 5)
    raise DemoError(f"the simulator did not start within 60 s:\n{child.tail()}")


async def start_home_assistant(config: Path, logs: Path) -> Child:
    # --skip-pip: everything is pinned in requirements/demo.txt; Home Assistant must not install
    # packages at run time (onboarding's default integrations would pull in several).
    argv = [
        sys.executable,
        "-m",
        "homeassistant",
        "--config",
        str(config),
        "--log-no-color",
        "--skip-pip",
    ]
    return await Child.start("Home Assistant", argv, logs / "home-assistant.stdout.log")


async def simulator_command(port: int, command: dict[str, Any]) -> dict[str, Any]:
    """One command on the simulator's control channel; its answer (``ok`` and ``status``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(json.dumps(command).encode() + b"\n")
        await writer.drain()
        answer: dict[str, Any] = json.loads(await reader.readline())
        return answer
    finally:
        writer.close()


async def end_outages(port: int, outage_s: float) -> None:
    """The mains comes back: whenever the strings discharge (the discharge scenario at start
    or ``./scripts/demo scenario discharge`` later), after ``outage_s`` simulated seconds the
    simulator is set back to float; the discharge ends and the integration's record of it,
    its chart and its report follow."""
    started: float | None = None
    while True:
        await asyncio.sleep(OUTAGE_POLL_S)
        try:
            status = (await simulator_command(port, {"status": True}))["status"]
        except (OSError, ValueError, KeyError):
            continue  # the simulator is restarting or gone: the demo's loop notices that
        discharging = any(s["mode"] == "discharge" for s in status["strings"])
        now = float(status["time_s"])
        if not discharging:
            started = None
        elif started is None:
            started = now
            print(
                f">> mains outage: the strings discharge; power returns after "
                f"{outage_s / 60:g} simulated minutes",
                flush=True,
            )
        elif now - started >= outage_s:
            with contextlib.suppress(OSError, ValueError):
                await simulator_command(port, {"scenario": "float"})
                print(
                    ">> power is back: the strings recharge; the discharge's chart and report "
                    "are on the dashboard (its recovery reading follows in 10 minutes)",
                    flush=True,
                )
            started = None


# -- Home Assistant's own APIs ------------------------------------------------------------------


class HomeAssistantApi:
    """Onboarding, login, config flow and websocket calls, exactly as the frontend makes them."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base
        self.client_id = f"{base}/"
        self.token = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def wait_until_up(self, ha: Child, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not ha.running:
                raise DemoError(f"Home Assistant stopped at start:\n{ha.tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                # Not /api/: an unauthenticated call there counts as a failed login and
                # leaves a "Login attempt failed" notification.
                async with self.session.get(
                    f"{self.base}/auth/providers", timeout=aiohttp.ClientTimeout(total=5)
                ) as resp:
                    if resp.status < 500:  # its HTTP server answers
                        return
            await asyncio.sleep(0.5)
        raise DemoError(f"Home Assistant did not answer within {timeout:.0f} s:\n{ha.tail()}")

    async def onboarding_steps(self) -> dict[str, bool]:
        """The steps still to do; none once onboarding is complete (the view is gone then)."""
        async with self.session.get(f"{self.base}/api/onboarding") as resp:
            if resp.status == 404:
                return {}
            resp.raise_for_status()
            return {step["step"]: step["done"] for step in await resp.json()}

    async def _token(self, code: str) -> None:
        data = {"grant_type": "authorization_code", "code": code, "client_id": self.client_id}
        async with self.session.post(f"{self.base}/auth/token", data=data) as resp:
            if resp.status != 200:
                raise DemoError(f"Home Assistant refused the login code: {await resp.text()}")
            self.token = (await resp.json())["access_token"]

    async def create_owner(self, username: str, password: str) -> None:
        payload = {
            "client_id": self.client_id,
            "name": "Demo",
            "username": username,
            "password": password,
            "language": "en",
        }
        async with self.session.post(f"{self.base}/api/onboarding/users", json=payload) as resp:
            if resp.status != 200:
                raise DemoError(f"onboarding refused the demo user: {await resp.text()}")
            await self._token((await resp.json())["auth_code"])

    async def login(self, username: str, password: str) -> None:
        """Home Assistant's own login flow, as its login page drives it."""
        start = {
            "client_id": self.client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{self.base}/?auth_callback=1",
        }
        async with self.session.post(f"{self.base}/auth/login_flow", json=start) as resp:
            resp.raise_for_status()
            flow = await resp.json()
        answer = {"client_id": self.client_id, "username": username, "password": password}
        async with self.session.post(
            f"{self.base}/auth/login_flow/{flow['flow_id']}", json=answer
        ) as resp:
            result = await resp.json()
        if result.get("type") != "create_entry":
            raise DemoError(
                f"the demo user could not log in ({result.get('errors')}): the password differs "
                "from the one of the first run; pass that one, or start again with --fresh"
            )
        await self._token(result["result"])

    async def finish_onboarding(self, steps: dict[str, bool]) -> None:
        """The rest of onboarding; then remove the integrations its core-config step adds
        (weather, radio, text-to-speech, shopping list): they need the internet and are not
        what this demo is about."""
        calls: list[tuple[str, dict[str, Any]]] = [
            ("core_config", {}),
            ("analytics", {}),
            ("integration", {"client_id": self.client_id, "redirect_uri": f"{self.base}/"}),
        ]
        for step, payload in calls:
            if steps.get(step, True):
                continue
            async with self.session.post(
                f"{self.base}/api/onboarding/{step}", json=payload, headers=self.headers
            ) as resp:
                if resp.status != 200:
                    raise DemoError(f"onboarding step {step} failed: {await resp.text()}")
        if steps and not steps.get("core_config", True):
            for _ in range(10):  # its flows run as background tasks
                await asyncio.sleep(1)
                for entry in await self.rest("GET", "/api/config/config_entries/entry"):
                    if entry["domain"] in ONBOARDING_EXTRAS:
                        await self.rest(
                            "DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}"
                        )

    async def rest(self, method: str, path: str, payload: Any = None) -> Any:
        async with self.session.request(
            method, f"{self.base}{path}", json=payload, headers=self.headers
        ) as resp:
            body = await resp.json(content_type=None)
            if resp.status >= 400:
                raise DemoError(f"{method} {path} failed ({resp.status}): {body}")
            return body

    async def config_entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self.rest(
            "GET", "/api/config/config_entries/entry?domain=bacs"
        )
        return entries

    async def add_integration(self, state: DemoState) -> dict[str, Any]:
        """The config flow a person clicks through: TCP gateway → what the scan found → done;
        or GENEREX WEB-MANAGER → what it reports → done."""
        flow = await self.rest(
            "POST",
            "/api/config/config_entries/flow",
            # Advanced mode for one field: the simulator's control channel, so that the manager
            # takes the simulator's clock and its timers run at --speed with the plant.
            {"handler": "bacs", "show_advanced_options": True},
        )
        clock = {"sim_control": f"127.0.0.1:{state.control_port}"}
        path = f"/api/config/config_entries/flow/{flow['flow_id']}"
        steps: list[dict[str, Any]] = [
            {"next_step_id": "tcp"},
            {"host": "127.0.0.1", "tcp_port": state.sim_port, "framing": "modbus_tcp", **clock},
            {
                "name": "Battery room",
                "string_count": STRINGS,
                "capacity_ah": 100,
                "chemistry": "vrla",
                "auto_trip": True,
            },
        ]
        if state.source == SOURCE_GENEREX:
            steps = [
                {"next_step_id": "generex"},
                {
                    "host": "127.0.0.1",
                    "tcp_port": state.sim_port,
                    "unit": 1,
                    "snmp_port": state.snmp_port,
                    "community": "public",
                    **clock,
                },
                {"name": "Battery room", "poll_interval": 10, "chemistry": "vrla"},
            ]
        for answer in steps:
            flow = await self.rest("POST", path, answer)
            if flow.get("errors"):
                raise DemoError(f"the config flow stopped at {flow['step_id']}: {flow['errors']}")
        if flow.get("type") != "create_entry":
            raise DemoError(f"the config flow ended unexpectedly: {flow}")
        return dict(flow["result"])


class Websocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.next_id = ws, 1

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, api: HomeAssistantApi) -> Any:
        url = api.base.replace("http", "ws", 1) + "/api/websocket"
        async with api.session.ws_connect(url) as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": api.token})
            answer = await ws.receive_json()
            if answer.get("type") != "auth_ok":
                raise DemoError(f"websocket authentication failed: {answer}")
            yield cls(ws)

    async def call(self, kind: str, **payload: Any) -> Any:
        message_id, self.next_id = self.next_id, self.next_id + 1
        await self.ws.send_json({"id": message_id, "type": kind, **payload})
        while True:
            answer = await self.ws.receive_json()
            if answer.get("id") == message_id and answer.get("type") == "result":
                if not answer.get("success"):
                    raise DemoError(f"{kind} failed: {answer.get('error')}")
                return answer.get("result")


async def wait_for_entities(api: HomeAssistantApi, ha: Child) -> list[dict[str, Any]]:
    deadline = time.monotonic() + ENTITIES_TIMEOUT_S
    while time.monotonic() < deadline:
        if not ha.running:
            raise DemoError(f"Home Assistant stopped:\n{ha.tail()}")
        async with Websocket.connect(api) as ws:
            registry = await ws.call("config/entity_registry/list")
        ours = [e for e in registry if e["platform"] == "bacs"]
        states = {s["entity_id"]: s for s in await api.rest("GET", "/api/states")}
        voltages = [
            e for e in ours if e["unique_id"].endswith("-voltage") and e["entity_id"] in states
        ]
        if len(voltages) >= STRINGS * BLOCKS and all(
            states[e["entity_id"]]["state"] not in ("unknown", "unavailable") for e in voltages
        ):
            return ours
        await asyncio.sleep(1.0)
    raise DemoError(
        f"the integration's entities did not appear within {ENTITIES_TIMEOUT_S:.0f} s; "
        f"see {ha.log.parent / 'config' / 'home-assistant.log'}"
    )


async def install_automations(api: HomeAssistantApi, entry_id: str) -> None:
    """The alarm and runaway blueprints as automations for the demo's bus, saved through Home
    Assistant's automation editor API (as the UI saves them)."""
    for automation_id, (alias, blueprint) in DEMO_AUTOMATIONS.items():
        await api.rest(
            "POST",
            f"/api/config/automation/config/{automation_id}",
            {
                "id": automation_id,
                "alias": alias,
                "description": f"From the blueprint bacs/{blueprint}.yaml (made by the demo)",
                "use_blueprint": {
                    "path": f"bacs/{blueprint}.yaml",
                    "input": {"manager": entry_id},
                },
            },
        )


async def install_dashboard(api: HomeAssistantApi, entities: list[dict[str, Any]]) -> None:
    """The battery room becomes the Overview dashboard (regenerated on every start)."""
    async with Websocket.connect(api) as ws:
        devices = await ws.call("config/device_registry/list")
        config = build_dashboard(entities, devices)
        await ws.call("lovelace/config/save", config=config)


# -- the run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    directory: Path = args.dir.resolve()
    if args.fresh and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config, logs = directory / "config", directory / "logs"
    logs.mkdir(exist_ok=True)
    state_path = directory / "demo.json"
    state = DemoState.load(state_path)
    if state is None:
        state = DemoState(
            sim_port=args.sim_port or free_port(),
            control_port=args.control_port or free_port(),
            password=args.password or "demo",
            source=args.source,
            snmp_port=free_port() if args.source == SOURCE_GENEREX else 0,
        )
    elif state.source != args.source:
        raise DemoError(
            f"the demo in {directory} was made with --source {state.source}: start it so, "
            "or start afresh with --fresh"
        )
    old_password = state.password  # a new --password is set once logged in with this one
    if args.password:
        state.password = args.password
    if port_in_use(args.port):
        raise DemoError(
            f"port {args.port} is in use (another Home Assistant?); choose one with --port"
        )
    prepare_config(config, args.port)

    base = f"http://127.0.0.1:{args.port}"
    children: list[Child] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        plays = " as a GENEREX CS141" if state.source == SOURCE_GENEREX else ""
        print(
            f">> simulator{plays}: {STRINGS} strings × {BLOCKS} × 12 V blocks, "
            f"scenario {args.scenario}"
        )
        children.append(await start_simulator(args, state, logs))
        print(">> Home Assistant 2025.4.4 starting (the first start takes a minute)")
        ha = await start_home_assistant(config, logs)
        children.append(ha)
        async with aiohttp.ClientSession() as session:
            api = HomeAssistantApi(session, base)
            ready = asyncio.ensure_future(_prepare(api, ha, args, state, old_password, state_path))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({ready, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                ready.cancel()
                return await _shutdown(children, 130)
            stopper.cancel()
            entry_title = ready.result()
        elapsed = time.time() - args.started if args.started else None
        _print_ready(args, state, base, entry_title, directory, elapsed)
        if args.outage > 0:
            outages = asyncio.ensure_future(end_outages(state.control_port, args.outage * 60.0))
            outages.add_done_callback(lambda task: task.cancelled() or task.exception())
        while not stop.is_set():
            for child in children:
                if not child.running:
                    print(f"!! {child.name} stopped unexpectedly:\n{child.tail()}", flush=True)
                    return await _shutdown(children, 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        return await _shutdown(children, 0)
    except BaseException:
        await _shutdown(children, 1, quiet=True)
        raise


async def _prepare(
    api: HomeAssistantApi,
    ha: Child,
    args: argparse.Namespace,
    state: DemoState,
    old_password: str,
    state_path: Path,
) -> str:
    await api.wait_until_up(ha, HA_START_TIMEOUT_S)
    steps = await api.onboarding_steps()
    if steps and not steps.get("user", False):
        print(f">> onboarding: creating the demo user '{args.username}'")
        await api.create_owner(args.username, state.password)
    else:
        await api.login(args.username, old_password)
        if old_password != state.password:
            async with Websocket.connect(api) as ws:
                await ws.call(
                    "config/auth_provider/homeassistant/change_password",
                    current_password=old_password,
                    new_password=state.password,
                )
            print(">> the demo user's password was changed")
    state.save(state_path)
    await api.finish_onboarding(steps)
    entries = await api.config_entries()
    if not entries:
        how = "GENEREX WEB-MANAGER" if state.source == SOURCE_GENEREX else "TCP"
        print(f">> adding the BACS integration through its config flow ({how}, the simulator)")
        await api.add_integration(state)
        entries = await api.config_entries()
        if not entries:
            raise DemoError("the config flow finished but no BACS entry exists; see the log")
    else:
        # Home Assistant answers while it still sets up its integrations: an entry not yet
        # loaded is waited for, one that failed is reported.
        deadline = time.monotonic() + ENTITIES_TIMEOUT_S
        while entries[0]["state"] == "not_loaded" and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            entries = await api.config_entries()
        if entries[0]["state"] not in ("loaded", "setup_retry", "setup_in_progress"):
            raise DemoError(f"the BACS entry is {entries[0]['state']}; see the log")
    title = str(entries[0]["title"])
    entities = await wait_for_entities(api, ha)
    await install_dashboard(api, entities)
    await install_automations(api, str(entries[0]["entry_id"]))
    return title


def _print_ready(
    args: argparse.Namespace,
    state: DemoState,
    base: str,
    title: str,
    directory: Path,
    elapsed: float | None,
) -> None:
    took = f" in {elapsed:.0f} s" if elapsed is not None else ""
    link = f"Modbus TCP to the simulator on 127.0.0.1:{state.sim_port}"
    pad = "\n" + " " * 56  # the column of the explanations below
    runaway = f"trips{pad}after ~5 simulated hours"
    if state.source == SOURCE_GENEREX:
        link = (
            f"the simulator as a GENEREX CS141: Modbus TCP 127.0.0.1:{state.sim_port}, "
            f"SNMP 127.0.0.1:{state.snmp_port}; read-only, no trip or equalization"
        )
        runaway = f"our{pad}temperature alarms rise; nothing trips"
    rel = os.path.relpath(directory, Path.cwd())
    outage = f"{args.outage:g} simulated minutes" if args.outage > 0 else "never (by hand)"
    print(
        f"""
BACS demo ready{took}: {base}
  log in as:   {args.username} / {state.password}
  integration: {title} ({link})
  simulator:   scenario {args.scenario}, speed ×{args.speed:g}, weak block: string 1 block 7;
               a discharge ends after {outage} (--outage)
  try:         ./scripts/demo fault runaway:1:12=3     (a runaway in string 1 block 12; {runaway})
               ./scripts/demo clear-fault runaway:1:12 (the block cools: then Reset breaker)
               ./scripts/demo scenario discharge       (float | discharge | thermal-runaway)
               ./scripts/demo close-breaker 1          (after a trip and a reset)
  logs:        {rel}/config/home-assistant.log, {rel}/logs/simulator.log
Press Ctrl-C to stop.""",
        flush=True,
    )
    print(f"READY {base}", flush=True)


async def _shutdown(children: list[Child], code: int, quiet: bool = False) -> int:
    if not quiet:
        print("\n>> stopping Home Assistant and the simulator", flush=True)
    for child in reversed(children):  # Home Assistant first: it still talks to the simulator
        await child.stop(signal.SIGTERM if child.name != "simulator" else signal.SIGINT, 60)
    if not quiet:
        print("stopped", flush=True)
    return code


# -- talking to a running demo ------------------------------------------------------------------


async def control(args: argparse.Namespace) -> int:
    state = DemoState.load(args.dir.resolve() / "demo.json")
    if state is None:
        raise DemoError(f"no demo in {args.dir}: start one with ./scripts/demo")
    if args.command == "fault":
        command: dict[str, Any] = {"fault": args.spec}
    elif args.command == "clear-fault":
        command = {"clear_fault": args.spec}
    elif args.command == "scenario":
        command = {"scenario": args.name}
    elif args.command == "close-breaker":
        command = {"close_breaker": args.string}
    else:
        command = {"status": True}
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", state.control_port)
    except OSError as err:
        raise DemoError(f"the demo's simulator is not running ({err})") from err
    writer.write(json.dumps(command).encode() + b"\n")
    await writer.drain()
    answer = json.loads(await reader.readline())
    writer.close()
    if not answer.get("ok"):
        raise DemoError(f"the simulator refused: {answer.get('error')}")
    print(json.dumps(answer["status"], indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./scripts/demo",
        description="A real Home Assistant with the BACS integration on the battery-room "
        "simulator (2 strings × 32 × 12 V blocks, one weak block). Ctrl-C stops it.",
    )
    parser.add_argument("--port", type=int, default=8123, help="Home Assistant's HTTP port")
    parser.add_argument("--username", default="demo", help=argparse.SUPPRESS)
    parser.add_argument("--password", help="the demo user's password (default: demo)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="float")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default=SOURCE_BUS,
        help="bus: our module bus (default); generex: the simulator plays an installed GENEREX "
        "CS141 and the integration reads it through its WEB-MANAGER flow (read-only)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="an extra simulator fault at start, e.g. runaway:1:12=3@300 (see bacs simulate -h)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        help="simulated seconds per second (default: 1 on float, 10 in a discharge, "
        "60 for a thermal runaway, so it trips within minutes)",
    )
    parser.add_argument(
        "--outage",
        type=float,
        default=DEFAULT_OUTAGE_MIN,
        metavar="MINUTES",
        help="a discharge is a mains outage of this many simulated minutes, then the charger "
        f"returns and the report follows (default {DEFAULT_OUTAGE_MIN:g}; 0: until "
        "'./scripts/demo scenario float')",
    )
    parser.add_argument("--seed", type=int, default=7, help="the simulated room's random seed")
    parser.add_argument(
        "--dir", type=Path, default=ROOT / ".demo", help="where the demo keeps its state"
    )
    parser.add_argument("--fresh", action="store_true", help="forget the previous run's state")
    parser.add_argument("--sim-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--control-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    fault = sub.add_parser("fault", help="inject a fault into the running demo's simulator")
    fault.add_argument("spec", help="kind[:string[:block]][=value], e.g. runaway:1:12=3")
    clear = sub.add_parser(
        "clear-fault",
        help="end a fault in the running demo's simulator (a runaway: the block cools)",
    )
    clear.add_argument("spec", help="kind[:string[:block]], e.g. runaway:1:12")
    scenario = sub.add_parser("scenario", help="switch the running simulator's scenario")
    scenario.add_argument("name", choices=SCENARIOS)
    close = sub.add_parser("close-breaker", help="close a string's breaker again (by hand)")
    close.add_argument("string", type=int)
    sub.add_parser("status", help="the running simulator's strings")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.speed is None:
        args.speed = DEFAULT_SPEED[args.scenario]
    elif args.speed <= 0:
        print("demo: --speed must be positive", file=sys.stderr)
        return 2
    if args.outage < 0:
        print("demo: --outage must not be negative", file=sys.stderr)
        return 2
    if args.password is not None and not args.password:
        print("demo: --password must not be empty", file=sys.stderr)
        return 2
    try:
        if args.command:
            return asyncio.run(control(args))
        return asyncio.run(run(args))
    except DemoError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
