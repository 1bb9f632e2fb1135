"""What one poll of one device yields: typed values, each with its quality."""

from __future__ import annotations

from dataclasses import dataclass

from ..model import DeviceFamily, DeviceKind, Quality, Status
from ..snapshot import MISSING, Value


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    unit: int
    kind: DeviceKind
    serial: int
    firmware: str
    protocol_version: int
    rating: int  # shunt maximum in mA (modules), range in A (current sensors)

    @property
    def family(self) -> DeviceFamily:
        return self.kind.family


@dataclass(frozen=True, slots=True)
class UnknownDevice:
    """Something answered with a device_type code this library does not know."""

    unit: int
    device_type: int


@dataclass(frozen=True, slots=True)
class Reading:
    unit: int
    kind: DeviceKind
    quality: Quality  # of the exchange: OK, STALE (sequence did not move) or MISSING
    status: Status
    sequence: int | None


@dataclass(frozen=True, slots=True)
class ModuleReading(Reading):
    voltage: Value = MISSING
    resistance: Value = MISSING  # mΩ
    temperature: Value = MISSING
    balance_current: Value = MISSING
    module_temperature: Value = MISSING
    ri_sequence: int | None = None


@dataclass(frozen=True, slots=True)
class CurrentReading(Reading):
    current: Value = MISSING  # A, positive = charging
    temperature: Value = MISSING


@dataclass(frozen=True, slots=True)
class RelayReading(Reading):
    relays: tuple[bool, ...] | None = None
    inputs: tuple[bool, ...] | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentReading(Reading):
    temperature: Value = MISSING
    humidity: Value = MISSING
    hydrogen: Value = MISSING  # ppm
    acid_level: Value = MISSING  # %


type AnyReading = ModuleReading | CurrentReading | RelayReading | EnvironmentReading


def missing_reading(identity: DeviceIdentity) -> AnyReading:
    """The reading of a device that did not answer usefully this cycle."""
    common = (identity.unit, identity.kind, Quality.MISSING, Status(0), None)
    match identity.family:
        case DeviceFamily.BATTERY_MODULE:
            return ModuleReading(*common)
        case DeviceFamily.CURRENT_SENSOR:
            return CurrentReading(*common)
        case DeviceFamily.RELAY:
            return RelayReading(*common)
        case _:
            return EnvironmentReading(*common)
