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
import json
import logging
import time
import uuid
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..events import Event
from ..listeners import EventListener, Listeners, SnapshotListener
from ..manager.config import ManagerConfig
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
from ..source import SourceUnavailableError
from .commands import COMMAND_TIMEOUT_S, CommandChannel, RemoteCommandError, RemoteCommands
from .link import BrokerLink
from .messages import EventGate, SeenIds, event_from_payload, remote_capabilities
from .url import RemoteAddress

_LOG = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0  # for the broker and the appliance's retained snapshot
# After subscribing: an existing site has retained topics (availability, alarms), which the
# broker sends at once. Nothing under <base>/ by then: a wrong prefix or site, said now.
NO_SITE_GRACE_S = 3.0
EVENT_HOLD_S = 2.0  # longest an event waits for the snapshot of its cycle

__all__ = ["RemoteCommandError", "RemoteSource", "RemoteUnavailableError"]


class RemoteUnavailableError(SourceUnavailableError):
    """No snapshot at start; ``problem`` is RemoteSource.problem's code for it."""

    def __init__(self, message: str, problem: str | None) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(slots=True)
class RemoteStats:
    connects: int = 0
    snapshots: int = 0
    events: int = 0
    duplicates: int = 0
    bad_payloads: int = 0


class RemoteSource(RemoteCommands):
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
        self.snapshot: SystemSnapshot | None = None
        self.appliance: ApplianceState | None = None
        self.appliance_online: bool | None = None  # its availability topic; None: not seen
        self.connected = False  # to the broker
        self.last_error: str | None = None
        self.stats = RemoteStats()
        self._listeners = Listeners()
        self._channel = CommandChannel(self.name, self.topics, self._send, command_timeout)
        self._seen = SeenIds()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: BrokerLink | None = None
        self._first = asyncio.Event()
        self._got_anything = False  # any message under <base>/ (the site exists)
        self._refused = False
        self._give_up = asyncio.Event()  # refused, or no such site: fail at once, not later
        self._site_check: asyncio.TimerHandle | None = None
        self._gate = EventGate(self._tell, EVENT_HOLD_S)  # events wait for their snapshot
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
    def command_timeout(self) -> float:
        """Seconds a command waits for the appliance's answer."""
        return self._channel.timeout

    @command_timeout.setter
    def command_timeout(self, seconds: float) -> None:
        self._channel.timeout = seconds

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
        return self._listeners.add_snapshot_listener(cb)

    def add_event_listener(self, cb: EventListener) -> Callable[[], None]:
        return self._listeners.add_event_listener(cb)

    # -- life cycle -------------------------------------------------------------------------
    async def start(self, *, run_loop: bool = True) -> None:
        """Connect and wait for the appliance's retained snapshot. SourceUnavailableError
        says why none came (broker down, refused, wrong site, snapshot not enabled).
        ``run_loop`` is accepted for the protocol: the appliance runs the cycle."""
        self._loop = asyncio.get_running_loop()
        self._first = asyncio.Event()
        self._give_up = asyncio.Event()
        t = self.topics
        self._link = BrokerLink(
            self.address,
            self.client_id,
            [  # retained ones come back in this order: the snapshot last, to find the rest
                (self.discovery_topic, 0),
                (t.alarms, 0),  # retained by every appliance: tells "no snapshot" from "no site"
                (t.availability, 1),
                (t.event, 1),
                (t.result, 1),
                (t.snapshot, 1),
            ],
            on_up=self._connected,
            on_failed=self._connect_failed,
            on_subscribed=self._subscribed,
            on_message=self._handle,
        )
        self._link.start(self._loop)
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
        link, self._link = self._link, None
        if self._site_check is not None:
            self._site_check.cancel()
            self._site_check = None
        self._gate.close()
        self._channel.close()
        if link is not None:
            await link.stop()
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

    # -- the event loop ----------------------------------------------------------------------
    def _linked(self) -> bool:
        return self._link is not None

    def _send(self, topic: str, payload: str, qos: int) -> None:
        if self._link is not None:
            self._link.publish(topic, payload, qos)

    def _connect_failed(self, why: str, refused: bool) -> None:
        self._refused = self._refused or refused
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
            self._publish(news=True)

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
                self._publish(news=True)
        elif topic == t.event:
            self._on_event(payload)
        elif topic == t.result:
            self._channel.on_result(payload)

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

    def _publish(self, *, news: bool = False) -> None:
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
        if snap == self.snapshot and not news:  # ``news``: why it cannot be reached changed
            return
        self.snapshot = snap
        # As the manager does: the snapshot is in place, then the cycle's events (a listener
        # reading trip_state sees the state they led to), then the snapshot listeners.
        self._gate.release(snap.timestamp)
        self._listeners.publish(snap)

    def _on_event(self, payload: bytes) -> None:
        try:
            raw = json.loads(payload)
            event = event_from_payload(raw)
        except (ValueError, KeyError, TypeError) as err:
            self.stats.bad_payloads += 1
            _LOG.warning("%s: an event that cannot be read (%s)", self.name, err)
            return
        if not self._seen.first_time(str(raw.get("id", ""))):
            self.stats.duplicates += 1
            return
        self.stats.events += 1
        snap = self.snapshot
        self._gate.add(event, snap.timestamp if snap is not None else None)

    def _tell(self, event: Event) -> None:
        self._listeners.emit((event,))

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
                "commands": self._channel.sent,
            },
        }
