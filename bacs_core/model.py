"""Device kinds and their datasheet ranges: the vocabulary every other part shares.

Units are SI at every API: volts, amperes (positive = charging), degrees Celsius,
milliohms for internal resistance.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum


class DeviceFamily(StrEnum):
    """What a device on the battery bus is, independent of its model."""

    BATTERY_MODULE = "battery_module"
    CURRENT_SENSOR = "current_sensor"
    RELAY = "relay"
    ENVIRONMENT = "environment"


class DeviceKind(IntEnum):
    """Model code held in the identification block (register ``device_type``)."""

    C20 = 0x0101
    C23 = 0x0102
    C30 = 0x0103
    C40 = 0x0104
    C41 = 0x0105
    CS200 = 0x0201
    CS400 = 0x0202
    CS500 = 0x0203
    CS1000 = 0x0204
    CS1500 = 0x0205
    GX_R_AUX = 0x0301
    ENVIRONMENT = 0x0401

    @property
    def family(self) -> DeviceFamily:
        return _FAMILY_BY_HIGH_BYTE[self.value >> 8]

    @property
    def label(self) -> str:
        """The name ``bacs scan`` prints: module models by name, other devices by family."""
        if self.family is DeviceFamily.BATTERY_MODULE:
            return self.name
        return self.family.value


_FAMILY_BY_HIGH_BYTE = {
    0x01: DeviceFamily.BATTERY_MODULE,
    0x02: DeviceFamily.CURRENT_SENSOR,
    0x03: DeviceFamily.RELAY,
    0x04: DeviceFamily.ENVIRONMENT,
}


class Chemistry(StrEnum):
    VRLA = "vrla"
    FLOODED = "flooded"
    NICD = "nicd"
    LI_ION = "li_ion"


@dataclass(frozen=True, slots=True)
class ModuleSpec:
    """Datasheet ranges of one battery-module model (GENEREX BACS C-series)."""

    kind: DeviceKind
    nominal_v: float
    cells: int  # lead-acid cells per block in the default chemistry
    v_min: float
    v_max: float
    ri_min_mohm: float
    ri_max_mohm: float
    shunt_max_a: float
    t_min_c: float = -35.0
    t_max_c: float = 85.0


MODULE_SPECS: dict[DeviceKind, ModuleSpec] = {
    DeviceKind.C20: ModuleSpec(DeviceKind.C20, 12.0, 6, 9.7, 17.0, 0.5, 60.0, 0.15),
    DeviceKind.C23: ModuleSpec(DeviceKind.C23, 16.0, 8, 9.7, 21.0, 0.5, 60.0, 0.12),
    DeviceKind.C30: ModuleSpec(DeviceKind.C30, 6.0, 3, 4.8, 8.0, 0.5, 60.0, 0.3),
    DeviceKind.C40: ModuleSpec(DeviceKind.C40, 2.0, 1, 1.25, 3.2, 0.02, 6.0, 0.9),
    DeviceKind.C41: ModuleSpec(DeviceKind.C41, 4.0, 2, 2.4, 5.0, 0.5, 30.0, 0.3),
}

CURRENT_SENSOR_RANGE_A: dict[DeviceKind, float] = {
    DeviceKind.CS200: 200.0,
    DeviceKind.CS400: 400.0,
    DeviceKind.CS500: 500.0,
    DeviceKind.CS1000: 1000.0,
    DeviceKind.CS1500: 1500.0,
}

RELAY_CHANNELS = 4
DIGITAL_INPUTS = 4

# Unit ids: 1..246 are assignable; a device fresh from the factory answers on 247
# until the manager gives it a free address (see docs/protocol.md, "Addressing").
FIRST_UNIT_ID = 1
LAST_UNIT_ID = 246
FACTORY_UNIT_ID = 247


class Status(IntFlag):
    """Status bits every device reports in its measurement block."""

    MEASUREMENT_VALID = 1 << 0
    BALANCING = 1 << 1
    OVER_TEMPERATURE = 1 << 2
    WIRING_FAULT = 1 << 3
    SLEEP = 1 << 4
    ADDRESS_MODE = 1 << 5
    WATCHDOG_EXPIRED = 1 << 6
    RI_MEASURING = 1 << 7
    IDENTIFY = 1 << 8


class Command(IntEnum):
    """Values written to the ``command`` register of the control block."""

    NONE = 0
    IDENTIFY = 1
    MEASURE_RI = 2
    CLEAR_FAULTS = 3


class Quality(StrEnum):
    """How far a value can be trusted; a bad device yields a quality, never an exception."""

    OK = "ok"
    STALE = "stale"  # the device answered but its sequence counter did not move
    OUT_OF_RANGE = "out_of_range"  # outside what the device kind can measure
    MISSING = "missing"  # no answer, or an answer that could not be decoded
