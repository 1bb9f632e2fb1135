"""The battery history of one entry: bacs_core's SQLite history beside Home Assistant's
config (``<config>/bacs/<entry_id>/history.db``), recorded from the manager's listeners.

Started before the manager (so the first snapshots are recorded and the energy totals are
known before new energy counts), stopped after it (so its last snapshots are written). A
discharge that becomes final (its recovery reading taken) fires ``bacs_discharge`` on the
bus, which the report blueprint listens for. A UPS linked in the options (``ups.py``) feeds
the recorder from the moment it is attached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import Event, HomeAssistant, callback

from bacs_core.history import DischargeRecord, HistoryConfig, HistoryRecorder, HistoryStore
from bacs_core.source import Source

from .coordinator import BacsConfigEntry
from .ups import async_setup_ups_link, ups_figures

_LOGGER = logging.getLogger(__name__)

EVENT_DISCHARGE: Final = "bacs_discharge"
HISTORY_DIR: Final = "bacs"


def history_dir(hass: HomeAssistant, entry_id: str) -> Path:
    """Where an entry's history, reports and exports live (beside ``.storage``)."""
    return Path(hass.config.path(HISTORY_DIR, entry_id))


def discharge_event_data(entry_id: str, record: DischargeRecord) -> dict[str, Any]:
    weakest = record.weakest if record.early else None
    return {
        "config_entry_id": entry_id,
        "string": record.string,
        "start": record.start.isoformat(),
        "end": record.end.isoformat(),
        "duration_s": record.duration_s,
        "ah": record.ah,
        "wh": record.wh,
        "recovered": record.recovered,
        "early": list(record.early),
        "weakest_block": weakest.position if weakest else None,
        **ups_figures(record),
    }


async def async_start_history(
    hass: HomeAssistant,
    entry: BacsConfigEntry,
    manager: Source,
    wall: Callable[[], datetime] | None = None,
) -> HistoryRecorder:
    """Open the history (in the executor), attach it to the manager, arrange its stop.
    ``wall``: the manager's wall clock when it is not the computer's (a simulator's)."""
    store = HistoryStore(history_dir(hass, entry.entry_id), HistoryConfig())
    recorder = HistoryRecorder(store, clock=wall)
    status = await hass.async_add_executor_job(recorder.open)
    if status.set_aside:
        _LOGGER.error(
            "%s: the history file was damaged and set aside: %s", entry.title, status.set_aside
        )
    recorder.attach(manager)
    async_setup_ups_link(hass, entry, recorder)

    @callback
    def _announce(record: DischargeRecord) -> None:
        if record.recovered:
            hass.bus.async_fire(EVENT_DISCHARGE, discharge_event_data(entry.entry_id, record))

    entry.async_on_unload(recorder.add_discharge_listener(_announce))

    async def _stop(_event: Event | None = None) -> None:
        await recorder.stop()

    # On unload the manager stops first (async_unload_entry), then these run; at shutdown
    # the manager stops on EVENT_HOMEASSISTANT_STOP, the history on the final write.
    entry.async_on_unload(_stop)
    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_FINAL_WRITE, _stop))
    return recorder
