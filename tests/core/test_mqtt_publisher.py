"""The MQTT consumer against a real broker (Debian's mosquitto, started by the fixture):
discovery and change-only state, commands and their answers, alarms and trips through a
broker outage and an appliance restart. Never a mock of the broker or of paho."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bacs_core.manager import Manager, MemoryStorage, validate_config
from bacs_core.mqtt import mqtt_settings
from bacs_core.mqtt.publisher import MqttPublisher
from bacs_core.sim.loopback import LoopbackTransport
from bacs_core.sim.room import Room, RoomConfig
from bacs_core.snapshot import TripState
from tests.mqtt_broker import (
    Mosquitto,
    Subscriber,
    make_certificates,
    needs_mosquitto,
    running_broker,
)

pytestmark = needs_mosquitto

CONFIG = {
    "buses": [{"id": "bus1", "url": "sim://x"}],
    "string_count": 2,
    "trip": {"auto": True},
    "poll_interval": 10,
}
BASE = "bacs/t1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    (tmp_path / "broker").mkdir()
    with running_broker(tmp_path / "broker") as b:
        yield b


class Site:
    """A manager on an in-process simulated room, cycled by the test, with its publisher."""

    def __init__(self, room: Room, port: int, state_dir: Path, **mqtt: Any) -> None:
        self.room = room
        self.clock = [0.0]
        self.manager = Manager(
            validate_config(CONFIG),
            storage=MemoryStorage(),
            transports={"bus1": LoopbackTransport(room)},
            clock=lambda: self.clock[0],
        )
        settings = mqtt_settings({"host": "127.0.0.1", "port": port, "keepalive": 5, **mqtt})
        self.publisher = MqttPublisher(
            self.manager,
            settings,
            site_id="t1",
            site_name="Test room",
            state_dir=state_dir,
            simulated=True,
        )

    async def cycle(self, n: int = 1) -> Any:
        snap = None
        for _ in range(n):
            self.room.step(10.0)
            self.clock[0] += 10.0
            snap = await self.manager.poll_once()
        return snap


@pytest.fixture
def room() -> Room:
    return Room(RoomConfig(strings=2, blocks=4, seed=5, settle_days=1))


@pytest.fixture
async def site(room: Room, broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Site]:
    s = Site(
        room,
        broker.port,
        tmp_path / "state",
        commands={"acknowledge": True, "reset_trip": True, "identify": True,
                  "set_float_voltage": True},
    )  # fmt: skip
    await s.manager.start(run_loop=False)
    s.publisher.start()
    yield s
    await s.manager.stop()
    await s.publisher.stop()


async def wait(sub: Subscriber, predicate: Any, timeout: float = 15.0) -> Any:
    return await asyncio.to_thread(sub.wait_for, predicate, timeout)


async def test_discovery_names_units_and_change_only_states(site: Site, broker: Mosquitto) -> None:
    sub = Subscriber(broker.port)
    try:
        snap = await site.cycle()
        module = snap.strings[0].modules[0]
        serial_id = f"bacs-t1-battery_module-{module.info.serial}"
        config_topic = f"homeassistant/device/{serial_id}/config"
        raw = await wait(sub, lambda: sub.retained.get(config_topic))
        config = json.loads(raw)
        assert config["device"]["name"] == "String 1 block 1"
        assert config["device"]["serial_number"] == str(module.info.serial)
        assert config["device"]["via_device"] == "bacs-t1-string-1"
        voltage = config["components"][f"{serial_id}-voltage"]
        assert voltage["unit_of_measurement"] == "V"
        assert voltage["device_class"] == "voltage"
        assert voltage["suggested_display_precision"] == 2
        assert voltage["state_topic"] == f"{BASE}/string1/block1/voltage"
        assert config["availability_mode"] == "all"
        assert await asyncio.to_thread(site.publisher.flush)
        shown = await wait(sub, lambda: sub.retained.get(f"{BASE}/hub/float_voltage"))
        shown = sub.retained[f"{BASE}/string1/block1/voltage"]
        assert float(shown) == pytest.approx(module.voltage.value, abs=0.01)
        assert sub.retained[f"{BASE}/availability"] == b"online"
        assert sub.retained[f"{BASE}/hub/trip_state"] == b"armed"
        hub = json.loads(sub.retained["homeassistant/device/bacs-t1/config"])
        assert hub["components"]["bacs-t1-reset"]["command_topic"] == f"{BASE}/cmd/reset_trip"

        # The room stands still: a second cycle sends (almost) nothing.
        first = site.publisher.stats.state_messages
        await site.cycle()
        assert await asyncio.to_thread(site.publisher.flush)
        again = site.publisher.stats.state_messages - first
        assert first > 50
        assert again < first / 5, (first, again)
        assert site.publisher.stats.values_seen >= 2 * first * 0.9
    finally:
        sub.close()


async def test_commands_round_trip_and_reset_refused_while_unsafe(
    site: Site, broker: Mosquitto, room: Room
) -> None:
    sub = Subscriber(broker.port)
    try:
        await site.cycle(2)
        await wait(sub, lambda: sub.retained.get(f"{BASE}/availability") == b"online")

        async def command(name: str, payload: Any) -> dict[str, Any]:
            seen = len(sub.payloads(f"{BASE}/result"))
            sub.client.publish(f"{BASE}/cmd/{name}", json.dumps(payload), qos=1)
            await wait(sub, lambda: len(sub.payloads(f"{BASE}/result")) > seen)
            answer: dict[str, Any] = json.loads(sub.payloads(f"{BASE}/result")[-1])
            return answer

        answer = await command("set_float_voltage", {"value": 13.5, "id": "fv1"})
        assert answer["ok"], answer
        assert answer["id"] == "fv1"
        await wait(sub, lambda: sub.retained.get(f"{BASE}/hub/float_voltage") == b"13.5")
        bad = await command("set_float_voltage", {"value": 99})
        assert (bad["ok"], bad["error"]) == (False, "invalid")

        relay = next(r for r in site.manager.devices if r.unit == 2 * 4 + 3)
        answer = await command("identify", {"device": str(relay)})
        assert answer["ok"], answer

        await site.manager.trip("test")
        await site.cycle(2)
        await wait(sub, lambda: sub.retained.get(f"{BASE}/hub/trip_state") == b"tripped")
        room.buses[0].dead.add(relay.unit)  # the breaker's state can no longer be read
        await site.cycle(3)
        refused = await command("reset_trip", {})
        assert (refused["ok"], refused["error"], refused["reason"]) == (
            False,
            "refused",
            "state_unknown",
        )
        assert site.manager.snapshot is not None
        assert site.manager.snapshot.safety.trip_state in (TripState.TRIPPED, TripState.FAILED)
        room.buses[0].dead.clear()
        await site.cycle(3)
        answer = await command("reset_trip", {"source": "test"})
        assert answer["ok"], answer
        await site.cycle(1)
        await wait(sub, lambda: sub.retained.get(f"{BASE}/hub/trip_state") == b"armed")
        answer = await command("acknowledge", {})
        assert answer["ok"], answer
    finally:
        sub.close()


async def test_disabled_command_is_refused(room: Room, broker: Mosquitto, tmp_path: Path) -> None:
    site = Site(room, broker.port, tmp_path / "state")  # no commands enabled
    await site.manager.start(run_loop=False)
    site.publisher.start()
    sub = Subscriber(broker.port)
    try:
        await site.cycle()
        await asyncio.to_thread(site.publisher.connected_event.wait, 10)
        await wait(sub, lambda: sub.retained.get(f"{BASE}/availability") == b"online")
        await site.manager.trip("test")
        sub.client.publish(f"{BASE}/cmd/reset_trip", "{}", qos=1)
        await wait(sub, lambda: sub.payloads(f"{BASE}/result"))
        answer = json.loads(sub.payloads(f"{BASE}/result")[-1])
        assert (answer["ok"], answer["error"]) == (False, "disabled")
        assert site.manager.safety.state is TripState.TRIPPED
        hub = json.loads(
            await wait(sub, lambda: sub.retained.get("homeassistant/device/bacs-t1/config"))
        )
        assert not any(c["platform"] == "button" for c in hub["components"].values())
    finally:
        sub.close()
        await site.manager.stop()
        await site.publisher.stop()


async def test_trips_and_alarms_survive_a_broker_outage_and_an_appliance_restart(
    room: Room, tmp_path: Path
) -> None:
    (tmp_path / "broker").mkdir()
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    state = tmp_path / "state"
    # A SCADA-like subscriber: a persistent session, so the broker keeps its messages too.
    sub = Subscriber(broker.port, f"{BASE}/event", client_id="scada", clean_session=False)
    site = Site(room, broker.port, state)
    try:
        await site.manager.start(run_loop=False)
        site.publisher.start()
        await site.cycle()
        await asyncio.to_thread(site.publisher.connected_event.wait, 10)

        broker.stop()  # outage 1: the appliance keeps running
        await wait(sub, lambda: not site.publisher.connected)
        await site.manager.trip("during outage 1")
        await site.cycle(2)
        await wait(sub, lambda: site.publisher.queued() >= 1)
        broker.start()
        got = await wait(
            sub, lambda: [e for e in sub.events(f"{BASE}/event") if e["type"] == "tripped"], 30
        )
        assert "during outage 1" in got[0]["message"]
        await wait(sub, lambda: site.publisher.queued() == 0)

        broker.stop()  # outage 2, and the appliance restarts before the broker returns
        await wait(sub, lambda: not site.publisher.connected)
        await site.manager.acknowledge(None)
        await site.manager.trip("during outage 2")  # already tripped: no new event
        room.buses[0].dead.add(2 * 4 + 3)
        await site.cycle(4)  # the relay module is lost: device_lost is durable
        await site.manager.stop()
        await site.publisher.stop()
        assert site.publisher.stats.queued >= 1
        queued = site.publisher.stats.queued

        again = Site(room, broker.port, state)
        await again.manager.start(run_loop=False)
        again.publisher.start()
        broker.start()
        lost = await wait(
            sub, lambda: [e for e in sub.events(f"{BASE}/event") if e["type"] == "device_lost"], 30
        )
        assert lost
        await wait(sub, lambda: again.publisher.queued() == 0, 30)
        types = [e["type"] for e in sub.events(f"{BASE}/event")]
        assert types.count("tripped") >= 1
        assert len({e["id"] for e in sub.events(f"{BASE}/event")}) >= queued
        await again.manager.stop()
        await again.publisher.stop()
    finally:
        sub.close()
        broker.stop()


async def test_username_and_password(room: Room, tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    with running_broker(tmp_path / "broker", users={"bacs": "s3cret"}) as broker:
        secret = tmp_path / "password"
        secret.write_text("s3cret\n")
        site = Site(room, broker.port, tmp_path / "state", username="bacs",
                    password_file=str(secret))  # fmt: skip
        await site.manager.start(run_loop=False)
        site.publisher.start()
        sub = Subscriber(broker.port, username="bacs", password="s3cret")
        try:
            await site.cycle()
            await wait(sub, lambda: sub.retained.get(f"{BASE}/availability") == b"online")
        finally:
            sub.close()
            await site.manager.stop()
            await site.publisher.stop()

        wrong = Site(room, broker.port, tmp_path / "state2", username="bacs", password="nope")
        await wrong.manager.start(run_loop=False)
        wrong.publisher.start()
        await asyncio.sleep(1.0)
        assert not wrong.publisher.connected
        assert "refused" in (wrong.publisher.stats.last_error or "")
        await wrong.manager.stop()
        await wrong.publisher.stop()


async def test_a_broker_that_lost_its_retained_store_gets_everything_again(
    site: Site, broker: Mosquitto
) -> None:
    await site.cycle()
    await asyncio.to_thread(site.publisher.connected_event.wait, 10)
    assert await asyncio.to_thread(site.publisher.flush)
    config = json.loads(
        await wait(
            probe := Subscriber(broker.port),
            lambda: probe.retained.get("homeassistant/device/bacs-t1-string-1/config"),
        )
    )
    probe.close()
    # Without diagnostics: true the disabled-by-default diagnostics are not offered at all.
    assert not any(k.endswith("-deviation") for k in config["components"])
    await site.manager.trip("before the restart")
    await site.cycle()
    assert await asyncio.to_thread(site.publisher.flush)
    broker.restart()  # no persistence: every retained message is gone
    newcomer = Subscriber(broker.port)
    try:
        await wait(newcomer, lambda: newcomer.retained.get(f"{BASE}/hub/trip_state") == b"tripped")
        await wait(newcomer, lambda: newcomer.retained.get(f"{BASE}/availability") == b"online")
        await wait(newcomer, lambda: "homeassistant/device/bacs-t1/config" in newcomer.retained)
        # Everything is sent again, in no promised order: wait for each topic.
        safety = json.loads(await wait(newcomer, lambda: newcomer.retained.get(f"{BASE}/safety")))
        assert safety["reason"] == "manual: before the restart"
        alarms = json.loads(await wait(newcomer, lambda: newcomer.retained.get(f"{BASE}/alarms")))
        assert alarms["summary"]
    finally:
        newcomer.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test's certificates")
async def test_tls_with_the_brokers_ca_and_refused_without_it(room: Room, tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    ca, cert, key = make_certificates(tmp_path / "broker")
    with running_broker(tmp_path / "broker", tls=(ca, cert, key)) as broker:
        site = Site(room, broker.port, tmp_path / "state", tls={"ca_certs": str(ca)})
        assert site.publisher.settings.tls is not None
        await site.manager.start(run_loop=False)
        site.publisher.start()
        try:
            await site.cycle()
            assert await asyncio.to_thread(site.publisher.connected_event.wait, 15)
        finally:
            await site.manager.stop()
            await site.publisher.stop()

        # The system's trust store does not know this CA: no connection, never plain text.
        stranger = Site(room, broker.port, tmp_path / "state2", tls=True)
        await stranger.manager.start(run_loop=False)
        stranger.publisher.start()
        await asyncio.sleep(1.5)
        assert not stranger.publisher.connected
        await stranger.manager.stop()
        await stranger.publisher.stop()


def test_the_listeners_never_wait_and_their_queues_are_bounded(room: Room, tmp_path: Path) -> None:
    """The manager's listeners only hand over: with no worker running (a broker or a thread
    that cannot keep up), snapshots coalesce to the newest and events stop at the backlog."""
    from bacs_core.events import Event, EventType
    from bacs_core.mqtt.publisher import EVENT_BACKLOG

    site = Site(room, 1, tmp_path / "state")
    publisher = site.publisher
    snap = object()
    for _ in range(1000):
        publisher._on_snapshot(snap)  # type: ignore[arg-type]
    assert publisher.stats.snapshots_skipped == 999
    assert publisher._inbox.qsize() == 1
    from datetime import UTC, datetime

    event = Event(EventType.ALARM_RAISED, datetime.now(UTC), "test")
    for _ in range(EVENT_BACKLOG + 5):
        publisher._on_event(event)
    assert publisher.stats.events_refused == 5
    assert publisher._inbox.qsize() == 1 + EVENT_BACKLOG
