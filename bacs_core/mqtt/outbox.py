"""Alarms and trips waiting for the broker, on disk: a broker outage, or a restart of the
appliance during one, loses none of them.

SQLite (the standard library's, WAL, synchronous=FULL): a row per message, deleted when the
broker acknowledged it (QoS 1 PUBACK). Only the publisher's worker thread touches it.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Queued:
    id: int
    topic: str
    payload: str
    retain: bool


class Outbox:
    def __init__(self, path: str | Path, *, limit: int = 100000) -> None:
        self.path = Path(path)
        self.limit = limit
        self.dropped = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as err:
            # A damaged queue must not stop the appliance: set it aside, say so, go on.
            aside = self.path.with_name(self.path.name + ".corrupt")
            self.path.replace(aside)
            _LOG.error("MQTT queue %s is damaged (%s); kept it as %s", self.path, err, aside)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "topic TEXT NOT NULL, payload TEXT NOT NULL, retain INTEGER NOT NULL)"
        )
        db.execute("SELECT count(*) FROM outbox").fetchone()
        return db

    def put(self, topic: str, payload: str, *, retain: bool = False) -> int:
        cur = self._db.execute(
            "INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, ?)",
            (topic, payload, int(retain)),
        )
        row = cur.lastrowid
        assert row is not None
        if len(self) > self.limit:
            # Past the limit the oldest go: a queue that fills the disk loses everything.
            excess = len(self) - self.limit
            self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                (excess,),
            )
            self.dropped += excess
            _LOG.error("MQTT queue full (%d): dropped the %d oldest messages", self.limit, excess)
        return row

    def done(self, row: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (row,))

    def pending(self) -> list[Queued]:
        rows = self._db.execute("SELECT id, topic, payload, retain FROM outbox ORDER BY id")
        return [Queued(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def __len__(self) -> int:
        count: int = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return count

    def close(self) -> None:
        self._db.close()
