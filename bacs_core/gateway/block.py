"""The gateway's own Modbus block (not in any CS141): everything the snapshot knows, per module.

A CS141 publishes no per-module Modbus registers (none are public), so a SCADA that wants block
voltages over Modbus reads this block; templates made for a CS141 keep reading 1000–1059 and the
SNMP tables unchanged. Layout, 0-based PDU addresses, one 16-bit word each unless u32/s32
(big-endian word order). docs/scada.md is rendered from these tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from ..snapshot import BreakerState, ChargeState, ManagerStatus, TripState

FORMAT_VERSION = 1
HEADER_START = 20000
HEADER_COUNT = 16
STRING_START = 20100
STRING_STRIDE = 10
MAX_STRINGS = 64
MODULE_START = 21000
MODULE_STRIDE = 8
MAX_MODULES = 1000

ACK_ADDRESS = HEADER_START + 10
RESET_ADDRESS = HEADER_START + 11
ACK_VALUE = 1
RESET_VALUE = 0x5245  # "RE": a deliberate value, so a stray write of 1 resets nothing


@dataclass(frozen=True, slots=True)
class BlockField:
    name: str
    offset: int
    type: str  # u16, s16, u32, s32
    scale: float  # si = raw * scale
    unit: str
    access: str  # r or w
    description: str

    @property
    def words(self) -> int:
        return 2 if self.type in ("u32", "s32") else 1


HEADER_FIELDS: tuple[BlockField, ...] = (
    BlockField("format_version", 0, "u16", 1, "", "r", f"layout version, {FORMAT_VERSION}"),
    BlockField("module_count", 1, "u16", 1, "", "r", "modules in the per-module block"),
    BlockField("string_count", 2, "u16", 1, "", "r", "strings in the per-string block"),
    BlockField("status", 3, "u16", 1, "", "r", "manager status (codes below)"),
    BlockField("trip_state", 4, "u16", 1, "", "r", "breaker trip state (codes below)"),
    BlockField("breaker", 5, "u16", 1, "", "r", "breaker position (codes below)"),
    BlockField("alarm_count", 6, "u16", 1, "", "r", "alarms active or latched, unacknowledged"),
    BlockField("cycle", 7, "u16", 1, "", "r", "poll cycle counter (wraps): a stuck value = stale"),
    BlockField("timestamp", 8, "u32", 1, "s", "r", "snapshot time, Unix seconds"),
    BlockField(
        "acknowledge",
        10,
        "u16",
        1,
        "",
        "w",
        f"write {ACK_VALUE}: acknowledge every alarm (only when commands are enabled)",
    ),
    BlockField(
        "reset_trip",
        11,
        "u16",
        1,
        "",
        "w",
        f"write 0x{RESET_VALUE:04X}: reset the latched trip; refused (exception 04) while unsafe",
    ),
)

STRING_FIELDS: tuple[BlockField, ...] = (
    BlockField("voltage", 0, "u32", 0.01, "V", "r", "string voltage (sum of blocks)"),
    BlockField("current", 2, "s32", 0.01, "A", "r", "string current, positive = charging"),
    BlockField("charge_state", 4, "u16", 1, "", "r", "charge state (codes below)"),
    BlockField("spread", 5, "u16", 0.001, "V", "r", "highest − lowest block voltage"),
    BlockField("modules", 6, "u16", 1, "", "r", "modules in this string"),
    BlockField("flags", 7, "u16", 1, "", "r", "bit 0 problem, 1 balancing, 2 values valid"),
    BlockField("reserved", 8, "u32", 1, "", "r", "reserved (0)"),
)

MODULE_FIELDS: tuple[BlockField, ...] = (
    BlockField("voltage", 0, "u16", 0.001, "V", "r", "block voltage"),
    BlockField("temperature", 1, "s16", 0.1, "°C", "r", "block (pole) temperature"),
    BlockField("resistance", 2, "u16", 0.01, "mΩ", "r", "internal resistance"),
    BlockField("balance_current", 3, "s16", 0.001, "A", "r", "equalization shunt current"),
    BlockField("string", 4, "u16", 1, "", "r", "string (1-based)"),
    BlockField("position", 5, "u16", 1, "", "r", "position in the string (1-based)"),
    BlockField("quality", 6, "u16", 1, "", "r", "validity bits (below); 0 where bit clear"),
    BlockField("status", 7, "u16", 1, "", "r", "device status bits (docs/protocol.md)"),
)


class ModuleQualityBit(IntEnum):
    VOLTAGE = 0
    TEMPERATURE = 1
    RESISTANCE = 2
    ONLINE = 3
    PROBLEM = 4
    BALANCING = 5


def enum_codes(enum: type[StrEnum]) -> dict[str, int]:
    """Code on the wire = position in the enum's definition (stable: new members go last)."""
    return {str(member): i for i, member in enumerate(enum)}


STATUS_CODES = enum_codes(ManagerStatus)
TRIP_CODES = enum_codes(TripState)
BREAKER_CODES = enum_codes(BreakerState)
CHARGE_CODES = enum_codes(ChargeState)


def string_address(string: int) -> int:
    return STRING_START + STRING_STRIDE * (string - 1)


def module_address(number: int) -> int:
    """Module ``number`` (1-based, string by string in position order)."""
    return MODULE_START + MODULE_STRIDE * (number - 1)
