"""The MQTT consumer: the manager's snapshots and events out to a broker, commands back in.

Threads, so that the broker never slows the poll cycle: the manager's listeners only hand a
snapshot (the newest replaces an unsent one) or an event (a bounded backlog) to a worker
thread, which diffs, queues alarms on disk and calls paho; paho's own thread does the network.
Alarms and trips are written to the on-disk outbox before they are sent and deleted only when
the broker acknowledged them, so a broker outage, or an appliance restart during one, loses
none. State topics are retained and sent in full again after every (re)connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..events import Event, EventType
from ..snapshot import SystemSnapshot
from ..source import Source
from .client import ClientTls, configure_client, make_client
from .commands import CommandRunner, parse_request
from .config import MqttSettings
from .outbox import Outbox
from .projection import Message, Projection
from .snapshot_codec import encode_snapshot
from .topics import Topics

_LOG = logging.getLogger(__name__)

# Events that must reach the broker (on disk until acknowledged); the others are sent when
# connected and otherwise left to the retained state topics.
DURABLE_EVENTS = frozenset(
    {
        EventType.ALARM_RAISED,
        EventType.ALARM_ESCALATED,
        EventType.ALARM_CLEARED,
        EventType.ALARM_ACKNOWLEDGED,
        EventType.RUNAWAY_PRE_ALERT,
        EventType.RUNAWAY_DETECTED,
        EventType.TRIP_COUNTDOWN,
        EventType.TRIPPED,
        EventType.TRIP_FAILED,
        EventType.TRIP_RESET,
        EventType.DEVICE_LOST,
        EventType.BUS_LOST,
        EventType.BUS_RESTORED,
    }
)
EVENT_BACKLOG = 10000  # events waiting for the worker thread before new ones are refused
STOP_DRAIN_S = 3.0  # at a clean stop, how long to wait for the broker to take the queue


@dataclass(slots=True)
class PublisherStats:
    messages: int = 0  # every PUBLISH handed to paho
    state_messages: int = 0
    discovery_messages: int = 0
    event_messages: int = 0
    snapshot_messages: int = 0  # whole snapshots (``snapshot: true``), counted in messages
    values_seen: int = 0  # values a naive publisher would have sent (one per value per cycle)
    snapshots: int = 0
    snapshots_skipped: int = 0  # superseded by a newer one before the worker got to them
    events_refused: int = 0  # the backlog was full (never seen in practice; logged)
    connects: int = 0
    queued: int = 0  # durable messages on disk, not yet acknowledged
    worker_cpu_s: float = 0.0
    last_error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


def event_payload(event: Event, site: str, seq: int) -> dict[str, Any]:
    return {
        "id": f"{site}-{int(event.timestamp.timestamp() * 1e6)}-{seq}",
        "site": site,
        "type": event.type.value,
        "time": event.timestamp.isoformat(),
        "message": event.message,
        "device": str(event.device) if event.device else None,
        "string": event.string,
        "data": dict(event.data),
    }


class MqttPublisher:
    def __init__(
        self,
        manager: Source,
        settings: MqttSettings,
        *,
        site_id: str,
        site_name: str,
        state_dir: str | Path,
        simulated: bool = False,
        client_factory: Callable[[str], Client] | None = None,
    ) -> None:
        self.manager = manager
        self.settings = settings
        self.site_id = site_id
        self.topics = Topics(settings.topic_prefix, site_id, settings.discovery_prefix)
        self.projection = Projection(
            self.topics,
            site_name,
            simulated=simulated,
            discovery=settings.discovery,
            commands=settings.commands,
            diagnostics=settings.diagnostics,
        )
        self.projection.float_voltage = manager.config.float_voltage
        self.projection.float_voltage_per_cell = manager.config.equalization.float_voltage_per_cell
        self.commands = CommandRunner(manager, settings.commands)
        self.outbox_path = Path(state_dir) / f"mqtt-outbox-{site_id}.sqlite3"
        self.stats = PublisherStats()
        self._client_factory = client_factory
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._latest: SystemSnapshot | None = None
        self._snapshot_pending = False
        self._backlog = 0
        self._seq = 0
        self._connected = False
        self._inflight: dict[int, int] = {}  # paho mid → outbox row
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._client: Client | None = None
        self._outbox: Outbox | None = None
        self.connected_event = threading.Event()
        self._snapshot_fingerprint: tuple[object, ...] | None = None

    # -- life cycle (on the manager's event loop) ------------------------------------------
    def start(self) -> None:
        """Listen to the manager and connect (in the background: a broker that is down now
        is retried forever, and nothing the manager does waits for it)."""
        self._loop = asyncio.get_running_loop()
        self._client = self._make_client()
        self._unsubscribe = [
            self.manager.add_snapshot_listener(self._on_snapshot),
            self.manager.add_event_listener(self._on_event),
        ]
        self._thread = threading.Thread(
            target=self._work, name=f"bacs-mqtt-{self.site_id}", daemon=True
        )
        self._thread.start()
        s = self.settings
        self._client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self._client.loop_start()
        if self.manager.snapshot is not None:
            self._on_snapshot(self.manager.snapshot)

    async def stop(self) -> None:
        """Say "offline", give the broker a moment for what is queued, then disconnect.
        What it did not take stays on disk for the next start."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self._thread is not None:
            self._inbox.put(("stop", None))
            await asyncio.to_thread(self._thread.join, STOP_DRAIN_S + 5)
            self._thread = None

    def _make_client(self) -> Client:
        s = self.settings
        client_id = s.client_id or f"bacs-{self.site_id}"
        tls = None
        if s.tls is not None:
            tls = ClientTls(s.tls.ca_certs, s.tls.certfile, s.tls.keyfile, s.tls.insecure)
        if self._client_factory is not None:
            client = self._client_factory(client_id)
            configure_client(client, username=s.username, password=s.password, tls=tls)
        else:
            # A session the broker keeps: after a broker restart "session present" says its
            # retained store survived too, and only what changed is sent again.
            client = make_client(
                client_id, clean_session=False, username=s.username, password=s.password, tls=tls
            )
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- the manager's listeners (event loop thread: hand off, never wait) ------------------
    def _on_snapshot(self, snap: SystemSnapshot) -> None:
        with self._lock:
            if self._snapshot_pending:
                self.stats.snapshots_skipped += 1
            self._latest = snap
            wake = not self._snapshot_pending
            self._snapshot_pending = True
        if wake:
            self._inbox.put(("snapshot", None))

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if self._backlog >= EVENT_BACKLOG:
                self.stats.events_refused += 1
                refuse = True
            else:
                self._backlog += 1
                refuse = False
        if refuse:
            _LOG.error("MQTT event backlog full: %s not published", event.type.value)
            return
        self._inbox.put(("event", event))

    # -- paho's callbacks (paho's thread) ----------------------------------------------------
    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.stats.last_error = f"broker refused the connection: {reason}"
            _LOG.error("MQTT broker %s refused the connection: %s", self.settings.host, reason)
            return
        # QoS 0: a broker never keeps a command for us while we are away (a reset pressed an
        # hour ago must not run now); the result topic tells the sender it arrived.
        client.subscribe(self.topics.command_filter, qos=0)
        if self.settings.discovery:
            client.subscribe(self.topics.ha_status, qos=1)
        self._inbox.put(("connected", bool(flags.session_present)))

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._inbox.put(("disconnected", str(reason)))

    def _on_publish(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._inbox.put(("acked", mid))

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        if message.topic == self.topics.ha_status:
            if message.payload.strip() == b"online":
                self._inbox.put(("ha_online", None))
            return
        name = message.topic.rsplit("/", 1)[-1]
        request = parse_request(name, message.payload)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self.commands.run(request), loop)
        future.add_done_callback(self._answer)

    def _answer(self, future: Any) -> None:
        with contextlib.suppress(Exception):
            answer = future.result()
            if answer.get("ok") and answer["command"] == "set_float_voltage":
                self.projection.float_voltage = self.commands.float_voltage
                self._inbox.put(("snapshot_again", None))
            if self._client is not None:
                self._client.publish(self.topics.result, json.dumps(answer), qos=1)

    # -- the worker thread -------------------------------------------------------------------
    def _work(self) -> None:
        started = time.thread_time()
        try:
            self._outbox = Outbox(self.outbox_path, limit=self.settings.queue_limit)
            left = self._outbox.pending()
            self.stats.queued = len(left)
            if left:
                _LOG.warning(
                    "MQTT: %d alarm/trip messages from before wait for the broker", len(left)
                )
            for q in left:
                self._send_durable(q.id, q.topic, q.payload, q.retain)
            while True:
                kind, data = self._inbox.get()
                try:
                    if kind == "stop":
                        self._shutdown()
                        return
                    self._handle(kind, data)
                except Exception:  # the publisher must outlive any one bad message
                    _LOG.exception("MQTT publisher: %s failed", kind)
                self.stats.worker_cpu_s = time.thread_time() - started
        finally:
            if self._outbox is not None:
                self.stats.queued = len(self._outbox)
                self._outbox.close()

    def _handle(self, kind: str, data: Any) -> None:
        assert self._outbox is not None
        if kind == "snapshot":
            with self._lock:
                snap, self._snapshot_pending = self._latest, False
            if snap is not None:
                self.stats.snapshots += 1
                if self._connected:
                    self._send_state(snap)
        elif kind == "snapshot_again":
            self._publish_latest()
        elif kind == "event":
            with self._lock:
                self._backlog -= 1
            self._publish_event(data)
        elif kind == "acked":
            row = self._inflight.pop(data, None)
            if row is not None:
                self._outbox.done(row)
                self.stats.queued = max(0, self.stats.queued - 1)
        elif kind == "connected":
            self._connected = True
            self.connected_event.set()
            self.stats.connects += 1
            _LOG.info("MQTT connected to %s:%d", self.settings.host, self.settings.port)
            self._publish(Message(self.topics.availability, "online", 1, True))
            if not data:  # a new session: the broker may have lost its retained store
                self.projection.reset()
                self._snapshot_fingerprint = None
            self._publish_latest()
        elif kind == "disconnected":
            if self._connected:
                _LOG.warning("MQTT broker connection lost (%s); alarms queue on disk", data)
            self._connected = False
            self.connected_event.clear()
        elif kind == "flush":
            data.set()
        elif kind == "ha_online":
            self.projection.forget_discovery()
            self._snapshot_fingerprint = None
            self._publish_latest()
        self.stats.values_seen = self.projection.values_seen

    def _publish_latest(self) -> None:
        with self._lock:
            snap = self._latest
        if snap is not None and self._connected:
            self._send_state(snap)

    def _send_state(self, snap: SystemSnapshot) -> None:
        """The values that changed, then (with ``snapshot: true``) the whole snapshot when
        anything a reader shows changed: a quiet cycle still sends nothing."""
        messages = self.projection.update(snap)
        self._send_all(messages, counter="state")
        if not self.settings.snapshot:
            return
        fingerprint = (snap.equalization_enabled, self.commands.float_voltage, snap.status)
        if not messages and fingerprint == self._snapshot_fingerprint:
            return
        self._snapshot_fingerprint = fingerprint
        payload = encode_snapshot(
            snap,
            site=self.site_id,
            commands=self.settings.commands,
            float_voltage=self.commands.float_voltage,
            float_voltage_per_cell=self.projection.float_voltage_per_cell,
        )
        self._publish(Message(self.topics.snapshot, payload, 1, True))
        self.stats.snapshot_messages += 1

    def _send_all(self, messages: list[Message], counter: str) -> None:
        discovery_prefix = self.topics.discovery_prefix + "/"
        for m in messages:
            self._publish(m)
            if m.topic.startswith(discovery_prefix):
                self.stats.discovery_messages += 1
            else:
                self.stats.state_messages += 1

    def _publish(self, m: Message) -> int:
        assert self._client is not None
        info = self._client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)
        self.stats.messages += 1
        return info.mid

    def _publish_event(self, event: Event) -> None:
        assert self._outbox is not None
        self._seq += 1
        payload = json.dumps(event_payload(event, self.site_id, self._seq))
        if event.type in DURABLE_EVENTS:
            row = self._outbox.put(self.topics.event, payload)
            self.stats.queued += 1
            self._send_durable(row, self.topics.event, payload, False)
        elif self._connected:
            self._publish(Message(self.topics.event, payload, 0, False))
            self.stats.event_messages += 1

    def _send_durable(self, row: int, topic: str, payload: str, retain: bool) -> None:
        # paho keeps a QoS 1 message it could not send in memory and sends it on reconnect;
        # the row on disk covers a restart of this process before the broker took it.
        mid = self._publish(Message(topic, payload, 1, retain))
        self._inflight[mid] = row
        self.stats.event_messages += 1

    def _shutdown(self) -> None:
        assert self._client is not None and self._outbox is not None
        client = self._client
        if self._connected:
            info = client.publish(self.topics.availability, "offline", qos=1, retain=True)
            deadline = time.monotonic() + STOP_DRAIN_S
            while time.monotonic() < deadline and (self._inflight or not info.is_published()):
                with contextlib.suppress(queue.Empty):
                    kind, data = self._inbox.get(timeout=0.05)
                    if kind == "acked":
                        self._handle(kind, data)
        client.disconnect()
        client.loop_stop()
        if self._inflight:
            _LOG.warning("MQTT: %d alarm/trip messages stay queued on disk", len(self._inflight))

    # -- introspection -----------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Block until the worker has handled everything handed to it so far (tests, bench)."""
        done = threading.Event()
        self._inbox.put(("flush", done))
        return done.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected

    def queued(self) -> int:
        """Durable messages not yet acknowledged by the broker."""
        return self.stats.queued
