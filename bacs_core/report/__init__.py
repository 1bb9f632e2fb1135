"""Discharge and period reports: one self-contained HTML page a technician can read and print.

``discharge_report(reader, "last")`` shows the end-of-discharge bar chart (recovery voltage
dotted, the blocks that fell early in red), the weakest blocks against the string's mean, the
temperatures, each block's resistance trend and the discharge's figures; ``period_report``
shows the float voltage spread, balancing and alarms over a period. Blocking (SQLite and
matplotlib): run it in a thread from asyncio. Needs ``bacs-core[report]`` (matplotlib).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from ..history.codec import from_ms
from ..history.reader import HistoryReader
from . import charts, data, page
from .data import ReportError

__all__ = ["ReportError", "discharge_report", "period_report"]


def discharge_report(
    reader: HistoryReader,
    which: str | int = "last",
    string: int | None = None,
    *,
    tz: tzinfo | None = None,
    title: str = "Battery discharge report",
    now: datetime | None = None,
) -> str:
    """The page for one discharge (``"last"``, a record number or a date). Without ``string``
    every string that discharged in the same outage is in it, one section each."""
    loaded = data.load_discharge(reader, which, string)
    records = [s.record for s in loaded.strings]
    first = records[0]
    created = (now or datetime.now(UTC)).astimezone(tz)
    subtitle = (
        f"Discharge of {page.when(first.start, tz, '%Y-%m-%d %H:%M')}, "
        f"{', '.join(f'string {r.string}' for r in records)}. "
        f"Generated {created:%Y-%m-%d %H:%M} from {reader.path}."
    )
    body = ["<h2>Findings</h2>", page.findings(records, tz)]
    if len(loaded.ups) or any(page.has_ups(r) for r in records):
        body += [
            "<h2>UPS</h2>",
            page.figure(
                charts.ups_beside_strings(records, [s.series for s in loaded.strings], loaded.ups),
                "The linked UPS: its output load and its own runtime estimate at each stored "
                "sample, under each string's voltage; shaded: while it reported being on "
                "battery. Per string, its figures over the discharge are in the string's table.",
            ),
        ]
    for s in loaded.strings:
        r = s.record
        weak = page.weakest(r)
        cells = page.cells_per_block(r)
        body.append(f'<section class="string" id="string-{r.string}">')
        body.append(f"<h2>String {r.string}</h2>")
        body.append(page.figures_table(r, tz))
        body.append(
            page.figure(
                charts.end_of_discharge_bars(r, cells, loaded.end_v_per_cell),
                f"Bars: each block's voltage at the end of the discharge; red: fell early "
                f"(ranked by how far below the string's mean drop); orange: at or below the end "
                f"voltage; dotted green: {loaded.recovery_s / 60:.0f} min after the end.",
            )
        )
        body.append(page.figure(charts.weakest_curves(r, s.series, weak)))
        body.append(page.figure(charts.temperatures(r, s.series, weak)))
        body.append(page.figure(charts.resistance_trend(s.trend, weak, tz)))
        body.append("<h3>Blocks</h3>")
        body.append(
            '<p class="note">SOH: the lower of the discharge and resistance estimates, % of '
            "the rating; replace by: the date it fell below 80 %, or the resistance trend's "
            "projection (docs/history.md, State of health). Estimates, not a capacity test.</p>"
        )
        body.append(page.block_table(r, tz))
        body.append("</section>")
    return page.page(title, subtitle, body)


def period_report(
    reader: HistoryReader,
    start: datetime,
    end: datetime,
    string: int | None = None,
    *,
    tz: tzinfo | None = None,
    title: str = "Battery history report",
    now: datetime | None = None,
) -> str:
    """The page for a period: float voltage spread, balancing, alarms, discharges, energy."""
    loaded = data.load_period(reader, start, end, string)
    created = (now or datetime.now(UTC)).astimezone(tz)
    subtitle = (
        f"{page.when(start, tz, '%Y-%m-%d %H:%M')} – {page.when(end, tz, '%Y-%m-%d %H:%M')}, "
        f"{', '.join(f'string {s.string}' for s in loaded.series)}. "
        f"Generated {created:%Y-%m-%d %H:%M} from {reader.path}."
    )
    alarms_ms = [e.t_ms for e in loaded.events if e.type in ("alarm_raised", "tripped")]
    body = [
        "<h2>Float voltage</h2>",
        page.figure(charts.float_spread(loaded.series, alarms_ms, tz)),
        "<h2>Balancing</h2>",
        page.figure(charts.balancing(loaded.series, tz)),
        f"<h2>Alarms and events ({len(loaded.events)})</h2>",
    ]
    body.append(
        page.table(
            ("Time", "Type", "String", "Device", "Message"),
            (
                (
                    [
                        page.when(from_ms(e.t_ms), tz),
                        e.type.replace("_", " "),
                        str(e.string) if e.string is not None else "—",
                        e.device or "—",
                        e.message,
                    ],
                    "early" if e.type in ("tripped", "trip_failed", "runaway_detected") else "",
                )
                for e in loaded.events
            ),
        )
        if loaded.events
        else '<p class="note">No alarm in the period.</p>'
    )
    body.append(f"<h2>Discharges ({len(loaded.discharges)})</h2>")
    body.append(
        page.table(
            ("#", "String", "Start", "Duration", "Ah", "kWh", "Fell early"),
            (
                (
                    [
                        str(r.id),
                        str(r.string),
                        page.when(r.start, tz, "%Y-%m-%d %H:%M"),
                        page.duration(r.duration_s),
                        page.num(r.ah, ".2f"),
                        page.num(r.wh / 1000.0, ".3f"),
                        ", ".join(f"block {p}" for p in r.early) or "none",
                    ],
                    "early" if r.early else "",
                )
                for r in loaded.discharges
            ),
        )
        if loaded.discharges
        else '<p class="note">No discharge in the period.</p>'
    )
    totals = reader.energy_totals()
    if totals:
        body.append("<h2>Energy since the history began</h2>")
        body.append(
            page.table(
                ("String", "Charged kWh", "Discharged kWh"),
                (
                    ([str(s), f"{t.charged_kwh:.3f}", f"{t.discharged_kwh:.3f}"], "")
                    for s, t in sorted(totals.items())
                    if string is None or s == string
                ),
            )
        )
    return page.page(title, subtitle, body)
