"""A CS141's data as served on the wire: registers and OIDs, built once per update.

The impersonating simulator and the gateway both describe what they know as a
:class:`Cs141Content` (SI units) and serve the :class:`Cs141Image` built from it; the servers only
look values up, so answering a client never computes anything and never waits for the source.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import cs141_map as m
from .cs141_map import Oid


@dataclass(frozen=True, slots=True)
class StringContent:
    current_a: float | None
    voltage_v: float | None
    average_v: float | None
    ac_current_a: float | None = None


@dataclass(frozen=True, slots=True)
class ModuleContent:
    module_id: int  # 1-based, ascending across strings as GENEREX numbers them
    voltage_v: float | None
    temperature_c: float | None
    resistance_mohm: float | None
    state: m.ModuleState


@dataclass(frozen=True, slots=True)
class Cs141Content:
    flags: int
    strings: tuple[StringContent, ...]
    modules: tuple[ModuleContent, ...]
    battery_flags: int = 0
    alarm_flags: int = 0
    module_type: int = 0
    capacity_ah: int = 0
    impedance_poll_min: int = 720
    log_rate_normal_s: int = 1200
    log_rate_active_s: int = 60
    impedance_low_alarm_mohm: float = 0.0
    impedance_high_alarm_mohm: float = 0.0
    temperature_low_alarm_c: float = 5.0
    temperature_high_alarm_c: float = 35.0


def _scaled(value: float | None, factor: int) -> int:
    if value is None or not math.isfinite(value):
        return 0
    return round(value * factor)


@dataclass(frozen=True, slots=True)
class Cs141Image:
    """Register ranges (start, words) and a sorted OID table. Picklable (crosses processes)."""

    ranges: tuple[tuple[int, tuple[int, ...]], ...]
    oids: tuple[Oid, ...]
    values: tuple[int | str | Oid, ...]
    serial: int = 0  # bumps with every update
    _starts: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(start for start, _ in self.ranges))

    def read(self, address: int, count: int) -> list[int] | None:
        """``count`` words from ``address``; None when any of them is not served (exception 02)."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0 or count < 1:
            return None
        start, words = self.ranges[i]
        offset = address - start
        if offset + count > len(words):
            return None
        return list(words[offset : offset + count])

    def get(self, oid: Oid) -> int | str | Oid | None:
        i = bisect.bisect_left(self.oids, oid)
        if i < len(self.oids) and self.oids[i] == oid:
            return self.values[i]
        return None

    def next(self, oid: Oid) -> tuple[Oid, int | str | Oid] | None:
        """The first OID after ``oid`` (GETNEXT); None at the end of the view."""
        i = bisect.bisect_right(self.oids, oid)
        if i < len(self.oids):
            return self.oids[i], self.values[i]
        return None


def cs141_registers(content: Cs141Content, settings: m.Cs141Settings) -> tuple[int, ...]:
    """Registers 1000–1059: general block, reserved 1005–1009, strings 1–10 (signed)."""
    words = [0] * m.BLOCK_COUNT
    words[0] = content.flags & 0xFFFF
    words[1] = content.battery_flags & 0xFFFF
    words[2] = content.alarm_flags & 0xFFFF
    words[3] = len(content.strings)
    words[4] = len(content.modules)
    k = settings.string_scale
    for s, string in enumerate(content.strings[: m.MAX_MAIN_STRINGS], start=1):
        current = None if string.current_a is None else string.current_a * settings.current_sign
        fields = {
            m.StringField.CURRENT: _scaled(current, k),
            m.StringField.SUM_VOLTAGE: _scaled(string.voltage_v, k),
            m.StringField.AVERAGE_VOLTAGE: _scaled(string.average_v, k),
            m.StringField.AC_CURRENT: _scaled(string.ac_current_a, k),
        }
        for f, raw in fields.items():
            words[m.string_address(s, f) - m.GENERAL_START] = m.from_s16(raw)
    return tuple(words)


def cs141_oids(
    content: Cs141Content, *, index_base: int = 1, sys_descr: str = "GENEREX CS141 BACS"
) -> list[tuple[Oid, int | str | Oid]]:
    """The settings scalars (instance .0), the module table and the string table."""
    rows: list[tuple[Oid, int | str | Oid]] = [
        (m.SYS_DESCR, sys_descr),
        (m.SYS_OBJECT_ID, m.UPS_MIB),
    ]
    settings = {
        "module_type": content.module_type,
        "num_strings": len(content.strings),
        "num_batteries": len(content.modules),
        "capacity": content.capacity_ah,
        "log_rate_normal": content.log_rate_normal_s,
        "log_rate_active": content.log_rate_active_s,
        "impedance_poll": content.impedance_poll_min,
        "impedance_low_alarm": round(content.impedance_low_alarm_mohm * 100),
        "impedance_high_alarm": round(content.impedance_high_alarm_mohm * 100),
        "temperature_low_alarm": round(content.temperature_low_alarm_c * 10),
        "temperature_high_alarm": round(content.temperature_high_alarm_c * 10),
    }
    for obj in m.SETTINGS_OBJECTS:
        rows.append(((*m.SETTINGS, obj.number, 0), settings[obj.name]))
    for module in content.modules:
        idx = module.module_id - 1 + index_base
        cells: dict[int, int] = {
            m.ModuleColumn.INDEX: idx,
            m.ModuleColumn.VOLTAGE: _scaled(module.voltage_v, 100),
            m.ModuleColumn.TEMPERATURE: _scaled(module.temperature_c, 10),
            m.ModuleColumn.RESISTANCE: _scaled(module.resistance_mohm, 100),
            m.ModuleColumn.STATE: int(module.state),
        }
        rows += [((*m.MODULE_TABLE, col, idx), value) for col, value in cells.items()]
    for s, string in enumerate(content.strings):
        idx = s + index_base
        cells = {
            m.StringColumn.INDEX: idx,
            m.StringColumn.CURRENT: _scaled(string.current_a, 100),
            m.StringColumn.VOLTAGE: _scaled(string.voltage_v, 100),
            m.StringColumn.AVERAGE_VOLTAGE: _scaled(string.average_v, 100),
        }
        rows += [((*m.STRING_TABLE, col, idx), value) for col, value in cells.items()]
    return rows


def build_image(
    content: Cs141Content,
    settings: m.Cs141Settings,
    *,
    index_base: int = 1,
    sys_descr: str = "GENEREX CS141 BACS",
    extra_ranges: Sequence[tuple[int, tuple[int, ...]]] = (),
    serial: int = 0,
) -> Cs141Image:
    ranges = sorted([(m.GENERAL_START, cs141_registers(content, settings)), *extra_ranges])
    rows = sorted(cs141_oids(content, index_base=index_base, sys_descr=sys_descr))
    return Cs141Image(
        ranges=tuple(ranges),
        oids=tuple(oid for oid, _ in rows),
        values=tuple(value for _, value in rows),
        serial=serial,
    )
