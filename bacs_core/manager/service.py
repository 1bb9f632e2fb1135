"""The Manager: owns the buses, runs the poll cycle and hosts equalization, alarms and the trip.

One asyncio task; each cycle polls every bus concurrently (each bus by its own owner), then
decides charge states, shunt currents, alarms and the breaker, writes what must be written,
and publishes an immutable SystemSnapshot and the cycle's events. The thermal-runaway trip
happens inside this loop: nothing outside (Home Assistant included) is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ..bus import (
    AnyReading,
    BusClient,
    BusConnectionError,
    BusError,
    CurrentReading,
    DeviceIdentity,
    EnvironmentReading,
    ModuleReading,
    RegisterTransport,
    RelayReading,
    open_transport,
)
from ..events import Event, EventType
from ..model import MODULE_SPECS, RELAY_CHANNELS, Command, DeviceFamily, Quality
from ..snapshot import (
    MISSING,
    BalancingState,
    BlockExtreme,
    BreakerState,
    BusSnapshot,
    ChargeState,
    CurrentSensorSnapshot,
    DeviceInfo,
    DeviceRef,
    EnvironmentSnapshot,
    ManagerStatus,
    ModuleSnapshot,
    RelaySnapshot,
    Severity,
    StringSnapshot,
    SystemSnapshot,
    TripState,
    Value,
    WeakBlock,
)
from .alarms import (
    AlarmEngine,
    ModuleObservation,
    Observation,
    SensorObservation,
    StringObservation,
)
from .charge_state import ChargeStateTracker
from .config import ManagerConfig
from .equalization import BlockInput, EqualizationController, StringCommands, StringInputs
from .runaway import RunawayDetector, StringThermal
from .safety import Breaker, RelayState, Safety, SafetyRefusedError, TripSettings
from .storage import FileStorage, MemoryStorage, Storage
from .trend import ResistanceTrend

_LOG = logging.getLogger(__name__)
SCAN_TIMEOUT_S = 0.1
SAMPLE_FLOAT_S = 20 * 60.0  # history: every 20 min on float
HISTORY_SAMPLES = 2000
REDISCOVER_S = 60.0
WATCHDOG_CYCLES = 3  # [issue 10 watchdog]


def watchdog_for(poll_interval_s: float) -> int:
    """[issue 10 watchdog] Module watchdog (s) for a poll interval: 3 cycles, register 1–600."""
    return max(1, min(600, math.ceil(WATCHDOG_CYCLES * poll_interval_s)))


PRE_ALERT_REPEAT_S = 3600.0  # a standing pre-alert is announced once, not every cycle

type SnapshotListener = Callable[[SystemSnapshot], None]
type EventListener = Callable[[Event], None]


@dataclass
class _StringRuntime:
    index: int
    name: str
    modules: list[DeviceRef]
    sensor: DeviceRef | None
    capacity_ah: float
    controller: EqualizationController
    charge: ChargeStateTracker
    soc: float = 100.0
    balancing: bool = False
    commands: StringCommands | None = None
    out_of_range: frozenset[int] = frozenset()


@dataclass
class HistorySample:
    at: datetime
    string: int
    voltages: tuple[float | None, ...]
    current: float | None


WEAK_BLOCKS_TOP = 5


@dataclass
class _History:
    """Block voltages over time: every 20 min on float, every cycle in a discharge, and the
    ranking of the blocks that fall fastest in the present (or last) discharge."""

    samples: list[HistorySample] = field(default_factory=list)
    last_float_sample: dict[int, float] = field(default_factory=dict)
    discharge_start: dict[int, tuple[float | None, ...]] = field(default_factory=dict)
    discharging: set[int] = field(default_factory=set)
    weak_blocks: dict[int, tuple[WeakBlock, ...]] = field(default_factory=dict)

    def record(
        self,
        now: datetime,
        now_s: float,
        string: int,
        state: ChargeState,
        volts: tuple[float | None, ...],
        current: float | None,
    ) -> None:
        if state is ChargeState.DISCHARGE:
            if string not in self.discharging:  # a new discharge: the ranking starts over
                self.discharging.add(string)
                self.discharge_start[string] = volts
            if current is None or current < 0:  # not the charger's first cycle back
                self.weak_blocks[string] = _rank_drops(self.discharge_start[string], volts)
            self.samples.append(HistorySample(now, string, volts, current))
        else:
            self.discharging.discard(string)
            if now_s - self.last_float_sample.get(string, -1e12) >= SAMPLE_FLOAT_S:
                self.last_float_sample[string] = now_s
                self.samples.append(HistorySample(now, string, volts, current))
        del self.samples[:-HISTORY_SAMPLES]


def _rank_drops(
    start: tuple[float | None, ...], latest: tuple[float | None, ...]
) -> tuple[WeakBlock, ...]:
    """(position, drop beyond the string's mean drop), worst first (battery-domain.md §5.1)."""
    drops = [
        (i + 1, a - b)
        for i, (a, b) in enumerate(zip(start, latest, strict=False))
        if a is not None and b is not None
    ]
    if not drops:
        return ()
    mean = statistics.mean(d for _, d in drops)
    ranked = sorted(((p, round(d - mean, 3)) for p, d in drops), key=lambda x: -x[1])
    return tuple(WeakBlock(p, d) for p, d in ranked[:WEAK_BLOCKS_TOP])


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
        self._devices: dict[DeviceRef, DeviceIdentity] = {}
        self._strings: list[_StringRuntime] = []
        self._relays: list[DeviceRef] = []
        self._sensors: list[DeviceRef] = []
        self._environment: list[DeviceRef] = []
        self._readings: dict[DeviceRef, AnyReading] = {}
        self._last_seen: dict[DeviceRef, datetime] = {}
        self._online: dict[DeviceRef, bool] = {}
        self._bus_ok: dict[str, bool] = {}
        self._trends: dict[DeviceRef, ResistanceTrend] = {}
        self.alarms = AlarmEngine(config.thresholds, latch_alarms=config.latch_alarms)
        self.runaway = RunawayDetector(config.runaway)
        self.safety = Safety(TripSettings())
        self.history = _History()
        self.snapshot: SystemSnapshot | None = None
        self._snapshot_listeners: list[SnapshotListener] = []
        self._event_listeners: list[EventListener] = []
        self._task: asyncio.Task[None] | None = None
        self._cycle = 0
        self._saved: str | None = None
        self._lock = asyncio.Lock()
        self._equalization = config.equalization.enabled
        self._float_voltage = config.float_voltage
        self._pending_events: list[Event] = []
        self._started = False
        self._pre_alert_at = -1e12
        self._restored_safety: dict[str, Any] = {}

    # -- listeners ------------------------------------------------------------------------
    def add_snapshot_listener(self, cb: SnapshotListener) -> Callable[[], None]:
        self._snapshot_listeners.append(cb)
        return lambda: self._snapshot_listeners.remove(cb)

    def add_event_listener(self, cb: EventListener) -> Callable[[], None]:
        self._event_listeners.append(cb)
        return lambda: self._event_listeners.remove(cb)

    def _emit(self, events: Sequence[Event]) -> None:
        for event in events:
            for cb in list(self._event_listeners):
                try:
                    cb(event)
                except Exception:  # a listener's bug never stops the manager
                    _LOG.exception("event listener failed")

    # -- life cycle -------------------------------------------------------------------------
    async def start(self, *, run_loop: bool = True) -> None:
        """Restore state, open the buses, discover devices and start the poll loop."""
        await self._restore()
        for client in self._clients.values():
            try:
                await client.connect()
            except BusConnectionError as err:
                _LOG.warning("bus %s: %s (will retry)", client.bus_id, err)
        await self.discover()
        self._started = True
        if run_loop:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="bacs-manager")

    async def stop(self) -> None:
        """Stop the loop, switch every shunt off, save state and free the ports. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._started:
            async with self._lock:
                for s in self._strings:
                    for ref in s.modules:
                        dev = self._devices.get(ref)
                        client = self._clients.get(ref.bus)
                        if dev is None or client is None or not client.connected:
                            continue
                        with contextlib.suppress(BusError):
                            await client.set_balance(dev, 0.0)
                await self._persist(force=True)
        for client in self._clients.values():
            await client.close()
        self._started = False

    async def _loop(self) -> None:
        interval = self.config.poll_interval
        last_discovery = self._clock()
        while True:
            started = self._clock()
            try:
                if started - last_discovery >= REDISCOVER_S and self._bus_without_devices():
                    last_discovery = started
                    await self.rescan()
                await self.poll_once()
            except Exception:  # the loop must outlive any one bad cycle
                _LOG.exception("poll cycle failed")
            # [issue 10 clock] the interval is on the manager's clock; a clock that runs
            # faster than real time (a simulator's, ``rate``) is slept in real seconds.
            rate = float(getattr(self._clock, "rate", 1.0)) or 1.0
            await asyncio.sleep(max(0.0, interval - (self._clock() - started)) / rate)

    # -- discovery --------------------------------------------------------------------------
    async def discover(self) -> list[DeviceRef]:
        """Scan every bus and (re)build strings. Returns the refs that are new."""
        found: dict[DeviceRef, DeviceIdentity] = {}
        for bus_id, client in self._clients.items():
            if not client.connected:
                continue
            try:
                result = await client.scan(timeout=SCAN_TIMEOUT_S)
            except BusConnectionError as err:
                _LOG.warning("bus %s lost during scan: %s", bus_id, err)
                continue
            for dev in result.devices:
                found[DeviceRef(bus_id, dev.unit)] = dev
        new = [ref for ref in found if ref not in self._devices]
        self._devices.update(found)
        self._build_topology()
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

    def _bus_without_devices(self) -> bool:
        """A bus that was down at start (or empty) is scanned again now and then."""
        with_devices = {ref.bus for ref in self._devices}
        return any(bus_id not in with_devices for bus_id in self._clients)

    def _ordered(self, family: DeviceFamily) -> list[DeviceRef]:
        bus_order = {b.id: i for i, b in enumerate(self.config.buses)}
        refs = [r for r, d in self._devices.items() if d.family is family]
        return sorted(refs, key=lambda r: (bus_order.get(r.bus, 99), r.unit))

    def _build_topology(self) -> None:
        cfg = self.config
        modules = self._ordered(DeviceFamily.BATTERY_MODULE)
        sensors = self._ordered(DeviceFamily.CURRENT_SENSOR)
        self._relays = self._ordered(DeviceFamily.RELAY)
        self._environment = self._ordered(DeviceFamily.ENVIRONMENT)
        self._sensors = sensors
        layout: list[tuple[str, list[DeviceRef], DeviceRef | None, float]] = []
        if cfg.strings:
            for s in cfg.strings:
                layout.append(
                    (s.name, list(s.modules), s.current_sensor, s.capacity_ah or cfg.capacity_ah)
                )
        elif modules:
            for k, part in enumerate(_split(modules, cfg.string_count, cfg.block_counts)):
                sensor = sensors[k] if k < len(sensors) else None
                layout.append((f"String {k + 1}", part, sensor, cfg.capacity_ah))
        old = {s.index: s for s in self._strings}
        strings: list[_StringRuntime] = []
        for k, (name, refs, sensor, capacity) in enumerate(layout, 1):
            previous = old.get(k)
            if previous and previous.modules == refs:
                previous.sensor = sensor
                strings.append(previous)
                continue
            controller = EqualizationController(
                replace(cfg.equalization, enabled=self._equalization),
                float_voltage_override=self._float_voltage,
            )
            strings.append(
                _StringRuntime(
                    k, name, refs, sensor, capacity, controller, ChargeStateTracker(capacity)
                )
            )
        self._strings = strings
        breakers = [Breaker(b.relay, b.channel, b.input) for b in cfg.trip.breakers]
        if cfg.trip.auto and not breakers:
            for k in range(len(strings)):
                relay_index, channel = divmod(k, RELAY_CHANNELS)
                if relay_index < len(self._relays):
                    breakers.append(Breaker(self._relays[relay_index], channel + 1, channel + 1))
        settings = TripSettings(
            tuple(breakers),
            cfg.trip.pre_trip_delay,
            cfg.trip.verify_cycles,
            cfg.trip.lost_bus_policy,
            cfg.trip.lost_bus_timeout,
        )
        if settings != self.safety.settings:
            # A safety built before the breakers were known (DISABLED) kept nothing: restore
            # the stored trip, so a latched trip survives a restart.
            state = self.safety.state_dict() if self.safety.breakers else self._restored_safety
            self.safety = Safety(settings)
            self.safety.restore(state)
        for ref in modules:
            self._trends.setdefault(
                ref, ResistanceTrend(cfg.thresholds.resistance_vs_baseline.alarm_high or 1.5)
            )

    # -- the cycle ----------------------------------------------------------------------------
    async def poll_once(self) -> SystemSnapshot:
        async with self._lock:
            return await self._cycle_locked()

    async def _cycle_locked(self) -> SystemSnapshot:
        started = self._clock()
        now = self._wall()
        now_s = self._clock()
        self._cycle += 1
        events: list[Event] = list(self._pending_events)
        self._pending_events.clear()
        per_bus: dict[str, list[DeviceIdentity]] = {b: [] for b in self._clients}
        for ref, dev in self._devices.items():
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
        self._readings = readings
        events += self._track_presence(now, readings)

        env_temp = self._ambient(readings)
        observations: list[StringObservation] = []
        thermal: list[StringThermal] = []
        for s in self._strings:
            obs, th = self._observe_string(now, now_s, s, readings, env_temp, events)
            observations.append(obs)
            thermal.append(th)
        runaway = self.runaway.update(now_s, thermal)
        if runaway.pre_alert and not getattr(self, "_pre_alert", False):
            events.append(
                Event(
                    EventType.RUNAWAY_PRE_ALERT,
                    now,
                    runaway.reason or "thermal-runaway pre-alert: shunts stopped",
                )
            )
        self._pre_alert = runaway.pre_alert

        # Safety first: the breaker decision and its relay writes come before anything else.
        relay_states = {
            ref: RelayState(r.relays, r.inputs)
            for ref in self._relays
            if isinstance(r := readings.get(ref), RelayReading) and r.quality is not Quality.MISSING
        }
        blind = bool(self._strings) and not any(
            readings.get(ref) is not None and readings[ref].quality is not Quality.MISSING
            for s in self._strings
            for ref in s.modules
        )
        decision = self.safety.update(
            now, now_s, runaway.confirmed, runaway.reason, runaway.pre_alert, relay_states, blind
        )
        events += decision.events
        await self._drive_relays(decision.outputs, readings)

        # Equalization (paused on pre-alert) and shunt writes.
        for s in self._strings:
            events += await self._equalize(now, now_s, s, readings, runaway.pre_alert)

        alarm_update = self.alarms.evaluate(now, self._observation(observations, readings))
        events += alarm_update.events
        safety_alarm = decision.snapshot.trip_state is TripState.FAILED
        snapshot = self._build_snapshot(
            now, now_s, started, readings, alarm_update, decision, safety_alarm
        )
        self.snapshot = snapshot
        await self._persist()
        self._emit(events)
        for cb in list(self._snapshot_listeners):
            try:
                cb(snapshot)
            except Exception:
                _LOG.exception("snapshot listener failed")
        return snapshot

    def _ambient(self, readings: Mapping[DeviceRef, AnyReading]) -> float | None:
        for ref in self._environment:
            r = readings.get(ref)
            if isinstance(r, EnvironmentReading) and r.temperature.quality is Quality.OK:
                return r.temperature.value
        return None

    def _track_presence(
        self, now: datetime, readings: Mapping[DeviceRef, AnyReading]
    ) -> list[Event]:
        events: list[Event] = []
        limit = self.config.thresholds.comm_lost_cycles
        for ref, reading in readings.items():
            client = self._clients[ref.bus]
            answered = reading.quality is not Quality.MISSING
            if answered:
                self._last_seen[ref] = now
            online = answered or client.consecutive_failures(ref.unit) < limit
            before = self._online.get(ref)
            if before is not None and before != online:
                kind = EventType.DEVICE_FOUND if online else EventType.DEVICE_LOST
                events.append(
                    Event(
                        kind,
                        now,
                        f"{ref} {'answers again' if online else 'stopped answering'}",
                        device=ref,
                    )
                )
            self._online[ref] = online
        for bus_id, client in self._clients.items():
            devices = [r for r in readings if r.bus == bus_id]
            ok = client.connected and (
                not devices or any(readings[r].quality is not Quality.MISSING for r in devices)
            )
            before = self._bus_ok.get(bus_id)
            if before is not None and before != ok:
                kind = EventType.BUS_RESTORED if ok else EventType.BUS_LOST
                events.append(Event(kind, now, f"bus {bus_id} {'is back' if ok else 'is lost'}"))
                log = _LOG.info if ok else _LOG.warning
                log("bus %s %s", bus_id, "restored" if ok else "lost")
            self._bus_ok[bus_id] = ok
        return events

    def _module_values(
        self, ref: DeviceRef, readings: Mapping[DeviceRef, AnyReading]
    ) -> ModuleReading | None:
        r = readings.get(ref)
        return r if isinstance(r, ModuleReading) else None

    def _string_current(
        self, s: _StringRuntime, readings: Mapping[DeviceRef, AnyReading]
    ) -> float | None:
        if s.sensor is None:
            return None
        r = readings.get(s.sensor)
        if isinstance(r, CurrentReading) and r.current.quality is Quality.OK:
            return r.current.value
        return None

    def _observe_string(
        self,
        now: datetime,
        now_s: float,
        s: _StringRuntime,
        readings: Mapping[DeviceRef, AnyReading],
        env_temp: float | None,
        events: list[Event],
    ) -> tuple[StringObservation, StringThermal]:
        volts: list[float] = []
        cell_values: list[float] = []
        cells_total = 0
        temps_ok: list[float | None] = []
        modules: list[ModuleObservation] = []
        ris: list[float] = []
        for ref in s.modules:
            m = self._module_values(ref, readings)
            dev = self._devices.get(ref)
            cells = MODULE_SPECS[dev.kind].cells if dev else 6
            if m is not None and m.voltage.quality is Quality.OK and m.voltage.value is not None:
                volts.append(m.voltage.value)
                cell_values.append(m.voltage.value / cells)
                cells_total += cells
            temps_ok.append(
                m.temperature.value
                if m is not None and m.temperature.quality is Quality.OK
                else None
            )
            if (
                m is not None
                and m.resistance.quality is Quality.OK
                and m.resistance.value is not None
            ):
                ris.append(m.resistance.value)
                self._trends[ref].add(now, m.resistance.value, m.ri_sequence)
        median_ri = statistics.median(ris) if len(ris) >= 3 else None
        current = self._string_current(s, readings)
        mean_cell = sum(volts) / cells_total if cells_total else None
        before = s.charge.state
        state = s.charge.update(current, mean_cell)
        if before is not ChargeState.UNKNOWN and state != before:
            events.append(
                Event(
                    EventType.CHARGE_STATE_CHANGED,
                    now,
                    f"{s.name}: {before.value} → {state.value}",
                    string=s.index,
                    data={"from": before.value, "to": state.value},
                )
            )
        self._update_soc(s, state, current, mean_cell)
        spread = max(cell_values) - min(cell_values) if len(cell_values) >= 2 else None
        ambient = env_temp
        for pos, ref in enumerate(s.modules, 1):
            m = self._module_values(ref, readings)
            dev = self._devices.get(ref)
            trend = self._trends.get(ref)
            modules.append(
                ModuleObservation(
                    ref,
                    s.index,
                    pos,
                    MODULE_SPECS[dev.kind].cells if dev else 6,
                    self._online.get(ref, True),
                    m.voltage if m else MISSING,
                    m.temperature if m else MISSING,
                    m.resistance if m else MISSING,
                    trend.baseline if trend else None,
                    median_ri,
                )
            )
        obs = StringObservation(s.index, state, mean_cell, spread, ambient, modules)
        thermal = StringThermal(s.index, temps_ok, env_temp, current, state, s.balancing)
        return obs, thermal

    def _update_soc(
        self, s: _StringRuntime, state: ChargeState, current: float | None, cell_v: float | None
    ) -> None:
        """A plain estimate: full on float, coulomb counting away from it, OCV at rest."""
        if state is ChargeState.FLOAT:
            s.soc = min(100.0, s.soc + 0.5)  # back to full over a few cycles of float
        elif current is not None and state in (ChargeState.DISCHARGE, ChargeState.CHARGE):
            hours = self.config.poll_interval / 3600.0
            s.soc = min(100.0, max(0.0, s.soc + 100.0 * current * hours / s.capacity_ah))
        elif state is ChargeState.REST and cell_v is not None:
            s.soc = min(100.0, max(0.0, (cell_v - 1.98) / 0.17 * 100.0))

    async def _drive_relays(
        self,
        outputs: Mapping[DeviceRef, Mapping[int, bool]],
        readings: Mapping[DeviceRef, AnyReading],
    ) -> None:
        for ref, channels in outputs.items():
            dev = self._devices.get(ref)
            client = self._clients.get(ref.bus)
            if dev is None or client is None:
                continue
            r = readings.get(ref)
            current = (
                list(r.relays)
                if isinstance(r, RelayReading) and r.relays
                else [False] * RELAY_CHANNELS
            )
            wanted = list(current)
            for channel, on in channels.items():
                wanted[channel - 1] = on
            if wanted != current or any(channels.values()):
                try:
                    await client.set_relays(dev, wanted)
                except BusError as err:
                    _LOG.error("cannot drive relay module %s: %s", ref, err)

    async def _equalize(
        self,
        now: datetime,
        now_s: float,
        s: _StringRuntime,
        readings: Mapping[DeviceRef, AnyReading],
        pause: bool,
    ) -> list[Event]:
        blocks: list[BlockInput] = []
        for ref in s.modules:
            m = self._module_values(ref, readings)
            dev = self._devices[ref]
            spec = MODULE_SPECS[dev.kind]
            ok = m is not None and m.quality is not Quality.MISSING
            blocks.append(
                BlockInput(
                    m.voltage.value if m and m.voltage.quality is Quality.OK else None,
                    m.temperature.value if m and m.temperature.usable else None,
                    m.module_temperature.value if m and m.module_temperature.usable else None,
                    spec.cells,
                    spec.shunt_max_a,
                    ok,
                )
            )
        inputs = StringInputs(
            blocks, s.charge.state, self._string_current(s, readings), s.capacity_ah, pause
        )
        commands = s.controller.update(now_s, inputs)
        previous = s.commands
        s.commands = commands
        events: list[Event] = []
        client = None
        for i, ref in enumerate(s.modules):
            client = self._clients[ref.bus]
            amps = commands.shunt[i]
            was = previous.shunt[i] if previous else None
            # Refresh every balancing module each cycle (its watchdog), and write zero once.
            if amps > 0 or (was is not None and was > 0) or previous is None:
                if not blocks[i].comms_ok:
                    continue
                try:
                    # [issue 10 watchdog] setpoint and watchdog are adjacent registers: one
                    # write refreshes the shunt and re-asserts a watchdog of ≥ 3 intervals.
                    await client.write_values(
                        self._devices[ref],
                        {"balance_setpoint": amps, "watchdog": self._watchdog_s()},
                    )
                except BusError as err:
                    _LOG.debug("shunt write to %s failed: %s", ref, err)
        active = any(st is BalancingState.ACTIVE for st in commands.state)
        if active != s.balancing:
            kind = EventType.BALANCING_STARTED if active else EventType.BALANCING_FINISHED
            events.append(
                Event(
                    kind,
                    now,
                    f"{s.name}: balancing {'started' if active else 'finished'}",
                    string=s.index,
                )
            )
            s.balancing = active
        for i in sorted(commands.out_of_range - s.out_of_range):
            events.append(
                Event(
                    EventType.OUT_OF_EQUALIZATION_RANGE,
                    now,
                    f"{s.name} block {i + 1} is beyond the shunts' reach: check it "
                    "(charge deficit, soft short, shorted cell or dry-out)",
                    device=s.modules[i],
                    string=s.index,
                    data={"position": i + 1},
                )
            )
        s.out_of_range = commands.out_of_range
        return events

    def _watchdog_s(self) -> int:
        """[issue 10 watchdog] A module's shunt stops by itself after 3 missed cycles."""
        return watchdog_for(self.config.poll_interval)

    def _observation(
        self, strings: list[StringObservation], readings: Mapping[DeviceRef, AnyReading]
    ) -> Observation:
        sensors: list[SensorObservation] = []
        for ref in self._environment:
            r = readings.get(ref)
            values: dict[str, Value] = {}
            if isinstance(r, EnvironmentReading):
                values = {
                    "temperature": r.temperature,
                    "humidity": r.humidity,
                    "hydrogen": r.hydrogen,
                    "acid_level": r.acid_level,
                }
            sensors.append(
                SensorObservation(ref, "environment", self._online.get(ref, True), values)
            )
        for ref in self._sensors:
            sensors.append(SensorObservation(ref, "current_sensor", self._online.get(ref, True)))
        for ref in self._relays:
            sensors.append(SensorObservation(ref, "relay", self._online.get(ref, True)))
        return Observation(strings, sensors, dict(self._bus_ok))

    def _info(self, ref: DeviceRef) -> DeviceInfo:
        dev = self._devices[ref]
        return DeviceInfo(
            ref,
            dev.kind,
            dev.serial,
            dev.firmware,
            self._online.get(ref, True),
            self._last_seen.get(ref),
        )

    def _build_snapshot(
        self,
        now: datetime,
        now_s: float,
        started: float,
        readings: Mapping[DeviceRef, AnyReading],
        alarm_update: Any,
        decision: Any,
        safety_alarm: bool,
    ) -> SystemSnapshot:
        problems: frozenset[DeviceRef] = alarm_update.problem_devices
        strings: list[StringSnapshot] = []
        for s in self._strings:
            modules: list[ModuleSnapshot] = []
            cmd = s.commands
            for i, ref in enumerate(s.modules):
                m = self._module_values(ref, readings)
                trend = self._trends.get(ref)
                modules.append(
                    ModuleSnapshot(
                        info=self._info(ref),
                        string=s.index,
                        position=i + 1,
                        voltage=m.voltage if m else MISSING,
                        resistance=m.resistance if m else MISSING,
                        temperature=m.temperature if m else MISSING,
                        balance_current=m.balance_current if m else MISSING,
                        module_temperature=m.module_temperature if m else MISSING,
                        target_v=cmd.target[i] if cmd else None,
                        deviation_v=cmd.deviation[i] if cmd else None,
                        balancing=cmd.state[i] if cmd else BalancingState.IDLE,
                        status_flags=int(m.status) if m else 0,
                        resistance_baseline=trend.baseline if trend else None,
                        replace_by=trend.replace_by() if trend else None,
                        problem=ref in problems or not self._online.get(ref, True),
                    )
                )
            usable = [
                (mod.position, mod.voltage.value)
                for mod in modules
                if mod.voltage.quality is Quality.OK and mod.voltage.value is not None
            ]
            total = sum(v for _, v in usable) if len(usable) == len(modules) and modules else None
            current = self._string_current(s, readings)
            hi = max(usable, key=lambda x: x[1]) if usable else None
            lo = min(usable, key=lambda x: x[1]) if usable else None
            targets = [t for t in (cmd.target if cmd else ()) if t is not None]
            volts = tuple(mod.voltage.value for mod in modules)
            self.history.record(now, now_s, s.index, s.charge.state, volts, current)
            strings.append(
                StringSnapshot(
                    index=s.index,
                    name=s.name,
                    modules=tuple(modules),
                    voltage=total,
                    current=current,
                    power=total * current if total is not None and current is not None else None,
                    charge_state=s.charge.state,
                    spread=(hi[1] - lo[1]) if hi and lo else None,
                    highest=BlockExtreme(*hi) if hi else None,
                    lowest=BlockExtreme(*lo) if lo else None,
                    balancing_active=s.balancing,
                    problem=s.index in alarm_update.problem_strings
                    or any(mod.problem for mod in modules),
                    state_of_charge=round(s.soc, 1),
                    target_v=statistics.mean(targets) if targets else None,
                    weak_blocks=self.history.weak_blocks.get(s.index, ()),
                )
            )
        current_sensors = []
        for ref in self._sensors:
            r = readings.get(ref)
            string = next((s.index for s in self._strings if s.sensor == ref), None)
            current_sensors.append(
                CurrentSensorSnapshot(
                    self._info(ref),
                    string,
                    r.current if isinstance(r, CurrentReading) else MISSING,
                    r.temperature if isinstance(r, CurrentReading) else MISSING,
                )
            )
        relays = []
        for ref in self._relays:
            r = readings.get(ref)
            channels = tuple(b.channel for b in self.safety.breakers if b.relay == ref)
            relays.append(
                RelaySnapshot(
                    self._info(ref),
                    r.relays
                    if isinstance(r, RelayReading) and r.relays
                    else (False,) * RELAY_CHANNELS,
                    r.inputs
                    if isinstance(r, RelayReading) and r.inputs
                    else (False,) * RELAY_CHANNELS,
                    channels,
                )
            )
        environment = []
        for ref in self._environment:
            r = readings.get(ref)
            e = r if isinstance(r, EnvironmentReading) else None
            environment.append(
                EnvironmentSnapshot(
                    self._info(ref),
                    e.temperature if e else MISSING,
                    e.humidity if e else MISSING,
                    e.hydrogen if e else MISSING,
                    e.acid_level if e else MISSING,
                )
            )
        buses = tuple(
            BusSnapshot(
                c.bus_id,
                self._bus_ok.get(c.bus_id, c.connected),
                round(c.link_quality, 1),
                c.requests,
                c.failures,
                c.last_cycle_s,
            )
            for c in self._clients.values()
        )
        alarms = alarm_update.alarms
        status = self._status(decision.snapshot.trip_state, buses, alarms, safety_alarm)
        return SystemSnapshot(
            timestamp=now,
            cycle=self._cycle,
            status=status,
            poll_duration_s=round(self._clock() - started, 4),
            buses=buses,
            strings=tuple(strings),
            current_sensors=tuple(current_sensors),
            relays=tuple(relays),
            environment=tuple(environment),
            alarms=alarms,
            safety=decision.snapshot,
            equalization_enabled=self._equalization,
        )

    def _status(
        self,
        trip: TripState,
        buses: Sequence[BusSnapshot],
        alarms: Sequence[Any],
        safety_alarm: bool,
    ) -> ManagerStatus:
        if trip in (TripState.TRIPPED, TripState.FAILED, TripState.COUNTDOWN) or safety_alarm:
            return ManagerStatus.TRIPPED
        if buses and not any(b.connected for b in buses):
            return ManagerStatus.BUS_LOST
        if any(not b.connected for b in buses) or not all(self._online.values() or [True]):
            return ManagerStatus.DEGRADED
        if any(a.severity in (Severity.ALARM, Severity.CRITICAL) for a in alarms):
            return ManagerStatus.ALARM
        if alarms:
            return ManagerStatus.WARNING
        return ManagerStatus.OK

    def weak_blocks(self, string: int) -> tuple[WeakBlock, ...]:
        """Blocks that fall fastest in the present (or last) discharge, worst first."""
        return self.history.weak_blocks.get(string, ())

    # -- persistence --------------------------------------------------------------------------
    async def _restore(self) -> None:
        data = await self._storage.load()
        if not data:
            return
        self.alarms.restore(data.get("alarms", {}))
        self._restored_safety = data.get("safety", {})
        self.safety.restore(self._restored_safety)
        self.runaway.restore(data.get("runaway", {}))
        self._restored_trends = data.get("trends", {})
        for key, value in self._restored_trends.items():
            bus, _, unit = key.rpartition("/")
            with contextlib.suppress(ValueError, TypeError, KeyError):
                trend = ResistanceTrend()
                trend.restore(value)
                self._trends[DeviceRef(bus, int(unit))] = trend

    async def _persist(self, *, force: bool = False) -> None:
        data = {
            "version": 1,
            "alarms": self.alarms.state_dict(),
            "safety": self.safety.state_dict(),
            "runaway": self.runaway.state_dict(),
            "trends": {str(k): v.state_dict() for k, v in self._trends.items()},
        }
        text = json.dumps(data, sort_keys=True, default=str)
        if text == self._saved and not force:
            return
        try:
            await self._storage.save(json.loads(text))
            self._saved = text
        except OSError as err:
            _LOG.error("cannot save manager state: %s", err)

    # -- commands ------------------------------------------------------------------------------
    async def acknowledge(self, key: str | None = None) -> int:
        events = self.alarms.acknowledge(self._wall(), key)
        await self._persist()
        self._emit(events)
        return len(events)

    async def trip(self, reason: str) -> None:
        """Open the breaker now (manual trip), without waiting for the next cycle."""
        async with self._lock:
            events = self.safety.trip(self._wall(), reason)
            outputs: dict[DeviceRef, dict[int, bool]] = {}
            for b in self.safety.breakers:
                outputs.setdefault(b.relay, {})[b.channel] = True
            await self._drive_relays(outputs, self._readings)
            await self._persist(force=True)
        self._emit(events)

    async def reset_trip(self) -> None:
        """De-energise the trip relays. Raises SafetyRefusedError with the reason when unsafe."""
        async with self._lock:
            snap = self.snapshot
            # The pre-alert counts too: after a restart the detector sees a hot block at once
            # (above ambient) before it has the history to confirm a runaway again.
            runaway = (
                self.safety.runaway
                or self.safety.pre_alert
                or bool(snap and (snap.safety.runaway or snap.safety.pre_alert))
            )
            readable = self.safety.breaker is not BreakerState.UNKNOWN
            events = self.safety.reset(self._wall(), runaway, readable)
            outputs: dict[DeviceRef, dict[int, bool]] = {}
            for b in self.safety.breakers:
                outputs.setdefault(b.relay, {})[b.channel] = False
            await self._drive_relays(outputs, self._readings)
            await self._persist(force=True)
        self._emit(events)

    def _device(self, ref: DeviceRef, family: DeviceFamily | None = None) -> DeviceIdentity:
        dev = self._devices.get(ref)
        if dev is None:
            raise KeyError(f"no device {ref}")
        if family is not None and dev.family is not family:
            raise ValueError(f"{ref} is a {dev.kind.name}, not a {family.value}")
        return dev

    async def measure_resistance(self, ref: DeviceRef) -> None:
        dev = self._device(ref, DeviceFamily.BATTERY_MODULE)
        async with self._lock:
            await self._clients[ref.bus].command(dev, Command.MEASURE_RI)

    async def identify(self, ref: DeviceRef) -> None:
        dev = self._device(ref)
        async with self._lock:
            await self._clients[ref.bus].command(dev, Command.IDENTIFY)

    async def set_relay(self, ref: DeviceRef, channel: int, on: bool) -> None:
        dev = self._device(ref, DeviceFamily.RELAY)
        if not 1 <= channel <= RELAY_CHANNELS:
            raise ValueError(f"relay channel {channel} is not 1..{RELAY_CHANNELS}")
        is_breaker = any(b.relay == ref and b.channel == channel for b in self.safety.breakers)
        if is_breaker and not on and self.safety.state in (TripState.TRIPPED, TripState.FAILED):
            raise SafetyRefusedError(
                "use_reset",
                "this relay holds the breaker trip: use the "
                "reset action, which checks that it is safe",
            )
        if is_breaker and on:
            await self.trip("breaker relay switched on by hand")
            return
        async with self._lock:
            r = self._readings.get(ref)
            relays = (
                list(r.relays)
                if isinstance(r, RelayReading) and r.relays
                else [False] * RELAY_CHANNELS
            )
            relays[channel - 1] = on
            await self._clients[ref.bus].set_relays(dev, relays)

    async def set_equalization(self, enabled: bool) -> None:
        self._equalization = enabled
        for s in self._strings:
            s.controller.settings = replace(s.controller.settings, enabled=enabled)

    async def set_float_voltage(self, volts: float | None) -> None:
        self._float_voltage = volts
        for s in self._strings:
            s.controller.float_voltage_override = volts

    async def apply_config(self, config: ManagerConfig) -> None:
        """New thresholds, equalization and trip settings; the buses stay as they are."""
        async with self._lock:
            self.config = config
            self.alarms.thresholds = config.thresholds
            self.alarms.latch_alarms = config.latch_alarms
            self.runaway.settings = config.runaway
            self._equalization = config.equalization.enabled
            self._float_voltage = config.float_voltage
            for s in self._strings:
                s.controller.settings = config.equalization
                s.controller.float_voltage_override = config.float_voltage
            self._build_topology()

    def diagnostics(self) -> dict[str, Any]:
        """JSON-safe facts for a bug report; hosts and serial numbers are left out."""
        from ..bus.url import parse_bus_url

        snap = self.snapshot
        return {
            "config": {
                "buses": [
                    {
                        "id": b.id,
                        "url": parse_bus_url(b.url).redacted(),
                        "timeout": b.timeout,
                        "retries": b.retries,
                    }
                    for b in self.config.buses
                ],
                "string_count": len(self._strings),
                "poll_interval": self.config.poll_interval,
                "chemistry": self.config.chemistry.value,
                "equalization": self._equalization,
                "trip_breakers": len(self.safety.breakers),
            },
            "devices": {
                str(ref): {
                    "kind": d.kind.name,
                    "firmware": d.firmware,
                    "online": self._online.get(ref, True),
                }
                for ref, d in sorted(self._devices.items(), key=lambda x: (x[0].bus, x[0].unit))
            },
            "buses": [
                {
                    "id": c.bus_id,
                    "connected": c.connected,
                    "link_quality": c.link_quality,
                    "requests": c.requests,
                    "failures": c.failures,
                    "last_error": c.last_error,
                }
                for c in self._clients.values()
            ],
            "cycle": self._cycle,
            "status": snap.status.value if snap else None,
            "safety": self.safety.state_dict(),
            "alarms": [
                {
                    "key": a.key,
                    "severity": a.severity.value,
                    "active": a.active,
                    "latched": a.latched,
                }
                for a in (snap.alarms if snap else ())
            ],
        }

    @property
    def devices(self) -> Mapping[DeviceRef, DeviceIdentity]:
        return dict(self._devices)


def _split(
    modules: list[DeviceRef], count: int, block_counts: tuple[int, ...] | None
) -> list[list[DeviceRef]]:
    """Modules into strings in unit order: by the configured block counts, or evenly. A
    module found beyond the counted ones joins the last string (it was added to it)."""
    if block_counts is None:
        n = min(count, len(modules))
        per = len(modules) // n
        return [
            modules[k * per : (k + 1) * per] if k < n - 1 else modules[k * per :] for k in range(n)
        ]
    parts: list[list[DeviceRef]] = []
    start = 0
    for k, size in enumerate(block_counts):
        end = len(modules) if k == len(block_counts) - 1 else start + size
        if start < len(modules):
            parts.append(modules[start:end])
        start = end
    return parts
