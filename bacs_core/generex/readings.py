"""What one read of a CS141 yields: decoded, in SI units, each value with its quality.

This is the adapter's output; :mod:`bacs_core.generex.to_snapshot` turns it into the
``SystemSnapshot`` every consumer reads. Raw words and OIDs are kept for ``bacs probe``'s support
dump: the unknowns in the public map are settled from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ..snapshot import Value
from .cs141_map import GeneralFlag, Oid


class Protocol(StrEnum):
    MODBUS = "modbus"
    SNMP = "snmp"


@dataclass(frozen=True, slots=True)
class GeneralStatus:
    raw: int  # register 1000
    battery_flags: int  # 1001 (bits not public)
    alarm_flags: int  # 1002 (bits not public)
    num_strings: int | None  # 1003
    num_modules: int | None  # 1004

    @property
    def flags(self) -> GeneralFlag:
        return GeneralFlag(self.raw & 0x3FFF)

    @property
    def unknown_bits(self) -> int:
        """Bits 14–15: not described in any public source."""
        return self.raw & 0xC000

    @property
    def communication_interrupted(self) -> bool:
        """The whole register at 0: the web manager's internal communication is down."""
        return self.raw == 0


@dataclass(frozen=True, slots=True)
class StringReading:
    index: int  # 1-based
    current: Value  # A, positive = charging
    voltage: Value  # V, sum
    average_voltage: Value  # V per block
    ac_current: Value  # A RMS (Modbus only)
    source: Protocol | None  # where current and voltage came from


@dataclass(frozen=True, slots=True)
class ModuleReading:
    module_id: int  # 1-based, GENEREX's global numbering
    string: int
    position: int
    voltage: Value
    temperature: Value
    resistance: Value  # mΩ
    state: int | None  # raw bacsModuleState
    lost: bool


@dataclass(frozen=True, slots=True)
class ScaleMismatch:
    """Modbus and SNMP disagree on a quantity both carry: the configured scale is likely wrong."""

    quantity: str  # "string_voltage" or "string_current"
    string: int
    modbus_raw: int
    modbus_value: float  # with the configured scale
    snmp_value: float
    suggested_scale: int | None  # the factor that would make them agree; None = no factor does
    sign_flipped: bool = False

    def __str__(self) -> str:
        hint = (
            f"; string_scale={self.suggested_scale} would match"
            if self.suggested_scale
            else "; no power-of-ten scale matches"
        )
        if self.sign_flipped:
            hint += "; the sign is inverted (current_sign=-1)"
        return (
            f"string {self.string} {self.quantity.replace('_', ' ')}: Modbus {self.modbus_value:g}"
            f" (raw {self.modbus_raw}) vs SNMP {self.snmp_value:g}{hint}"
        )


@dataclass(frozen=True, slots=True)
class Cs141Readings:
    timestamp: datetime
    general: GeneralStatus | None  # None when Modbus did not answer
    strings: tuple[StringReading, ...]
    modules: tuple[ModuleReading, ...]
    module_type: int | None
    settings: dict[str, int]  # SNMP settings scalars by name (raw)
    mismatches: tuple[ScaleMismatch, ...]
    notes: tuple[str, ...]  # what did not work or did not agree, for people
    modbus_ok: bool
    snmp_ok: bool
    snmp_version: str | None
    index_base: int | None
    duration_s: float
    raw_registers: dict[int, int] = field(default_factory=dict)
    raw_oids: tuple[tuple[Oid, int | str | Oid], ...] = ()
    requests: int = 0
    failures: int = 0
