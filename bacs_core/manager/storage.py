"""Where the manager keeps what must survive a restart: baselines, latched alarms, the trip.

The caller may pass any ``Storage`` (Home Assistant passes one backed by its own Store).
``FileStorage`` writes JSON atomically (temporary file, fsync, rename) so a power cut never
leaves half a file; a corrupt file is set aside, never silently overwritten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

_LOG = logging.getLogger(__name__)


class Storage(Protocol):
    async def load(self) -> dict[str, Any] | None: ...

    async def save(self, data: dict[str, Any]) -> None: ...


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

    def _load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            _LOG.error(
                "state file %s is corrupt (%s); kept it as %s and started fresh",
                self.path,
                err,
                aside,
            )
            return None
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def load(self) -> dict[str, Any] | None:
        return await asyncio.get_running_loop().run_in_executor(None, self._load)

    async def save(self, data: dict[str, Any]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._save, data)
