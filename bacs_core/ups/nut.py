"""A NUT client (aionut, Home Assistant's own) that polls one UPS and reports its status.

Every ``interval_s`` one ``LIST VAR`` answers ``ups.status`` (OB: on battery, OL: on line),
``ups.load`` (%), ``battery.runtime`` (s) and ``input.voltage`` (V); the status goes to the
callback only when it changes. A lost server (refused, timed out, closed, a login refused, an
unknown UPS name) is logged once, reported as ``UpsStatus()`` (nothing known: the history
stops linking the UPS and the strings' own current decides a discharge), and retried at
the same interval; the first good answer after it is logged too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping

from aionut import AIONUTClient, NUTError

from ..history.ups import UpsStatus
from .config import NutSettings

_LOG = logging.getLogger(__name__)

VAR_STATUS = "ups.status"
VAR_LOAD = "ups.load"
VAR_RUNTIME = "battery.runtime"
VAR_INPUT_VOLTAGE = "input.voltage"


def _on_battery(status: str | None) -> bool | None:
    """NUT's ``ups.status`` flags: OB (on battery) wins over OL (on line); else unknown."""
    if status is None:
        return None
    flags = status.upper().split()
    if "OB" in flags:
        return True
    if "OL" in flags:
        return False
    return None


def _number(text: str | None, high: float) -> float | None:
    """A NUT value as a float within UpsStatus's range; anything else is not known."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0.0 <= value <= high else None


def status_from_vars(variables: Mapping[str, str]) -> UpsStatus:
    """The UpsStatus one ``LIST VAR`` answer says (a variable not offered: None)."""
    return UpsStatus(
        on_battery=_on_battery(variables.get(VAR_STATUS)),
        load_pct=_number(variables.get(VAR_LOAD), 1000.0),
        runtime_s=_number(variables.get(VAR_RUNTIME), 10 * 86400.0),
        input_voltage=_number(variables.get(VAR_INPUT_VOLTAGE), 100_000.0),
    )


class NutUpsReader:
    """Polls one UPS on a NUT server; ``on_status(UpsStatus)`` at every change."""

    def __init__(self, settings: NutSettings, on_status: Callable[[UpsStatus], None]) -> None:
        self.settings = settings
        self._on_status = on_status
        self._client: AIONUTClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._last: UpsStatus | None = None
        self._lost: str | None = None  # why the server is not answering (logged once)
        self.polls = 0
        self.failures = 0

    @property
    def status(self) -> UpsStatus | None:
        """The last status reported (None before the first answer)."""
        return self._last

    @property
    def connected(self) -> bool:
        return self._lost is None and self._last is not None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bacs-nut")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close()

    def _close(self) -> None:
        if self._client is not None:
            self._client.shutdown()
            self._client = None

    def _new_client(self) -> AIONUTClient:
        s = self.settings
        return AIONUTClient(
            s.host, s.port, s.username, s.password, timeout=s.timeout_s, persistent=True
        )

    async def poll_once(self) -> UpsStatus:
        """One ``LIST VAR``; raises NUTError or OSError when the server does not answer."""
        if self._client is None:
            self._client = self._new_client()
        variables = await self._client.list_vars(self.settings.ups)
        return status_from_vars(variables)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                status = await self.poll_once()
            except (NUTError, OSError, TimeoutError) as err:
                self._failed(err)
            else:
                self._answered(status)
            await asyncio.sleep(max(0.0, self.settings.interval_s - (loop.time() - started)))

    def _answered(self, status: UpsStatus) -> None:
        self.polls += 1
        if self._lost is not None:
            _LOG.info("UPS %s answers again", self.settings.url)
            self._lost = None
        if status != (self._last or UpsStatus()):  # before any answer: nothing known
            self._last = status
            self._report(status)
        self._last = status

    def _failed(self, err: BaseException) -> None:
        self.failures += 1
        self._close()  # a fresh connection (and login) next time
        reason = f"{type(err).__name__}: {err}".rstrip(": ")
        if self._lost is None:
            _LOG.warning(
                "UPS %s cannot be read (%s); its state is unknown until it can, retrying "
                "every %g s",
                self.settings.url,
                reason,
                self.settings.interval_s,
            )
            self._lost = reason
        unknown = UpsStatus()
        if (self._last or unknown) != unknown:
            self._report(unknown)
        self._last = unknown

    def _report(self, status: UpsStatus) -> None:
        try:
            self._on_status(status)
        except Exception:  # a consumer's bug never stops the reader
            _LOG.exception("UPS status consumer failed")
