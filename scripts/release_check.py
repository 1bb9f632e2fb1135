"""Release check, offline: build the sdist, the wheel and the HACS archive, then let a real Home
Assistant install the wheel and load the integration, the way a HACS user's does on day one.

- A fresh Home Assistant environment: a virtualenv that sees an installed Home Assistant (a view
  of its site-packages without bacs-core and pymodbus) and its uv.
- A config dir with the HACS archive unpacked into custom_components/bacs.
- Home Assistant installs ``bacs-core`` itself, from the manifest's requirement, with its own
  ``uv pip install --constraint package_constraints.txt``; uv sees only the wheelhouse (the
  wheel plus requirements/release-wheelhouse.txt, i.e. Home Assistant's own pins, among them its
  modbus integration's pymodbus) and has no network.
- ``bacs simulate`` from the installed wheel serves a small room over Modbus TCP; the config flow
  is driven through Home Assistant's REST API; the entities must appear with values, and
  ``bacs.generate_report`` must make a page with its pictures: the manifest's
  ``bacs-core[report]`` and ``matplotlib`` were installed from the wheelhouse too (its view of
  Home Assistant's site-packages hides matplotlib and what it needs beyond numpy and Pillow).

    .venv/bin/python scripts/release_check.py --wheelhouse .cache/release-wheelhouse [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from packaging.requirements import Requirement
from release_artifacts import ROOT, Artifacts, ReleaseError, build, check
from release_env import clean_env, ha_pins, installed, make_ha_env, make_wheelhouse, wire_tests

STRINGS, BLOCKS = 1, 4
HA_START_S, ENTITIES_S = 120.0, 90.0
CONFIGURATION = """\
homeassistant:
  name: Release check
  latitude: 52.5
  longitude: 13.4
  elevation: 30
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: DE
  auth_mfa_modules: []  # the default one (TOTP) would install pyotp at start
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
logger:
  default: warning
  logs:
    custom_components.bacs: info
    bacs_core: info
    homeassistant.util.package: info
    homeassistant.requirements: info
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log

    @classmethod
    async def start(cls, name: str, argv: list[str], log: Path, env: dict[str, str]) -> Process:
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env, cwd=log.parent
            )
        return cls(name, proc, log)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> int | None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise ReleaseError(
                    f"{self.name} did not stop within 30 s:\n{self.tail()}"
                ) from None
        return self.proc.returncode


class HomeAssistant:
    """Onboarding, the config flow and states through Home Assistant's REST API."""

    def __init__(self, session: aiohttp.ClientSession, base: str, process: Process) -> None:
        self.session, self.base, self.process = session, base, process
        self.client_id = f"{base}/"
        self.headers: dict[str, str] = {}

    def _alive(self) -> None:
        if self.process.proc.returncode is not None:
            raise ReleaseError(f"Home Assistant stopped:\n{self.process.tail()}")

    async def wait_until_up(self) -> None:
        deadline = time.monotonic() + HA_START_S
        while time.monotonic() < deadline:
            self._alive()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.session.get(f"{self.base}/api/onboarding") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.5)
        raise ReleaseError(
            f"Home Assistant did not answer in {HA_START_S:.0f} s:\n{self.process.tail()}"
        )

    async def onboard(self) -> None:
        user = {"client_id": self.client_id, "name": "Check", "username": "check",
                "password": "release-check-only", "language": "en"}  # fmt: skip
        async with self.session.post(f"{self.base}/api/onboarding/users", json=user) as resp:
            code = (await resp.json())["auth_code"]
        token = {"grant_type": "authorization_code", "code": code, "client_id": self.client_id}
        async with self.session.post(f"{self.base}/auth/token", data=token) as resp:
            self.headers = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}

    async def rest(self, method: str, path: str, payload: Any = None) -> Any:
        self._alive()
        async with self.session.request(
            method, f"{self.base}{path}", json=payload, headers=self.headers
        ) as resp:
            text = await resp.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = text
            if resp.status >= 400:
                raise ReleaseError(f"{method} {path}: {resp.status} {body}\n{self.process.tail()}")
            return body

    async def template(self, text: str) -> Any:
        async with self.session.post(
            f"{self.base}/api/template", json={"template": text}, headers=self.headers
        ) as resp:
            return json.loads(await resp.text())


def answer(step: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A form filled the way a person accepts it: its defaults, plus what we were given."""
    out: dict[str, Any] = {}
    for field in step.get("data_schema") or []:
        name = field["name"]
        if name in given:
            out[name] = given[name]
        elif "default" in field:
            out[name] = field["default"]
        elif field.get("required"):
            raise ReleaseError(f"config flow step {step['step_id']} asks for {name}: {step}")
    return out


async def config_flow(ha: HomeAssistant, sim_port: int) -> dict[str, Any]:
    """Network gateway → the simulator's port → what the scan found → an entry."""
    given = {"host": "127.0.0.1", "tcp_port": sim_port, "port": sim_port,
             "framing": "modbus_tcp", "string_count": STRINGS, "name": "Release check"}  # fmt: skip
    step = await ha.rest("POST", "/api/config/config_entries/flow", {"handler": "bacs"})
    for _ in range(8):
        path = f"/api/config/config_entries/flow/{step['flow_id']}"
        if step["type"] == "menu":
            step = await ha.rest("POST", path, {"next_step_id": "tcp"})
        elif step["type"] == "form":
            if step.get("errors"):
                raise ReleaseError(f"config flow step {step['step_id']}: {step['errors']}")
            step = await ha.rest("POST", path, answer(step, given))
        elif step["type"] == "create_entry":
            return dict(step["result"])
        else:
            raise ReleaseError(f"config flow ended with {step}")
    raise ReleaseError(f"config flow did not end: {step}")


async def wait_for_entities(ha: HomeAssistant) -> list[dict[str, Any]]:
    """Every block's voltage must show a number (the bus was read through pymodbus)."""
    deadline = time.monotonic() + ENTITIES_S
    ours: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ids = set(await ha.template("{{ integration_entities('bacs') | list | tojson }}"))
        ours = [s for s in await ha.rest("GET", "/api/states") if s["entity_id"] in ids]
        voltages = [
            s for s in ours
            if s["attributes"].get("device_class") == "voltage"
            and re.fullmatch(r"-?\d+(\.\d+)?", s["state"])
        ]  # fmt: skip
        if len(voltages) >= STRINGS * BLOCKS:
            return ours
        await asyncio.sleep(1)
    raise ReleaseError(
        f"{len(ours)} bacs entities, too few block voltages within {ENTITIES_S:.0f} s:\n"
        f"{ha.process.tail()}"
    )


async def run_home_assistant(
    art: Artifacts, env: Path, house: Path, work: Path, say: Callable[[str], None]
) -> list[str]:
    """Home Assistant installs the wheel and loads the integration; the problems seen."""
    config = work / "config"
    (config / "custom_components" / "bacs").mkdir(parents=True)
    with zipfile.ZipFile(art.hacs_zip) as archive:  # what HACS does with the release asset
        archive.extractall(config / "custom_components" / "bacs")
    port = free_port()
    (config / "configuration.yaml").write_text(CONFIGURATION.format(port=port))
    run_env = clean_env() | {
        "UV_OFFLINE": "1",
        "UV_FIND_LINKS": str(house),
        "UV_INDEX_URL": (work / "no-index").as_uri(),
        "UV_CACHE_DIR": str(work / "uv-cache"),
        "PIP_NO_INDEX": "1",
    }
    hass = await Process.start(
        "Home Assistant",
        [
            str(env / "bin" / "python"),
            "-m",
            "homeassistant",
            "--config",
            str(config),
            "--log-no-color",
        ],
        work / "hass.log",
        run_env,
    )
    sim: Process | None = None
    problems: list[str] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            ha = HomeAssistant(session, f"http://127.0.0.1:{port}", hass)
            await ha.wait_until_up()
            say("Home Assistant is up")
            await ha.onboard()
            # The first flow makes Home Assistant install the manifest's requirement.
            flow = await ha.rest("POST", "/api/config/config_entries/flow", {"handler": "bacs"})
            await ha.rest("DELETE", f"/api/config/config_entries/flow/{flow['flow_id']}")
            say("it installed the requirement; the config flow opens")
            sim_port = free_port()
            sim = await Process.start(
                "simulator",
                [str(env / "bin" / "bacs"), "simulate", f"--strings={STRINGS}",
                 f"--blocks={BLOCKS}", f"--listen=tcp://127.0.0.1:{sim_port}"],
                work / "simulator.log",
                run_env,
            )  # fmt: skip
            await wait_for_port(sim, sim_port)
            entry = await config_flow(ha, sim_port)
            say("config flow done")
            entities = await wait_for_entities(ha)
            (state,) = [
                e["state"]
                for e in await ha.rest("GET", "/api/config/config_entries/entry")
                if e["entry_id"] == entry["entry_id"]
            ]
            if state != "loaded":
                raise ReleaseError(f"config entry is {state}:\n{hass.tail()}")
            say(f"{len(entities)} entities with values, entry {entry['title']!r} {state}")
            await report_works(ha, entry["entry_id"])
            say("bacs.generate_report made a page with its pictures (matplotlib installed)")
    except ReleaseError as err:
        problems.append(str(err))
    finally:
        if sim is not None:
            await sim.stop()
        code = await hass.stop()
        say("Home Assistant stopped")
    if code != 0:
        problems.append(f"Home Assistant exited with {code}:\n{hass.tail()}")
    log_file = config / "home-assistant.log"
    log = log_file.read_text(errors="replace") if log_file.exists() else ""
    return problems + log_problems(log)


async def report_works(ha: HomeAssistant, entry_id: str) -> None:
    """``bacs.generate_report`` (the manifest's bacs-core[report]: matplotlib) answers with a
    page that holds its SVG pictures, served behind Home Assistant's authentication."""
    answer = await ha.rest(
        "POST",
        "/api/services/bacs/generate_report?return_response",
        {"config_entry_id": entry_id, "since": "2020-01-01T00:00:00"},
    )
    url = answer["service_response"]["url"]
    async with ha.session.get(f"{ha.base}{url}", headers=ha.headers) as resp:
        page = await resp.text()
        if resp.status != 200 or "<svg" not in page or "Float voltage spread" not in page:
            raise ReleaseError(f"report {url}: {resp.status} {page[:300]}\n{ha.process.tail()}")


def log_problems(log: str) -> list[str]:
    """Errors about us in Home Assistant's log; a failed install with uv's reason."""
    lines = log.splitlines()
    out = []
    for i, line in enumerate(lines):
        if re.search(r" (ERROR|CRITICAL) .*(bacs|Unable to install)", line):
            reason = [ln for ln in lines[i + 1 : i + 8] if ln.startswith(" ")]
            out.append("\n".join(["log: " + line, *reason]))
    return out[:10]


async def wait_for_port(proc: Process, port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.proc.returncode is not None:
            raise ReleaseError(f"the simulator stopped:\n{proc.tail()}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.2)
    raise ReleaseError(f"the simulator did not listen within 30 s:\n{proc.tail()}")


async def main_async(args: argparse.Namespace) -> int:
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"   [{time.monotonic() - started:3.0f} s] {text}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bacs-release-"))
    problems: list[str] = []
    try:
        art = build(work / "out")
        problems += check(art)
        say(f"built {art.sdist.name}, {art.wheel.name}, {art.hacs_zip.name}")
        env = make_ha_env(args.ha_python, work)
        pins = ha_pins(env)
        say(f"Home Assistant {pins['version']} (its modbus integration: {pins['pymodbus']})")
        house = make_wheelhouse(art, args.wheelhouse, work)
        if not any(house.glob("pymodbus-*.whl")):
            raise ReleaseError(f"no pymodbus wheel in {args.wheelhouse} (see scripts/test)")
        problems += await run_home_assistant(art, env, house, work, say)
        if problems:
            raise ReleaseError("Home Assistant did not install and load the integration")
        got = installed(env, work)
        say(f"Home Assistant installed bacs-core {got['bacs-core']}, pymodbus {got['pymodbus']}")
        if got["bacs-core"] != str(art.version) or not got["file"].startswith(str(env)):
            problems.append(f"bacs_core is not the wheel's: {got}")
        if not got["matplotlib_file"].startswith(str(env)):
            problems.append(f"matplotlib was not installed by Home Assistant: {got}")
        say(f"and matplotlib {got['matplotlib']} for the report")
        if not Requirement(pins["pymodbus"]).specifier.contains(got["pymodbus"]):
            problems.append(
                f"pymodbus {got['pymodbus']} is not Home Assistant's {pins['pymodbus']}"
            )
        if args.wire_tests:
            say(f"wire tests on pymodbus {got['pymodbus']}: {wire_tests(env)}")
    except ReleaseError as err:
        problems.append(str(err))
    finally:
        if args.keep:
            print(f"   kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for problem in problems:
        print(f"FAIL: {problem}")
    outcome = "failed" if problems else "passed"
    print(f"   release check {outcome} in {time.monotonic() - started:.0f} s")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        default=ROOT / ".cache" / "release-wheelhouse",
        help="bacs-core's dependency wheels (requirements/release-wheelhouse.txt)",
    )
    parser.add_argument(
        "--ha-python",
        type=Path,
        default=Path(sys.executable),
        help="the interpreter of an installed Home Assistant (default: this one)",
    )
    parser.add_argument(
        "--no-wire-tests",
        dest="wire_tests",
        action="store_false",
        help="skip bacs_core's wire tests on that environment's pymodbus",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return asyncio.run(main_async(parser.parse_args(argv)))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
