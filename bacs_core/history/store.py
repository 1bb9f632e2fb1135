"""The history file: SQLite (WAL) in a directory the caller gives, written by one thread.

``open()`` creates or migrates the file and checks it. A damaged file (garbage, truncated,
not a database, locked by someone else beyond the timeout) is logged, renamed aside with
its WAL, and a new file started; ``status`` says what happened so a consumer can show it.
Reads use their own short-lived connections, so any thread may query while the writer writes.
"""

from __future__ import annotations

import heapq
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from ..snapshot import StringSnapshot
from .codec import (
    STATE_CODES,
    STATES_BY_CODE,
    BlockSeries,
    SampleKind,
    SampleRow,
    voltages_at,
)
from .codec import ms as to_ms
from .config import HistoryConfig
from .energy import EnergyTotals
from .records import DischargeRecord
from .retention import RetentionResult, apply_retention
from .schema import (
    MAX_STRING,
    T_BITS,
    T_MASK,
    VERSION,
    SchemaTooNewError,
    key,
    key_range,
    migrate,
)

_LOG = logging.getLogger(__name__)
FILENAME = "history.db"
BUSY_TIMEOUT_S = 5.0


class StoreState(StrEnum):
    CLOSED = "closed"
    OK = "ok"
    RECOVERED = "recovered"  # a damaged file was set aside; recording into a new one
    ERROR = "error"  # writes fail (disk full, I/O error) or the file is too new: not recording


@dataclass(frozen=True, slots=True)
class HistoryStatus:
    state: StoreState
    path: str
    message: str | None = None
    set_aside: str | None = None  # where the damaged file went
    migrated_from: int | None = None  # the schema version found, when it was older


@dataclass(frozen=True, slots=True)
class EventRow:
    t_ms: int
    type: str
    message: str
    device: str | None = None
    string: int | None = None
    data: str | None = None  # JSON


@dataclass(frozen=True, slots=True)
class EnvironmentRow:
    t_ms: int
    device: str
    temperature: float | None
    humidity: float | None
    hydrogen: float | None
    acid_level: float | None


@dataclass(slots=True)
class WriteBatch:
    """Everything one transaction writes. Energy totals and discharges are idempotent
    (latest wins), so a batch that failed can be merged into the next one."""

    samples: list[SampleRow] = field(default_factory=list)
    # Snapshots to encode on the writer thread (the ring's minutes before an alarm):
    pending: list[tuple[int, SampleKind, StringSnapshot]] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    environment: list[EnvironmentRow] = field(default_factory=list)
    discharges: list[DischargeRecord] = field(default_factory=list)
    energy: dict[int, EnergyTotals] = field(default_factory=dict)
    energy_t_ms: int = 0
    layout: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.samples
            or self.pending
            or self.events
            or self.environment
            or self.discharges
            or self.energy
            or self.layout
        )

    @property
    def sample_count(self) -> int:
        return len(self.samples) + len(self.pending)

    def drop_samples(self) -> None:
        self.samples, self.pending, self.environment = [], [], []

    def merge(self, other: WriteBatch) -> None:
        self.samples += other.samples
        self.pending += other.pending
        self.events += other.events
        self.environment += other.environment
        self.discharges += other.discharges
        self.layout += other.layout
        if other.energy:
            self.energy = dict(other.energy)
            self.energy_t_ms = other.energy_t_ms


class HistoryStore:
    def __init__(
        self,
        directory: str | Path,
        config: HistoryConfig | None = None,
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        """``directory``: the manager's state directory or Home Assistant's config directory
        (created if missing); the file is ``history.db`` in it."""
        self.path = Path(directory) / FILENAME
        self.config = config or HistoryConfig()
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._status = HistoryStatus(StoreState.CLOSED, str(self.path))
        self._lock = threading.Lock()

    @property
    def status(self) -> HistoryStatus:
        return self._status

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> HistoryStatus:
        """Open (create, migrate, check). Never raises for a bad file: see ``status``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn, found = self._open_checked()
            self._status = HistoryStatus(
                StoreState.OK, str(self.path), migrated_from=found if 0 < found < VERSION else None
            )
            if 0 < found < VERSION:
                _LOG.info("history %s migrated from schema %d to %d", self.path, found, VERSION)
        except SchemaTooNewError as err:
            _LOG.error("history %s: %s; not recording into it", self.path, err)
            self._status = HistoryStatus(StoreState.ERROR, str(self.path), str(err))
        except sqlite3.Error as err:
            self._recover(err)
        return self._status

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _open_checked(self) -> tuple[sqlite3.Connection, int]:
        conn = self._connect()
        try:
            result = conn.execute("PRAGMA quick_check").fetchone()
            if result is None or result[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {result}")
            found = migrate(conn)
            self._close_interrupted(conn)
        except BaseException:
            conn.close()
            raise
        return conn, found

    def _recover(self, err: sqlite3.Error) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.replace(Path(f"{aside}{suffix}"))
            self._conn, _ = self._open_checked()
        except (OSError, sqlite3.Error) as again:
            _LOG.error(
                "history %s unusable (%s) and no new file could be started: %s",
                self.path,
                err,
                again,
            )
            self._status = HistoryStatus(
                StoreState.ERROR, str(self.path), f"{err}; new file failed: {again}"
            )
            return
        _LOG.error(
            "history %s was damaged (%s); kept it as %s and started a new one",
            self.path,
            err,
            aside,
        )
        self._status = HistoryStatus(
            StoreState.RECOVERED, str(self.path), f"damaged file set aside: {err}", str(aside)
        )

    def _close_interrupted(self, conn: sqlite3.Connection) -> None:
        """A discharge saved as running when the recorder stopped is marked interrupted."""
        rows = conn.execute(
            "SELECT id, record FROM discharges WHERE record LIKE '%\"in_progress\": true%'"
        ).fetchall()
        if not rows:
            return
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for record_id, text in rows:
                data = json.loads(text)
                data["in_progress"], data["interrupted"] = False, True
                conn.execute(
                    "UPDATE discharges SET record = ? WHERE id = ?",
                    (json.dumps(data), record_id),
                )

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as err:
                _LOG.warning("history checkpoint at close failed: %s", err)
            conn.close()
        if self._status.state is not StoreState.ERROR:
            self._status = HistoryStatus(StoreState.CLOSED, str(self.path))

    @property
    def writable(self) -> bool:
        return self._conn is not None

    # -- writing (one thread) --------------------------------------------------------------
    def write(self, batch: WriteBatch) -> None:
        """One transaction. Raises sqlite3.Error (the writer decides what to do)."""
        conn = self._require()
        with self._lock, conn:
            conn.execute("BEGIN IMMEDIATE")
            if batch.pending:
                self._insert_samples(
                    conn, (SampleRow.from_string(t, s, kind) for t, kind, s in batch.pending)
                )
            self._insert_samples(conn, batch.samples)
            if batch.events:
                conn.executemany(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                    [(e.t_ms, e.type, e.message, e.device, e.string, e.data) for e in batch.events],
                )
            if batch.environment:
                conn.executemany(
                    "INSERT INTO environment VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (e.t_ms, e.device, e.temperature, e.humidity, e.hydrogen, e.acid_level)
                        for e in batch.environment
                    ],
                )
            for record in batch.discharges:
                conn.execute(
                    'INSERT INTO discharges (string, start, "end", record) VALUES (?, ?, ?, ?) '
                    'ON CONFLICT (string, start) DO UPDATE SET "end" = excluded."end", '
                    "record = excluded.record",
                    (
                        record.string,
                        to_ms(record.start),
                        to_ms(record.end),
                        json.dumps(record.to_dict()),
                    ),
                )
            for string, totals in batch.energy.items():
                conn.execute(
                    "INSERT INTO energy VALUES (?, ?, ?, ?) ON CONFLICT (string) DO UPDATE SET "
                    "charged_wh = max(charged_wh, excluded.charged_wh), "
                    "discharged_wh = max(discharged_wh, excluded.discharged_wh), t = excluded.t",
                    (string, totals.charged_wh, totals.discharged_wh, batch.energy_t_ms),
                )
            if batch.layout:
                conn.executemany(
                    "INSERT OR REPLACE INTO layout VALUES (?, ?, ?)",
                    [(s, t, json.dumps(list(d))) for s, t, d in batch.layout],
                )

    def write_samples(self, rows: Iterable[SampleRow]) -> None:
        """Bulk insert (imports, benchmarks): one transaction."""
        conn = self._require()
        with self._lock, conn:
            conn.execute("BEGIN IMMEDIATE")
            self._insert_samples(conn, rows)

    @staticmethod
    def _insert_samples(conn: sqlite3.Connection, rows: Iterable[SampleRow]) -> None:
        listed = rows if isinstance(rows, list) else list(rows)
        conn.executemany(
            "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    key(r.string, r.t_ms),
                    int(r.kind),
                    STATE_CODES[r.state],
                    r.current,
                    r.voltage,
                    r.soc,
                    r.temps,
                    r.ris,
                    r.balance,
                )
                for r in listed
            ),
        )
        conn.executemany(
            "INSERT OR REPLACE INTO volts VALUES (?, ?)",
            ((key(r.string, r.t_ms), r.volts) for r in listed),
        )

    def apply_retention(self, now: datetime) -> RetentionResult:
        conn = self._require()
        with self._lock:
            return apply_retention(conn, to_ms(now), self.config)

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError(f"history {self.path} is not open ({self._status})")
        return self._conn

    # -- reading (any thread) --------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise FileNotFoundError(f"no history at {self.path}")
        return sqlite3.connect(
            f"file:{self.path}?mode=ro",
            uri=True,
            timeout=self.busy_timeout_s,
            check_same_thread=False,
        )

    def used_bytes(self) -> int:
        """Bytes in use (the file may be larger: freed pages are reused, not returned)."""
        conn = self._reader()
        try:
            return used_bytes(conn)
        finally:
            conn.close()

    def energy_totals(self) -> dict[int, EnergyTotals]:
        conn = self._reader()
        try:
            rows = conn.execute("SELECT string, charged_wh, discharged_wh FROM energy").fetchall()
        finally:
            conn.close()
        return {int(s): EnergyTotals(float(c), float(d)) for s, c, d in rows}

    def block_voltages(
        self, string: int, position: int, start: datetime, end: datetime
    ) -> BlockSeries:
        """One block's stored voltages, oldest first (two bytes cut out of each row in SQL)."""
        if position < 1:
            raise ValueError("position is 1-based")
        lo, hi = key_range(string, to_ms(start), to_ms(end))
        conn = self._reader()
        try:
            rows = conn.execute(
                f"SELECT key & {T_MASK}, substr(volts, ?, 2) FROM volts "
                "WHERE key BETWEEN ? AND ? ORDER BY key",
                (2 * position - 1, lo, hi),
            ).fetchall()
        finally:
            conn.close()
        return BlockSeries(string, position, [t for t, _ in rows], voltages_at(b for _, b in rows))

    def samples(
        self, start: datetime, end: datetime, string: int | None = None
    ) -> Iterator[SampleRow]:
        """Stored rows in time order (all strings, or one)."""
        strings = [string] if string is not None else range(1, MAX_STRING + 1)
        conn = self._reader()
        try:
            per_string = [self._string_rows(conn, s, to_ms(start), to_ms(end)) for s in strings]
            yield from heapq.merge(*per_string, key=lambda r: r.t_ms)
        finally:
            conn.close()

    @staticmethod
    def _string_rows(
        conn: sqlite3.Connection, string: int, start_ms: int, end_ms: int
    ) -> Iterator[SampleRow]:
        lo, hi = key_range(string, start_ms, end_ms)
        for row in conn.execute(
            "SELECT s.key, kind, state, current, voltage, soc, volts, temps, ris, balance "
            "FROM samples AS s JOIN volts AS v ON v.key = s.key "
            "WHERE s.key BETWEEN ? AND ? ORDER BY s.key",
            (lo, hi),
        ):
            yield SampleRow(
                row[0] & T_MASK,
                row[0] >> T_BITS,
                SampleKind(row[1]),
                STATES_BY_CODE[row[2]],
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
                row[8],
                row[9],
            )

    def events(self, start: datetime, end: datetime) -> list[EventRow]:
        conn = self._reader()
        try:
            rows = conn.execute(
                "SELECT * FROM events WHERE t >= ? AND t <= ? ORDER BY t",
                (to_ms(start), to_ms(end)),
            ).fetchall()
        finally:
            conn.close()
        return [EventRow(*row) for row in rows]

    def environment(self, start: datetime, end: datetime) -> list[EnvironmentRow]:
        conn = self._reader()
        try:
            rows = conn.execute(
                "SELECT * FROM environment WHERE t >= ? AND t <= ? ORDER BY t",
                (to_ms(start), to_ms(end)),
            ).fetchall()
        finally:
            conn.close()
        return [EnvironmentRow(*row) for row in rows]

    def layout(self, string: int, when: datetime | None = None) -> tuple[str, ...]:
        """The devices at each position of a string at a time (the latest by default)."""
        conn = self._reader()
        try:
            row = conn.execute(
                "SELECT devices FROM layout WHERE string = ? AND t <= ? ORDER BY t DESC LIMIT 1",
                (string, to_ms(when) if when else 2**62),
            ).fetchone()
        finally:
            conn.close()
        return tuple(json.loads(row[0])) if row else ()

    def discharges(
        self,
        string: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[DischargeRecord]:
        """Newest first."""
        sql = "SELECT id, record FROM discharges WHERE start >= ? AND start <= ?"
        args: list[object] = [to_ms(start) if start else 0, to_ms(end) if end else 2**62]
        if string is not None:
            sql += " AND string = ?"
            args.append(string)
        sql += " ORDER BY start DESC, string"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        conn = self._reader()
        try:
            rows = conn.execute(sql, args).fetchall()
        finally:
            conn.close()
        return [DischargeRecord.from_dict(json.loads(text), int(i)) for i, text in rows]

    def discharge(self, which: str | int, string: int | None = None) -> DischargeRecord | None:
        """``"last"``, a record number, or a date (``YYYY-MM-DD``: the first that day)."""
        if which == "last":
            found = self.discharges(string, limit=1)
            return found[0] if found else None
        if isinstance(which, int) or which.isdigit():
            conn = self._reader()
            try:
                row = conn.execute(
                    "SELECT id, record FROM discharges WHERE id = ?", (int(which),)
                ).fetchone()
            finally:
                conn.close()
            return DischargeRecord.from_dict(json.loads(row[1]), int(row[0])) if row else None
        try:
            day = date.fromisoformat(which)
        except ValueError:
            raise ValueError(f"discharge: 'last', a number or a date, not {which!r}") from None
        since = datetime(day.year, day.month, day.day).astimezone()
        found = self.discharges(string, since, since + timedelta(days=1))
        return found[-1] if found else None


def used_bytes(conn: sqlite3.Connection) -> int:
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return (pages - free) * size
