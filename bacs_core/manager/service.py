"""The Manager: owns the buses and conducts the poll cycle; the parts beside it do the work.

One asyncio task; each cycle polls every bus concurrently (each bus by its own owner), then
observes, decides the breaker, equalizes, judges alarms and publishes an immutable
SystemSnapshot and the cycle's events. The thermal-runaway trip happens inside this loop:
nothing outside (Home Assistant included) is waited for.

Beside it: topology (what is where), presence (who answers), observation (readings → what
the engines judge), actuators (every bus write), balancing, history, assembly (the
snapshot), persisted (what survives a restart) and diagnostics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..bus import (
    AnyReading,
    BusClient,
    BusConnectionError,
    DeviceIdentity,
    RegisterTransport,
    open_transport,
)
from ..events import Event, EventType
from ..listeners import EventListener, Listeners, SnapshotListener
from ..model import RELAY_CHANNELS, Command, DeviceFamily
from ..snapshot import (
    Capability,
    DeviceRef,
    SystemSnapshot,
    TripState,
    WeakBlock,
)
from ..source import MANAGER_CAPABILITIES
from ..tasks import cancel_and_wait
from .actuators import Actuators
from .alarms import AlarmEngine
from .assembly import CycleFacts, SnapshotAssembler
from .balancing import equalize_string
from .conditions import (
    RECOVERED_KEY,
    breaker_gaps,
    is_failed_key,
    safety_conditions,
    stale_conditions,
    stale_devices,
    unwatched_blocks,
    unwatched_condition,
)
from .config import ManagerConfig
from .diagnostics import diagnostics
from .history import History
from .observation import (
    Observer,
    alarm_observation,
    blind,
    relay_states,
)
from .persisted import PersistedState, load_state
from .presence import Presence
from .runaway import RunawayDetector, RunawayStatus
from .safety import Safety, SafetyRefusedError, TripSettings
from .search import DeviceSearch, missing_relays
from .storage import (
    FileStorage,
    MemoryStorage,
    Storage,
)
from .topology import Topology

_LOG = logging.getLogger(__name__)
REDISCOVER_S = 60.0  # a bus with no devices is scanned again this often

# Safety events are logged as well as announced: a trip must be in the log of any host.
_LOGGED_EVENTS = {
    EventType.RUNAWAY_DETECTED: logging.WARNING,
    EventType.TRIP_COUNTDOWN: logging.WARNING,
    EventType.TRIPPED: logging.WARNING,
    EventType.TRIP_FAILED: logging.ERROR,
    EventType.TRIP_RESET: logging.WARNING,
}


class Manager:
    def __init__(
        self,
        config: ManagerConfig,
        *,
        storage: Storage | None = None,
        transports: Mapping[str, RegisterTransport] | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        if storage is None:
            storage = FileStorage(config.storage_path) if config.storage_path else MemoryStorage()
        self._storage = storage
        self._clock = clock or time.monotonic
        self._wall = wall_clock or (lambda: datetime.now(UTC))
        self._clients: dict[str, BusClient] = {}
        for bus in config.buses:
            transport = (transports or {}).get(bus.id) or open_transport(
                bus.url, timeout=bus.timeout, retries=bus.retries
            )
            self._clients[bus.id] = BusClient(transport, bus.id)
        self.topology = Topology([b.id for b in config.buses])
        self.presence = Presence()
        self.observer = Observer(
            config.poll_interval, config.thresholds.resistance_vs_baseline.alarm_high or 1.5
        )
        self.actuators = Actuators(self._clients, self.topology, lambda: self.config.poll_interval)
        self.search = DeviceSearch(self._clients, self.topology)
        self.alarms = AlarmEngine(config.thresholds, latch_alarms=config.latch_alarms)
        self.runaway = RunawayDetector(config.runaway)
        self.safety = Safety(TripSettings())
        self.history = History()
        self._assembler = SnapshotAssembler(
            self.topology, self.presence, self._clients, self.observer.trends, self.history
        )
        self.snapshot: SystemSnapshot | None = None
        self._listeners = Listeners()
        self._task: asyncio.Task[None] | None = None
        self._cycle = 0
        self._saved: str | None = None
        self._lock = asyncio.Lock()
        self._equalization = config.equalization.enabled
        self._float_voltage = config.float_voltage
        self._started = False
        self._stopping = False
        self._pre_alert = False
        self._recovered: str | None = None  # the state came from the backup copy: why
        self._save_problem: str | None = None
        self._stale_known: set[DeviceRef] = set()

    # -- listeners ------------------------------------------------------------------------
    def add_snapshot_listener(self, cb: SnapshotListener) -> Callable[[], None]:
        return self._listeners.add_snapshot_listener(cb)

    def add_event_listener(self, cb: EventListener) -> Callable[[], None]:
        return self._listeners.add_event_listener(cb)

    def _emit(self, events: Sequence[Event]) -> None:
        for event in events:
            if (level := _LOGGED_EVENTS.get(event.type)) is not None:
                _LOG.log(level, "%s: %s", event.type.value, event.message)
        self._listeners.emit(events)

    def _publish(self, snapshot: SystemSnapshot) -> None:
        self._listeners.publish(snapshot)

    # -- life cycle -------------------------------------------------------------------------
    async def start(self, *, run_loop: bool = True) -> None:
        """Restore state, open the buses, discover devices and start the poll loop.

        After a restart the devices seen before are probed first, so the first cycle (and
        with it a latched trip) comes within seconds, not after a full scan of every address
        (25 s on a sparse bus); the other addresses are scanned a batch per cycle after."""
        await self._restore()
        for client in self._clients.values():
            try:
                await client.connect()
            except BusConnectionError as err:
                _LOG.warning("bus %s: %s (will retry)", client.bus_id, err)
        self._stopping = False
        if self.search.known:
            await self.search.fast_start()
            self._rebuild()
        else:
            await self.discover()
        self._started = True
        if run_loop:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="bacs-manager")

    async def stop(self) -> None:
        """Stop the loop, switch every shunt off, save state and free the ports. Idempotent."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            await cancel_and_wait(task)
        if self._started:
            async with self._lock:
                await self.actuators.all_shunts_off()
                await self._persist(force=True)
        for client in self._clients.values():
            await client.close()
        self._started = False

    async def _loop(self) -> None:
        last_discovery = self._clock()
        while not self._stopping:
            interval = self.config.poll_interval  # read each cycle: the options may change it
            started = self._clock()
            try:
                if (
                    started - last_discovery >= REDISCOVER_S
                    and self.topology.buses_without_devices()
                ):
                    last_discovery = started
                    await self.rescan()
                await self.poll_once()
            except Exception:  # the loop must outlive any one bad cycle
                _LOG.exception("poll cycle failed")
            # The interval is on the manager's clock; a clock that runs faster than real time
            # (a simulator's, with its ``rate``) is slept in real seconds.
            rate = float(getattr(self._clock, "rate", 1.0)) or 1.0
            await asyncio.sleep(max(0.0, interval - (self._clock() - started)) / rate)

    # -- discovery --------------------------------------------------------------------------
    async def discover(self) -> list[DeviceRef]:
        """Scan every bus and (re)build strings. Returns the refs that are new."""
        new = await self.topology.discover(self._clients)
        self._rebuild()
        return new

    async def rescan(self) -> list[DeviceRef]:
        async with self._lock:
            for client in self._clients.values():
                await client.ensure_connected()
            new = await self.discover()
        now = self._wall()
        self._emit(
            [Event(EventType.DEVICE_ADDED, now, f"new device {ref}", device=ref) for ref in new]
        )
        return new

    def _rebuild(self) -> None:
        cfg = self.config
        # A block's resistance history follows its module: to a new address, and never to
        # another module wired in at the same one.
        moved, replaced = self.topology.take_changes()
        trends = self.observer.trends
        for old, new in moved.items():
            if old in trends:
                trends[new] = trends.pop(old)
        for ref in replaced:
            trends.pop(ref, None)
        self.topology.rebuild(cfg, self._equalization, self._float_voltage)
        # Auto-trip wants one breaker per string (at least one while no string is known
        # yet): fewer known breakers means the path to the breaker is unavailable.
        expected = max(len(self.topology.strings), 1) if cfg.trip.auto else 0
        self.safety.reconfigure(
            TripSettings(
                self.topology.breakers(cfg),
                cfg.trip.pre_trip_delay,
                cfg.trip.verify_cycles,
                cfg.trip.lost_bus_policy,
                cfg.trip.lost_bus_timeout,
                expected=expected,
                scope=cfg.trip.scope,
                strings=tuple(s.index for s in self.topology.strings),
            )
        )
        self.search.remember_relays()
        self.observer.track_modules(self.topology.ordered(DeviceFamily.BATTERY_MODULE))

    # -- the cycle ----------------------------------------------------------------------------
    async def poll_once(self) -> SystemSnapshot:
        async with self._lock:
            return await self._cycle_locked()

    async def _cycle_locked(self) -> SystemSnapshot:
        started = now_s = self._clock()
        now = self._wall()
        self._cycle += 1
        missing = missing_relays(self.safety.settings, self.topology)
        events = self._added(now, await self.search.relays(now_s, missing))
        readings = await self._poll()
        events += self.presence.track(
            now, readings, self._clients, self.config.thresholds.comm_lost_cycles
        )
        observed = self.observer.observe(now, self.topology, readings, self.presence)
        events += observed.events
        runaway = self.runaway.update(now_s, observed.thermal)
        events += self._announce_pre_alert(now, runaway)

        # Safety first: the breaker decision and its relay writes come before anything else.
        decision = self.safety.update(
            now,
            now_s,
            runaway.confirmed,
            runaway.reason,
            runaway.pre_alert,
            relay_states(self.topology, readings),
            blind(self.topology, readings),
            runaway_strings=runaway.confirmed_strings,
            pre_alert_strings=runaway.pre_alert_strings,
        )
        events += decision.events
        await self.actuators.drive_relays(decision.outputs)

        for s in self.topology.strings:  # equalization pauses on a pre-alert
            events += await equalize_string(
                now, now_s, s, self.topology, readings, runaway.pre_alert, self.actuators
            )
        unwatched = unwatched_blocks(runaway.unwatched, self.topology, readings)
        safety = replace(decision.snapshot, unwatched_blocks=unwatched)
        stale = stale_devices(readings)
        observation = alarm_observation(observed.strings, self.topology, readings, self.presence)
        conditions = [
            *safety_conditions(
                safety,
                bool(self.safety.settings.wanted),
                breaker_gaps(self.safety.settings, self.topology, self.presence),
                self._recovered,
                self._save_problem,
            ),
            unwatched_condition(safety.unwatched_blocks),
            *stale_conditions(stale, self.topology, self._stale_known),
        ]
        alarm_update = self.alarms.evaluate(now, replace(observation, conditions=conditions))
        events += alarm_update.events
        self.history.record_cycle(now, now_s, self.topology.strings, readings)
        snapshot = self._assembler.build(
            CycleFacts(
                now,
                self._cycle,
                round(self._clock() - started, 4),
                readings,
                alarm_update,
                safety,
                self._equalization,
                stale,
            ),
            self.safety.breakers,
        )
        self.snapshot = snapshot
        await self._persist()
        self._emit(events)
        self._publish(snapshot)
        # Last, so a fast start's first cycle (a latched trip re-applied) waits for nothing.
        if not self._stopping:
            self._emit(self._added(now, await self.search.scan_some()))
        return snapshot

    async def _poll(self) -> dict[DeviceRef, AnyReading]:
        """Every bus at once, each by its own client; one reading per known device."""
        per_bus: dict[str, list[DeviceIdentity]] = {b: [] for b in self._clients}
        for ref, dev in self.topology.devices.items():
            per_bus.setdefault(ref.bus, []).append(dev)
        results = await asyncio.gather(
            *(
                self._clients[b].poll(sorted(devs, key=lambda d: d.unit))
                for b, devs in per_bus.items()
            )
        )
        readings: dict[DeviceRef, AnyReading] = {}
        for bus_id, result in zip(per_bus, results, strict=True):
            for unit, reading in result.items():
                readings[DeviceRef(bus_id, unit)] = reading
        self.actuators.observe(readings)
        return readings

    def _added(self, now: datetime, found: Sequence[DeviceRef]) -> list[Event]:
        if not found:
            return []
        self._rebuild()
        return [
            Event(EventType.DEVICE_ADDED, now, f"new device {ref}", device=ref) for ref in found
        ]

    def _announce_pre_alert(self, now: datetime, runaway: RunawayStatus) -> list[Event]:
        rising = runaway.pre_alert and not self._pre_alert
        self._pre_alert = runaway.pre_alert
        if not rising:
            return []
        reason = runaway.reason or "thermal-runaway pre-alert: shunts stopped"
        return [Event(EventType.RUNAWAY_PRE_ALERT, now, reason)]

    def weak_blocks(self, string: int) -> tuple[WeakBlock, ...]:
        """Blocks that fall fastest in the present (or last) discharge, worst first."""
        return self.history.weak_blocks.get(string, ())

    # -- persistence --------------------------------------------------------------------------
    async def _restore(self) -> None:
        """The stored state, before any bus is opened: authoritative for the trip. A store
        that cannot be read or fails validation (and has no good previous copy) leaves the
        trip state UNKNOWN, never ARMED."""
        state = await load_state(self._storage)
        if isinstance(state, str):
            _LOG.error("manager state unreadable, breaker trip state UNKNOWN: %s", state)
            self.safety.mark_unknown(state)
            return
        if state is None:
            return  # nothing stored yet: a first start
        self.alarms.restore(state.alarms)
        self.safety.restore(state.safety)
        self.runaway.restore(state.runaway)
        self.observer.trends.update(state.trends)
        self.search.relay_hints = list(state.relays)
        self.search.known = state.units
        self._recovered = state.recovered

    async def _persist(self, *, force: bool = False) -> None:
        state = PersistedState(
            self.safety.record(),
            self.alarms.state_dict(),
            self.runaway.state_dict(),
            self.observer.trends,
            tuple(self.search.relay_hints),
            tuple(sorted(self.topology.devices, key=lambda r: (r.bus, r.unit))),
        )
        text = json.dumps(state.as_dict(), sort_keys=True, default=str)
        if text == self._saved and not force:
            return
        try:
            await self._storage.save(json.loads(text))
        except OSError as err:
            if self._save_problem is None:
                _LOG.error("cannot save manager state: %s", err)
            self._save_problem = str(err)
            return
        self._saved = text
        self._save_problem = None

    # -- commands ------------------------------------------------------------------------------
    async def acknowledge(self, key: str | None = None) -> int:
        events = self.alarms.acknowledge(self._wall(), key)
        if key in (None, RECOVERED_KEY):
            self._recovered = None  # read and understood: the warning clears next cycle
        await self._persist()
        self._emit(events)
        return len(events)

    async def trip(self, reason: str, string: int | None = None) -> None:
        """Open a string's breaker(s) now, or every breaker (``None``): a manual trip,
        without waiting for the next cycle."""
        async with self._lock:
            events = self.safety.trip(self._wall(), reason, string)
            await self.actuators.drive_relays(self.safety.outputs())
            await self._persist(force=True)
        self._emit(events)

    async def reset_trip(self, string: int | None = None) -> None:
        """Release a string's trip relays (``None``: every string's). Raises
        SafetyRefusedError with the reason when unsafe: that string's runaway or pre-alert
        stands (the pre-alert counts too: after a restart the detector sees a hot block
        before it has the history to confirm a runaway again), or its breaker cannot be read.
        The reset also acknowledges the string's latched ``trip_failed`` alarm."""
        async with self._lock:
            now = self._wall()
            events = self.safety.reset(now, string=string)
            await self.actuators.drive_relays(self.safety.outputs())
            events += self._acknowledge_failed(now, string)
            await self._persist(force=True)
        self._emit(events)

    def _acknowledge_failed(self, now: datetime, string: int | None) -> list[Event]:
        shown = self.snapshot.alarms if self.snapshot else ()
        keys = [a.key for a in shown if is_failed_key(a.key, string)]
        return [e for key in keys for e in self.alarms.acknowledge(now, key)]

    async def measure_resistance(self, ref: DeviceRef) -> None:
        self.topology.device(ref, DeviceFamily.BATTERY_MODULE)
        async with self._lock:
            await self.actuators.command(ref, Command.MEASURE_RI, DeviceFamily.BATTERY_MODULE)

    async def identify(self, ref: DeviceRef) -> None:
        self.topology.device(ref)
        async with self._lock:
            await self.actuators.command(ref, Command.IDENTIFY, None)

    async def set_relay(self, ref: DeviceRef, channel: int, on: bool) -> None:
        self.topology.device(ref, DeviceFamily.RELAY)
        if not 1 <= channel <= RELAY_CHANNELS:
            raise ValueError(f"relay channel {channel} is not 1..{RELAY_CHANNELS}")
        breaker = self.safety.settings.breaker_of(ref, channel)
        if breaker is not None and not on and self.safety.holds(ref, channel):
            raise SafetyRefusedError(
                "use_reset",
                "this relay holds the breaker trip: use the "
                "reset action, which checks that it is safe",
            )
        if breaker is not None and on:
            await self.trip("breaker relay switched on by hand", breaker.string)
            return
        async with self._lock:
            await self.actuators.set_relay(ref, channel, on)

    async def set_equalization(self, enabled: bool) -> None:
        self._equalization = enabled
        for s in self.topology.strings:
            s.controller.settings = replace(s.controller.settings, enabled=enabled)

    async def set_float_voltage(self, volts: float | None) -> None:
        self._float_voltage = volts
        for s in self.topology.strings:
            s.controller.float_voltage_override = volts

    async def apply_config(self, config: ManagerConfig) -> None:
        """New thresholds, equalization and trip settings; the buses stay as they are."""
        async with self._lock:
            self.config = config
            self.alarms.thresholds = config.thresholds
            self.alarms.latch_alarms = config.latch_alarms
            self.runaway.settings = config.runaway
            self.observer.poll_interval = config.poll_interval
            self._equalization = config.equalization.enabled
            self._float_voltage = config.float_voltage
            for s in self.topology.strings:
                s.controller.settings = config.equalization
                s.controller.float_voltage_override = config.float_voltage
            self._rebuild()

    def diagnostics(self) -> dict[str, Any]:
        """JSON-safe facts for a bug report; hosts and serial numbers are left out."""
        return diagnostics(
            self.config,
            self.topology,
            self.presence,
            self._clients,
            self.safety,
            self.snapshot,
            self._cycle,
            self._equalization,
        )

    @property
    def capabilities(self) -> frozenset[Capability]:
        """An active source: everything (bacs_core/source.py)."""
        return MANAGER_CAPABILITIES

    @property
    def trip_state(self) -> TripState:
        return self.safety.state

    @property
    def devices(self) -> Mapping[DeviceRef, DeviceIdentity]:
        return dict(self.topology.devices)
