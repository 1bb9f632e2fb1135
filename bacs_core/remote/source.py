"""A BACS appliance elsewhere, read through its MQTT broker: the third kind of source.

``bacs run --config site.yaml`` with ``mqtt: {snapshot: true}`` runs the manager beside the
batteries (the poll cycle, equalization and the thermal-runaway trip all stay there) and
publishes its whole snapshot, retained, plus its events (docs/mqtt.md). This source
subscribes to them and hands consumers the very ``SystemSnapshot`` and ``Event`` objects the
appliance's manager made, so the Home Assistant integration keeps its device tree, device
triggers, repairs and actions when the manager runs on another computer.

Nothing here can stop or slow the appliance: when this source (or the Home Assistant running
it) stops, the appliance goes on tripping breakers on its own. Commands go to
``<base>/cmd/<name>`` and are answered on ``<base>/result`` (matched by request id); only the
commands the appliance's site file enables are offered, the trip reset keeps the manager's own
safety check on the appliance, and a command nobody answers fails after a timeout instead of
hanging. paho's network thread hands every message to the event loop; no listener runs on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
import uuid
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..events import Event, EventType
from ..manager.config import ManagerConfig
from ..manager.latch import SafetyRefusedError
from ..mqtt.snapshot_codec import ApplianceState, SnapshotFormatError, decode_snapshot
from ..mqtt.topics import Topics
from ..snapshot import (
    Capability,
    DeviceInfo,
    DeviceRef,
    ManagerStatus,
    SystemSnapshot,
    TripState,
)
from ..source import (
    EventListener,
    SnapshotListener,
    SourceError,
    SourceUnavailableError,
    UnsupportedCommandError,
)
from .url import RemoteAddress

_LOG = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0  # for the broker and the appliance's retained snapshot
COMMAND_TIMEOUT_S = 15.0  # an answer on the result topic
KEEPALIVE_S = 30
# After subscribing: an existing site has retained topics (availability, alarms), which the
# broker sends at once. Nothing under <base>/ by then: a wrong prefix or site, said now.
NO_SITE_GRACE_S = 3.0
EVENT_HOLD_S = 2.0  # longest an event waits for the snapshot of its cycle
SEEN_EVENT_IDS = 2000  # QoS 1 delivers at least once: events are deduplicated on their id

# What the consumer can read from an appliance whatever its site file enables.
READ_CAPABILITIES = frozenset(
    {
        Capability.EQUALIZE,
        Capability.TRIP,
        Capability.RUNAWAY_DETECTION,
        Capability.PER_BLOCK_RESISTANCE,
        Capability.STATE_OF_CHARGE,
        Capability.DISCHARGE_ANALYSIS,
        Capability.GENERAL_FLAGS,
    }
)
# Commands that bring a capability of their own (the others act on what is read above).
COMMAND_CAPABILITIES = {"acknowledge": Capability.ACKNOWLEDGE, "identify": Capability.IDENTIFY}
WHY_NOT_ENABLED = "not enabled in the appliance's site file (mqtt: commands: {command}: true)"
WHY_NOT_REMOTE = "the appliance takes no such command over MQTT; do it on the appliance"


class RemoteUnavailableError(SourceUnavailableError):
    """No snapshot at start; ``problem`` is RemoteSource.problem's code for it."""

    def __init__(self, message: str, problem: str | None) -> None:
        super().__init__(message)
        self.problem = problem


class RemoteCommandError(SourceError):
    """The appliance did not carry a command out (no answer, a bus error, a bad request)."""


@dataclass(slots=True)
class RemoteStats:
    connects: int = 0
    snapshots: int = 0
    events: int = 0
    duplicates: int = 0
    bad_payloads: int = 0
    commands: int = 0


def remote_capabilities(state: ApplianceState) -> frozenset[Capability]:
    """What a consumer may offer for this appliance: what its manager can do and its site
    file lets a remote reader do."""
    caps = state.snapshot.capabilities
    out = set(caps & READ_CAPABILITIES)
    for command, capability in COMMAND_CAPABILITIES.items():
        if command in state.commands and capability in caps:
            out.add(capability)
    return frozenset(out)


def event_from_payload(raw: Mapping[str, Any]) -> Event:
    """The publisher's event JSON (docs/mqtt.md, "Events") back into an ``Event``."""
    device = raw.get("device")
    ref: DeviceRef | None = None
    if device:
        bus, _, unit = str(device).rpartition("/")
        ref = DeviceRef(bus, int(unit))
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise ValueError("data is not an object")
    string = raw.get("string")
    return Event(
        type=EventType(raw["type"]),
        timestamp=datetime.fromisoformat(raw["time"]),
        message=str(raw.get("message", "")),
        device=ref,
        string=int(string) if string is not None else None,
        data=dict(data),
    )


class RemoteSource:
    """The Source protocol (bacs_core/source.py) for an appliance behind a broker."""

    def __init__(
        self,
        address: RemoteAddress,
        config: ManagerConfig,
        *,
        client_id: str | None = None,
        start_timeout: float = START_TIMEOUT_S,
        command_timeout: float = COMMAND_TIMEOUT_S,
    ) -> None:
        self.address = address
        self.topics = Topics(address.prefix, address.site)
        self._config = config
        self.client_id = client_id or f"bacs-reader-{address.site}-{uuid.uuid4().hex[:8]}"
        self.start_timeout = start_timeout
        self.command_timeout = command_timeout
        self.snapshot: SystemSnapshot | None = None
        self.appliance: ApplianceState | None = None
        self.appliance_online: bool | None = None  # its availability topic; None: not seen
        self.connected = False  # to the broker
        self.last_error: str | None = None
        self.stats = RemoteStats()
        self._snapshot_listeners: list[SnapshotListener] = []
        self._event_listeners: list[EventListener] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._seen_ids: deque[str] = deque(maxlen=SEEN_EVENT_IDS)
        self._seen_set: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None
        self._first = asyncio.Event()
        self._got_anything = False  # any message under <base>/ (the site exists)
        self._refused = False
        self._give_up = asyncio.Event()  # refused, or no such site: fail at once, not later
        self._site_check: asyncio.TimerHandle | None = None
        self._held: list[Event] = []  # events waiting for their cycle's snapshot
        self._hold_timer: asyncio.TimerHandle | None = None
        # The appliance's own Home Assistant discovery (its hub device, under the default
        # prefix): with this reader too, Home Assistant would show the room twice.
        self.discovery_topic = Topics(address.prefix, address.site).discovery(
            f"bacs-{address.site}"
        )
        self.discovery_seen = False

    # -- what consumers read ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"the BACS appliance {self.address.site}"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return remote_capabilities(self.appliance) if self.appliance else frozenset()

    @property
    def config(self) -> ManagerConfig:
        """The consumer's settings, with the float target the appliance has in force (the
        thresholds, trip policy and layout live in the appliance's site file)."""
        if self.appliance is None:
            return self._config
        return replace(
            self._config,
            float_voltage=self.appliance.float_voltage,
            equalization=replace(
                self._config.equalization,
                float_voltage_per_cell=self.appliance.float_voltage_per_cell,
            ),
        )

    @property
    def commands(self) -> frozenset[str]:
        """The commands the appliance's site file enables."""
        return self.appliance.commands if self.appliance else frozenset()

    @property
    def trip_state(self) -> TripState:
        snap = self.snapshot
        return snap.safety.trip_state if snap is not None else TripState.UNKNOWN

    @property
    def devices(self) -> Mapping[DeviceRef, DeviceInfo]:
        snap = self.snapshot
        if snap is None:
            return {}
        out: dict[DeviceRef, DeviceInfo] = {}
        for s in snap.strings:
            out.update((m.info.ref, m.info) for m in s.modules)
        for group in (snap.current_sensors, snap.relays, snap.environment):
            out.update((item.info.ref, item.info) for item in group)
        return out

    @property
    def reachable(self) -> bool:
        """Connected to the broker and the appliance says it is online."""
        return self.connected and self.appliance_online is not False

    def add_snapshot_listener(self, cb: SnapshotListener) -> Callable[[], None]:
        self._snapshot_listeners.append(cb)
        return lambda: self._snapshot_listeners.remove(cb)

    def add_event_listener(self, cb: EventListener) -> Callable[[], None]:
        self._event_listeners.append(cb)
        return lambda: self._event_listeners.remove(cb)

    # -- life cycle -------------------------------------------------------------------------
    async def start(self, *, run_loop: bool = True) -> None:
        """Connect and wait for the appliance's retained snapshot. SourceUnavailableError
        says why none came (broker down, refused, wrong site, snapshot not enabled).
        ``run_loop`` is accepted for the protocol: the appliance runs the cycle."""
        self._loop = asyncio.get_running_loop()
        self._first = asyncio.Event()
        self._give_up = asyncio.Event()
        self._client = self._make_client()
        a = self.address
        self._client.connect_async(a.host, a.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()
        first = asyncio.ensure_future(self._first.wait())
        refused = asyncio.ensure_future(self._give_up.wait())
        try:
            await asyncio.wait(
                (first, refused), timeout=self.start_timeout, return_when=FIRST_COMPLETED
            )
        finally:
            first.cancel()
            refused.cancel()
        if self.appliance is None:
            problem, why = self.problem, self._why_no_snapshot()
            await self.stop()
            raise RemoteUnavailableError(why, problem) from None

    async def stop(self) -> None:
        """Disconnect. The appliance is not told anything: it goes on as before."""
        client, self._client = self._client, None
        if self._site_check is not None:
            self._site_check.cancel()
            self._site_check = None
        if self._held:
            self._release_events(None)  # received: every one is told before we go
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RemoteCommandError("the connection to the broker closed"))
        self._pending.clear()
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        self.connected = False

    async def poll_once(self) -> SystemSnapshot:
        """The appliance cycles on its own: its latest snapshot (waiting for the first)."""
        if self.snapshot is None:
            try:
                await asyncio.wait_for(self._first.wait(), self.start_timeout)
            except TimeoutError:
                raise SourceUnavailableError(self._why_no_snapshot()) from None
        assert self.snapshot is not None
        return self.snapshot

    @property
    def problem(self) -> str | None:
        """Why there is no snapshot yet, as a stable code (a config flow's error key):
        ``refused`` (credentials), ``unreachable`` (no broker), ``bad_snapshot`` (damaged or
        a newer format), ``no_snapshot`` (the site publishes, but not its snapshot: the
        site file lacks ``snapshot: true``), ``no_site`` (nothing under the base topic)."""
        if self.appliance is not None:
            return None
        if not self.connected:
            return "refused" if self._refused else "unreachable"
        if self.stats.bad_payloads and self.last_error:
            return "bad_snapshot"
        return "no_snapshot" if self._got_anything else "no_site"

    def _why_no_snapshot(self) -> str:
        where = f"{self.address.host}:{self.address.port}"
        match self.problem:
            case "refused" | "unreachable":
                return f"MQTT broker {where}: {self.last_error or 'no answer'}"
            case "bad_snapshot":
                return str(self.last_error)
            case "no_snapshot":
                return (
                    f"the appliance at {self.topics.base} publishes no snapshot: set "
                    "'snapshot: true' in the mqtt: section of its site file"
                )
        return (
            f"nothing is published under {self.topics.base}/ on {where}: check the topic "
            "prefix and site id, and that the appliance runs with mqtt: in its site file"
        )

    # -- paho (its network thread: hand over to the event loop, nothing more) ---------------
    def _make_client(self) -> Client:
        a = self.address
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            # No stored session: the retained snapshot carries the state, and events from
            # while we were away must not fire automations late.
            clean_session=True,
        )
        if a.username:
            client.username_pw_set(a.username, a.password)
        if a.tls:
            client.tls_set(ca_certs=a.ca_certs, cert_reqs=ssl.CERT_REQUIRED)
            if a.insecure:
                client.tls_insecure_set(True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(fn, *args)

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused = True
            self._call(self._connect_failed, f"the broker refused the connection: {reason}")
            return
        t = self.topics
        client.subscribe(
            [  # retained ones come back in this order: the snapshot last, to find the rest
                (self.discovery_topic, 0),
                (t.alarms, 0),  # retained by every appliance: tells "no snapshot" from "no site"
                (t.availability, 1),
                (t.event, 1),
                (t.result, 1),
                (t.snapshot, 1),
            ]
        )
        self._call(self._connected, True)

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._call(self._subscribed)

    def _on_connect_fail(self, client: Client, userdata: Any) -> None:
        self._call(self._connect_failed, "cannot connect")

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._call(self._connected, False)

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        self._call(self._handle, message.topic, bytes(message.payload))

    # -- the event loop ----------------------------------------------------------------------
    def _connect_failed(self, why: str) -> None:
        if self._refused:
            self._give_up.set()
        if why != self.last_error:
            _LOG.warning("%s: %s", self.address.url(), why)
        self.last_error = why

    def _subscribed(self) -> None:
        if self._loop is not None and self.appliance is None and self._site_check is None:
            self._site_check = self._loop.call_later(NO_SITE_GRACE_S, self._check_site)

    def _check_site(self) -> None:
        if self.appliance is None and not self._got_anything:
            self._give_up.set()

    def _connected(self, up: bool) -> None:
        if up == self.connected:
            return
        self.connected = up
        if up:
            self.stats.connects += 1
            self.last_error = None
            self._refused = False
            _LOG.info("connected to %s", self.address.url())
        else:
            _LOG.warning("lost the MQTT broker of %s; the appliance keeps running", self.name)
            self._publish()

    def _handle(self, topic: str, payload: bytes) -> None:
        t = self.topics
        if topic.startswith(t.base + "/"):
            self._got_anything = True
        if topic == self.discovery_topic:
            seen = bool(payload.strip())
            if seen and not self.discovery_seen:
                _LOG.warning(
                    "%s also publishes Home Assistant MQTT discovery: with this reader the "
                    "same battery room appears twice; set 'discovery: false' in its site file",
                    self.name,
                )
            self.discovery_seen = seen
        elif topic == t.snapshot:
            self._on_snapshot(payload)
        elif topic == t.availability:
            online = payload.strip() == b"online"
            if online != self.appliance_online:
                self.appliance_online = online
                if not online:
                    _LOG.warning("%s says it is offline", self.name)
                self._publish()
        elif topic == t.event:
            self._on_event(payload)
        elif topic == t.result:
            self._on_result(payload)

    def _on_snapshot(self, payload: bytes) -> None:
        if not payload:
            return  # the retained snapshot was cleared
        try:
            state = decode_snapshot(payload)
        except SnapshotFormatError as err:
            self.stats.bad_payloads += 1
            if str(err) != self.last_error:
                _LOG.error("%s: %s", self.name, err)
            self.last_error = str(err)
            return
        self.stats.snapshots += 1
        self.appliance = state
        self._publish()
        self._first.set()

    def _publish(self) -> None:
        """The appliance's snapshot as consumers see it: its capabilities for a remote
        reader, and, while it cannot be reached, every bus marked lost (the values are the
        last it sent; the latched trip stays as it was)."""
        state = self.appliance
        if state is None:
            return
        snap = replace(state.snapshot, capabilities=remote_capabilities(state))
        if not self.reachable:
            snap = replace(
                snap,
                status=ManagerStatus.BUS_LOST,
                buses=tuple(replace(b, connected=False) for b in snap.buses),
            )
        if snap == self.snapshot:
            return
        self.snapshot = snap
        # As the manager does: the snapshot is in place, then the cycle's events (a listener
        # reading trip_state sees the state they led to), then the snapshot listeners.
        self._release_events(snap.timestamp)
        for cb in list(self._snapshot_listeners):
            try:
                cb(snap)
            except Exception:  # one consumer's bug must not starve the others
                _LOG.exception("snapshot listener failed")

    def _on_event(self, payload: bytes) -> None:
        try:
            raw = json.loads(payload)
            event = event_from_payload(raw)
        except (ValueError, KeyError, TypeError) as err:
            self.stats.bad_payloads += 1
            _LOG.warning("%s: an event that cannot be read (%s)", self.name, err)
            return
        event_id = str(raw.get("id", ""))
        if event_id:
            if event_id in self._seen_set:
                self.stats.duplicates += 1
                return
            if len(self._seen_ids) == self._seen_ids.maxlen:
                self._seen_set.discard(self._seen_ids[0])
            self._seen_ids.append(event_id)
            self._seen_set.add(event_id)
        self.stats.events += 1
        # The appliance sends a cycle's events before that cycle's snapshot: hold them until
        # it is here (or EVENT_HOLD_S passed: a command's event, a cycle with nothing new).
        self._held.append(event)
        snap = self.snapshot
        if snap is not None and event.timestamp <= snap.timestamp:
            self._release_events(snap.timestamp)
        elif self._hold_timer is None and self._loop is not None:
            self._hold_timer = self._loop.call_later(EVENT_HOLD_S, self._release_events, None)

    def _release_events(self, upto: datetime | None) -> None:
        """Hand on the held events up to ``upto`` (all of them with None), in order."""
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        n = 0
        while n < len(self._held) and (upto is None or self._held[n].timestamp <= upto):
            n += 1
        ready, self._held = self._held[:n], self._held[n:]
        if self._held and self._loop is not None:
            self._hold_timer = self._loop.call_later(EVENT_HOLD_S, self._release_events, None)
        for event in ready:
            for cb in list(self._event_listeners):
                try:
                    cb(event)
                except Exception:
                    _LOG.exception("event listener failed")

    def _on_result(self, payload: bytes) -> None:
        with contextlib.suppress(ValueError):
            answer = json.loads(payload)
            if isinstance(answer, dict):
                future = self._pending.pop(str(answer.get("id")), None)
                if future is not None and not future.done():
                    future.set_result(answer)

    # -- commands -----------------------------------------------------------------------------
    async def _command(self, command: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one command and wait for its answer; errors come out as the library's own."""
        if command not in self.commands:
            raise UnsupportedCommandError(
                command, self.name, WHY_NOT_ENABLED.format(command=command)
            )
        client = self._client
        if client is None or not self.connected:
            raise RemoteCommandError(f"{command}: not connected to the broker of {self.name}")
        if self.appliance_online is False:
            raise RemoteCommandError(f"{command}: {self.name} is offline")
        assert self._loop is not None
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[request_id] = future
        body = {**payload, "id": request_id, "source": "home_assistant"}
        self.stats.commands += 1
        client.publish(self.topics.command(command), json.dumps(body), qos=1)
        try:
            answer = await asyncio.wait_for(future, self.command_timeout)
        except TimeoutError:
            raise RemoteCommandError(
                f"{command}: {self.name} did not answer within {self.command_timeout:g} s"
            ) from None
        finally:
            self._pending.pop(request_id, None)
        if answer.get("ok"):
            return answer
        error, message = answer.get("error"), str(answer.get("message") or "")
        if error == "refused":
            raise SafetyRefusedError(str(answer.get("reason") or "refused"), message)
        if error == "disabled":
            raise UnsupportedCommandError(
                command, self.name, WHY_NOT_ENABLED.format(command=command)
            )
        if error in ("invalid", "unknown"):
            raise ValueError(message)
        raise RemoteCommandError(f"{command}: {message or error}")

    def _unsupported(self, command: str) -> UnsupportedCommandError:
        return UnsupportedCommandError(command, self.name, WHY_NOT_REMOTE)

    async def acknowledge(self, key: str | None = None) -> int:
        answer = await self._command("acknowledge", {"key": key} if key else {})
        return int(answer.get("count", 0))

    async def trip(self, reason: str, string: int | None = None) -> None:
        await self._command("trip", {"reason": reason, "string": string})

    async def reset_trip(self, string: int | None = None) -> None:
        await self._command("reset_trip", {"string": string})

    async def identify(self, ref: DeviceRef) -> None:
        await self._command("identify", {"device": str(ref)})

    async def set_equalization(self, enabled: bool) -> None:
        await self._command("set_equalization", {"enabled": enabled})

    async def set_float_voltage(self, volts: float | None) -> None:
        await self._command("set_float_voltage", {"value": volts})

    async def measure_resistance(self, ref: DeviceRef) -> None:
        raise self._unsupported("measure_resistance")

    async def set_relay(self, ref: DeviceRef, channel: int, on: bool) -> None:
        raise self._unsupported("set_relay")

    async def rescan(self) -> list[DeviceRef]:
        raise self._unsupported("rescan")

    async def apply_config(self, config: ManagerConfig) -> None:
        """The consumer's settings changed. Only the float target is the appliance's to take
        (when its site file allows it); thresholds, trip policy and layout stay in the site
        file, where the trip that runs without the consumer reads them."""
        before, self._config = self._config, config
        state = self.appliance
        wanted = config.float_voltage
        # Only a target the consumer changed: another setting's change must not send the
        # consumer's stale (or absent) float voltage over the appliance's own.
        if state is not None and wanted not in (before.float_voltage, state.float_voltage):
            await self.set_float_voltage(wanted)

    def diagnostics(self) -> dict[str, Any]:
        """JSON-safe facts for a bug report: no password."""
        state, snap = self.appliance, self.snapshot
        return {
            "source": "remote_appliance",
            "url": self.address.url(),
            "connected": self.connected,
            "appliance_online": self.appliance_online,
            "last_error": self.last_error,
            "commands": sorted(self.commands),
            "appliance_discovery": self.discovery_seen,
            "capabilities": sorted(c.value for c in self.capabilities),
            "status": snap.status.value if snap else None,
            "snapshot_time": snap.timestamp.isoformat() if snap else None,
            "snapshot_sent_at": state.sent_at.isoformat() if state else None,
            "snapshot_age_s": (
                round(time.time() - state.sent_at.timestamp(), 1) if state else None
            ),
            "stats": {
                "connects": self.stats.connects,
                "snapshots": self.stats.snapshots,
                "events": self.stats.events,
                "duplicates": self.stats.duplicates,
                "bad_payloads": self.stats.bad_payloads,
                "commands": self.stats.commands,
            },
        }
