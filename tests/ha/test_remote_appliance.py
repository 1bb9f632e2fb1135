"""Home Assistant on a remote BACS appliance: the integration's "BACS appliance on the
network" entry reads an appliance (a manager on a simulated room with its MQTT publisher,
``snapshot: true``) through a real mosquitto, with bacs_core's RemoteSource.

The key promise: the trip runs on the appliance. Home Assistant is stopped (its entry
unloaded, its MQTT client gone) in the middle of a runaway, the appliance still energises the
trip relay and the simulator's breaker opens; Home Assistant comes back and shows the latched
trip, its repair issue and the device tree it had."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.mqtt import mqtt_settings
from bacs_core.mqtt.publisher import MqttPublisher
from bacs_core.remote.source import RemoteSource
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
from bacs_core.snapshot import SystemSnapshot, TripState
from custom_components.bacs import config_flow_remote
from custom_components.bacs.config_flow_remote import remote_unique_id
from custom_components.bacs.const import DOMAIN
from custom_components.bacs.diagnostics import async_get_config_entry_diagnostics
from tests.mqtt_broker import Mosquitto, needs_mosquitto

pytestmark = needs_mosquitto

USER, PASSWORD = "ha", "s3cret"
CONFIG = {"buses": [{"id": "bus1", "url": "sim://x"}], "string_count": 2, "trip": {"auto": True}}
RUNAWAY, STEP = 10.0, 30.0  # a fierce runaway on 30 s cycles: tripped in about 160 cycles
TRIP = "sensor.shelter_breaker_trip"
RUNAWAY_SENSOR = "binary_sensor.shelter_thermal_runaway"


@pytest.fixture
def broker(socket_enabled: None, tmp_path: Path) -> Iterator[Mosquitto]:
    """PHCC blocks sockets; ``socket_enabled`` lifts that, and its allow-list (127.0.0.1)
    still keeps every connection on this machine."""
    (tmp_path / "broker").mkdir()
    b = Mosquitto(tmp_path / "broker", users={USER: PASSWORD, "appliance": "a"})
    b.start()
    yield b
    b.stop()


class Appliance:
    """``bacs run`` in miniature, cycled by the test: a manager on a simulated room and its
    MQTT publisher (the whole snapshot on, its own discovery off as docs/mqtt.md advises)."""

    def __init__(self, broker: Mosquitto, state_dir: Path, site: str, **mqtt: Any) -> None:
        self.room = Room(RoomConfig(strings=2, blocks=4, seed=5, settle_days=1))
        self.clock = [0.0]
        self.manager = Manager(
            validate_config(CONFIG),
            storage=MemoryStorage(),
            transports={"bus1": LoopbackTransport(self.room)},
            clock=lambda: self.clock[0],
        )
        settings = {
            "host": "127.0.0.1", "port": broker.port, "username": "appliance", "password": "a",
            "keepalive": 5, "snapshot": True, "discovery": False, **mqtt,
        }  # fmt: skip
        self.publisher = MqttPublisher(
            self.manager, mqtt_settings(settings), site_id=site, site_name=site,
            state_dir=state_dir,
        )  # fmt: skip

    async def start(self) -> None:
        await self.manager.start(run_loop=False)
        self.publisher.start()
        await self.cycle()
        await asyncio.to_thread(self.publisher.connected_event.wait, 10)
        await asyncio.to_thread(self.publisher.flush)

    async def stop(self) -> None:
        await self.manager.stop()
        await self.publisher.stop()

    async def cycle(self, n: int = 1, step: float = 10.0) -> SystemSnapshot:
        snap = None
        for _ in range(n):
            self.room.step(step)
            self.clock[0] += step
            snap = await self.manager.poll_once()
        assert snap is not None
        return snap


COMMANDS = {"acknowledge": True, "reset_trip": True, "identify": True, "set_float_voltage": True}


@pytest.fixture
async def appliance(broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Appliance]:
    a = Appliance(broker, tmp_path / "state", "shelter-17", commands=COMMANDS)
    await a.start()
    yield a
    await a.stop()


def form(broker: Mosquitto, **kw: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1", "tcp_port": broker.port, "tls": False, "username": USER,
        "password": PASSWORD, "topic_prefix": "bacs", "site": "shelter-17", **kw,
    }  # fmt: skip


def entry_for(broker: Mosquitto, site: str = "shelter-17") -> MockConfigEntry:
    url = f"mqtt://{USER}@127.0.0.1:{broker.port}/bacs/{site}"
    data = {
        "kind": "remote", "host": "127.0.0.1", "tcp_port": broker.port, "tls": False,
        "username": USER, "password": PASSWORD, "topic_prefix": "bacs", "site": site, "url": url,
    }  # fmt: skip
    return MockConfigEntry(
        domain=DOMAIN, title="Shelter", unique_id=remote_unique_id(data), data=data,
        options={}, version=2, minor_version=1,
    )  # fmt: skip


async def until(check: Any, timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def state(hass: HomeAssistant, entity_id: str) -> str | None:
    s = hass.states.get(entity_id)
    return s.state if s is not None else None


@pytest.fixture
def quick_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe of a site that publishes nothing waits this long (10 s in real life)."""
    monkeypatch.setattr(config_flow_remote, "PROBE_TIMEOUT_S", 1.0)


async def test_config_flow_probes_the_appliance_and_names_what_is_wrong(
    hass: HomeAssistant, broker: Mosquitto, appliance: Appliance, tmp_path: Path, quick_probe: None
) -> None:
    plain = Appliance(broker, tmp_path / "plain", "plain", snapshot=False)
    await plain.start()
    try:
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
        assert "remote" in result["menu_options"]
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "remote"}
        )
        assert result["step_id"] == "remote"
        flow = result["flow_id"]
        for given, error in [
            ({"password": "wrong"}, "remote_refused"),
            ({"site": "nowhere"}, "remote_no_site"),
            ({"site": "plain"}, "remote_no_snapshot"),
            ({"site": "a b"}, None),
        ]:
            result = await hass.config_entries.flow.async_configure(flow, form(broker, **given))
            assert result["type"] is FlowResultType.FORM
            if error is None:
                assert result["errors"] == {"site": "invalid_topic"}
            else:
                assert result["errors"] == {"base": error}, given
        result = await hass.config_entries.flow.async_configure(flow, form(broker))
        assert result["step_id"] == "remote_confirm"
        placeholders = result["description_placeholders"]
        assert (placeholders["strings"], placeholders["modules"]) == ("2", "8")
        assert placeholders["discovery"] == "no"
        assert placeholders["trip_state"] == "armed"
        assert "reset_trip" in placeholders["commands"]
        result = await hass.config_entries.flow.async_configure(flow, {"name": "Shelter"})
        assert result["type"] is FlowResultType.CREATE_ENTRY
        entry = result["result"]
        assert PASSWORD not in entry.data["url"]
        assert entry.data["password"] == PASSWORD
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        assert state(hass, TRIP) == "armed"
        # The same appliance twice: refused.
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "remote"}
        )
        result = await hass.config_entries.flow.async_configure(result["flow_id"], form(broker))
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "already_configured"
        # Its settings live in the appliance's site file.
        result = await hass.config_entries.options.async_init(entry.entry_id)
        assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "remote_settings")
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await plain.stop()


async def test_the_appliances_own_discovery_is_pointed_out(
    hass: HomeAssistant, broker: Mosquitto, tmp_path: Path
) -> None:
    both = Appliance(broker, tmp_path / "both", "both", discovery=True)
    await both.start()
    try:
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "remote"}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], form(broker, site="both")
        )
        assert result["step_id"] == "remote_confirm"
        assert result["description_placeholders"]["discovery"] == "yes"
    finally:
        await both.stop()


async def test_device_tree_entities_events_and_commands_through_the_broker(
    hass: HomeAssistant, broker: Mosquitto, appliance: Appliance
) -> None:
    entry = entry_for(broker)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    source = entry.runtime_data.manager
    assert isinstance(source, RemoteSource)
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    hub = next(d for d in devices if (DOMAIN, entry.entry_id) in d.identifiers)
    assert hub.model == "BACS appliance (remote, through MQTT)"
    blocks = [d for d in devices if d.name and " block " in d.name]
    assert len(blocks) == 8
    assert {d.via_device_id for d in blocks} <= {
        d.id for d in devices if "String" in (d.name or "")
    }
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    ids = {e.entity_id for e in entities}
    assert {TRIP, RUNAWAY_SENSOR, "button.shelter_reset_breaker"} <= ids
    assert "button.shelter_rescan_bus" not in ids  # the appliance's bus is not ours to scan
    assert not any(e.startswith("switch.") and "relay" in e for e in ids)

    events = async_capture_events(hass, "bacs_event")
    appliance.room.inject(Fault(FaultKind.DEAD, 2, 3))
    await appliance.cycle(4)

    def module_alarm() -> Any:  # the first is the hub's: a block the detector cannot watch
        return next(
            (e for e in events if e.data["type"] == "alarm_raised" and e.data["device"]), None
        )

    raised = await until(module_alarm)
    assert raised.data["config_entry_id"] == entry.entry_id
    block = dr.async_get(hass).async_get(raised.data["device_id"])
    assert block is not None and block.name == "String 2 block 3"

    await hass.services.async_call(
        "button", "press", {"entity_id": "button.shelter_acknowledge_alarms"}, blocking=True
    )
    assert appliance.manager.snapshot is not None
    snap = await appliance.cycle()
    assert snap.alarms and all(a.acknowledged for a in snap.alarms)

    # The appliance's own answers come back: a live block flashes, the silent one cannot.
    live = next(d for d in blocks if d.name == "String 1 block 1")
    await hass.services.async_call(DOMAIN, "identify", {"device_id": live.id}, blocking=True)
    assert (
        appliance.room.buses[0].devices[1].identify_until > appliance.room.buses[0].devices[1].now
    )
    with pytest.raises(HomeAssistantError, match="no device at unit 7"):
        await hass.services.async_call(DOMAIN, "identify", {"device_id": block.id}, blocking=True)
    with pytest.raises(ServiceValidationError, match="(?i)not possible"):
        await hass.services.async_call(
            DOMAIN, "trip_breaker", {"config_entry_id": entry.entry_id, "reason": "x"},
            blocking=True,
        )  # fmt: skip
    assert appliance.manager.safety.state is TripState.ARMED
    # The float target goes to the appliance (its site file allows it) and shows here;
    # equalization is not enabled there: refused, saying which setting.
    await hass.services.async_call(
        "number", "set_value",
        {"entity_id": "number.shelter_target_float_voltage", "value": 13.55}, blocking=True,
    )  # fmt: skip
    await appliance.cycle()
    await until(lambda: state(hass, "number.shelter_target_float_voltage") == "13.55")
    with pytest.raises(ServiceValidationError, match="set_equalization: true"):
        await hass.services.async_call(
            "switch", "turn_off", {"entity_id": "switch.shelter_equalization"}, blocking=True
        )
    assert appliance.manager.snapshot is not None
    assert appliance.manager.snapshot.equalization_enabled

    # The broker goes away: a repair issue says the appliance cannot be heard, its entities
    # are unavailable; it comes back by itself.
    issue_id = f"appliance_unreachable_{entry.entry_id}"
    voltage = next(
        e.entity_id
        for e in er.async_entries_for_device(er.async_get(hass), live.id)
        if e.entity_id.endswith("_voltage")
    )
    assert state(hass, voltage) not in (None, "unavailable")
    broker.stop()
    # (mosquitto tells the appliance's last will, "offline", as it shuts down; then it is gone)
    issue = await until(
        lambda: (i := ir.async_get(hass).async_get_issue(DOMAIN, issue_id))
        and i.translation_placeholders["why"] == "its MQTT broker cannot be reached"
        and i
    )
    assert issue.severity is ir.IssueSeverity.ERROR
    assert state(hass, voltage) == "unavailable"
    broker.start()
    await until(lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None, 30)
    await until(lambda: state(hass, voltage) not in (None, "unavailable"))
    diag = await async_get_config_entry_diagnostics(hass, entry)
    assert PASSWORD not in str(diag) and USER not in str(diag["entry"]["data"])
    assert diag["manager"]["source"] == "remote_appliance"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_home_assistant_stops_mid_runaway_and_the_breaker_still_opens(
    hass: HomeAssistant, broker: Mosquitto, appliance: Appliance
) -> None:
    entry = entry_for(broker)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert state(hass, TRIP) == "armed"
    devices_before = {
        d.id for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    }

    appliance.room.inject(Fault(FaultKind.RUNAWAY, 1, 3, RUNAWAY))
    for _ in range(400):
        snap = await appliance.cycle(step=STEP)
        if snap.safety.pre_alert:
            break
    assert snap.safety.pre_alert and snap.safety.trip_state is TripState.ARMED
    await until(lambda: state(hass, "binary_sensor.shelter_thermal_runaway_pre_alert") == "on")

    # Home Assistant goes away (an update, a restart): its entry unloads, its client leaves.
    source = entry.runtime_data.manager
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert not source.connected

    for _ in range(400):
        snap = await appliance.cycle(step=STEP)
        if snap.safety.trip_state is TripState.TRIPPED:
            break
    snap = await appliance.cycle(2, step=STEP)  # the breaker's contact is read a cycle later
    string = appliance.room.string(1)
    assert string.relay.relays[string.channel], "the appliance energised the trip relay"
    assert not string.physics.breaker_closed, "the simulator's breaker opened"
    assert snap.safety.trip_state is TripState.TRIPPED
    await asyncio.to_thread(appliance.publisher.flush)

    # Home Assistant comes back: the same devices, the latched trip, its repair issue.
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await until(lambda: state(hass, TRIP) == "tripped")
    assert state(hass, RUNAWAY_SENSOR) == "on"
    await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"breaker_tripped_{entry.entry_id}")
    assert issue is not None
    assert devices_before <= {
        d.id for d in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    }
    # A reset from Home Assistant keeps the appliance's safety check: refused while hot.
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN, "reset_breaker", {"config_entry_id": entry.entry_id}, blocking=True
        )
    assert appliance.manager.safety.state is TripState.TRIPPED
    await hass.config_entries.async_unload(entry.entry_id)


SITE = """\
site: {name: Shelter 9, id: shelter-9}
buses:
  - {id: bus1, url: "sim://s9?strings=2&blocks=3&settle_days=0"}
string_count: 2
poll_interval: 1
trip: {auto: true}
mqtt:
  host: 127.0.0.1
  port: PORT
  username: appliance
  password: a
  snapshot: true
  discovery: false
  commands: {trip: true, reset_trip: true, acknowledge: true}
"""


async def test_the_real_service_through_the_flow_trip_and_reset_from_home_assistant(
    hass: HomeAssistant, broker: Mosquitto, tmp_path: Path
) -> None:
    """``bacs run --config site.yaml`` in its own process (this worktree's code), set up
    through the config flow; a trip and a reset pressed in Home Assistant run there."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "site.yaml").write_text(SITE.replace("PORT", str(broker.port)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bacs_core", "run", "--config", str(tmp_path / "site.yaml"),
        "--state-dir", str(tmp_path / "state9"),
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": config_entries.SOURCE_USER}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "remote"}
        )
        flow = result["flow_id"]
        for _ in range(60):  # the service needs a moment to start and publish
            result = await hass.config_entries.flow.async_configure(
                flow, form(broker, site="shelter-9")
            )
            if result["step_id"] == "remote_confirm":
                break
            await asyncio.sleep(0.5)
        assert result["step_id"] == "remote_confirm", result.get("errors")
        assert result["description_placeholders"]["modules"] == "6"
        result = await hass.config_entries.flow.async_configure(flow, {"name": "Shelter 9"})
        entry = result["result"]
        await hass.async_block_till_done()
        trip = "sensor.shelter_9_breaker_trip"
        await until(lambda: state(hass, trip) == "armed")
        await hass.services.async_call(
            DOMAIN, "trip_breaker",
            {"config_entry_id": entry.entry_id, "reason": "smoke", "string": 2}, blocking=True,
        )  # fmt: skip
        await until(lambda: state(hass, trip) == "tripped")
        issue = await until(
            lambda: ir.async_get(hass).async_get_issue(DOMAIN, f"breaker_tripped_{entry.entry_id}")
        )
        assert "smoke" in issue.translation_placeholders["reason"]
        await hass.services.async_call(
            DOMAIN, "reset_breaker", {"config_entry_id": entry.entry_id, "string": 2},
            blocking=True,
        )  # fmt: skip
        await until(lambda: state(hass, trip) == "armed")
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]


async def test_reconfigure_keeps_the_stored_password_and_probes_first(
    hass: HomeAssistant, broker: Mosquitto, appliance: Appliance, quick_probe: None
) -> None:
    entry = entry_for(broker)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    suggested = {
        str(k): (k.description or {}).get("suggested_value") for k in result["data_schema"].schema
    }
    assert suggested["site"] == "shelter-17" and suggested["username"] == USER
    assert not suggested["password"]  # a stored password is never sent to the browser
    given = form(broker, password="")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**given, "site": "nowhere"}
    )
    assert result["errors"] == {"base": "remote_no_site"}
    assert entry.state is ConfigEntryState.LOADED  # read-only: the entry kept running
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**given, "tls": False, "tcp_port": broker.port}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "reconfigure_successful")
    await hass.async_block_till_done()
    assert entry.data["password"] == PASSWORD  # an empty field kept the stored one
    assert entry.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(entry.entry_id)
