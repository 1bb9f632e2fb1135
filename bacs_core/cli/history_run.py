"""The history (and its UPS link) of ``bacs run``: the same store and recorder Home Assistant
uses, in the appliance's state directory by default (``history:`` and ``ups:`` in the site file,
``--history PATH|off`` on the command line).

Opened off the event loop and attached before the manager starts, stopped after it (its last
snapshots written, the energy totals saved). A damaged file is logged and set aside by the
store; a history that cannot record at all is logged and the manager runs on without it.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import voluptuous as vol

from ..history.config import HistoryConfig
from ..history.reader import FILENAME

if TYPE_CHECKING:
    from ..history.recorder import HistoryRecorder
    from ..source import Source
    from ..ups.config import NutSettings
    from ..ups.nut import NutUpsReader

_LOG = logging.getLogger("bacs.history")

OFF = "off"
LOCK = "history.lock"  # one recorder per history file, whichever command runs it
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)?\s*$")
_UNITS = {
    None: 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}


def _number(low: float, high: float, unit: str) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise vol.Invalid(f"expected a number ({unit})")
        if not low <= value <= high:
            raise vol.Invalid(f"must be between {low:g} and {high:g} {unit}")
        return float(value)

    return check


def _size(value: Any) -> int:
    """Bytes, or a text with a unit: ``1 GiB``, ``500 MiB``, ``2GB``; at least 1 MiB."""
    if isinstance(value, bool):
        raise vol.Invalid("expected a size: bytes or a text such as '1 GiB'")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.match(value) if isinstance(value, str) else None
        if m is None:
            raise vol.Invalid("expected a size: bytes or a text such as '1 GiB' or '500 MiB'")
        size = round(float(m.group(1)) * _UNITS[m.group(2)])
    if size < 1024**2:
        raise vol.Invalid("must be at least 1 MiB")
    return size


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise vol.Invalid("expected a directory path")
    return value


def _or_none(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """None (no limit), else ``check``'s value or its own message (vol.Any would hide it)."""
    return lambda value: None if value is None else check(value)


# Site keys → HistoryConfig fields (seconds without the suffix, as poll_interval is).
_FIELDS = {
    "float_interval": "float_interval_s",
    "active_after": "active_after_s",
    "burst_before": "burst_before_s",
    "burst_after": "burst_after_s",
    "recovery": "recovery_s",
    "max_age_days": "max_age_days",
    "max_size": "max_bytes",
    "end_v_per_cell": "end_v_per_cell",
}

HISTORY_SCHEMA = vol.Schema(
    {
        vol.Optional("enabled", default=True): bool,
        vol.Optional("path"): _or_none(_path),
        vol.Optional("float_interval"): _number(10, 86400, "s"),
        vol.Optional("active_after"): _number(0, 7 * 86400, "s"),
        vol.Optional("burst_before"): _number(0, 3600, "s"),
        vol.Optional("burst_after"): _number(0, 86400, "s"),
        vol.Optional("recovery"): _number(60, 86400, "s"),
        vol.Optional("max_age_days"): _or_none(_number(1, 100 * 365, "days")),
        vol.Optional("max_size"): _or_none(_size),
        vol.Optional("end_v_per_cell"): _number(1.5, 2.1, "V per cell"),
    }
)


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """Whether and where ``bacs run`` records, and what the recorder keeps (the library's
    own HistoryConfig). ``path`` None: the state directory; relative: inside it."""

    enabled: bool = True
    path: Path | None = None
    config: HistoryConfig = field(default_factory=HistoryConfig)

    def directory(self, state_dir: Path | None) -> Path | None:
        """Where history.db lives, or None when nothing is recorded."""
        if not self.enabled:
            return None
        if self.path is None:
            return state_dir
        if self.path.is_absolute() or state_dir is None:
            return self.path
        return state_dir / self.path


def history_settings(data: Any) -> HistorySettings:
    """Validate the ``history:`` section; raises vol.Invalid with the path of the bad field."""
    if data is None:
        return HistorySettings()
    if isinstance(data, bool):  # history: off / history: on
        return HistorySettings(enabled=data)
    if not isinstance(data, dict):
        raise vol.Invalid("expected a mapping (enabled:, path:, float_interval:, …) or off")
    v = HISTORY_SCHEMA(data)
    values = {_FIELDS[k]: v[k] for k in _FIELDS if k in v}
    if "max_bytes" in values and values["max_bytes"] is not None:
        values["max_bytes"] = int(values["max_bytes"])
    try:
        config = HistoryConfig(**values)
    except ValueError as err:  # the library's own cross-checks, should any fail
        raise vol.Invalid(str(err)) from None
    path = v.get("path")
    return HistorySettings(v["enabled"], Path(path).expanduser() if path else None, config)


def ups_section(data: Any) -> NutSettings:
    """Validate the ``ups:`` section (and that aionut is installed)."""
    from ..ups.config import ups_settings

    settings = ups_settings(data)
    try:
        import aionut  # noqa: F401
    except ImportError:
        raise vol.Invalid("needs aionut: pip install 'bacs-core[ups]'") from None
    return settings


# -- the command line ---------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--history",
        metavar="DIR|off",
        help=f"record the battery history ({FILENAME}) in DIR, or off; the appliance records "
        "in its state directory by default (the site file's history:)",
    )


def from_args(value: str | None, section: HistorySettings | None) -> HistorySettings:
    """The site file's settings (or the defaults), with ``--history`` over them."""
    base = section if section is not None else HistorySettings()
    if value is None:
        return base
    if value.strip().lower() == OFF:
        return HistorySettings(False, base.path, base.config)
    return HistorySettings(True, Path(value).expanduser(), base.config)


# -- running ------------------------------------------------------------------------------
class RunHistory:
    """The recorder (and the NUT reader feeding it) for one run of the manager."""

    def __init__(
        self,
        directory: Path,
        config: HistoryConfig,
        *,
        ups: NutSettings | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.directory = directory
        self.config = config
        self.ups_settings = ups
        self.clock = clock
        self.recorder: HistoryRecorder | None = None
        self.ups: NutUpsReader | None = None
        self._lock: IO[str] | None = None

    def _acquire(self) -> None:
        """Two recorders on one file would each take the other's lock for damage."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = (self.directory / LOCK).open("a+", encoding="utf-8")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise OSError("another bacs run records into this history") from None
        self._lock = lock

    async def start(self, source: Source) -> bool:
        """Open the store (off the loop) and attach it; start the UPS reader. False (and
        logged) when the history cannot record at all: the manager runs on without it."""
        from ..history import HistoryRecorder, HistoryStore, StoreState

        try:
            self._acquire()
        except OSError as err:  # the directory cannot be made, or another run records there
            _LOG.error("history in %s: %s; not recording", self.directory, err)
            return False
        self.recorder = HistoryRecorder(HistoryStore(self.directory, self.config), clock=self.clock)
        status = await self.recorder.start()
        if status.set_aside:
            _LOG.error(
                "history: the file was damaged and set aside as %s; recording into a new one "
                "(%s)",
                status.set_aside,
                status.message,
            )
        if status.state is StoreState.ERROR:
            _LOG.error("history %s cannot record: %s", status.path, status.message)
        else:
            _LOG.info("history in %s", status.path)
        self.recorder.attach(source)
        if self.ups_settings is not None:
            from ..ups.nut import NutUpsReader

            self.ups = NutUpsReader(self.ups_settings, self.recorder.ups_update)
            self.ups.start()
            _LOG.info(
                "UPS %s polled every %g s", self.ups_settings.url, self.ups_settings.interval_s
            )
        return True

    async def stop(self) -> None:
        """After the manager stopped: the UPS reader ends, what waits is written, closed."""
        if self.ups is not None:
            await self.ups.stop()
            self.ups = None
        if self.recorder is not None:
            await self.recorder.stop()
            stats = self.recorder.status.writer
            _LOG.info(
                "history closed: %d batches written, %d failed, %d samples dropped",
                stats.written_batches,
                stats.failed_batches,
                stats.dropped_samples,
            )
            self.recorder = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
