"""A measurement block's decoded words to a typed reading, each value with its quality.

Ranges are the datasheet's (``model.py``): a value outside what the device kind can measure
keeps its number for diagnostics but is OUT_OF_RANGE, so nothing acts on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..model import (
    CURRENT_SENSOR_RANGE_A,
    DIGITAL_INPUTS,
    MODULE_SPECS,
    RELAY_CHANNELS,
    DeviceFamily,
    Quality,
    Status,
)
from ..snapshot import Value
from .readings import (
    AnyReading,
    CurrentReading,
    DeviceIdentity,
    EnvironmentReading,
    ModuleReading,
    RelayReading,
)

TEMPERATURE_RANGE = (-35.0, 85.0)
HEATSINK_RANGE = (-35.0, 125.0)
HUMIDITY_RANGE = (0.0, 100.0)
HYDROGEN_RANGE = (0.0, 40000.0)
ACID_RANGE = (0.0, 150.0)


def _value(raw: float, lo: float, hi: float, valid: bool) -> Value:
    if not valid:
        return Value(None, Quality.MISSING)
    if not lo <= raw <= hi:
        return Value(raw, Quality.OUT_OF_RANGE)
    return Value(raw)


def build_reading(dev: DeviceIdentity, values: Mapping[str, float], quality: Quality) -> AnyReading:
    """``quality`` is the exchange's: OK or STALE (a STALE answer marks its OK values STALE)."""
    status = Status(int(values["status"]))
    valid = Status.MEASUREMENT_VALID in status
    head = (dev.unit, dev.kind, quality, status, int(values["sequence"]))

    def q(v: Value) -> Value:
        if quality is Quality.STALE and v.quality is Quality.OK:
            return Value(v.value, Quality.STALE)
        return v

    match dev.family:
        case DeviceFamily.BATTERY_MODULE:
            spec = MODULE_SPECS[dev.kind]
            return ModuleReading(
                *head,
                voltage=q(_value(values["voltage"], spec.v_min, spec.v_max, valid)),
                resistance=q(
                    _value(values["resistance"], spec.ri_min_mohm, spec.ri_max_mohm, valid)
                ),
                temperature=q(_value(values["temperature"], *TEMPERATURE_RANGE, valid)),
                balance_current=q(
                    _value(values["balance_current"], 0.0, spec.shunt_max_a * 1.05, True)
                ),
                module_temperature=q(_value(values["module_temperature"], *HEATSINK_RANGE, True)),
                ri_sequence=int(values["ri_sequence"]),
            )
        case DeviceFamily.CURRENT_SENSOR:
            full = CURRENT_SENSOR_RANGE_A[dev.kind]
            current = values["current"]
            cur = _value(current, -full, full, valid)
            if cur.quality is Quality.OK and abs(current) >= full:
                cur = Value(current, Quality.OUT_OF_RANGE)  # saturated
            return CurrentReading(
                *head,
                current=q(cur),
                temperature=q(_value(values["temperature"], *TEMPERATURE_RANGE, valid)),
            )
        case DeviceFamily.RELAY:
            relays = int(values["relays"])
            inputs = int(values["inputs"])
            return RelayReading(
                *head,
                relays=tuple(bool(relays >> n & 1) for n in range(RELAY_CHANNELS)),
                inputs=tuple(bool(inputs >> n & 1) for n in range(DIGITAL_INPUTS)),
            )
        case _:
            return EnvironmentReading(
                *head,
                temperature=q(_value(values["temperature"], *TEMPERATURE_RANGE, valid)),
                humidity=q(_value(values["humidity"], *HUMIDITY_RANGE, valid)),
                hydrogen=q(_value(values["hydrogen"], *HYDROGEN_RANGE, valid)),
                acid_level=q(_value(values["acid_level"], *ACID_RANGE, valid)),
            )
