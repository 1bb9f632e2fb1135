"""./scripts/demo end to end: a real Home Assistant on the simulator, driven in headless Chromium.

The first run onboards the demo user and sets the integration up through its config flow; the
browser logs in through Home Assistant's own login page and reads live values off the
dashboard; Ctrl-C stops everything; a second run reuses what the first prepared.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(
    os.environ.get("BACS_SCREENSHOT", ROOT / "build" / "screenshots" / "dashboard.png")
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_TIMEOUT_S = 420.0
# Text of an element including its shadow roots (Home Assistant's cards live in shadow DOM).
DEEP_TEXT = """el => { const out = []; const walk = n => {
    if (n.nodeType === 3) { out.push(n.textContent); return; }
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.childNodes) walk(c); };
  walk(el); return out.join(' ').replace(/[\\s\\u00a0]+/g, ' '); }"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed and could not be (./scripts/test runs "
    "'apt-get install chromium' where it may); the browser check needs it",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoProcess:
    """./scripts/demo in the background, its output collected line by line."""

    def __init__(self, directory: Path, port: int, *extra: str) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(ROOT / "scripts" / "demo"), "--dir", str(directory), "--port", str(port), *extra],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("READY "):
                self.ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self) -> float:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready.wait(0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"the demo did not become ready:\n{self.output}")
        return time.monotonic() - self.started

    def interrupt(self) -> int:
        """Ctrl-C, as a person at the terminal would press it."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the demo did not stop on Ctrl-C:\n{self.output}")
        self.reader.join(timeout=5)
        return code


@contextlib.contextmanager
def browser_at(base: str, path: str = "", width: int = 1600) -> Iterator[Any]:
    """Headless chromium on a page of the demo, logged in through Home Assistant's own login
    page as the demo user."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 1000})
        page.goto(base + path)
        page.locator("input[name=username]").fill("demo")
        page.locator("input[name=password]").fill("demo")
        page.keyboard.press("Enter")
        try:
            yield page
        finally:
            browser.close()


def page_card_text(page: Any, kind: str, title: str) -> str:
    """The text of the card of that kind whose title is ``title``."""
    for card in page.locator(kind).all():
        text = str(card.evaluate(DEEP_TEXT)).strip()
        if text.startswith(f"{title} "):
            return text
    raise AssertionError(f"no {kind} titled {title!r}")


def login(base: str, username: str, password: str) -> str:
    """Home Assistant's own login flow over HTTP; returns an access token."""
    client_id = f"{base}/"

    def post(path: str, payload: dict[str, Any], form: bool = False) -> dict[str, Any]:
        if form:
            data = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in payload.items())
            request = urllib.request.Request(
                base + path,
                data=data.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        else:
            request = urllib.request.Request(
                base + path,
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
        with urllib.request.urlopen(request, timeout=30) as resp:
            return dict(json.load(resp))

    flow = post(
        "/auth/login_flow",
        {
            "client_id": client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{base}/?auth_callback=1",
        },
    )
    result = post(
        f"/auth/login_flow/{flow['flow_id']}",
        {"client_id": client_id, "username": username, "password": password},
    )
    assert result["type"] == "create_entry", result
    token = post(
        "/auth/token",
        {"grant_type": "authorization_code", "code": result["result"], "client_id": client_id},
        form=True,
    )
    return str(token["access_token"])


def get(base: str, path: str, token: str) -> Any:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


def bacs_states(base: str, token: str) -> dict[str, dict[str, Any]]:
    states = get(base, "/api/states", token)
    registry_prefixes = ("sensor.", "binary_sensor.", "switch.", "number.", "button.")
    return {
        s["entity_id"]: s
        for s in states
        if s["entity_id"].startswith(registry_prefixes)
        and (
            "string_" in s["entity_id"]
            or "bacs_" in s["entity_id"]
            or "battery_room_" in s["entity_id"]  # the demo names its system "Battery room"
            or "relay_module" in s["entity_id"]
        )
    }


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def first_run(demo_dir: Path) -> Iterator[DemoProcess]:
    # Float at real time; a discharge switched on later is a half-minute mains outage.
    demo = DemoProcess(demo_dir, free_port(), "--outage", "0.5")
    demo.wait_ready()
    yield demo
    if demo.proc.poll() is None:
        demo.interrupt()


def test_first_run_onboards_and_sets_up_through_the_config_flow(first_run: DemoProcess) -> None:
    out = first_run.output
    assert "onboarding: creating the demo user 'demo'" in out
    assert "adding the BACS integration through its config flow" in out
    assert "log in as:   demo / demo" in out


def test_rest_api_lists_the_integrations_entities(first_run: DemoProcess) -> None:
    token = login(first_run.base, "demo", "demo")
    states = bacs_states(first_run.base, token)
    block_voltages = [
        s for eid, s in states.items() if re.fullmatch(r"sensor\.string_\d+_block_\d+_voltage", eid)
    ]
    assert len(block_voltages) == 64
    assert all(9.7 <= float(s["state"]) <= 17.0 for s in block_voltages)
    assert states["sensor.battery_room_breaker"]["state"] == "closed"


def test_dashboard_in_a_browser_shows_live_values(first_run: DemoProcess) -> None:
    from playwright.sync_api import expect

    token = login(first_run.base, "demo", "demo")
    with browser_at(first_run.base) as page:
        page.wait_for_url("**/lovelace/battery-room", timeout=60_000)
        card = page.locator(CARD)
        expect(card.locator(".block")).to_have_count(64, timeout=60_000)
        expect(page.get_by_text("Manager and breaker")).to_be_visible()

        def card_text(kind: str, title: str) -> str:
            return page_card_text(page, kind, title)

        # Live values: what the page shows is what Home Assistant holds right now.
        deadline = time.monotonic() + 60
        while True:
            state = get(first_run.base, "/api/states/sensor.string_1_voltage", token)
            text = card_text("hui-entities-card", "String 1")
            if f"Voltage {float(state['state']):.1f} V" in text:
                break
            assert time.monotonic() < deadline, f"not the live string voltage: {text}"
            page.wait_for_timeout(1000)
        assert "Breaker Closed" in card_text("hui-entities-card", "Manager and breaker")
        assert "Charge state Float" in text
        check_the_battery_room_card(page, first_run.base, token)
        # Equalization starts on its own: the room floats with a 0.6 V spread.
        deadline = time.monotonic() + 120
        while "Balancing Running" not in card_text("hui-entities-card", "String 1"):
            assert time.monotonic() < deadline, "string 1 never started balancing"
            page.wait_for_timeout(2000)
        page.wait_for_timeout(2000)  # let the history graphs draw
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 50_000
    with browser_at(first_run.base, width=390) as phone:  # the card on a phone
        phone.wait_for_url("**/lovelace/battery-room", timeout=60_000)
        expect(phone.locator(f"{CARD} .block")).to_have_count(64, timeout=60_000)
        # One look at the drawn card (it draws again with every new reading).
        chart, bars = phone.locator(CARD).evaluate(
            """c => { const s = c.shadowRoot.querySelector("section[data-string='1']");
              return [s.querySelector('.chart').getBoundingClientRect().width,
                      [...s.querySelectorAll('.block')].map(b => b.getBoundingClientRect().width)];
            }"""
        )
        assert 0 < chart <= 390  # no sideways scrolling
        assert len(bars) == 32 and min(bars) >= 8, bars
        phone.locator(CARD).screenshot(
            path=str(SCREENSHOT.with_name("battery-room-card-phone.png"))
        )


CARD = "bacs-battery-room-card"


def check_the_battery_room_card(page: Any, base: str, token: str) -> None:
    """The integration's card: every block of both strings as a bar, each with its live
    voltage; the demo's weak block (string 1 block 7: resistance ×1.4, the manager warns)
    marked and named as the string's worst; a tap on it opens its voltage's history."""
    from playwright.sync_api import expect

    card = page.locator(CARD)
    for string in (1, 2):
        blocks = card.locator(f"section[data-string='{string}'] .block")
        expect(blocks).to_have_count(32)
        positions = [int(b.get_attribute("data-position")) for b in blocks.all()]
        assert positions == list(range(1, 33))
    weak = card.locator("section[data-string='1'] .block[data-position='7']")
    expect(weak).to_have_class(re.compile(r"\bm-weak\b"), timeout=60_000)
    assert re.search(
        r"\bm-alarm\b.*\bworst\b", weak.get_attribute("class") or ""
    ), weak.get_attribute("class")
    others = card.locator("section[data-string='1'] .block.m-weak")
    assert others.count() == 1, [b.get_attribute("data-position") for b in others.all()]
    marked = card.locator("section[data-string='1'] .marked li").first.inner_text()
    assert marked.startswith("Block 7 alarm, weak"), marked
    assert "internal resistance" in marked, marked
    # Each bar says its block's voltage: the live value Home Assistant holds.
    entity = "sensor.string_1_block_03_voltage"
    bar = card.locator(f"section[data-string='1'] .block[data-entity='{entity}']")
    deadline = time.monotonic() + 30
    while True:
        live = float(get(base, f"/api/states/{entity}", token)["state"])
        title = bar.get_attribute("title") or ""
        if f": {live:.3f} V" in title:
            break
        assert time.monotonic() < deadline, (title, live)
        page.wait_for_timeout(1000)
    weak.click()
    dialog = page.locator("ha-more-info-dialog")
    expect(dialog.get_by_text("String 1 block 07").first).to_be_visible(timeout=15_000)
    expect(dialog.get_by_text("History").first).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog.get_by_text("String 1 block 07")).to_have_count(0, timeout=15_000)


def test_wrong_password_is_refused(first_run: DemoProcess) -> None:
    """After the screenshot: Home Assistant notifies about a failed login."""
    with pytest.raises(AssertionError):
        login(first_run.base, "demo", "not-the-password")


def test_the_ui_config_flow_adds_a_bus(first_run: DemoProcess) -> None:
    """A person adds the built-in simulator through Home Assistant's own dialogs."""
    from playwright.sync_api import expect

    token = login(first_run.base, "demo", "demo")
    add = "/config/integrations/dashboard/add?domain=bacs"
    with browser_at(first_run.base, add, width=1400) as page:
        expect(page.get_by_text("Do you want to set up BACS")).to_be_visible(timeout=60_000)
        page.get_by_role("button", name="OK").click()
        expect(page.get_by_text("Connect a battery bus")).to_be_visible(timeout=30_000)
        page.get_by_text("Simulator").first.click()
        page.get_by_role("button", name="Submit").click()  # the defaults: "demo", 2 × 16
        expect(page.get_by_text("What the scan found")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("battery modules 32")).to_be_visible()
        page.get_by_role("button", name="Submit").click()
        expect(page.get_by_text("Created configuration for Simulator demo")).to_be_visible(
            timeout=60_000
        )
        page.get_by_role("button", name="Finish").click()
    entries = get(first_run.base, "/api/config/config_entries/entry?domain=bacs", token)
    added = [e for e in entries if e["title"] == "Simulator demo"]
    assert [e["state"] for e in added] == ["loaded"]
    request = urllib.request.Request(  # removal: the manager stops, nothing is left behind
        f"{first_run.base}/api/config/config_entries/entry/{added[0]['entry_id']}",
        method="DELETE",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200
    entries = get(first_run.base, "/api/config/config_entries/entry?domain=bacs", token)
    assert [e["title"] for e in entries] == ["Battery room"]


def test_trip_and_reset_from_the_dashboard(first_run: DemoProcess, demo_dir: Path) -> None:
    """The dashboard presses the integration's Trip/Reset buttons (the demo user is the
    owner, an administrator), each after a confirmation; the simulator's breaker follows."""

    token = login(first_run.base, "demo", "demo")
    breaker = "sensor.battery_room_breaker"
    trip = "sensor.battery_room_breaker_trip"

    def wait_for(entity_id: str, wanted: str) -> None:
        deadline = time.monotonic() + 90
        while (state := get(first_run.base, f"/api/states/{entity_id}", token)["state"]) != wanted:
            assert time.monotonic() < deadline, f"{entity_id} is {state}, not {wanted}"
            time.sleep(1)

    with browser_at(first_run.base) as page:
        page.wait_for_url("**/lovelace/battery-room", timeout=60_000)
        page.get_by_text("Trip breaker (test)").click()
        page.get_by_role("button", name="OK", exact=True).click()
        wait_for(trip, "tripped")
        wait_for(breaker, "open")
        page.get_by_text("Reset breaker", exact=True).click()
        page.get_by_role("button", name="OK", exact=True).click()
        wait_for(trip, "armed")
    for string in ("1", "2"):  # a person closes the breakers again
        subprocess.run(
            [str(ROOT / "scripts" / "demo"), "--dir", str(demo_dir), "close-breaker", string],
            check=True,
            capture_output=True,
        )
    wait_for(breaker, "closed")


def test_the_blueprints_run_as_automations(first_run: DemoProcess) -> None:
    token = login(first_run.base, "demo", "demo")
    for automation_id, blueprint in (
        ("bacs_demo_alarm_notification", "bacs/battery_alarm_notification.yaml"),
        ("bacs_demo_runaway_response", "bacs/thermal_runaway_response.yaml"),
    ):
        config = get(first_run.base, f"/api/config/automation/config/{automation_id}", token)
        assert config["use_blueprint"]["path"] == blueprint
    states = {s["entity_id"]: s["state"] for s in get(first_run.base, "/api/states", token)}
    assert states["automation.thermal_runaway_response"] == "on"
    assert states["automation.battery_alarm_notification"] == "on"


def test_an_alarms_reason_is_on_the_dashboard(first_run: DemoProcess, demo_dir: Path) -> None:
    """A block's module stops answering: the Alarms card says which, in words, and the
    manager's Alarms row leads with it."""
    subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--dir", str(demo_dir), "fault", "dead:2:5"],
        check=True,
        capture_output=True,
    )
    from playwright.sync_api import expect

    reason = "String 2 block 5 does not answer"
    with browser_at(first_run.base) as page:
        page.wait_for_url("**/lovelace/battery-room", timeout=60_000)
        expect(page.get_by_text("Manager and breaker")).to_be_visible(timeout=60_000)
        expect(page.get_by_text(reason).first).to_be_visible(timeout=120_000)
        text = page_card_text(page, "hui-markdown-card", "Alarms")
        assert reason in text, text
        manager = page_card_text(page, "hui-entities-card", "Manager and breaker")
        assert "Alarms " in manager, manager


def test_a_discharge_ends_with_its_report_on_the_dashboard(
    first_run: DemoProcess, demo_dir: Path
) -> None:
    """The discharge scenario: a mains outage (30 s here), then the charger is back;
    the card shows the discharge's figures and its end-of-discharge chart (the integration's
    image entity), and opens the full report (bacs.generate_report, a signed link)."""
    from playwright.sync_api import expect

    token = login(first_run.base, "demo", "demo")
    subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--dir", str(demo_dir), "scenario", "discharge"],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 180
    while "power is back" not in first_run.output:
        assert time.monotonic() < deadline, first_run.output[-2000:]
        time.sleep(1)
    chart = "image.string_1_last_discharge_chart"
    while get(first_run.base, f"/api/states/{chart}", token)["state"] in ("unknown", ""):
        assert time.monotonic() < deadline, "no discharge chart"
        time.sleep(1)
    with browser_at(first_run.base) as page:
        page.wait_for_url("**/lovelace/battery-room", timeout=60_000)
        section = page.locator(f"{CARD} section[data-string='1']")
        expect(section.locator(".discharge")).to_contain_text("Last discharge", timeout=60_000)
        facts = section.locator(".discharge .facts").inner_text()
        assert re.search(r" · \d+( s|\.\d min) · \d+\.\d\d Ah", facts), facts
        image = section.locator(".discharge img")
        expect(image).to_be_visible()
        width = 0
        for _ in range(30):  # drawn: the image proxy answered with the SVG
            width = int(image.evaluate("i => i.complete ? i.naturalWidth : 0"))
            if width:
                break
            page.wait_for_timeout(500)
        assert width > 100
        # The dead block of the alarm test: no reading, and its alarm says why.
        dead = page.locator(f"{CARD} section[data-string='2'] .block[data-position='5']")
        expect(dead).to_have_class(re.compile(r"\bm-alarm\b.*\bm-no_data\b"))
        assert "String 2 block 5 does not answer" in (dead.get_attribute("title") or "")
        page.set_viewport_size({"width": 1280, "height": 1600})  # the whole card, no header
        page.wait_for_timeout(1000)
        page.locator(CARD).screenshot(path=str(SCREENSHOT.with_name("discharge-report-card.png")))
        with page.expect_popup() as popup:
            section.locator("button.report").click()
        report = popup.value
        report.wait_for_url("**/api/bacs/report/**", timeout=60_000)
        expect(report.locator("h1")).to_contain_text("discharge report")
        body = report.locator("body").inner_text()
        assert "string 1" in body and "Charge delivered" in body, body[:500]
        # The link stays on the card.
        expect(section.locator(".report-note a")).to_contain_text(".html")


def test_ctrl_c_stops_everything_and_a_second_run_reuses_it(
    first_run: DemoProcess, demo_dir: Path
) -> None:
    assert first_run.interrupt() == 0
    assert first_run.output.rstrip().endswith("stopped")
    with socket.socket() as sock:  # Home Assistant let go of its port (TIME_WAIT aside)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", first_run.port))

    second = DemoProcess(demo_dir, first_run.port, "--password", "s3cret")
    try:
        second.wait_ready()
        assert "onboarding" not in second.output
        assert "adding the BACS integration" not in second.output
        assert "the demo user's password was changed" in second.output
        with pytest.raises(AssertionError):
            login(second.base, "demo", "demo")
        token = login(second.base, "demo", "s3cret")
        entries = get(second.base, "/api/config/config_entries/entry?domain=bacs", token)
        assert [e["state"] for e in entries] == ["loaded"]
    finally:
        assert second.interrupt() == 0
