"""The GENEREX CS141 / BACS WEB-MANAGER map: the one table adapter, impersonation, gateway and
docs read.

Facts and their sources: ../shared/specs/generex-bacs.md (Schneider EcoStruxure BMS guide, GENEREX
CS141 manual, the Checkmk ``bacs_*`` plugins). What the public sources leave open is not guessed
silently: it is a field of :class:`Cs141Settings` with a documented default, and the adapter
cross-checks it where both protocols carry the same quantity. docs/scada.md is rendered from this
module (``python -m bacs_core.generex.cs141_doc``) and checked by a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum

# -- Modbus (FC03 or FC04: a CS141 answers both from one register space; 0-based PDU addresses)

MODBUS_PORT = 502  # fixed in the CS141 firmware
MAX_REGISTERS_PER_READ = 125


class GeneralFlag(IntFlag):
    """Register 1000, "General Status Flags" (bits 0–13 documented; 14–15 unknown).

    The whole register at 0 means the web manager's internal communication is interrupted.
    """

    RUNNING = 1 << 0
    CONNECTED = 1 << 1  # connecting / starting up
    MODULE_LOST = 1 << 2
    DISCHARGING = 1 << 3
    CHARGING = 1 << 4
    DISCHARGING_STOPPED = 1 << 5
    FLOAT_CHARGING = 1 << 6
    EQUALISATION = 1 << 7
    SYSTEM_FAILURE = 1 << 8
    VOLTAGE_OUT_OF_RANGE = 1 << 9
    TEMPERATURE_OUT_OF_RANGE = 1 << 10
    RESISTANCE_OUT_OF_RANGE = 1 << 11
    MODULE_ADDRESSING = 1 << 12
    MODULE_SEARCHING = 1 << 13


GENERAL_FLAG_TEXT: dict[GeneralFlag, str] = {
    GeneralFlag.RUNNING: "web manager running normally",
    GeneralFlag.CONNECTED: "web manager connecting / starting up",
    GeneralFlag.MODULE_LOST: "communication with one or more modules lost",
    GeneralFlag.DISCHARGING: "modules detect the batteries discharging",
    GeneralFlag.CHARGING: "modules detect the batteries charging",
    GeneralFlag.DISCHARGING_STOPPED: "a discharge has ended",
    GeneralFlag.FLOAT_CHARGING: "batteries on float charge",
    GeneralFlag.EQUALISATION: "equalisation of one or more blocks active",
    GeneralFlag.SYSTEM_FAILURE: "one or more parts of the BMS are inoperable",
    GeneralFlag.VOLTAGE_OUT_OF_RANGE: "a module voltage is outside its configured range",
    GeneralFlag.TEMPERATURE_OUT_OF_RANGE: "a module temperature is outside its configured range",
    GeneralFlag.RESISTANCE_OUT_OF_RANGE: "a module resistance is outside its configured range",
    GeneralFlag.MODULE_ADDRESSING: "modules on the BACS bus are being addressed",
    GeneralFlag.MODULE_SEARCHING: "searching for a module address",
}


class Confidence(StrEnum):
    HIGH = "high"  # two vendor documents agree
    MEDIUM = "medium"  # one vendor document, or a maintained community plugin
    ASSUMED = "assumed"  # not in any public source: a setting with a documented default


@dataclass(frozen=True, slots=True)
class GeneralRegister:
    name: str
    address: int
    description: str
    confidence: Confidence


GENERAL_REGISTERS: tuple[GeneralRegister, ...] = (
    GeneralRegister("general_flags", 1000, "General Status Flags (bits below)", Confidence.HIGH),
    GeneralRegister(
        "battery_flags", 1001, "Battery Status Flags (bits not public)", Confidence.HIGH
    ),
    GeneralRegister("alarm_flags", 1002, "Alarm Flags (bits not public)", Confidence.HIGH),
    GeneralRegister(
        "num_strings",
        1003,
        "number of configured strings (Schneider map; absent from one CS141 extract)",
        Confidence.MEDIUM,
    ),
    GeneralRegister("num_modules", 1004, "total number of BACS modules", Confidence.HIGH),
)
GENERAL_START = 1000
GENERAL_COUNT = 5
RESERVED_START = 1005  # 1005–1009: not described anywhere (served as 0)


class StringField(IntEnum):
    """Offsets in one string's 5-register block (signed 16-bit)."""

    CURRENT = 0  # DC current, A (negative = discharge on the web UI)
    SUM_VOLTAGE = 1  # total string voltage, V
    AVERAGE_VOLTAGE = 2  # average block voltage, V
    AC_CURRENT = 3  # AC (ripple) current RMS, A
    RESERVED = 4


STRING_FIELD_TEXT: dict[StringField, tuple[str, str]] = {
    StringField.CURRENT: ("A", "DC current of the string"),
    StringField.SUM_VOLTAGE: ("V", "overall (sum) voltage of the string"),
    StringField.AVERAGE_VOLTAGE: ("V", "average block voltage of the string"),
    StringField.AC_CURRENT: ("A", "AC (ripple) current, RMS"),
    StringField.RESERVED: ("", "reserved, not used"),
}
STRING_START = 1010
STRING_STRIDE = 5
MAX_MAIN_STRINGS = 10  # a second string section exists; its address is not public
BLOCK_END = STRING_START + STRING_STRIDE * MAX_MAIN_STRINGS  # 1060, exclusive
BLOCK_COUNT = BLOCK_END - GENERAL_START  # 60 registers: one read covers the whole map


def string_address(string: int, field: StringField) -> int:
    """0-based address of ``field`` of string ``string`` (1…10): 1010 + 5(S−1) + offset."""
    if not 1 <= string <= MAX_MAIN_STRINGS:
        raise ValueError(f"string {string} is outside the documented section 1…10")
    return STRING_START + STRING_STRIDE * (string - 1) + int(field)


# -- SNMP (v2c, v1 fallback): the BACS agent lives under the UPS-MIB subtree -------------------

type Oid = tuple[int, ...]

SYS_DESCR: Oid = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID: Oid = (1, 3, 6, 1, 2, 1, 1, 2, 0)
UPS_MIB: Oid = (1, 3, 6, 1, 2, 1, 33)
BACS: Oid = (*UPS_MIB, 5)
SETTINGS: Oid = (*BACS, 1)
MODULE_TABLE: Oid = (*BACS, 2, 5, 1)  # .<column>.<index>
STRING_TABLE: Oid = (*BACS, 2, 7, 1)  # .<column>.<index>


@dataclass(frozen=True, slots=True)
class SnmpColumn:
    """One SNMP object: ``si = raw / divisor``."""

    name: str
    number: int  # the settings scalar's sub-id, or the table column
    divisor: int
    unit: str
    description: str
    confidence: Confidence


SETTINGS_OBJECTS: tuple[SnmpColumn, ...] = (
    SnmpColumn("module_type", 1, 1, "", "0 = C20, 1 = C21, 10 = C30, 20 = C40", Confidence.MEDIUM),
    SnmpColumn("num_strings", 2, 1, "", "number of strings", Confidence.MEDIUM),
    SnmpColumn("num_batteries", 3, 1, "", "total batteries (modules)", Confidence.MEDIUM),
    SnmpColumn("capacity", 4, 1, "Ah", "installed capacity", Confidence.MEDIUM),
    SnmpColumn("log_rate_normal", 5, 1, "s", "log period in normal operation", Confidence.MEDIUM),
    SnmpColumn(
        "log_rate_active", 6, 1, "s", "log period while charging/discharging", Confidence.MEDIUM
    ),
    SnmpColumn("impedance_poll", 7, 1, "min", "impedance measuring interval", Confidence.MEDIUM),
    SnmpColumn(
        "impedance_low_alarm", 8, 100, "mΩ", "impedance low alarm threshold", Confidence.MEDIUM
    ),
    SnmpColumn(
        "impedance_high_alarm",
        9,
        100,
        "mΩ",
        "impedance high alarm threshold (the guide's scale column says 1, its example 0.01)",
        Confidence.MEDIUM,
    ),
    SnmpColumn("temperature_low_alarm", 10, 10, "°C", "temperature low alarm", Confidence.MEDIUM),
    SnmpColumn("temperature_high_alarm", 11, 10, "°C", "temperature high alarm", Confidence.MEDIUM),
)


class ModuleColumn(IntEnum):
    INDEX = 1
    VOLTAGE = 2
    TEMPERATURE = 3
    RESISTANCE = 5  # column 4 is not read by any public tool; its meaning is unknown
    STATE = 6


MODULE_COLUMNS: tuple[SnmpColumn, ...] = (
    SnmpColumn("index", 1, 1, "", "module index (base 0 or 1)", Confidence.MEDIUM),
    SnmpColumn("voltage", 2, 100, "V", "block voltage", Confidence.MEDIUM),
    SnmpColumn("temperature", 3, 10, "°C", "block temperature", Confidence.MEDIUM),
    SnmpColumn("resistance", 5, 100, "mΩ", "internal resistance", Confidence.MEDIUM),
    SnmpColumn("state", 6, 1, "", "module state (encoding below is assumed)", Confidence.ASSUMED),
)


class StringColumn(IntEnum):
    INDEX = 1
    CURRENT = 2
    VOLTAGE = 3
    AVERAGE_VOLTAGE = 4


STRING_COLUMNS: tuple[SnmpColumn, ...] = (
    SnmpColumn("index", 1, 1, "", "string index (base 0 or 1)", Confidence.MEDIUM),
    SnmpColumn("current", 2, 100, "A", "string current", Confidence.MEDIUM),
    SnmpColumn("voltage", 3, 100, "V", "overall string voltage", Confidence.MEDIUM),
    SnmpColumn("average_voltage", 4, 100, "V", "average block voltage", Confidence.MEDIUM),
)


class ModuleState(IntEnum):
    """``bacsModuleState``: the web UI's module alarm states in the order its help lists them.

    ASSUMED: no public source gives the numbers. 0 = OK is what every tool that reads the column
    treats as good; the rest is our reading of the list, and ``NOT_INITIALISED`` (no
    communication) is what a lost module shows. ``bacs probe`` dumps the raw value to settle it.
    """

    OK = 0
    SYSTEM_WARNING = 1
    VOLTAGE_WARNING = 2
    TEMPERATURE_WARNING = 3
    RESISTANCE_WARNING = 4
    SYSTEM_ALARM = 5
    VOLTAGE_ALARM = 6
    TEMPERATURE_ALARM = 7
    RESISTANCE_ALARM = 8
    NOT_INITIALISED = 9


MODULE_TYPE_CODES: dict[int, str] = {0: "C20", 1: "C21", 10: "C30", 20: "C40"}


# -- what the public sources leave open ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cs141Settings:
    """Every choice the public sources leave open, with its documented default.

    ``string_scale``: raw units per volt/ampere in the Modbus string block. Not public; 10 is the
    default because the SNMP scale (×100) would overflow a signed 16-bit register above 327.67 V,
    which a string of 24 12-V blocks passes on float. The adapter checks it against SNMP and
    reports a mismatch with the factor it sees.
    ``current_sign``: +1 when a negative Modbus current means discharge (the web UI's convention).
    ``unit``: the Modbus unit id set in the CS141 web UI (its default is not public).
    ``index_base``: the SNMP table index base, None = detect (0 if the first index is 0).
    """

    string_scale: int = 10
    current_sign: int = 1
    unit: int = 1
    index_base: int | None = None

    def __post_init__(self) -> None:
        if self.string_scale not in (1, 10, 100, 1000):
            raise ValueError("string_scale must be 1, 10, 100 or 1000")
        if self.current_sign not in (1, -1):
            raise ValueError("current_sign must be 1 or -1")
        if not 0 <= self.unit <= 255:
            raise ValueError("unit must be 0…255")
        if self.index_base not in (None, 0, 1):
            raise ValueError("index_base must be 0, 1 or auto")


def modules_per_string(total_modules: int, strings: int) -> int:
    """GENEREX divides the modules evenly over the strings (CS141 manual, "Define strings")."""
    return max(1, total_modules // max(1, strings))


def string_of_module(module_id: int, total_modules: int, strings: int) -> tuple[int, int]:
    """(string, position) of a 1-based module id: ascending ids fill string 1, then 2, …

    A remainder that does not divide evenly stays in the last string.
    """
    per = modules_per_string(total_modules, strings)
    string = min((module_id - 1) // per + 1, max(1, strings))
    return string, module_id - (string - 1) * per


def to_s16(value: int) -> int:
    """A register word (0…65535) read as signed."""
    return value - 0x10000 if value & 0x8000 else value


def from_s16(value: int) -> int:
    """A signed value as a register word, saturated at the 16-bit bounds."""
    return max(-0x8000, min(0x7FFF, value)) & 0xFFFF
