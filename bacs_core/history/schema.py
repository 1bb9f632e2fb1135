"""The store's tables, versioned with ``PRAGMA user_version`` and migrated step by step.

A fresh file runs every step from 0, so the path an old file takes is the path every new
file took: a migration cannot drift from the schema it produces. Add a step, never edit one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

# Version 1 (the first release): samples, events, environment, discharges.
# A sample's key is (string << 45) | t_ms: rows of one string lie together in time order in
# the table's own B-tree, so one block over a year is one range scan and no index is needed.
# The block voltages sit in a narrow table of their own with the same key: the most asked
# question (one block's voltage over months) reads a quarter of the pages.
V1 = """
CREATE TABLE samples (
    key INTEGER PRIMARY KEY, kind INTEGER NOT NULL,
    state INTEGER NOT NULL, current REAL, voltage REAL, soc REAL,
    temps BLOB NOT NULL, ris BLOB NOT NULL, balance BLOB NOT NULL
);
CREATE TABLE volts (key INTEGER PRIMARY KEY, volts BLOB NOT NULL);
CREATE TRIGGER samples_delete AFTER DELETE ON samples
    BEGIN DELETE FROM volts WHERE key = old.key; END;
CREATE TABLE events (
    t INTEGER NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL,
    device TEXT, string INTEGER, data TEXT
);
CREATE INDEX events_t ON events (t);
CREATE TABLE environment (
    t INTEGER NOT NULL, device TEXT NOT NULL,
    temperature REAL, humidity REAL, hydrogen REAL, acid_level REAL
);
CREATE INDEX environment_t ON environment (t);
CREATE TABLE discharges (
    id INTEGER PRIMARY KEY, string INTEGER NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER, record TEXT NOT NULL, UNIQUE (string, start)
);
"""

# Version 2: energy totals that survive restarts, and which device sat at which position.
V2 = """
CREATE TABLE energy (
    string INTEGER PRIMARY KEY, charged_wh REAL NOT NULL, discharged_wh REAL NOT NULL,
    t INTEGER NOT NULL
);
CREATE TABLE layout (
    string INTEGER NOT NULL, t INTEGER NOT NULL, devices TEXT NOT NULL,
    PRIMARY KEY (string, t)
);
CREATE INDEX discharges_start ON discharges (start);
"""

# Version 3: a linked UPS (on battery, load, runtime, input voltage) at the manager's sample
# times and at each change between battery and mains. ``kind`` as the strings' rows of that
# instant: retention keeps a discharge's UPS rows with it.
V3 = """
CREATE TABLE ups (
    t INTEGER PRIMARY KEY, kind INTEGER NOT NULL, on_battery INTEGER,
    load_pct REAL, runtime_s REAL, input_v REAL
);
"""


def _statements(sql: str) -> list[str]:
    """Split a script into statements (a trigger's body holds semicolons of its own)."""
    out: list[str] = []
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                out.append(buffer.strip())
            buffer = ""
    return out


def _script(sql: str) -> Callable[[sqlite3.Connection], None]:
    """Run inside the caller's transaction (``executescript`` would commit first)."""
    statements = _statements(sql)

    def run(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return run


T_BITS = 45  # t_ms below 2**45: until the year 3084
T_MASK = (1 << T_BITS) - 1
MAX_STRING = 64


def key(string: int, t_ms: int) -> int:
    return (string << T_BITS) | t_ms


def key_range(string: int, start_ms: int = 0, end_ms: int = T_MASK) -> tuple[int, int]:
    return key(string, max(0, start_ms)), key(string, min(T_MASK, end_ms))


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _script(V1),
    _script(V2),
    _script(V3),
)
VERSION = len(MIGRATIONS)


class SchemaTooNewError(Exception):
    """The file was written by a newer version: left untouched, not recorded into."""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the file to VERSION, one step per transaction. Returns the version found."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > VERSION:
        raise SchemaTooNewError(f"history schema version {found} is newer than {VERSION}")
    for version in range(found, VERSION):
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    return found
