"""The report as one self-contained HTML page: inline SVG pictures, tables, print CSS for A4."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from html import escape

from ..history.records import BlockDischarge, DischargeRecord

CSS = """
:root { --ink: #1d2733; --muted: #5b6775; --line: #d5dbe2; --early: #d62728; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.4 system-ui, "DejaVu Sans", Arial, sans-serif; color: var(--ink);
       max-width: 190mm; margin: 0 auto; padding: 8mm 6mm; }
h1 { font-size: 17pt; margin: 0 0 2mm; }
h2 { font-size: 13pt; margin: 7mm 0 2mm; border-bottom: 1.5pt solid var(--ink); }
h3 { font-size: 11pt; margin: 5mm 0 1mm; }
p.meta { color: var(--muted); margin: 0 0 3mm; }
.findings { border-left: 3pt solid var(--early); padding: 1mm 3mm; background: #fdf1f1; }
.findings.ok { border-color: #2ca02c; background: #f0f8f0; }
figure { margin: 2mm 0; break-inside: avoid; page-break-inside: avoid; }
figure svg { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; margin: 1mm 0 3mm; }
th, td { border-bottom: 0.5pt solid var(--line); padding: 0.6mm 1.5mm; text-align: left; }
th { background: #eef1f5; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
h2, h3 { break-after: avoid; page-break-after: avoid; }
table.figures td:first-child { color: var(--muted); width: 45%; }
table.figures td, table.figures th { text-align: left; }
tr.early td { color: var(--early); font-weight: 600; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
section.string { break-before: auto; }
.note { color: var(--muted); font-size: 8.5pt; }
@page { size: A4; margin: 12mm 10mm 14mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 9.5pt; }
  section.string + section.string { break-before: page; page-break-before: always; }
  .findings { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def page(title: str, subtitle: str, body: Iterable[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="meta">{escape(subtitle)}</p>'
        + "".join(body)
        + "</body></html>\n"
    )


def when(value: datetime | None, tz: tzinfo | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return "—" if value is None else value.astimezone(tz).strftime(fmt)


def num(value: float | None, fmt: str = ".3f", unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:{fmt}}{(' ' + unit) if unit else ''}"


def duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def table(head: Sequence[str], rows: Iterable[tuple[Sequence[str], str]], cls: str = "") -> str:
    """``rows``: (cells, row class). Cells are escaped here."""
    attr = f' class="{cls}"' if cls else ""
    out = [f"<table{attr}><thead><tr>"]
    out += [f"<th>{escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for cells, row_cls in rows:
        rattr = f' class="{row_cls}"' if row_cls else ""
        out.append(f"<tr{rattr}>" + "".join(_cell(c) for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


_NUMBER = re.compile(r"[-+]?\d[\d.,]*")


def _cell(text: str) -> str:
    """Numbers right-aligned (figures compare down a column), text left."""
    cls = ' class="n"' if _NUMBER.fullmatch(text) else ""
    return f"<td{cls}>{escape(text)}</td>"


def figure(svg: str, caption: str = "") -> str:
    cap = f'<figcaption class="note">{escape(caption)}</figcaption>' if caption else ""
    return f"<figure>{svg}{cap}</figure>"


def cells_per_block(record: DischargeRecord) -> int:
    """The cells in a block, from its voltage at the start (about 2 V a cell on discharge)."""
    starts = [b.start_v for b in record.blocks if b.start_v is not None]
    return max(1, round(statistics.median(starts) / 2.05)) if starts else 6


def weakest(record: DischargeRecord, most: int = 5) -> list[int]:
    """The blocks that fell early (worst first), else the three that fell furthest."""
    if record.early:
        return list(record.early[:most])
    ranked = sorted(
        (b for b in record.blocks if b.shortfall_max_v is not None),
        key=lambda b: -(b.shortfall_max_v or 0.0),
    )
    return [b.position for b in ranked[:3]]


def findings(records: Sequence[DischargeRecord], tz: tzinfo | None) -> str:
    lines = []
    for r in records:
        for p in r.early:
            b = r.block(p)
            soh = f", estimated {b.soh_pct:.0f} % of its rating" if b.soh_pct is not None else ""
            replace = f"; replace by {b.replace_by.isoformat()}" if b.replace_by else ""
            lines.append(
                f"String {r.string} block {p} ({b.device or 'unknown device'}) fell early at "
                f"{when(b.fell_at, tz, '%H:%M')}, {num(b.shortfall_max_v, '.2f', 'V')} below the "
                f"string's mean drop at worst{soh}{replace}."
            )
    if not lines:
        return (
            '<div class="findings ok"><p>No block fell early: every block followed its '
            "string's mean.</p></div>"
        )
    return '<div class="findings">' + "".join(f"<p>{escape(x)}</p>" for x in lines) + "</div>"


def figures_table(r: DischargeRecord, tz: tzinfo | None) -> str:
    state = (
        "running (figures so far)"
        if r.in_progress
        else "interrupted (figures up to the last save)"
        if r.interrupted
        else "final, recovery read"
        if r.recovered
        else "ended, recovery not read"
    )
    rated = f"{r.rated_ah:g} Ah" if r.rated_ah else "not configured"
    rows: list[tuple[str, str]] = [
        ("Record", f"#{r.id}" if r.id is not None else "—"),
        ("Start – end", f"{when(r.start, tz)} – {when(r.end, tz, '%H:%M:%S')}"),
        ("Duration", duration(r.duration_s)),
        ("Charge delivered", num(r.ah, ".2f", "Ah")),
        ("Energy delivered", num(r.wh / 1000.0, ".3f", "kWh")),
        ("Mean current", num(r.mean_current_a, ".2f", "A")),
        (
            "Lowest string voltage",
            f"{num(r.min_string_v, '.2f', 'V')} at " f"{when(r.min_string_v_at, tz, '%H:%M:%S')}",
        ),
        ("Rating (C10)", rated),
        ("Capacity delivered", num(r.capacity_delivered_pct, ".1f", "% of the rating")),
        ("Reached the end voltage", "yes (a capacity test)" if r.reached_end_voltage else "no"),
        ("Capacity at this rate", num(r.capacity_rate_adjusted_pct, ".1f", "%")),
        ("Mean block temperature", num(r.mean_temperature_c, ".1f", "°C")),
        ("Time without samples", duration(r.gap_s) if r.gap_s else "none"),
        ("Record state", state),
    ]
    if has_ups(r):
        on_battery = (
            f"{when(r.ups_on_battery_at, tz)} – {when(r.ups_on_line_at, tz, '%H:%M:%S')}"
            if r.ups_on_battery_at
            else "not reported"
        )
        rows += [
            ("UPS on battery", on_battery),
            (
                "UPS load (mean / max)",
                f"{num(r.ups_load_avg_pct, '.0f', '%')} / {num(r.ups_load_max_pct, '.0f', '%')}",
            ),
            (
                "UPS runtime at start / end",
                f"{minutes(r.ups_runtime_start_s)} / {minutes(r.ups_runtime_end_s)}",
            ),
        ]
    return table(("Figure", "Value"), ((row, "") for row in rows), "figures")


def has_ups(r: DischargeRecord) -> bool:
    """A linked UPS said something during this discharge."""
    return any(
        v is not None
        for v in (
            r.ups_on_battery_at,
            r.ups_load_avg_pct,
            r.ups_runtime_start_s,
            r.ups_runtime_end_s,
        )
    )


def minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60.0:.1f} min"


def block_table(r: DischargeRecord, tz: tzinfo | None) -> str:
    early = set(r.early)

    def row(b: BlockDischarge) -> tuple[list[str], str]:
        return (
            [
                str(b.position),
                b.device or "—",
                num(b.start_v),
                num(b.end_v),
                num(b.recovery_v),
                num(b.min_v),
                num(b.shortfall_max_v),
                when(b.fell_at, tz, "%H:%M"),
                num(b.resistance_mohm, ".2f"),
                num(b.resistance_ratio, ".2f"),
                num(b.soh_pct, ".0f"),
                b.replace_by.isoformat() if b.replace_by else "—",
            ],
            "early" if b.position in early else "",
        )

    head = (
        "Block",
        "Device",
        "Start V",
        "End V",
        "Recovery V",
        "Min V",
        "Fell by V",
        "Fell at",
        "R mΩ",
        "R/R₀",
        "SOH %",
        "Replace by",
    )
    return table(head, (row(b) for b in r.blocks))
