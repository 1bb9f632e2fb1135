"""The GENEREX source: reads a CS141 / BACS WEB-MANAGER over Modbus TCP and SNMP. Read-only.

Modbus carries the general flags and the string block; SNMP carries the module table (voltage,
temperature, resistance, state), the string table and the settings. Where both carry a quantity
(string voltage and current) the two are compared, and a disagreement that a power of ten would
explain is reported as a wrong ``string_scale`` (or an inverted ``current_sign``) rather than
shown. Nothing is ever written to the device: the adapter only sends FC03/FC04 and SNMP GETs.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from ..model import Quality
from ..snapshot import MISSING, Value
from . import cs141_map as m
from .modbus_client import Cs141ModbusClient, Cs141ModbusError
from .readings import (
    Cs141Readings,
    GeneralStatus,
    ModuleReading,
    Protocol,
    ScaleMismatch,
    StringReading,
)
from .snmp import V1, V2C
from .snmp_client import SnmpClient, SnmpError, SnmpTarget, SnmpTimeoutError
from .url import GenerexUrl

SCALES = (1, 10, 100, 1000)
MIN_COMPARABLE = {"string_voltage": 2.0, "string_current": 1.0}  # below: nothing to compare
SATURATED = (0x7FFF, -0x8000)


class GenerexUnreachableError(Exception):
    """Neither Modbus nor SNMP answered."""


def _value(raw: int | None, divisor: float) -> Value:
    if raw is None:
        return MISSING
    return Value(raw / divisor)


def check_scale(
    quantity: str, string: int, modbus_raw: int | None, settings: m.Cs141Settings, snmp_si: float
) -> ScaleMismatch | None:
    """None when the Modbus value (with the configured scale) agrees with SNMP's."""
    if modbus_raw is None or abs(snmp_si) < MIN_COMPARABLE[quantity]:
        return None
    sign = settings.current_sign if quantity == "string_current" else 1
    modbus_si = modbus_raw * sign / settings.string_scale
    # Two polls are not simultaneous: allow two steps of the coarser scale and a few per cent.
    slack = 0.05 if quantity == "string_current" else 0.02
    tolerance = max(2.0 / settings.string_scale, slack * abs(snmp_si))
    if abs(modbus_si - snmp_si) <= tolerance and modbus_raw not in SATURATED:
        return None
    flipped = quantity == "string_current" and modbus_si * snmp_si < 0
    suggested: int | None = None
    if modbus_raw not in SATURATED and modbus_raw:
        implied = abs(modbus_raw / snmp_si)
        best = min(SCALES, key=lambda k: abs(math.log10(implied) - math.log10(k)))
        if abs(abs(modbus_raw) / best - abs(snmp_si)) <= max(2.0 / best, slack * abs(snmp_si)):
            suggested = best
    if suggested == settings.string_scale and not flipped:
        suggested = None
    return ScaleMismatch(quantity, string, modbus_raw, modbus_si, snmp_si, suggested, flipped)


def _by_column(
    rows: list[tuple[m.Oid, int | str | m.Oid]], table: m.Oid
) -> dict[int, dict[int, int]]:
    """{column: {index: value}} of one SNMP table (integer cells only)."""
    out: dict[int, dict[int, int]] = defaultdict(dict)
    n = len(table)
    for oid, value in rows:
        if oid[:n] == table and len(oid) == n + 2 and isinstance(value, int):
            out[oid[n]][oid[n + 1]] = value
    return out


class GenerexAdapter:
    """One CS141. ``read()`` never raises for one bad protocol; only when neither answers."""

    def __init__(self, url: GenerexUrl, *, clock: Callable[[], datetime] | None = None) -> None:
        self.url = url
        self._clock = clock or (lambda: datetime.now(UTC))
        self.modbus = Cs141ModbusClient(url.host, url.port, url.settings.unit, url.timeout)
        self._snmp_version: int | None = None
        self._snmp_requests = 0
        self._snmp_failures = 0

    async def close(self) -> None:
        await self.modbus.close()

    async def _snmp_walks(
        self, notes: list[str]
    ) -> tuple[list[tuple[m.Oid, int | str | m.Oid]], str | None]:
        if not self.url.snmp:
            return [], None
        target = SnmpTarget(
            self.url.host, self.url.snmp_port, self.url.community, self.url.timeout / 2, 1
        )
        versions = [self._snmp_version] if self._snmp_version is not None else [V2C, V1]
        for version in versions:
            async with SnmpClient(target, version) as client:
                try:
                    rows = await client.walk(m.BACS)
                except SnmpTimeoutError as err:
                    self._snmp_failures += 1
                    notes.append(str(err))
                    continue
                except SnmpError as err:
                    self._snmp_failures += 1
                    notes.append(f"SNMP: {err}")
                    continue
                finally:
                    self._snmp_requests += client.requests
                if not rows:
                    notes.append("SNMP answers but has no BACS subtree (1.3.6.1.2.1.33.5)")
                self._snmp_version = version
                return rows, "2c" if version == V2C else "1"
        self._snmp_version = None
        return [], None

    async def read(self) -> Cs141Readings:
        started = time.monotonic()
        notes: list[str] = []
        registers: dict[int, int] = {}
        modbus_ok = False
        try:
            registers, more = await self.modbus.read_map()
            notes += more
            modbus_ok = True
        except Cs141ModbusError as err:
            notes.append(f"Modbus: {err}")
        rows, snmp_version = await self._snmp_walks(notes)
        snmp_ok = snmp_version is not None
        if not modbus_ok and not snmp_ok:
            raise GenerexUnreachableError("; ".join(notes) or "no answer")
        readings = self._decode(registers, rows, notes)
        return Cs141Readings(
            timestamp=self._clock(),
            general=readings[0],
            strings=readings[1],
            modules=readings[2],
            module_type=readings[3].get("module_type"),
            settings=readings[3],
            mismatches=readings[4],
            notes=tuple(notes),
            modbus_ok=modbus_ok,
            snmp_ok=snmp_ok,
            snmp_version=snmp_version,
            index_base=readings[5],
            duration_s=time.monotonic() - started,
            raw_registers=registers,
            raw_oids=tuple(rows),
            requests=self.modbus.requests + self._snmp_requests,
            failures=self.modbus.failures + self._snmp_failures,
        )

    def _decode(
        self,
        registers: dict[int, int],
        rows: list[tuple[m.Oid, int | str | m.Oid]],
        notes: list[str],
    ) -> tuple[
        GeneralStatus | None,
        tuple[StringReading, ...],
        tuple[ModuleReading, ...],
        dict[str, int],
        tuple[ScaleMismatch, ...],
        int | None,
    ]:
        settings = self.url.settings
        general: GeneralStatus | None = None
        if 1000 in registers:
            general = GeneralStatus(
                raw=registers[1000],
                battery_flags=registers.get(1001, 0),
                alarm_flags=registers.get(1002, 0),
                num_strings=registers.get(1003),
                num_modules=registers.get(1004),
            )
            if general.unknown_bits:
                notes.append(f"register 1000 sets undocumented bits 0x{general.unknown_bits:04X}")
        scalars: dict[str, int] = {}
        by_number = {obj.number: obj.name for obj in m.SETTINGS_OBJECTS}
        n = len(m.SETTINGS)
        for oid, value in rows:
            if oid[:n] == m.SETTINGS and len(oid) > n and isinstance(value, int):
                name = by_number.get(oid[n])
                if name:
                    scalars[name] = value
        mod_cols = _by_column(rows, m.MODULE_TABLE)
        str_cols = _by_column(rows, m.STRING_TABLE)
        base = settings.index_base
        indices = sorted(
            set(mod_cols.get(m.ModuleColumn.VOLTAGE, {}))
            | set(str_cols.get(m.StringColumn.VOLTAGE, {}))
        )
        if base is None and indices:
            base = 0 if indices[0] == 0 else 1
        base = 1 if base is None else base

        # How many strings and modules: Modbus 1003/1004, then SNMP settings, then table rows.
        snmp_strings = scalars.get("num_strings") or len(str_cols.get(m.StringColumn.VOLTAGE, {}))
        snmp_modules = scalars.get("num_batteries") or len(mod_cols.get(m.ModuleColumn.VOLTAGE, {}))
        n_strings = (general.num_strings if general else None) or snmp_strings or 0
        n_modules = (general.num_modules if general else None) or snmp_modules or 0
        if general and snmp_strings and general.num_strings not in (None, snmp_strings):
            notes.append(
                f"register 1003 says {general.num_strings} strings, SNMP {snmp_strings}; "
                "using register 1003"
            )
        if general and snmp_modules and general.num_modules not in (None, snmp_modules):
            notes.append(f"register 1004 says {general.num_modules} modules, SNMP {snmp_modules}")

        mismatches: list[ScaleMismatch] = []
        strings: list[StringReading] = []
        for s in range(1, n_strings + 1):
            raw: dict[m.StringField, int | None] = {}
            for f in m.StringField:
                word = registers.get(m.string_address(s, f)) if s <= m.MAX_MAIN_STRINGS else None
                raw[f] = None if word is None else m.to_s16(word)
            k = settings.string_scale

            def mb(
                f: m.StringField,
                sign: int = 1,
                raw: dict[m.StringField, int | None] = raw,
                k: int = k,
            ) -> Value:
                word = raw[f]
                if word is None:
                    return MISSING
                if word in SATURATED:
                    return Value(word * sign / k, Quality.OUT_OF_RANGE)
                return Value(word * sign / k)

            idx = s - 1 + base
            snmp_i = str_cols.get(m.StringColumn.CURRENT, {}).get(idx)
            snmp_v = str_cols.get(m.StringColumn.VOLTAGE, {}).get(idx)
            snmp_avg = str_cols.get(m.StringColumn.AVERAGE_VOLTAGE, {}).get(idx)
            if snmp_v is not None:
                voltage, current = _value(snmp_v, 100), _value(snmp_i, 100)
                if snmp_v == 0 and snmp_avg:  # a sum over blocks some of which are lost
                    voltage = MISSING
                average = _value(snmp_avg, 100)
                source: Protocol | None = Protocol.SNMP
                for quantity, field, si in (
                    ("string_voltage", m.StringField.SUM_VOLTAGE, snmp_v / 100),
                    ("string_current", m.StringField.CURRENT, (snmp_i or 0) / 100),
                ):
                    found = check_scale(quantity, s, raw[field], settings, si)
                    if found:
                        mismatches.append(found)
            else:
                voltage = mb(m.StringField.SUM_VOLTAGE)
                current = mb(m.StringField.CURRENT, settings.current_sign)
                average = mb(m.StringField.AVERAGE_VOLTAGE)
                source = Protocol.MODBUS if raw[m.StringField.SUM_VOLTAGE] is not None else None
            strings.append(
                StringReading(s, current, voltage, average, mb(m.StringField.AC_CURRENT), source)
            )
        for found in mismatches:
            notes.append(f"scale check: {found}")

        modules: list[ModuleReading] = []
        volts = mod_cols.get(m.ModuleColumn.VOLTAGE, {})
        temps = mod_cols.get(m.ModuleColumn.TEMPERATURE, {})
        res = mod_cols.get(m.ModuleColumn.RESISTANCE, {})
        states = mod_cols.get(m.ModuleColumn.STATE, {})
        for idx in sorted(set(volts) | set(states)):
            module_id = idx - base + 1
            if module_id < 1:
                notes.append(f"module index {idx} is below the index base {base}; skipped")
                continue
            string, position = m.string_of_module(
                module_id, n_modules or len(volts), n_strings or 1
            )
            state = states.get(idx)
            lost = state == m.ModuleState.NOT_INITIALISED

            def cell(
                column: dict[int, int], divisor: float, idx: int = idx, lost: bool = lost
            ) -> Value:
                return MISSING if lost else _value(column.get(idx), divisor)

            modules.append(
                ModuleReading(
                    module_id,
                    string,
                    position,
                    cell(volts, 100),
                    cell(temps, 10),
                    cell(res, 100),
                    state,
                    lost,
                )
            )
        return (
            general,
            tuple(strings),
            tuple(modules),
            scalars,
            tuple(mismatches),
            (base if rows else None),
        )
