"""Compact rows: one per string per sample, block values packed as integers in BLOBs.

Scales (little-endian): voltage uint16 mV, temperature int16 0.1 °C, balancing current
uint16 mA, resistance uint16 on a log scale (1 µΩ … 100 Ω, 0.03 % steps: a 2 V cell's
0.2 mΩ and a loose strap's 200 mΩ alike); all ones (or the most negative) = "no usable
value". 8 bytes per block per sample; see docs/history.md for the size arithmetic.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from functools import lru_cache

from ..model import Quality
from ..snapshot import MISSING, ChargeState, ModuleSnapshot, StringSnapshot, Value

V_SCALE = 1000.0  # mV
T_SCALE = 10.0  # 0.1 °C
R_LOG_STEPS = 8192  # uint16 steps per decade of resistance
R_LOG_MIN = -3.0  # log10 of the smallest resistance in mΩ (1 µΩ)
I_SCALE = 1000.0  # mA
U16_NONE = 0xFFFF
I16_NONE = -0x8000
_LITTLE = sys.byteorder == "little"

# Stored codes: fixed forever (never derived from the enum's order).
STATE_CODES: dict[ChargeState, int] = {
    ChargeState.DISCHARGE: 0,
    ChargeState.CHARGE: 1,
    ChargeState.FLOAT: 2,
    ChargeState.REST: 3,
    ChargeState.UNKNOWN: 4,
}
STATES_BY_CODE: dict[int, ChargeState] = {i: state for state, i in STATE_CODES.items()}


class SampleKind(IntEnum):
    """Why a row was written: retention thins FLOAT rows first and never touches KEEP ones."""

    FLOAT = 0  # the periodic float/rest sample
    ACTIVE = 1  # every poll in a charge, or after one
    BURST = 2  # the window around an alarm
    DISCHARGE = 3  # every poll in a discharge and until its recovery reading: never thinned


def ms(when: datetime) -> int:
    return round(when.timestamp() * 1000.0)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000.0, UTC)


def _pack(typecode: str, values: Sequence[int]) -> bytes:
    arr = array(typecode, values)
    if not _LITTLE:
        arr.byteswap()
    return arr.tobytes()


def _unpack(typecode: str, blob: bytes) -> array[int]:
    arr = array(typecode)
    arr.frombytes(blob)
    if not _LITTLE:
        arr.byteswap()
    return arr


def _u16(v: Value, scale: float) -> int:
    x = v.value
    if x is None or not v.usable:
        return U16_NONE
    return min(U16_NONE - 1, max(0, round(x * scale)))


def _i16(v: Value, scale: float) -> int:
    x = v.value
    if x is None or not v.usable:
        return I16_NONE
    return min(0x7FFF, max(I16_NONE + 1, round(x * scale)))


def _log16(v: Value) -> int:
    x = v.value
    if x is None or not v.usable:
        return U16_NONE
    return _log_code(x)


@lru_cache(maxsize=4096)  # resistances change only when a module measures: mostly hits
def _log_code(x: float) -> int:
    if x <= 0:
        return U16_NONE
    return min(U16_NONE - 1, max(0, round((math.log10(x) - R_LOG_MIN) * R_LOG_STEPS)))


_USABLE = (Quality.OK, Quality.STALE)


def _encode_modules(mods: Sequence[ModuleSnapshot]) -> tuple[bytes, bytes, bytes, bytes]:
    """The four block arrays of one string in one pass (the hot path of every stored row)."""
    volts = array("H")
    temps = array("h")
    ris = array("H")
    bal = array("H")
    for m in mods:
        v = m.voltage
        x = v.value
        if x is None or v.quality not in _USABLE:
            volts.append(U16_NONE)
        else:
            n = round(x * V_SCALE)
            volts.append(n if 0 <= n < U16_NONE else (0 if n < 0 else U16_NONE - 1))
        v = m.temperature
        x = v.value
        if x is None or v.quality not in _USABLE:
            temps.append(I16_NONE)
        else:
            n = round(x * T_SCALE)
            temps.append(n if I16_NONE < n <= 0x7FFF else (I16_NONE + 1 if n < 0 else 0x7FFF))
        v = m.resistance
        x = v.value
        ris.append(U16_NONE if x is None or v.quality not in _USABLE else _log_code(x))
        v = m.balance_current
        x = v.value
        if x is None or v.quality not in _USABLE:
            bal.append(U16_NONE)
        else:
            n = round(x * I_SCALE)
            bal.append(n if 0 <= n < U16_NONE else (0 if n < 0 else U16_NONE - 1))
    if not _LITTLE:
        for arr in (volts, temps, ris, bal):
            arr.byteswap()
    return volts.tobytes(), temps.tobytes(), ris.tobytes(), bal.tobytes()


def _unlog16(x: int) -> float | None:
    return None if x == U16_NONE else round(10 ** (x / R_LOG_STEPS + R_LOG_MIN), 6)


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One string at one instant, as stored."""

    t_ms: int
    string: int
    kind: SampleKind
    state: ChargeState
    current: float | None
    voltage: float | None
    soc: float | None
    volts: bytes
    temps: bytes
    ris: bytes
    balance: bytes

    @classmethod
    def from_string(cls, t_ms: int, s: StringSnapshot, kind: SampleKind) -> SampleRow:
        return cls(
            t_ms,
            s.index,
            kind,
            s.charge_state,
            s.current,
            s.voltage,
            s.state_of_charge,
            *_encode_modules(s.modules),
        )

    @classmethod
    def from_values(
        cls,
        t_ms: int,
        string: int,
        kind: SampleKind,
        state: ChargeState,
        current: float | None,
        voltages: Sequence[float | None],
        temperatures: Sequence[float | None] | None = None,
        resistances: Sequence[float | None] | None = None,
        balance_currents: Sequence[float | None] | None = None,
        soc: float | None = None,
    ) -> SampleRow:
        """A row from plain values (imports, tests, benchmarks); None = no value."""
        n = len(voltages)
        none: list[float | None] = [None] * n

        def vals(xs: Sequence[float | None] | None) -> list[Value]:
            return [MISSING if x is None else Value(x) for x in (xs if xs is not None else none)]

        usable = [v for v in voltages if v is not None]
        return cls(
            t_ms,
            string,
            kind,
            state,
            current,
            sum(usable) if len(usable) == n and n else None,
            soc,
            _pack("H", [_u16(v, V_SCALE) for v in vals(voltages)]),
            _pack("h", [_i16(v, T_SCALE) for v in vals(temperatures)]),
            _pack("H", [_log16(v) for v in vals(resistances)]),
            _pack("H", [_u16(v, I_SCALE) for v in vals(balance_currents)]),
        )

    def with_kind(self, kind: SampleKind) -> SampleRow:
        return SampleRow(
            self.t_ms,
            self.string,
            kind,
            self.state,
            self.current,
            self.voltage,
            self.soc,
            self.volts,
            self.temps,
            self.ris,
            self.balance,
        )

    @property
    def time(self) -> datetime:
        return from_ms(self.t_ms)

    def voltages(self) -> list[float | None]:
        return decode_u16(self.volts, V_SCALE)

    def temperatures(self) -> list[float | None]:
        return [None if x == I16_NONE else x / T_SCALE for x in _unpack("h", self.temps)]

    def resistances(self) -> list[float | None]:
        return [_unlog16(x) for x in _unpack("H", self.ris)]

    def balance_currents(self) -> list[float | None]:
        return decode_u16(self.balance, I_SCALE)


def decode_u16(blob: bytes, scale: float) -> list[float | None]:
    none = U16_NONE
    return [None if x == none else x / scale for x in _unpack("H", blob)]


_NONE_BYTES = U16_NONE.to_bytes(2, "little")


def voltages_at(blobs: Iterable[bytes]) -> list[float | None]:
    """One block's voltages from the two bytes SQL's substr() cut out of each row (a row
    written before the block existed gives fewer bytes: no value)."""
    listed = list(blobs)
    joined = b"".join(listed)  # every row holds the block: two bytes each (the fast path)
    if len(joined) != 2 * len(listed):
        joined = b"".join(b if len(b) == 2 else _NONE_BYTES for b in listed)
    return decode_u16(joined, V_SCALE)


@dataclass(frozen=True, slots=True)
class BlockSeries:
    """One block's voltage over a period: parallel lists; ``t_ms`` is UTC epoch milliseconds
    (what plotting wants; ``times`` makes datetimes of them)."""

    string: int
    position: int
    t_ms: list[int]
    voltages: list[float | None]

    @property
    def times(self) -> list[datetime]:
        return [from_ms(t) for t in self.t_ms]
