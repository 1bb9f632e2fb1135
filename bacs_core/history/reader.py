"""Reading the history file: any thread, each query on its own short-lived read-only
connection, so Home Assistant or the CLI can ask while the writer writes (WAL)."""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

from .batch import EnvironmentRow, EventRow
from .codec import STATES_BY_CODE, BlockSeries, SampleKind, SampleRow, voltages_at
from .codec import ms as to_ms
from .config import HistoryConfig
from .energy import EnergyTotals
from .records import DischargeRecord
from .schema import MAX_STRING, T_BITS, T_MASK, key_range
from .ups import UpsRow

FILENAME = "history.db"
BUSY_TIMEOUT_S = 5.0


class HistoryReader:
    """Queries only: never creates, migrates or repairs the file (``HistoryStore`` does)."""

    def __init__(
        self,
        directory: str | Path,
        config: HistoryConfig | None = None,
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        """``directory``: the manager's state directory or Home Assistant's config directory;
        the file is ``history.db`` in it."""
        self.path = Path(directory) / FILENAME
        self.config = config or HistoryConfig()
        self.busy_timeout_s = busy_timeout_s

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

    def ups(self, start: datetime, end: datetime) -> list[UpsRow]:
        """The linked UPS's stored readings, oldest first (none when no UPS is linked, or in a
        file from before schema 3 that no store has migrated yet: a reader never migrates)."""
        conn = self._reader()
        try:
            rows = conn.execute(
                "SELECT * FROM ups WHERE t >= ? AND t <= ? ORDER BY t",
                (to_ms(start), to_ms(end)),
            ).fetchall()
        except sqlite3.OperationalError as err:
            if "no such table" not in str(err):
                raise
            rows = []
        finally:
            conn.close()
        return [
            UpsRow(int(t), SampleKind(kind), None if ob is None else bool(ob), load, rt, vin)
            for t, kind, ob, load, rt, vin in rows
        ]

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
