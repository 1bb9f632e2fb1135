"""The sensor base: a description whose ``value_fn`` and ``attr_fn`` read the entity's part of
the snapshot (or of the history), and the entity that shows them. The snapshot's own sensors
add a deadband; the history's sensors (history_sensor.py) write on every change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import SensorEntity, SensorEntityDescription

from bacs_core.snapshot import Capability

from .entity import BacsEntity


@dataclass(frozen=True, kw_only=True)
class BacsSensorEntityDescription(SensorEntityDescription):
    """``value_fn`` reads the entity's value from its part of the snapshot."""

    value_fn: Callable[[Any], float | str | None]
    attr_fn: Callable[[Any], dict[str, Any]] | None = None
    capability: Capability | None = None  # the source must have it (snapshot.capabilities)


class DescribedSensor(BacsEntity, SensorEntity):
    """A sensor whose description reads ``source()``: None (unknown) while there is none."""

    entity_description: BacsSensorEntityDescription
    # Digits kept beyond the display precision (a float is never shown with noise like
    # 0.5369999999).
    _extra_digits = 0

    def source(self) -> Any:
        raise NotImplementedError

    @property
    def native_value(self) -> float | str | None:
        src = self.source()
        if src is None:
            return None
        value = self.entity_description.value_fn(src)
        precision = self.entity_description.suggested_display_precision
        if isinstance(value, float) and precision is not None:
            return round(value, precision + self._extra_digits)
        return value

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        src = self.source()
        attr_fn = self.entity_description.attr_fn
        return None if src is None or attr_fn is None else attr_fn(src)


class BacsSensor(DescribedSensor):
    """A sensor of the snapshot: kept two digits finer than shown, written once it moved by a
    whole display step (the deadband in ``changed``)."""

    _extra_digits = 2

    def state_key(self) -> Any:
        if not self.available:
            return None
        attrs = None
        if self.entity_description.attr_fn is not None:
            attrs = repr(self.extra_state_attributes)
        return (self.native_value, attrs)

    def changed(self, key: Any) -> bool:
        """A numeric value is written again only once it moved by a whole display step from
        the value last written: measurement noise around a rounding boundary (σ 2 mV on a
        0.01 V display) would otherwise flip the shown value on most cycles."""
        last = self._last_key
        if key is None or last is None or key[1] != last[1]:
            return bool(key != last)
        value, before = key[0], last[0]
        precision = self.entity_description.suggested_display_precision
        if isinstance(value, float) and isinstance(before, float) and precision is not None:
            return abs(value - before) >= 0.999 * 10.0**-precision
        return bool(value != before)
