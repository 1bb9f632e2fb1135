"""The passive source: a GENEREX WEB-MANAGER / CS141 read on our own schedule, our alarm rules
on top, published as the Manager publishes (``bacs_core/source.py``).

Each cycle reads the web manager through the adapter (Modbus FC03/FC04 and SNMP GETs, never a
write), builds the ``SystemSnapshot`` from the typed readings (``to_snapshot.py``), runs our
``AlarmEngine`` on them (``judge.py``: the same rules the Manager runs, plus the web manager's
own verdicts as conditions) and hands snapshot and events to the listeners. When the web
manager stops answering, the last structure is published with every value missing and the bus
lost, so consumers keep their devices and say "unavailable" instead of showing old figures.

What it cannot do (equalize, trip, switch relays, identify, measure Ri, rescan) raises
``UnsupportedCommandError``: the GENEREX map carries no commands, and a battery system has one
controller, which here is the web manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..events import Event, EventType
from ..listeners import EventListener, Listeners, SnapshotListener
from ..manager.alarms import AlarmEngine, AlarmUpdate
from ..manager.config import ManagerConfig
from ..manager.storage import MemoryStorage, StateUnreadableError, Storage
from ..manager.trend import ResistanceTrend
from ..snapshot import (
    MISSING,
    Capability,
    ChargeState,
    DeviceInfo,
    DeviceRef,
    ManagerStatus,
    Severity,
    SystemSnapshot,
    TripState,
)
from ..source import (
    GENEREX_CAPABILITIES,
    SourceUnavailableError,
    UnsupportedCommandError,
)
from ..tasks import cancel_and_wait
from .adapter import GenerexAdapter, GenerexUnreachableError
from .judge import conditions, observe
from .readings import Cs141Readings
from .to_snapshot import build_snapshot
from .url import GenerexUrl

_LOG = logging.getLogger(__name__)
STATE_VERSION = 1
WHY_READ_ONLY = "a GENEREX web manager is read-only: its Modbus and SNMP maps carry no commands"


def _label(string: int, position: int) -> str:
    return f"String {string} block {position}"


def _lost(readings: Cs141Readings, now: datetime) -> Cs141Readings:
    """The last structure with nothing measured: what the consumers show while it is silent."""
    return replace(
        readings,
        timestamp=now,
        general=None,
        strings=tuple(
            replace(
                s,
                current=MISSING,
                voltage=MISSING,
                average_voltage=MISSING,
                ac_current=MISSING,
            )
            for s in readings.strings
        ),
        modules=tuple(
            replace(
                r, voltage=MISSING, temperature=MISSING, resistance=MISSING, state=None, lost=True
            )
            for r in readings.modules
        ),
        mismatches=(),
        modbus_ok=False,
        snmp_ok=False,
        raw_registers={},
        raw_oids=(),
    )


class GenerexSource:
    """One CS141 as a :class:`bacs_core.source.Source` (read-only)."""

    def __init__(
        self,
        url: GenerexUrl,
        config: ManagerConfig,
        *,
        source_id: str = "cs141",
        storage: Storage | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        adapter: GenerexAdapter | None = None,
    ) -> None:
        self.url = url
        self.config = config
        self.source_id = source_id
        self._storage = storage or MemoryStorage()
        self._clock = clock or time.monotonic
        self._wall = wall_clock or (lambda: datetime.now(UTC))
        self.adapter = adapter or GenerexAdapter(url, clock=self._wall)
        self.alarms = AlarmEngine(config.thresholds, latch_alarms=config.latch_alarms)
        self.trends: dict[DeviceRef, ResistanceTrend] = {}
        self.snapshot: SystemSnapshot | None = None
        self.readings: Cs141Readings | None = None  # the last good read
        self.reachable = False
        self.last_error: str | None = None
        self._listeners = Listeners()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._cycle = 0
        self._stopping = False
        self._saved: str | None = None
        self._lost_modules: set[DeviceRef] = set()
        self._charge: dict[int, ChargeState] = {}

    # -- what it is -----------------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[Capability]:
        return GENEREX_CAPABILITIES

    @property
    def trip_state(self) -> TripState:
        return TripState.DISABLED

    @property
    def devices(self) -> Mapping[DeviceRef, DeviceInfo]:
        snap = self.snapshot
        if snap is None:
            return {}
        return {m.info.ref: m.info for s in snap.strings for m in s.modules}

    # -- listeners ------------------------------------------------------------------------
    def add_snapshot_listener(self, cb: SnapshotListener) -> Callable[[], None]:
        return self._listeners.add_snapshot_listener(cb)

    def add_event_listener(self, cb: EventListener) -> Callable[[], None]:
        return self._listeners.add_event_listener(cb)

    def _emit(self, events: Sequence[Event]) -> None:
        self._listeners.emit(events)

    def _publish(self, snap: SystemSnapshot) -> None:
        self._listeners.publish(snap)

    # -- life cycle -----------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping

    async def start(self, *, run_loop: bool = True) -> None:
        """Restore latched alarms, read once (SourceUnavailableError when nothing answers:
        without one read the strings and modules are unknown), then poll on the interval."""
        await self._restore()
        self._stopping = False
        try:
            await self.poll_once()
        except SourceUnavailableError as err:
            await self.adapter.close()
            raise SourceUnavailableError(
                f"the GENEREX web manager does not answer: {err}"
            ) from None
        if run_loop:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="bacs-generex")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            await cancel_and_wait(task)
        await self._persist()
        await self.adapter.close()

    async def _loop(self) -> None:
        """start() has read once: wait an interval, read, and so on."""
        started = self._clock()
        while not self._stopping:
            await asyncio.sleep(max(0.0, self.config.poll_interval - (self._clock() - started)))
            if self.stopping:  # stop() may have come during the sleep
                return
            started = self._clock()
            try:
                await self.poll_once()
            except Exception:  # the loop must outlive any one bad cycle
                _LOG.exception("GENEREX poll cycle failed")

    # -- the cycle ------------------------------------------------------------------------
    async def poll_once(self) -> SystemSnapshot:
        async with self._lock:
            return await self._cycle_locked()

    async def _cycle_locked(self) -> SystemSnapshot:
        self._cycle += 1
        now = self._wall()
        events: list[Event] = []
        try:
            readings = await self.adapter.read()
        except GenerexUnreachableError as err:
            self.last_error = str(err)
            if self.readings is None:  # never read: no structure to show yet
                raise SourceUnavailableError(str(err)) from err
            if self.reachable:
                _LOG.warning("GENEREX web manager lost: %s", err)
                events.append(
                    Event(
                        EventType.BUS_LOST, now, f"The GENEREX web manager does not answer: {err}"
                    )
                )
            self.reachable = False
            shown = _lost(self.readings, now)
        else:
            if not self.reachable and self.readings is not None:
                events.append(
                    Event(EventType.BUS_RESTORED, now, "The GENEREX web manager answers again")
                )
            self.reachable = True
            self.last_error = None
            self.readings = shown = readings
        base = build_snapshot(shown, self.source_id, cycle=self._cycle)
        base = replace(
            base,
            buses=tuple(replace(b, connected=self.reachable) for b in base.buses),
        )
        if self.reachable:
            events += self._presence(now, base)
        events += self._charge_changes(now, base)
        labels = {m.info.ref: _label(s.index, m.position) for s in base.strings for m in s.modules}
        resistance_alarm = self.config.thresholds.resistance_vs_baseline.alarm_high or 1.5
        observation = observe(now, base, self.trends, resistance_alarm)
        observation = replace(
            observation,
            conditions=conditions(shown, base, labels, self.reachable, self.url.snmp),
        )
        update = self.alarms.evaluate(now, observation)
        events += update.events
        snap = self._finish(base, update)
        self.snapshot = snap
        await self._persist()
        self._emit(events)
        self._publish(snap)
        return snap

    def _finish(self, base: SystemSnapshot, update: AlarmUpdate) -> SystemSnapshot:
        problems = update.problem_devices
        strings = tuple(
            replace(
                s,
                modules=tuple(
                    replace(m, problem=m.problem or m.info.ref in problems) for m in s.modules
                ),
                problem=s.problem
                or s.index in update.problem_strings
                or any(m.info.ref in problems for m in s.modules),
            )
            for s in base.strings
        )
        status = base.status
        if not self.reachable:
            status = ManagerStatus.BUS_LOST
        elif status in (ManagerStatus.OK, ManagerStatus.WARNING, ManagerStatus.DEGRADED):
            severities = {a.severity for a in update.alarms}
            if severities & {Severity.ALARM, Severity.CRITICAL}:
                status = ManagerStatus.ALARM
            elif severities and status is ManagerStatus.OK:
                status = ManagerStatus.WARNING
        return replace(
            base,
            strings=strings,
            alarms=update.alarms,
            status=status,
            capabilities=self.capabilities,
        )

    def _presence(self, now: datetime, snap: SystemSnapshot) -> list[Event]:
        events: list[Event] = []
        lost = {m.info.ref for s in snap.strings for m in s.modules if not m.info.online}
        for s in snap.strings:
            for m in s.modules:
                ref = m.info.ref
                label = _label(s.index, m.position)
                if ref in lost and ref not in self._lost_modules:
                    events.append(
                        Event(
                            EventType.DEVICE_LOST,
                            now,
                            f"{label}: the web manager lost its module",
                            device=ref,
                            string=s.index,
                        )
                    )
                elif ref not in lost and ref in self._lost_modules:
                    events.append(
                        Event(
                            EventType.DEVICE_FOUND,
                            now,
                            f"{label}: the web manager reads its module again",
                            device=ref,
                            string=s.index,
                        )
                    )
        self._lost_modules = lost
        return events

    def _charge_changes(self, now: datetime, snap: SystemSnapshot) -> list[Event]:
        events: list[Event] = []
        for s in snap.strings:
            before = self._charge.get(s.index)
            state = s.charge_state
            if state is ChargeState.UNKNOWN:
                continue  # silent: nothing changed that we know of
            if before is not None and before is not state:
                events.append(
                    Event(
                        EventType.CHARGE_STATE_CHANGED,
                        now,
                        f"{s.name}: {before.value} → {state.value}",
                        string=s.index,
                        data={"from": before.value, "to": state.value},
                    )
                )
            self._charge[s.index] = state
        return events

    # -- persistence: latched alarms and resistance baselines survive a restart ------------
    async def _restore(self) -> None:
        try:
            data = await self._storage.load()
        except StateUnreadableError as err:
            _LOG.warning("GENEREX source state unreadable, starting afresh: %s", err)
            return
        if not isinstance(data, dict) or data.get("kind") != "generex":
            return
        alarms = data.get("alarms")
        if isinstance(alarms, dict):
            self.alarms.restore(alarms)
        trends = data.get("trends")
        if isinstance(trends, dict):
            alarm = self.config.thresholds.resistance_vs_baseline.alarm_high or 1.5
            for key, state in trends.items():
                bus, _, unit = str(key).rpartition("/")
                if bus and unit.isdigit() and isinstance(state, dict):
                    trend = ResistanceTrend(alarm)
                    with contextlib.suppress(TypeError, ValueError):
                        trend.restore(state)
                        self.trends[DeviceRef(bus, int(unit))] = trend

    async def _persist(self) -> None:
        state = {
            "kind": "generex",
            "version": STATE_VERSION,
            "alarms": self.alarms.state_dict(),
            "trends": {str(ref): t.state_dict() for ref, t in self.trends.items()},
        }
        text = json.dumps(state, sort_keys=True, default=str)
        if text == self._saved:
            return
        try:
            await self._storage.save(json.loads(text))
        except OSError as err:
            _LOG.error("cannot save the GENEREX source state: %s", err)
            return
        self._saved = text

    # -- commands ---------------------------------------------------------------------------
    async def acknowledge(self, key: str | None = None) -> int:
        events = self.alarms.acknowledge(self._wall(), key)
        await self._persist()
        self._emit(events)
        return len(events)

    async def apply_config(self, config: ManagerConfig) -> None:
        """New thresholds apply from the next cycle."""
        async with self._lock:
            self.config = config
            self.alarms.thresholds = config.thresholds
            self.alarms.latch_alarms = config.latch_alarms

    def _unsupported(self, command: str) -> UnsupportedCommandError:
        return UnsupportedCommandError(command, "a GENEREX web manager", WHY_READ_ONLY)

    async def trip(self, reason: str, string: int | None = None) -> None:
        raise self._unsupported("trip")

    async def reset_trip(self, string: int | None = None) -> None:
        raise self._unsupported("reset_trip")

    async def measure_resistance(self, ref: DeviceRef) -> None:
        raise self._unsupported("measure_resistance")

    async def identify(self, ref: DeviceRef) -> None:
        raise self._unsupported("identify")

    async def set_relay(self, ref: DeviceRef, channel: int, on: bool) -> None:
        raise self._unsupported("set_relay")

    async def set_equalization(self, enabled: bool) -> None:
        raise self._unsupported("set_equalization")

    async def set_float_voltage(self, volts: float | None) -> None:
        raise self._unsupported("set_float_voltage")

    async def rescan(self) -> list[DeviceRef]:
        raise self._unsupported("rescan")

    def diagnostics(self) -> dict[str, Any]:
        """JSON-safe facts for a bug report: no host, no community."""
        r = self.readings
        snap = self.snapshot
        return {
            "source": "generex",
            "url": self.url.redacted(),
            "poll_interval": self.config.poll_interval,
            "cycle": self._cycle,
            "reachable": self.reachable,
            "last_error": None if self.last_error is None else "no answer",
            "status": snap.status.value if snap else None,
            "capabilities": sorted(c.value for c in self.capabilities),
            "readings": None
            if r is None
            else {
                "modbus": r.modbus_ok,
                "snmp": r.snmp_ok,
                "snmp_version": r.snmp_version,
                "index_base": r.index_base,
                "general_flags": None if r.general is None else r.general.raw,
                "strings": len(r.strings),
                "modules": len(r.modules),
                "modules_lost": [x.module_id for x in r.modules if x.lost],
                "module_type": r.module_type,
                "scale_mismatches": [str(x) for x in r.mismatches],
                "notes": list(r.notes),
                "requests": r.requests,
                "failures": r.failures,
            },
            "alarms": sorted(self.alarms.active_keys()),
        }
