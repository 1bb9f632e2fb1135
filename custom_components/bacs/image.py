"""Per string, the last discharge's end-of-discharge bar chart as an image: each block's
voltage at the end, the recovery voltage dotted, the blocks that fell early in red (the
report's first picture). Rendered (SVG, matplotlib) in the executor when a discharge record
becomes final; shown on dashboards and in the entity's dialog."""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.components.image import ImageEntity
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.util import dt as dt_util

from bacs_core.history import DischargeRecord

from .coordinator import BacsConfigEntry, BacsCoordinator
from .entity import BacsEntity, StringEntity, async_setup_dynamic, new_targets

_LOGGER = logging.getLogger(__name__)
PARALLEL_UPDATES = 0  # read-only: the manager pushes
CHART = EntityDescription(key="last_discharge_chart", translation_key="last_discharge_chart")


def render_chart(record: DischargeRecord, end_v_per_cell: float) -> bytes | None:
    """The bar chart as SVG bytes (None without matplotlib). Blocking."""
    try:
        from bacs_core.report.charts import end_of_discharge_bars
        from bacs_core.report.page import cells_per_block
    except ImportError as err:
        _LOGGER.warning("No discharge chart: %s (install bacs-core[report])", err)
        return None
    svg = end_of_discharge_bars(record, cells_per_block(record), end_v_per_cell)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + svg).encode()


class DischargeChart(StringEntity, ImageEntity):
    _attr_content_type = "image/svg+xml"

    def __init__(self, coordinator: BacsCoordinator, index: int) -> None:
        super().__init__(coordinator, CHART, index)
        ImageEntity.__init__(self, coordinator.hass)
        self._svg: bytes | None = None
        self._drawn: Any = None  # the record the chart shows (its start and recovery)

    def _record(self) -> DischargeRecord | None:
        recorder = self.coordinator.config_entry.runtime_data.history
        record = recorder.last_discharge(self.index) if recorder is not None else None
        return record if record is not None and not record.in_progress else None

    @property
    def available(self) -> bool:
        return self.coordinator.last_update_success  # the past stays readable

    def state_key(self) -> Any:
        return (self.available, self._attr_image_last_updated)

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self._redraw()

    @callback
    def _handle_coordinator_update(self) -> None:
        self._redraw()
        super()._handle_coordinator_update()

    @callback
    def _redraw(self) -> None:
        record = self._record()
        if record is None or (record.start, record.recovered) == self._drawn:
            return
        self._drawn = (record.start, record.recovered)
        self.coordinator.config_entry.async_create_task(self.hass, self._render(record))

    async def _render(self, record: DischargeRecord) -> None:
        recorder = self.coordinator.config_entry.runtime_data.history
        end_v = recorder.store.config.end_v_per_cell if recorder is not None else 1.75
        svg = await self.hass.async_add_executor_job(render_chart, record, end_v)
        if svg is None:
            return
        self._svg = svg
        self._attr_image_last_updated = dt_util.utcnow()
        self._last_key = self.state_key()
        self.async_write_ha_state()

    async def async_image(self) -> bytes | None:
        return self._svg


def _entities(coordinator: BacsCoordinator, known: set[Any]) -> list[BacsEntity]:
    if coordinator.config_entry.runtime_data.history is None:
        return []
    return [
        DischargeChart(coordinator, i) for i in new_targets(known, list(coordinator.index.strings))
    ]


async def async_setup_entry(
    hass: HomeAssistant, entry: BacsConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    async_setup_dynamic(entry.runtime_data.coordinator, async_add_entities, _entities)
