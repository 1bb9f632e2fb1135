"""The target float voltage per block (configuration); empty means the chemistry's default."""

from __future__ import annotations

from typing import Any

from homeassistant.components.number import NumberEntity, NumberEntityDescription, NumberMode
from homeassistant.const import EntityCategory, UnitOfElectricPotential
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from bacs_core.model import MODULE_SPECS
from bacs_core.snapshot import Capability

from .coordinator import BacsConfigEntry, BacsCoordinator
from .entity import BacsEntity, HubEntity, async_setup_dynamic
from .errors import async_run_command

PARALLEL_UPDATES = 1


class FloatVoltageNumber(HubEntity, NumberEntity):
    """Writes the override into the options; the manager applies it without a reload."""

    _attr_mode = NumberMode.BOX
    _attr_native_step = 0.01
    _attr_native_min_value = 1.0
    _attr_native_max_value = 20.0
    _attr_native_unit_of_measurement = UnitOfElectricPotential.VOLT

    def __init__(self, coordinator: BacsCoordinator) -> None:
        super().__init__(
            coordinator,
            NumberEntityDescription(
                key="float_voltage",
                translation_key="float_voltage",
                entity_category=EntityCategory.CONFIG,
            ),
        )

    @property
    def native_value(self) -> float | None:
        manager = self.coordinator.manager
        if manager.config.float_voltage is not None:
            return manager.config.float_voltage
        kinds = {info.kind for info in self.coordinator.index.infos.values()}
        cells = next((MODULE_SPECS[k].cells for k in kinds if k in MODULE_SPECS), None)
        if cells is None:
            return None
        return round(manager.config.equalization.float_voltage_per_cell * cells, 2)

    def state_key(self) -> Any:
        return (self.available, self.native_value)

    async def async_set_native_value(self, value: float) -> None:
        # At once, and a refusal shown (a remote appliance's site file may not allow it);
        # the options keep it over a restart.
        await async_run_command(self.coordinator.manager.set_float_voltage(value))
        entry = self.coordinator.config_entry
        equalization = {**entry.options.get("equalization", {}), "float_voltage": value}
        self.hass.config_entries.async_update_entry(
            entry, options={**entry.options, "equalization": equalization}
        )


def _entities(coordinator: BacsCoordinator, known: set[Any]) -> list[BacsEntity]:
    if "hub" in known:
        return []
    known.add("hub")
    if not coordinator.can(Capability.EQUALIZE):  # a read-only source has no float target
        return []
    return [FloatVoltageNumber(coordinator)]


async def async_setup_entry(
    hass: HomeAssistant, entry: BacsConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    async_setup_dynamic(entry.runtime_data.coordinator, async_add_entities, _entities)
