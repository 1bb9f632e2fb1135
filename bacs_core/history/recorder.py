"""The history consumer: fed by the manager's listeners, it never slows the poll cycle.

Per snapshot (on the event loop, a few hundred microseconds for 330 blocks): integrate the
energy totals, advance the discharge analysis, decide which strings become rows, and hand
one batch to the writer thread. Snapshots not stored wait a little in a ring, so an alarm
can write the minutes before it too.

    recorder = HistoryRecorder(HistoryStore(state_dir))
    await recorder.start()          # opens the file in a thread, restores energy totals
    recorder.attach(manager)        # public listener API only
    ...
    await recorder.stop()           # detaches, writes what waits, closes

A linked UPS (any source: Home Assistant's entities, later the appliance's reader) is told
with ``recorder.ups_update(UpsStatus(...))``: see ``ups.py`` and docs/history.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..events import Event, EventType
from ..snapshot import DeviceRef, StringSnapshot, SystemSnapshot
from .batch import EnvironmentRow, EventRow, WriteBatch
from .codec import SampleKind, SampleRow, ms
from .config import HistoryConfig
from .discharge import DischargeAnalyzer
from .energy import EnergyMeter, EnergyTotals
from .policy import LoggingPolicy
from .records import DischargeRecord
from .store import HistoryStatus, HistoryStore
from .ups import EVENT_ON_BATTERY, EVENT_ON_LINE, UpsRow, UpsStatus
from .writer import HistoryWriter, WriterStats

if TYPE_CHECKING:
    from ..source import Source

_LOG = logging.getLogger(__name__)

type DischargeListener = Callable[[DischargeRecord], None]

BURST_EVENTS = frozenset(
    {
        EventType.ALARM_RAISED,
        EventType.RUNAWAY_PRE_ALERT,
        EventType.RUNAWAY_DETECTED,
        EventType.TRIP_COUNTDOWN,
        EventType.TRIPPED,
        EventType.TRIP_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class RecorderStatus:
    store: HistoryStatus
    writer: WriterStats
    loop_cpu_s: float  # CPU spent in the listeners on the event loop (for the benchmark)


class HistoryRecorder:
    def __init__(
        self,
        store: HistoryStore,
        *,
        ratings: Mapping[int, float] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``ratings``: rated capacity (Ah, C10) per 1-based string; ``attach`` reads the
        manager's configuration when none are given. ``clock``: the manager's wall clock
        (the one given to it; the same default), which stamps what comes between its
        snapshots: a UPS going on battery."""
        self.store = store
        self.config: HistoryConfig = store.config
        self.energy = EnergyMeter(self.config.max_gap_s)
        self.discharges = DischargeAnalyzer(self.config)
        self.policy = LoggingPolicy(self.config)
        self._ratings: dict[int, float] = dict(ratings or {})
        self._manager: Source | None = None
        self._last_time = datetime.now(UTC)
        self.writer = HistoryWriter(
            store,
            max_backlog=self.config.queue_max,
            retention_every_s=self.config.retention_every_s,
            now=lambda: self._last_time,
        )
        self._ring: dict[int, deque[tuple[int, StringSnapshot]]] = {}
        self._events: list[EventRow] = []
        self._layout: dict[int, tuple[DeviceRef, ...]] = {}
        self._energy_saved_s = float("-inf")
        self._detach: list[Callable[[], None]] = []
        self._loop_cpu_s = 0.0
        self._started = False
        self._discharge_listeners: list[DischargeListener] = []
        self._clock = clock or (lambda: datetime.now(UTC))
        self._ups: UpsStatus | None = None  # the linked UPS's last status (None: no UPS)
        self._strings: tuple[StringSnapshot, ...] = ()  # the last snapshot's strings

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> HistoryStatus:
        """Open the store off the event loop and restore what must survive a restart."""
        return await asyncio.to_thread(self.open)

    def open(self) -> HistoryStatus:
        """The blocking half of ``start`` (for callers with their own executor)."""
        status = self.store.open()
        if self.store.writable:
            self.energy.restore(self.store.energy_totals())
            for record in reversed(self.store.discharges(limit=256)):
                self.discharges.last[record.string] = record
        self.writer.start()
        self._started = True
        return status

    def attach(self, manager: Source) -> Callable[[], None]:
        """Listen to a source (the Manager, or a GENEREX web manager) through its public
        listener API; returns the detach call.
        Call ``start`` first: the stored energy totals must be known before new energy counts."""
        if not self._started:
            raise RuntimeError("HistoryRecorder.start() (or open()) must come before attach()")
        self._manager = manager
        removers = [
            manager.add_event_listener(self.on_event),
            manager.add_snapshot_listener(self.on_snapshot),
        ]
        self._detach += removers

        def detach() -> None:
            for remove in removers:
                if remove in self._detach:
                    self._detach.remove(remove)
                    remove()

        return detach

    async def stop(self) -> None:
        """Detach, write what waits (energy totals included) and close the file."""
        for remove in list(self._detach):
            remove()
        self._detach.clear()
        if not self._started:
            return
        final = WriteBatch(events=self._events)
        self._events = []
        final.energy = self._energy_copy()
        final.energy_t_ms = ms(self._last_time)
        final.discharges = self.discharges.running_records()
        self.writer.submit(final)
        await asyncio.to_thread(self.writer.stop)
        await asyncio.to_thread(self.store.close)
        self._started = False

    # -- what consumers read ------------------------------------------------------------------
    @property
    def status(self) -> RecorderStatus:
        return RecorderStatus(self.store.status, self.writer.stats(), self._loop_cpu_s)

    def energy_totals(self, string: int) -> EnergyTotals:
        """Energy charged and discharged so far (Wh; ``.charged_kwh`` for HA)."""
        totals = self.energy.totals.get(string, EnergyTotals())
        return EnergyTotals(totals.charged_wh, totals.discharged_wh)

    def last_discharge(self, string: int) -> DischargeRecord | None:
        """The present or last discharge of a string (from memory; the store has them all)."""
        return self.discharges.last.get(string)

    @property
    def ups(self) -> UpsStatus | None:
        """The linked UPS's last status; None when none is linked or nothing is known."""
        return self._ups

    def add_discharge_listener(self, cb: DischargeListener) -> Callable[[], None]:
        """``cb(record)`` on the event loop whenever a discharge record changes: from its first
        sample (``in_progress``), every 5 minutes, at its end (``in_progress`` False) and at the
        recovery reading (``recovered``: final). Returns the remove call."""
        self._discharge_listeners.append(cb)
        return lambda: self._discharge_listeners.remove(cb)

    def _announce(self, records: list[DischargeRecord]) -> None:
        for record in records:
            for cb in list(self._discharge_listeners):
                try:
                    cb(record)
                except Exception:  # a consumer's bug never costs the history
                    _LOG.exception("discharge listener failed")

    # -- listeners (event loop; must return at once) ----------------------------------------
    def on_event(self, event: Event) -> None:
        started = time.thread_time()
        try:
            self._events.append(
                EventRow(
                    ms(event.timestamp),
                    event.type.value,
                    event.message,
                    str(event.device) if event.device else None,
                    event.string,
                    json.dumps(dict(event.data)) if event.data else None,
                )
            )
            if event.type in BURST_EVENTS:
                self._burst(event.timestamp)
        finally:
            self._loop_cpu_s += time.thread_time() - started

    def on_snapshot(self, snap: SystemSnapshot) -> None:
        started = time.thread_time()
        try:
            self._record(snap)
        finally:
            self._loop_cpu_s += time.thread_time() - started

    def ups_update(self, status: UpsStatus, when: datetime | None = None) -> None:
        """The linked UPS's status now (event loop; returns at once). ``when``: the manager's
        clock by default.

        Going on battery writes the minutes before it from the ring, starts every-poll
        logging and opens every string's discharge record at once; back on mains (or no
        longer known), the records end when their strings stop discharging. Load and
        runtime are stored with each stored snapshot and summarised in the discharge
        records. ``UpsStatus()`` (nothing known) unlinks: no more UPS rows."""
        started = time.thread_time()
        try:
            at = when or self._clock()
            was = self._ups.on_battery if self._ups is not None else None
            self._ups = status if status.known else None  # nothing known: no UPS rows
            if status.on_battery is True and was is not True:
                self._on_battery(at, status)
            elif status.on_battery is not True and was is True:
                # Back on mains; or no longer known (the UPS or its server went away): then
                # the strings' own state decides when the discharge ends.
                self.policy.ups_on_battery = False
                self.discharges.ups_on_line(at if status.on_battery is False else None)
                if status.on_battery is False:
                    batch = WriteBatch(events=[self._ups_event(at, EVENT_ON_LINE, status)])
                    batch.ups.append(UpsRow.of(ms(at), SampleKind.DISCHARGE, status))
                    self.writer.submit(batch)
        finally:
            self._loop_cpu_s += time.thread_time() - started

    def _on_battery(self, at: datetime, status: UpsStatus) -> None:
        self.policy.ups_on_battery = True
        batch = self._flush_ring(at)
        batch.events.append(self._ups_event(at, EVENT_ON_BATTERY, status))
        batch.ups.append(UpsRow.of(ms(at), SampleKind.DISCHARGE, status))
        records = self.discharges.ups_on_battery(
            at, [(s, self._rating(s.index)) for s in self._strings]
        )
        batch.discharges += records
        self.writer.submit(batch)
        self._announce(records)

    @staticmethod
    def _ups_event(at: datetime, kind: str, status: UpsStatus) -> EventRow:
        data = {
            "load_pct": status.load_pct,
            "runtime_s": status.runtime_s,
            "input_voltage": status.input_voltage,
        }
        message = "UPS on battery" if kind == EVENT_ON_BATTERY else "UPS back on mains"
        return EventRow(ms(at), kind, message, data=json.dumps(data))

    def _burst(self, when: datetime) -> None:
        """An alarm: the minutes before it leave the ring, the minutes after are polled."""
        self.policy.alarm(when.timestamp())
        self.writer.submit(self._flush_ring(when))

    def _flush_ring(self, when: datetime) -> WriteBatch:
        """The ring's minutes before ``when`` as burst rows (encoded on the writer thread)."""
        oldest = ms(when) - round(self.config.burst_before_s * 1000)
        batch = WriteBatch()
        for ring in self._ring.values():
            batch.pending += [(t, SampleKind.BURST, s) for t, s in ring if t >= oldest]
            ring.clear()
        batch.pending.sort(key=lambda p: p[0])
        return batch

    def _record(self, snap: SystemSnapshot) -> None:
        when = snap.timestamp
        self._last_time = when
        t_s = when.timestamp()
        t_ms = ms(when)
        batch = WriteBatch(events=self._events)
        self._events = []
        for s in snap.strings:
            self.energy.add(s.index, t_s, s.voltage, s.current)
            records = self.discharges.update(when, s, self._rating(s.index), self._ups)
            if records:
                batch.discharges += records
                self._announce(records)
            kind = self.policy.decide(s.index, t_s, s.charge_state)
            if kind is None:
                ring = self._ring.get(s.index)
                if ring is None:
                    ring = self._ring[s.index] = deque(maxlen=self.config.ring_max_samples)
                ring.append((t_ms, s))
                oldest = t_ms - round(self.config.burst_before_s * 1000)
                while ring and ring[0][0] < oldest:
                    ring.popleft()
            else:
                batch.samples.append(SampleRow.from_string(t_ms, s, kind))
            refs = tuple(m.info.ref for m in s.modules)
            if self._layout.get(s.index) != refs:
                self._layout[s.index] = refs
                batch.layout.append((s.index, t_ms, tuple(str(r) for r in refs)))
        self._strings = snap.strings
        if batch.samples and self._ups is not None:
            kind = max(r.kind for r in batch.samples)
            batch.ups.append(UpsRow.of(t_ms, kind, self._ups))
        if batch.samples:
            batch.environment = [
                EnvironmentRow(
                    t_ms,
                    str(e.info.ref),
                    e.temperature.value if e.temperature.usable else None,
                    e.humidity.value if e.humidity.usable else None,
                    e.hydrogen.value if e.hydrogen.usable else None,
                    e.acid_level.value if e.acid_level.usable else None,
                )
                for e in snap.environment
            ]
        if batch.samples or t_s - self._energy_saved_s >= self.config.energy_save_s:
            self._energy_saved_s = t_s
            batch.energy = self._energy_copy()
            batch.energy_t_ms = t_ms
        self.writer.submit(batch)

    def _rating(self, string: int) -> float | None:
        """Given ratings first, else the manager's configuration as it is now."""
        if string in self._ratings:
            return self._ratings[string]
        if self._manager is None:
            return None
        cfg = self._manager.config
        if cfg.strings and string <= len(cfg.strings):
            return cfg.strings[string - 1].capacity_ah or cfg.capacity_ah
        return cfg.capacity_ah

    def _energy_copy(self) -> dict[int, EnergyTotals]:
        return {
            k: EnergyTotals(v.charged_wh, v.discharged_wh) for k, v in self.energy.totals.items()
        }
