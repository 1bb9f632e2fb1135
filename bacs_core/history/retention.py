"""Keep the history inside its age and size limits without ever losing a discharge.

Age: float/charge/alarm rows, events, environment and UPS rows older than ``max_age_days``
go (a discharge's UPS rows stay with it).
Size: while the used pages exceed ``max_bytes``, pass k removes every other periodic float
row older than 1 − 2⁻ᵏ of the float span (the oldest half, then the oldest three quarters …),
so the resolution falls with age (the oldest half ends at ½ⁿ, the next quarter at ½ⁿ⁻¹ …)
and the newest rows keep theirs longest; when float rows cannot be thinned further, charge
and alarm-burst rows are thinned the same way, then the oldest non-discharge rows deleted.
Discharge rows (SampleKind.DISCHARGE) and discharge records are never touched; if they
alone exceed the limit, the result says so.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .codec import SampleKind
from .config import HistoryConfig
from .schema import MAX_STRING, T_MASK, key, key_range

MAX_PASSES = 96
MAX_LEVEL = 24  # beyond this the cutoff no longer moves (2⁻²⁴ of the span)
MAX_EVENTS = 200_000
KEEP = int(SampleKind.DISCHARGE)
THIN_ORDER = ((SampleKind.FLOAT,), (SampleKind.FLOAT, SampleKind.ACTIVE, SampleKind.BURST))


@dataclass(frozen=True, slots=True)
class RetentionResult:
    deleted_by_age: int = 0
    thinned: int = 0
    deleted_for_size: int = 0
    used_bytes: int = 0
    over_limit: bool = False  # discharges alone exceed max_bytes


def _used(conn: sqlite3.Connection) -> int:
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    return (pages - free) * int(conn.execute("PRAGMA page_size").fetchone()[0])


def _in(kinds: tuple[SampleKind, ...]) -> str:
    return ",".join(str(int(k)) for k in kinds)


def _strings(conn: sqlite3.Connection) -> list[tuple[int, int, int]]:
    """(string, first t_ms, last t_ms) of every string with rows: two seeks per string."""
    out = []
    for string in range(1, MAX_STRING + 1):
        lo, hi = key_range(string)
        first = conn.execute(
            "SELECT key FROM samples WHERE key BETWEEN ? AND ? ORDER BY key LIMIT 1", (lo, hi)
        ).fetchone()
        if first is None:
            continue
        last = conn.execute(
            "SELECT key FROM samples WHERE key BETWEEN ? AND ? ORDER BY key DESC LIMIT 1",
            (lo, hi),
        ).fetchone()
        out.append((string, first[0] & T_MASK, last[0] & T_MASK))
    return out


def _thin(conn: sqlite3.Connection, kinds: tuple[SampleKind, ...], level: int) -> int:
    """Every other row of these kinds older than 1 − 2⁻ˡᵉᵛᵉˡ of each string's span."""
    deleted = 0
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        for string, first, last in _strings(conn):
            if first == last:
                continue
            lo, _ = key_range(string)
            cutoff = key(string, last - (last - first) // (2**level))
            deleted += conn.execute(
                "DELETE FROM samples WHERE key IN (SELECT key FROM (SELECT key, "
                "row_number() OVER (ORDER BY key) AS rn FROM samples "
                f"WHERE key BETWEEN ? AND ? AND kind IN ({_in(kinds)})) WHERE rn % 2 = 0)",
                (lo, cutoff),
            ).rowcount
    return deleted


def _delete_oldest(conn: sqlite3.Connection) -> int:
    """The oldest eighth of every string's non-discharge rows, with its events."""
    spans = _strings(conn)
    if not spans:
        return 0
    first = min(f for _, f, _ in spans)
    last = max(t for _, _, t in spans)
    cutoff = first + max(1, (last - first) // 8)
    deleted = 0
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        for string, _, _ in spans:
            lo, hi = key_range(string, 0, cutoff)
            deleted += conn.execute(
                f"DELETE FROM samples WHERE key BETWEEN ? AND ? AND kind != {KEEP}", (lo, hi)
            ).rowcount
        conn.execute("DELETE FROM environment WHERE t <= ?", (cutoff,))
        conn.execute("DELETE FROM events WHERE t <= ?", (cutoff,))
        conn.execute(f"DELETE FROM ups WHERE t <= ? AND kind != {KEEP}", (cutoff,))
    return deleted


def apply_retention(
    conn: sqlite3.Connection, now_ms: int, config: HistoryConfig
) -> RetentionResult:
    by_age = 0
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        if config.max_age_days is not None:
            cutoff = now_ms - int(config.max_age_days * 86_400_000)
            for string, _, _ in _strings(conn):
                lo, hi = key_range(string, 0, cutoff - 1)
                by_age += conn.execute(
                    f"DELETE FROM samples WHERE key BETWEEN ? AND ? AND kind != {KEEP}", (lo, hi)
                ).rowcount
            by_age += conn.execute("DELETE FROM events WHERE t < ?", (cutoff,)).rowcount
            by_age += conn.execute("DELETE FROM environment WHERE t < ?", (cutoff,)).rowcount
            by_age += conn.execute(
                f"DELETE FROM ups WHERE t < ? AND kind != {KEEP}", (cutoff,)
            ).rowcount
        conn.execute(
            "DELETE FROM events WHERE rowid <= (SELECT max(rowid) FROM events) - ?",
            (MAX_EVENTS,),
        )
    thinned = deleted = 0
    limit = config.max_bytes
    if limit is None:
        return RetentionResult(by_age, used_bytes=_used(conn))
    stage, level = 0, 1
    for _ in range(MAX_PASSES):
        if _used(conn) <= limit:
            break
        if stage < len(THIN_ORDER):
            n = _thin(conn, THIN_ORDER[stage], level)
            level += 1
            if n == 0 and level > MAX_LEVEL:
                stage, level = stage + 1, 1
            thinned += n
            continue
        n = _delete_oldest(conn)
        if n == 0:
            break
        deleted += n
    used = _used(conn)
    return RetentionResult(by_age, thinned, deleted, used, used > limit)
