"""Renders the CS141 map and the gateway's own block as Markdown for docs/scada.md.

``python -m bacs_core.generex.cs141_doc`` prints the section; tests/core/test_scada_doc.py checks
that the document holds exactly this.
"""

from __future__ import annotations

from dataclasses import fields

from ..gateway import block as b
from ..snapshot import BreakerState, ChargeState, ManagerStatus, TripState
from . import cs141_map as m

BEGIN = "<!-- BEGIN GENERATED SCADA MAP: python -m bacs_core.generex.cs141_doc -->"
END = "<!-- END GENERATED SCADA MAP -->"


def _oid(oid: tuple[int, ...]) -> str:
    return "." + ".".join(str(x) for x in oid)


def render_markdown() -> str:
    out = [BEGIN, "", "### CS141-compatible Modbus registers (FC03 or FC04, 0-based)", ""]
    out += ["| address | name | confidence | description |", "|---|---|---|---|"]
    for r in m.GENERAL_REGISTERS:
        out.append(f"| {r.address} | `{r.name}` | {r.confidence} | {r.description} |")
    out.append(f"| {m.RESERVED_START}–{m.STRING_START - 1} | – | – | not described (served as 0) |")
    out += ["", "Register 1000, General Status Flags (0 = internal communication interrupted):", ""]
    out += ["| bit | mask | flag | meaning |", "|---|---|---|---|"]
    for flag, text in m.GENERAL_FLAG_TEXT.items():
        bit = int(flag).bit_length() - 1
        out.append(f"| {bit} | 0x{int(flag):04X} | `{flag.name}` | {text} |")
    out.append("| 14–15 | 0xC000 | – | not public (the adapter reports them) |")
    out += [
        "",
        f"Strings 1…{m.MAX_MAIN_STRINGS}: base(S) = {m.STRING_START} + {m.STRING_STRIDE}(S − 1); "
        "signed 16-bit; value = raw ÷ `string_scale`:",
        "",
        "| offset | field | unit | description |",
        "|---|---|---|---|",
    ]
    for sf, (unit, text) in m.STRING_FIELD_TEXT.items():
        out.append(f"| +{int(sf)} | `{sf.name.lower()}` | {unit} | {text} |")
    out += ["", "### CS141-compatible SNMP objects (v1/v2c, read-only)", ""]
    out += [
        f"sysObjectID ({_oid(m.SYS_OBJECT_ID)}) = {_oid(m.UPS_MIB)}. "
        f"Settings scalars under {_oid(m.SETTINGS)}.N.0:",
        "",
        "| N | name | value = raw ÷ | unit | confidence | description |",
        "|---|---|---|---|---|---|",
    ]
    for o in m.SETTINGS_OBJECTS:
        out.append(
            f"| {o.number} | `{o.name}` | {o.divisor} | {o.unit} | {o.confidence} | "
            f"{o.description} |"
        )
    for title, table, columns in (
        ("Module table", m.MODULE_TABLE, m.MODULE_COLUMNS),
        ("String table", m.STRING_TABLE, m.STRING_COLUMNS),
    ):
        out += [
            "",
            f"{title} {_oid(table)}.COLUMN.INDEX:",
            "",
            "| column | name | value = raw ÷ | unit | confidence | description |",
            "|---|---|---|---|---|---|",
        ]
        for o in columns:
            out.append(
                f"| {o.number} | `{o.name}` | {o.divisor} | {o.unit} | {o.confidence} | "
                f"{o.description} |"
            )
    out += ["", "Module state (`state` column, assumed encoding):", ""]
    out += ["| value | state |", "|---|---|"]
    out += [f"| {s.value} | `{s.name}` |" for s in m.ModuleState]
    out += ["", "### Settings for what the public sources leave open", ""]
    out += ["| setting | default |", "|---|---|"]
    defaults = m.Cs141Settings()
    for setting in fields(m.Cs141Settings):
        value = getattr(defaults, setting.name)
        out.append(f"| `{setting.name}` | {'auto' if value is None else value} |")
    out += ["", "### The gateway's own block (not in a CS141)", ""]
    for title, start, _stride, block_fields in (
        (f"Header at {b.HEADER_START}", b.HEADER_START, 0, b.HEADER_FIELDS),
        (
            f"String S at {b.STRING_START} + {b.STRING_STRIDE}(S − 1), S ≤ {b.MAX_STRINGS}",
            b.STRING_START,
            b.STRING_STRIDE,
            b.STRING_FIELDS,
        ),
        (
            f"Module N at {b.MODULE_START} + {b.MODULE_STRIDE}(N − 1), N ≤ {b.MAX_MODULES} "
            "(string by string, in position order; N is also the SNMP module index)",
            b.MODULE_START,
            b.MODULE_STRIDE,
            b.MODULE_FIELDS,
        ),
    ):
        out += [
            title + ":",
            "",
            "| offset | address (first) | name | type | scale | unit | access | description |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for bf in block_fields:
            out.append(
                f"| +{bf.offset} | {start + bf.offset} | `{bf.name}` | {bf.type} | {bf.scale:g} | "
                f"{bf.unit} | {bf.access} | {bf.description} |"
            )
        out.append("")
    out += ["Module `quality` bits:", "", "| bit | meaning |", "|---|---|"]
    out += [f"| {q.value} | `{q.name.lower()}` |" for q in b.ModuleQualityBit]
    for name, codes_by_value in (
        ("status", b.enum_codes(ManagerStatus)),
        ("trip_state", b.enum_codes(TripState)),
        ("breaker", b.enum_codes(BreakerState)),
        ("charge_state", b.enum_codes(ChargeState)),
    ):
        codes = ", ".join(f"{i} = {value}" for value, i in codes_by_value.items())
        out += ["", f"`{name}` codes: {codes}."]
    out += ["", END]
    return "\n".join(out)


def generated_section(text: str) -> str:
    start = text.index(BEGIN)
    end = text.index(END) + len(END)
    return text[start:end]


if __name__ == "__main__":
    print(render_markdown())
