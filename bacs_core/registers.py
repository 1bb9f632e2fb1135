"""The module bus register map v1: the one table that client, simulator and docs read.

Every device exposes Modbus holding registers (read with FC03, written with FC06/FC16).
Each block is read or written whole by one request. A value on the wire is a 16-bit
word (or two, big-endian word order, for 32-bit values); ``si = raw * scale``.
docs/protocol.md is checked against this table by tests/core/test_protocol_doc.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .model import DeviceFamily, DeviceKind


class RegType(StrEnum):
    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"

    @property
    def words(self) -> int:
        return 2 if self in (RegType.U32, RegType.S32) else 1

    @property
    def signed(self) -> bool:
        return self in (RegType.S16, RegType.S32)


class Access(StrEnum):
    READ = "r"
    READ_WRITE = "rw"


class RegisterError(ValueError):
    """A value does not fit its register, or raw words do not fit the table."""


@dataclass(frozen=True, slots=True)
class Register:
    name: str
    address: int
    type: RegType
    scale: float
    unit: str
    access: Access
    description: str
    minimum: float | None = None  # SI bounds the register can carry; None = type bounds
    maximum: float | None = None

    @property
    def words(self) -> int:
        return self.type.words

    def raw_bounds(self) -> tuple[int, int]:
        bits = 16 * self.words
        if self.type.signed:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1

    def encode(self, value: float) -> list[int]:
        """SI value to wire words; refuses what the register cannot carry."""
        if self.minimum is not None and value < self.minimum:
            raise RegisterError(f"{self.name}: {value} {self.unit} is below {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise RegisterError(f"{self.name}: {value} {self.unit} is above {self.maximum}")
        raw = round(value / self.scale)
        lo, hi = self.raw_bounds()
        if not lo <= raw <= hi:
            raise RegisterError(f"{self.name}: {value} {self.unit} does not fit {self.type}")
        if raw < 0:
            raw += 1 << (16 * self.words)
        if self.words == 2:
            return [(raw >> 16) & 0xFFFF, raw & 0xFFFF]
        return [raw]

    def decode(self, words: Sequence[int]) -> float:
        """Wire words to an SI value."""
        if len(words) != self.words or any(not 0 <= w <= 0xFFFF for w in words):
            raise RegisterError(f"{self.name}: bad words {list(words)!r}")
        raw = words[0] if self.words == 1 else (words[0] << 16) | words[1]
        bits = 16 * self.words
        if self.type.signed and raw >= 1 << (bits - 1):
            raw -= 1 << bits
        return raw * self.scale


@dataclass(frozen=True, slots=True)
class Block:
    """Contiguous registers that one request reads or writes whole."""

    name: str
    start: int
    registers: tuple[Register, ...]
    description: str

    def __post_init__(self) -> None:
        address = self.start
        for reg in self.registers:
            if reg.address != address:
                raise ValueError(f"{self.name}: {reg.name} at {reg.address}, expected {address}")
            address += reg.words

    @property
    def count(self) -> int:
        return sum(r.words for r in self.registers)

    def register(self, name: str) -> Register:
        for reg in self.registers:
            if reg.name == name:
                return reg
        raise KeyError(f"{self.name} has no register {name!r}")

    def decode(self, words: Sequence[int]) -> dict[str, float]:
        if len(words) != self.count:
            raise RegisterError(f"{self.name}: {len(words)} words, expected {self.count}")
        out: dict[str, float] = {}
        for reg in self.registers:
            offset = reg.address - self.start
            out[reg.name] = reg.decode(words[offset : offset + reg.words])
        return out

    def encode(self, values: Mapping[str, float]) -> list[int]:
        missing = {r.name for r in self.registers} - set(values)
        if missing:
            raise RegisterError(f"{self.name}: missing {sorted(missing)}")
        words: list[int] = []
        for reg in self.registers:
            words.extend(reg.encode(values[reg.name]))
        return words


def _r(
    name: str,
    address: int,
    type_: RegType,
    scale: float,
    unit: str,
    description: str,
    access: Access = Access.READ,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Register:
    return Register(name, address, type_, scale, unit, access, description, minimum, maximum)


U16, S16, U32, S32 = RegType.U16, RegType.S16, RegType.U32, RegType.S32
RW = Access.READ_WRITE

IDENTIFICATION_START = 0x0000
MEASUREMENT_START = 0x0100
CONTROL_START = 0x0200
ADDRESSING_START = 0x0300

IDENTIFICATION = Block(
    "identification",
    IDENTIFICATION_START,
    (
        _r("device_type", 0x0000, U16, 1, "", "DeviceKind code: high byte family, low byte model"),
        _r("protocol_version", 0x0001, U16, 1, "", "Register map version; this table is 1"),
        _r("firmware", 0x0002, U16, 1, "", "Firmware version, major in the high byte"),
        _r("serial", 0x0003, U32, 1, "", "Serial number"),
        _r("rating", 0x0005, U16, 1, "", "Shunt maximum in mA (modules), range in A (sensors)"),
    ),
    "Read once at scan time.",
)

_HEADER = (
    _r("sequence", 0x0100, U16, 1, "", "Counts new measurements, wraps at 65535"),
    _r("status", 0x0101, U16, 1, "", "Status bits, see Status"),
)

MODULE_MEASUREMENT = Block(
    "module_measurement",
    MEASUREMENT_START,
    (
        *_HEADER,
        _r("voltage", 0x0102, U16, 0.001, "V", "Block voltage"),
        _r("resistance", 0x0103, U16, 0.001, "mΩ", "Internal resistance, last measurement"),
        _r("temperature", 0x0104, S16, 0.01, "°C", "Block temperature (negative post)"),
        _r("balance_current", 0x0105, U16, 0.001, "A", "Shunt current flowing now"),
        _r("module_temperature", 0x0106, S16, 0.01, "°C", "Shunt heatsink temperature"),
        _r("ri_sequence", 0x0107, U16, 1, "", "Counts internal-resistance measurements"),
    ),
    "Battery module (C20, C23, C30, C40, C41): one FC03 of 8 registers.",
)

CURRENT_MEASUREMENT = Block(
    "current_measurement",
    MEASUREMENT_START,
    (
        *_HEADER,
        _r("current", 0x0102, S32, 0.001, "A", "String current, positive = charging"),
        _r("temperature", 0x0104, S16, 0.01, "°C", "Sensor temperature"),
    ),
    "DC current sensor (CS200 … CS1500).",
)

RELAY_MEASUREMENT = Block(
    "relay_measurement",
    MEASUREMENT_START,
    (
        *_HEADER,
        _r("relays", 0x0102, U16, 1, "", "Relay outputs now, bit n = relay n+1 energised"),
        _r("inputs", 0x0103, U16, 1, "", "Digital inputs, bit n = input n+1 closed"),
    ),
    "Relay module GX_R_AUX: 4 relays, 4 digital inputs.",
)

ENVIRONMENT_MEASUREMENT = Block(
    "environment_measurement",
    MEASUREMENT_START,
    (
        *_HEADER,
        _r("temperature", 0x0102, S16, 0.01, "°C", "Room temperature"),
        _r("humidity", 0x0103, U16, 0.01, "%", "Relative humidity"),
        _r("hydrogen", 0x0104, U16, 1, "ppm", "Hydrogen in air (40000 ppm = 4 % vol = LEL)"),
        _r("acid_level", 0x0105, U16, 0.1, "%", "Electrolyte level, 100 % = nominal"),
    ),
    "Environment sensor.",
)

MODULE_CONTROL = Block(
    "module_control",
    CONTROL_START,
    (
        _r("balance_setpoint", 0x0200, U16, 0.001, "A", "Commanded shunt current", RW, 0.0),
        _r("watchdog", 0x0201, U16, 1, "s", "Shunt off when setpoint not rewritten", RW, 1, 600),
        _r("command", 0x0202, U16, 1, "", "Command: 1 identify, 2 measure Ri, 3 clear", RW),
    ),
    "Battery module control. Writing balance_setpoint restarts the watchdog.",
)

RELAY_CONTROL = Block(
    "relay_control",
    CONTROL_START,
    (
        _r("relay_setpoint", 0x0200, U16, 1, "", "Relays wanted, bit n = relay n+1", RW, 0, 15),
        _r("watchdog", 0x0201, U16, 1, "s", "Unused on relays (they hold)", RW, 0, 600),
        _r("command", 0x0202, U16, 1, "", "Command: 1 identify, 3 clear", RW),
    ),
    "Relay module control. Relays hold their state without a watchdog.",
)

SENSOR_CONTROL = Block(
    "sensor_control",
    CONTROL_START,
    (
        _r("reserved", 0x0200, U16, 1, "", "Reserved, reads 0", RW, 0, 0),
        _r("watchdog", 0x0201, U16, 1, "s", "Unused on sensors; kept for layout", RW, 0, 600),
        _r("command", 0x0202, U16, 1, "", "Command: 1 identify, 3 clear", RW),
    ),
    "Current and environment sensor control.",
)

ADDRESSING = Block(
    "addressing",
    ADDRESSING_START,
    (
        _r(
            "address",
            0x0300,
            U16,
            1,
            "",
            "Unit id; writable only while the addressing button is armed",
            RW,
            1,
            246,
        ),
    ),
    "A factory-fresh device answers on unit 247. Pressing its button sets ADDRESS_MODE; "
    "the manager then writes the next free unit id here and the device moves to it.",
)

MEASUREMENT_BY_FAMILY: dict[DeviceFamily, Block] = {
    DeviceFamily.BATTERY_MODULE: MODULE_MEASUREMENT,
    DeviceFamily.CURRENT_SENSOR: CURRENT_MEASUREMENT,
    DeviceFamily.RELAY: RELAY_MEASUREMENT,
    DeviceFamily.ENVIRONMENT: ENVIRONMENT_MEASUREMENT,
}

CONTROL_BY_FAMILY: dict[DeviceFamily, Block] = {
    DeviceFamily.BATTERY_MODULE: MODULE_CONTROL,
    DeviceFamily.CURRENT_SENSOR: SENSOR_CONTROL,
    DeviceFamily.RELAY: RELAY_CONTROL,
    DeviceFamily.ENVIRONMENT: SENSOR_CONTROL,
}


def measurement_block(kind: DeviceKind) -> Block:
    return MEASUREMENT_BY_FAMILY[kind.family]


def control_block(kind: DeviceKind) -> Block:
    return CONTROL_BY_FAMILY[kind.family]


def blocks_for(kind: DeviceKind) -> tuple[Block, ...]:
    """Every block a device of this kind serves, in address order."""
    return (IDENTIFICATION, measurement_block(kind), control_block(kind), ADDRESSING)


def all_blocks() -> Iterable[Block]:
    seen: set[str] = set()
    for block in (
        IDENTIFICATION,
        *MEASUREMENT_BY_FAMILY.values(),
        *CONTROL_BY_FAMILY.values(),
        ADDRESSING,
    ):
        if block.name not in seen:
            seen.add(block.name)
            yield block
