"""Where the manager keeps what must survive a restart: baselines, latched alarms, the trip.

The caller may pass any ``Storage`` (Home Assistant passes one backed by its own Store). A
store that exists but cannot be read raises ``StateUnreadableError``: the manager then starts
with the trip state UNKNOWN, never as if nothing had been stored.

``FileStorage`` writes JSON atomically (temporary file, fsync, rename) so a power cut never
leaves half a file, and keeps a second good copy beside it (``NAME.bak``), written after the
main one: the last state that reached the disk intact, so a damaged main file (bad JSON,
invalid UTF-8, not an object, a directory, unreadable) never falls back to a state from
before a trip. The damaged file is set aside (``NAME.corrupt-TIME``) and the copy is read
instead; a rejected one too (``fall_back``, when the manager finds a field mistyped). The
latch survives when either copy is good; when neither is, load raises StateUnreadableError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

_LOG = logging.getLogger(__name__)
# Key FileStorage adds to what it returns when it read the backup copy: why.
BACKUP_NOTE_KEY = "recovered_from_backup"


class StateUnreadableError(Exception):
    """Stored state exists but cannot be read or trusted (message says where and why)."""


class Storage(Protocol):
    async def load(self) -> dict[str, Any] | None:
        """The stored state; None when nothing was ever stored; StateUnreadableError when
        something is there but cannot be read."""
        ...

    async def save(self, data: dict[str, Any]) -> None: ...


@runtime_checkable
class BackupStorage(Protocol):
    async def fall_back(self, problem: str) -> dict[str, Any] | None:
        """The main copy was rejected (``problem``): set it aside and return the previous
        good copy (None when there is none; StateUnreadableError when it is damaged too)."""
        ...


class MemoryStorage:
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = data
        self.saves = 0

    async def load(self) -> dict[str, Any] | None:
        return json.loads(json.dumps(self.data)) if self.data is not None else None

    async def save(self, data: dict[str, Any]) -> None:
        self.data = json.loads(json.dumps(data))
        self.saves += 1


class FileStorage:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.backup = self.path.with_name(f"{self.path.name}.bak")

    # -- reading -----------------------------------------------------------------------------
    @staticmethod
    def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
        """(data, problem): data None with a problem when the file is damaged."""
        try:
            raw = path.read_bytes()
        except IsADirectoryError:
            return None, f"{path} is a directory, not a state file"
        except PermissionError as err:
            return None, f"{path} cannot be read: {err.strerror}"
        except OSError as err:
            if isinstance(err, FileNotFoundError):
                raise
            return None, f"{path} cannot be read: {err.strerror or err}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return None, f"{path} is not UTF-8 text (byte {err.start})"
        try:
            data = json.loads(text)
        except ValueError as err:
            return None, f"{path} is not valid JSON ({err})"
        if not isinstance(data, dict):
            return None, f"{path} holds a JSON {type(data).__name__}, not an object"
        return data, None

    def _set_aside(self, path: Path) -> None:
        if not path.is_file():
            return  # a directory or an unreadable path stays for a person to look at
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        try:
            os.replace(path, aside)
            _LOG.error("damaged state file %s kept as %s", path, aside)
        except OSError as err:
            _LOG.error("cannot set damaged state file %s aside: %s", path, err)

    def _load_backup(self, problem: str) -> dict[str, Any] | None:
        try:
            data, bak_problem = self._read(self.backup)
        except FileNotFoundError:
            raise StateUnreadableError(f"{problem}; no backup copy {self.backup}") from None
        if data is None:
            raise StateUnreadableError(f"{problem}; the backup copy is damaged too: {bak_problem}")
        _LOG.error("%s; read the previous copy %s instead", problem, self.backup)
        return {**data, BACKUP_NOTE_KEY: f"{problem}; the previous copy {self.backup} was used"}

    def _load(self) -> dict[str, Any] | None:
        try:
            data, problem = self._read(self.path)
        except FileNotFoundError:
            if self.backup.exists():
                return self._load_backup(f"{self.path} is missing")
            return None
        if data is None:
            assert problem is not None
            self._set_aside(self.path)
            return self._load_backup(problem)
        return data

    def _fall_back(self, problem: str) -> dict[str, Any] | None:
        self._set_aside(self.path)
        return self._load_backup(f"{self.path}: {problem}")

    # -- writing -----------------------------------------------------------------------------
    def _write(self, path: Path, text: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(data, indent=1, sort_keys=True)
        self._write(self.path, text)
        # Then the copy: the main file is whole before the copy changes, and the copy whole
        # before the next main write, so one of them always holds the last good state.
        self._write(self.backup, text)
        try:  # the renames themselves survive a power cut once the directory is synced
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    async def load(self) -> dict[str, Any] | None:
        return await asyncio.get_running_loop().run_in_executor(None, self._load)

    async def fall_back(self, problem: str) -> dict[str, Any] | None:
        return await asyncio.get_running_loop().run_in_executor(None, self._fall_back, problem)

    async def save(self, data: dict[str, Any]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._save, data)
