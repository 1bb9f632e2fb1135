"""The writer thread: the only code that writes the history file.

The poll cycle's listener calls ``submit`` and returns at once. Batches wait in a bounded
backlog; when the disk cannot keep up and the backlog is full, new *samples* are dropped and
counted (events, discharge records and energy totals are small and always kept). ``stop``
writes what is waiting before it returns.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .batch import WriteBatch
from .retention import RetentionResult
from .store import HistoryStore, StoreState

_LOG = logging.getLogger(__name__)
RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class WriterStats:
    backlog: int  # batches waiting
    dropped_samples: int  # samples not written because the backlog was full or writes failed
    written_batches: int
    failed_batches: int
    last_error: str | None
    cpu_s: float  # thread CPU time spent writing (for the benchmark)
    last_retention: RetentionResult | None


class HistoryWriter:
    def __init__(
        self,
        store: HistoryStore,
        *,
        max_backlog: int = 2000,
        retention_every_s: float = 3600.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.max_backlog = max_backlog
        self.retention_every_s = retention_every_s
        self._now = now
        self._queue: deque[WriteBatch] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._dropped = 0
        self._written = 0
        self._failed = 0
        self._last_error: str | None = None
        self._cpu_s = 0.0
        self._carry: WriteBatch | None = None
        self._retention_at = float("-inf")  # the first pass runs at once
        self._retention: RetentionResult | None = None
        self._idle = threading.Event()
        self._idle.set()

    # -- any thread -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="bacs-history", daemon=True)
        self._thread.start()

    def submit(self, batch: WriteBatch) -> None:
        """Never blocks. Samples beyond the backlog are dropped and counted."""
        if not batch:
            return
        with self._cond:
            if len(self._queue) >= self.max_backlog:
                self._dropped += batch.sample_count
                batch.drop_samples()
                if not batch:
                    return
                self._queue[-1].merge(batch)  # the small, lasting parts ride along
            else:
                self._queue.append(batch)
            self._idle.clear()
            self._cond.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written (or failed)."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify()
        thread.join(timeout)
        if thread.is_alive():
            _LOG.error("history writer did not finish within %.0f s", timeout)

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(
                len(self._queue),
                self._dropped,
                self._written,
                self._failed,
                self._last_error,
                self._cpu_s,
                self._retention,
            )

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    if self._carry is None:
                        self._idle.set()
                    self._cond.wait(RETRY_S if self._carry else self.retention_every_s)
                batch = WriteBatch()
                while self._queue:
                    batch.merge(self._queue.popleft())
                stopping = self._stopping
            if self._carry is not None:
                carry, self._carry = self._carry, None
                carry.merge(batch)
                batch = carry
            if batch:
                self._write(batch)
            self._maybe_retention()
            if stopping:
                with self._cond:
                    if not self._queue:
                        self._idle.set()
                        return

    def _write(self, batch: WriteBatch) -> None:
        started = time.thread_time()
        try:
            self._write_or_carry(batch)
        finally:
            self._cpu_s += time.thread_time() - started

    def _write_or_carry(self, batch: WriteBatch) -> None:
        store = self.store
        if not store.writable and store.status.state is not StoreState.ERROR:
            store.open()
        if not store.writable:  # a file from a newer version, or none could be made
            with self._cond:
                self._dropped += batch.sample_count
            return
        try:
            store.write(batch)
            self._written += 1
            self._last_error = None
            return
        except sqlite3.Error as err:
            self._failed += 1
            self._last_error = str(err)
            _LOG.error("history write failed: %s", err)
            damaged = _damaged(err)
        if damaged:  # damaged under us: set it aside, start a new file, write there
            self._reopen()
            if store.writable:
                try:
                    store.write(batch)
                    self._written += 1
                    return
                except sqlite3.Error as again:
                    _LOG.error("history write to the new file failed too: %s", again)
        # Disk full, I/O error, locked: the samples are lost (counted); the lasting parts
        # (events, discharge records, energy totals) are tried again with the next batch.
        with self._cond:
            self._dropped += batch.sample_count
        batch.drop_samples()
        self._carry = batch if batch else None

    def _reopen(self) -> None:
        """The file turned out damaged while in use: open() checks it, sets it aside and
        starts a new one (see HistoryStore.open)."""
        self.store.close()
        self.store.open()

    def _maybe_retention(self) -> None:
        mono = time.monotonic()
        if mono - self._retention_at < self.retention_every_s or not self.store.writable:
            return
        self._retention_at = mono
        started = time.thread_time()
        try:
            now = self._now() if self._now else datetime.now().astimezone()
            self._retention = self.store.apply_retention(now)
            if self._retention.over_limit:
                _LOG.warning(
                    "history: discharge records alone exceed the size limit (%d bytes used)",
                    self._retention.used_bytes,
                )
        except sqlite3.Error as err:
            _LOG.error("history retention failed: %s", err)
            if _damaged(err):
                self._reopen()
        finally:
            self._cpu_s += time.thread_time() - started


def _damaged(err: sqlite3.Error) -> bool:
    message = str(err).lower()
    return "malformed" in message or "not a database" in message or "corrupt" in message
