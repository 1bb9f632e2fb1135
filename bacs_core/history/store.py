"""The history file: SQLite (WAL) in a directory the caller gives, written by one thread.

``open()`` creates or migrates the file and checks it. A damaged file (garbage, truncated,
not a database, locked by someone else beyond the timeout) is logged, renamed aside with
its WAL, and a new file started; ``status`` says what happened so a consumer can show it.
Reads use their own short-lived connections, so any thread may query while the writer writes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from .batch import WriteBatch
from .codec import (
    STATE_CODES,
    SampleRow,
)
from .codec import ms as to_ms
from .config import HistoryConfig
from .reader import BUSY_TIMEOUT_S, HistoryReader
from .retention import RetentionResult, apply_retention
from .schema import (
    VERSION,
    SchemaTooNewError,
    key,
    migrate,
)

_LOG = logging.getLogger(__name__)


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


class HistoryStore(HistoryReader):
    """The reader plus the one writing connection (owned by the writer thread once open)."""

    def __init__(
        self,
        directory: str | Path,
        config: HistoryConfig | None = None,
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        super().__init__(directory, config, busy_timeout_s=busy_timeout_s)
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
            result = conn.execute("PRAGMA quick_check(1)").fetchone()
            if result is None or result[0] != "ok":
                problem = str(result[0] if result else "no answer").replace("\n", " ")[:200]
                raise sqlite3.DatabaseError(f"integrity check failed: {problem}")
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
            if batch.ups:
                conn.executemany(
                    "INSERT OR REPLACE INTO ups VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            u.t_ms,
                            int(u.kind),
                            None if u.on_battery is None else int(u.on_battery),
                            u.load_pct,
                            u.runtime_s,
                            u.input_voltage,
                        )
                        for u in batch.ups
                    ],
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
