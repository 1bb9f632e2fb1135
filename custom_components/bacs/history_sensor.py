"""Per string sensors fed by the history: energy charged and discharged (for the Energy
dashboard's battery storage; the totals live in the history file, so they survive restarts)
and the last discharge's summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfEnergy, UnitOfTime

from bacs_core.history import DischargeRecord, EnergyTotals, HistoryRecorder

from .coordinator import BacsCoordinator
from .entity import BacsEntity, StringEntity
from .ups import ups_figures


@dataclass(frozen=True, kw_only=True)
class HistorySensorDescription(SensorEntityDescription):
    value_fn: Callable[[Any], float | str | None]  # of EnergyTotals or a DischargeRecord
    energy: bool = False  # reads the energy totals (else the last discharge)
    attr_fn: Callable[[Any], dict[str, Any]] | None = None


def _weakest(r: DischargeRecord) -> str:
    weakest = r.weakest if r.early else None
    return f"block {weakest.position}" if weakest else "none"


def _discharge_attributes(r: DischargeRecord) -> dict[str, Any]:
    return {
        "start": r.start.isoformat(),
        "end": r.end.isoformat(),
        "energy_kwh": round(r.wh / 1000.0, 3),
        "min_string_voltage": r.min_string_v,
        "capacity_delivered_pct": r.capacity_delivered_pct,
        "fell_early": list(r.early),
        "in_progress": r.in_progress,
        "recovered": r.recovered,
        **ups_figures(r),
    }


ENERGY_SENSORS = (
    HistorySensorDescription(
        key="energy_charged",
        translation_key="energy_charged",
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=3,
        energy=True,
        value_fn=lambda t: t.charged_kwh,
    ),
    HistorySensorDescription(
        key="energy_discharged",
        translation_key="energy_discharged",
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=3,
        energy=True,
        value_fn=lambda t: t.discharged_kwh,
    ),
)
DISCHARGE_SENSORS = (
    HistorySensorDescription(
        key="last_discharge_duration",
        translation_key="last_discharge_duration",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=1,
        value_fn=lambda r: r.duration_s / 60.0,
        attr_fn=_discharge_attributes,
    ),
    HistorySensorDescription(
        key="last_discharge_charge",
        translation_key="last_discharge_charge",
        native_unit_of_measurement="Ah",
        suggested_display_precision=2,
        value_fn=lambda r: r.ah,
    ),
    HistorySensorDescription(
        key="last_discharge_weakest_block",
        translation_key="last_discharge_weakest_block",
        value_fn=_weakest,
    ),
)


class HistorySensor(StringEntity, SensorEntity):
    entity_description: HistorySensorDescription
    _unrecorded_attributes = frozenset({"fell_early", "start", "end", "ups_on_battery_at"})

    @property
    def recorder(self) -> HistoryRecorder | None:
        return self.coordinator.config_entry.runtime_data.history

    def source(self) -> EnergyTotals | DischargeRecord | None:
        recorder = self.recorder
        if recorder is None:
            return None
        if self.entity_description.energy:
            return recorder.energy_totals(self.index)
        return recorder.last_discharge(self.index)

    @property
    def available(self) -> bool:
        # The history speaks of the past: a lost bus does not make the last discharge unknown.
        return self.coordinator.last_update_success and self.recorder is not None

    @property
    def native_value(self) -> float | str | None:
        src = self.source()
        if src is None:
            return None
        value = self.entity_description.value_fn(src)
        precision = self.entity_description.suggested_display_precision
        if isinstance(value, float) and precision is not None:
            return round(value, precision)  # energy: a write per Wh, not per poll
        return value

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        src = self.source()
        attr_fn = self.entity_description.attr_fn
        return None if src is None or attr_fn is None else attr_fn(src)

    def state_key(self) -> Any:
        return (self.available, self.native_value, repr(self.extra_state_attributes))


def string_history_sensors(coordinator: BacsCoordinator, index: int) -> list[BacsEntity]:
    """The history's sensors of one string: energy only where a current sensor measures it."""
    if coordinator.config_entry.runtime_data.history is None:
        return []
    measured = any(s.string == index for s in coordinator.index.sensors.values())
    descriptions = (ENERGY_SENSORS if measured else ()) + DISCHARGE_SENSORS
    return [HistorySensor(coordinator, d, index) for d in descriptions]
