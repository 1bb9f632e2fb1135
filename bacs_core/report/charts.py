"""The report's pictures: matplotlib figures rendered to inline SVG (text kept as text, so the
page stays searchable and small, and every block's bar carries its id and a tooltip).

No pyplot: each figure is a ``Figure`` of its own (no global figure registry, safe in a
worker thread); the Agg/SVG canvases need no display.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import tzinfo
from html import escape
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from ..history.records import DischargeRecord
from .data import Array, ResistanceTrend, Series, UpsSeries

WIDTH_IN = 7.2  # A4 less the page margins
NORMAL = "#8da7c2"
EARLY = "#d62728"
LOW = "#ff7f0e"
RECOVERY = "#2ca02c"
MEAN = "#222222"
WEAK_COLOURS = ("#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
# Typed loosely: matplotlib types the keys as a Literal of every rc name.
RC: dict[str, Any] = {
    "svg.fonttype": "none",  # text as <text>: searchable, small
    "svg.hashsalt": "bacs-report",  # stable ids: the same data gives the same page
    "font.size": 8.0,
    "axes.titlesize": 9.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _style() -> AbstractContextManager[None]:
    """The report's look, for the figure's making and its rendering only (restored after)."""
    return mpl.rc_context(RC)  # type: ignore[arg-type]


def to_svg(fig: Figure, titles: dict[str, str] | None = None) -> str:
    """The figure as an inline ``<svg>`` (no XML prolog); ``titles`` adds a ``<title>`` (the
    browser's tooltip, and what a screen reader says) to the group with that id."""
    buf = io.StringIO()
    with _style():
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    if titles:

        def add_title(match: re.Match[str]) -> str:
            gid = match.group(1)
            return f"{match.group(0)}<title>{escape(titles[gid])}</title>"

        pattern = "|".join(re.escape(g) for g in titles)
        svg = re.sub(rf'<g id="({pattern})"[^>]*>', add_title, svg)
    return svg


def _figure(height_in: float) -> Figure:
    with _style():
        return Figure(figsize=(WIDTH_IN, height_in), layout="constrained")


def _days(t_ms: Any) -> Array:
    """Epoch milliseconds as matplotlib's date numbers (days since its default 1970 epoch)."""
    return np.asarray(t_ms, dtype=np.float64) / 86_400_000.0


def _date_axis(ax: Any, tz: tzinfo | None) -> None:
    locator = AutoDateLocator(tz=tz)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=tz))  # type: ignore[no-untyped-call]


def bar_id(string: int, position: int) -> str:
    return f"bar-s{string}-b{position}"


def end_of_discharge_bars(record: DischargeRecord, cells: int, end_v_per_cell: float) -> str:
    """Each block's voltage at the end of the discharge as a bar, the recovery voltage as a
    dotted line, the blocks that fell early in red and named, the end voltage as a dashed line."""
    blocks = record.blocks
    pos = np.array([b.position for b in blocks], dtype=np.float64)
    end = np.array([np.nan if b.end_v is None else b.end_v for b in blocks])
    rec = np.array([np.nan if b.recovery_v is None else b.recovery_v for b in blocks])
    end_line = end_v_per_cell * cells
    known = np.concatenate([end[~np.isnan(end)], rec[~np.isnan(rec)]])
    # The end voltage is drawn when the blocks came near it (within 0.1 V a cell); otherwise
    # it would flatten the differences the chart is for.
    near_end = bool(known.size) and float(known.min()) - end_line <= 0.1 * cells
    lo = float(min(known.min(), end_line) if near_end else known.min()) if known.size else end_line
    hi = float(known.max()) if known.size else end_line + 1.0
    pad = max(0.05, 0.08 * (hi - lo))
    bottom = lo - max(pad, 0.4 * (hi - lo))  # the lowest bar stays a bar, not a stub
    early = set(record.early)
    titles: dict[str, str] = {}
    with _style():
        fig = _figure(2.9)
        ax = fig.add_subplot()
        for b, x, v in zip(blocks, pos, end, strict=True):
            if np.isnan(v):
                continue
            colour = EARLY if b.position in early else LOW if v <= end_line else NORMAL
            (bar,) = ax.bar([x], [v - bottom], bottom=bottom, width=0.8, color=colour)
            gid = bar_id(record.string, b.position)
            bar.set_gid(gid)
            state = "fell early" if b.position in early else "normal"
            recovery = f", recovery {b.recovery_v:.3f} V" if b.recovery_v is not None else ""
            titles[gid] = (
                f"String {record.string} block {b.position}: end {v:.3f} V{recovery} ({state})"
            )
        if not np.all(np.isnan(rec)):
            ax.plot(
                pos,
                rec,
                linestyle=":",
                color=RECOVERY,
                marker=".",
                markersize=3,
                linewidth=1.2,
                label="after recovery",
            )
        mean_end = float(np.nanmean(end)) if not np.all(np.isnan(end)) else None
        if mean_end is not None:
            ax.axhline(mean_end, color=MEAN, linewidth=0.8, label=f"mean at end {mean_end:.2f} V")
        if near_end:
            ax.axhline(
                end_line,
                color=EARLY,
                linewidth=0.8,
                linestyle="--",
                label=f"end voltage {end_v_per_cell:.2f} V/cell",
            )
        for p in record.early:
            b = record.block(p)
            if b.end_v is not None:
                ax.annotate(
                    f"#{p}",
                    (p, b.end_v),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    color=EARLY,
                    fontweight="bold",
                )
        ax.set_ylim(bottom, hi + pad)
        ax.set_xlim(0.3, len(blocks) + 0.7)
        ax.set_xlabel("block")
        ax.set_ylabel("V")
        ax.set_title(f"String {record.string}: each block at the end of the discharge")
        _block_ticks(ax, len(blocks))
        fig.legend(loc="outside lower center", fontsize=7, ncol=3, frameon=False)
        return to_svg(fig, titles)


def _block_ticks(ax: object, n: int) -> None:
    step = max(1, int(np.ceil(n / 40)))
    ticks = [1, *range(step, n + 1, step)] if step > 1 else list(range(1, n + 1))
    ax.set_xticks(sorted(set(ticks)))  # type: ignore[attr-defined]


def _minutes(series: Series, start_ms: int) -> Array:
    return (series.t_ms.astype(np.float64) - start_ms) / 60_000.0


def weakest_curves(record: DischargeRecord, series: Series, weak: Sequence[int]) -> str:
    """The weakest blocks' voltage against the string's mean and its min–max band."""
    start_ms = int(record.start.timestamp() * 1000)
    end_min = (record.end - record.start).total_seconds() / 60.0
    x = _minutes(series, start_ms)
    with _style():
        fig = _figure(2.7)
        ax = fig.add_subplot()
        if len(series) and series.blocks:
            v = series.volts
            ok = ~np.all(np.isnan(v), axis=1)
            x, v = x[ok], v[ok]
            ax.fill_between(
                x,
                np.nanmin(v, axis=1),
                np.nanmax(v, axis=1),
                color=NORMAL,
                alpha=0.35,
                linewidth=0,
                label="all blocks (min–max)",
            )
            ax.plot(x, np.nanmean(v, axis=1), color=MEAN, linewidth=1.2, label="string mean")
            for colour, p in zip(WEAK_COLOURS, weak, strict=False):
                if p <= v.shape[1]:
                    line = ax.plot(x, v[:, p - 1], color=colour, linewidth=1.1, label=f"block {p}")[
                        0
                    ]
                    line.set_gid(f"curve-s{record.string}-b{p}")
        ax.axvline(0, color="#999999", linewidth=0.7, linestyle="--")
        ax.axvline(end_min, color="#999999", linewidth=0.7, linestyle="--")
        ax.set_xlabel("minutes from the start of the discharge")
        ax.set_ylabel("V")
        ax.set_title(f"String {record.string}: the weakest blocks against the string's mean")
        ax.legend(loc="lower left", fontsize=7, framealpha=0.8, ncol=2)
        return to_svg(fig)


UPS_LOAD = "#1f77b4"
UPS_RUNTIME = "#9467bd"
ON_BATTERY = "#fde3c8"


def ups_beside_strings(
    records: Sequence[DischargeRecord], series: Sequence[Series], ups: UpsSeries
) -> str:
    """The linked UPS's load and runtime under every string's voltage, on one time axis
    (minutes from the first record's start), the time it reported being on battery shaded.
    One figure per outage: one UPS feeds every string."""
    first = min(records, key=lambda r: r.start)
    start_ms = int(first.start.timestamp() * 1000)
    with _style():
        fig = _figure(3.8)
        volts_ax, load_ax, runtime_ax = fig.subplots(3, 1, sharex=True)
        for r, s in zip(records, series, strict=True):
            if len(s) and s.blocks:
                v = s.volts
                total = np.where(np.isnan(v).any(axis=1), np.nan, v.sum(axis=1))
                volts_ax.plot(
                    _minutes(s, start_ms), total, linewidth=1.0, label=f"string {r.string}"
                )
        volts_ax.set_ylabel("string V")
        x = (ups.t_ms.astype(np.float64) - start_ms) / 60_000.0
        if len(ups) and not np.all(np.isnan(ups.load_pct)):
            ok = ~np.isnan(ups.load_pct)
            (line,) = load_ax.step(
                x[ok], ups.load_pct[ok], where="post", color=UPS_LOAD, linewidth=1.1
            )
            line.set_gid("ups-load")
        else:
            load_ax.text(0.5, 0.5, "no load reported", transform=load_ax.transAxes, ha="center")
        load_ax.set_ylabel("UPS load %")
        if len(ups) and not np.all(np.isnan(ups.runtime_s)):
            ok = ~np.isnan(ups.runtime_s)
            (line,) = runtime_ax.step(
                x[ok], ups.runtime_s[ok] / 60.0, where="post", color=UPS_RUNTIME, linewidth=1.1
            )
            line.set_gid("ups-runtime")
        else:
            runtime_ax.text(
                0.5, 0.5, "no runtime reported", transform=runtime_ax.transAxes, ha="center"
            )
        runtime_ax.set_ylabel("runtime min")
        runtime_ax.set_xlabel("minutes from the start of the discharge")
        for ax in (load_ax, runtime_ax):  # levels, read from zero (how loaded, how long left)
            ax.set_ylim(bottom=0)
        if first.ups_on_battery_at is not None:
            off = first.ups_on_line_at or max(r.end for r in records)
            span = (
                (first.ups_on_battery_at - first.start).total_seconds() / 60.0,
                (off - first.start).total_seconds() / 60.0,
            )
            for i, ax in enumerate((volts_ax, load_ax, runtime_ax)):
                ax.axvspan(*span, color=ON_BATTERY, linewidth=0, label=None if i else "on battery")
        volts_ax.legend(loc="upper right", fontsize=7, framealpha=0.8, ncol=4)
        volts_ax.set_title("The UPS's load and runtime beside the strings")
        return to_svg(fig)


def temperatures(record: DischargeRecord, series: Series, weak: Sequence[int]) -> str:
    start_ms = int(record.start.timestamp() * 1000)
    x = _minutes(series, start_ms)
    with _style():
        fig = _figure(2.2)
        ax = fig.add_subplot()
        t = series.temps
        has = len(series) and series.blocks and not np.all(np.isnan(t))
        if has:
            ok = ~np.all(np.isnan(t), axis=1)
            x, t = x[ok], t[ok]
            ax.fill_between(
                x,
                np.nanmin(t, axis=1),
                np.nanmax(t, axis=1),
                color="#f4b183",
                alpha=0.4,
                linewidth=0,
                label="all blocks (min–max)",
            )
            ax.plot(x, np.nanmean(t, axis=1), color=MEAN, linewidth=1.1, label="mean")
            for colour, p in zip(WEAK_COLOURS, weak, strict=False):
                if p <= t.shape[1] and not np.all(np.isnan(t[:, p - 1])):
                    ax.plot(x, t[:, p - 1], color=colour, linewidth=1.0, label=f"block {p}")
            mid = float(np.nanmean(t))
            t_lo, t_hi = float(np.nanmin(t)), float(np.nanmax(t))
            ax.set_ylim(min(t_lo - 0.3, mid - 1.5), max(t_hi + 0.3, mid + 1.5))
            ax.legend(loc="upper left", fontsize=7, framealpha=0.8, ncol=3)
        else:
            ax.text(0.5, 0.5, "no temperatures recorded", transform=ax.transAxes, ha="center")
        ax.set_xlabel("minutes from the start of the discharge")
        ax.set_ylabel("°C")
        ax.set_title(f"String {record.string}: block temperatures")
        return to_svg(fig)


def resistance_trend(trend: ResistanceTrend, weak: Sequence[int], tz: tzinfo | None) -> str:
    """Every block's internal resistance per day (grey), the weakest blocks in colour."""
    with _style():
        fig = _figure(2.4)
        ax = fig.add_subplot()
        r = trend.ris
        title = "internal resistance per block (one reading a day)"
        days = len({int(t) // 86_400_000 for t in trend.t_ms})
        if days < 2 and r.size and not np.all(np.isnan(r)):
            # One day of readings holds no trend yet: each block's latest value instead.
            last = r[-1]
            pos = np.arange(1, len(last) + 1)
            colours = [EARLY if p in weak else NORMAL for p in pos]
            ax.bar(pos, last, color=colours, width=0.8)
            ax.set_xlabel("block")
            ax.set_xlim(0.3, len(last) + 0.7)
            _block_ticks(ax, len(last))
            title = "internal resistance per block (one day of readings: no trend yet)"
        elif len(trend.t_ms) and r.size and not np.all(np.isnan(r)):
            when = _days(trend.t_ms)
            for p in range(1, r.shape[1] + 1):
                if p not in weak:
                    ax.plot(
                        when,
                        r[:, p - 1],
                        color=NORMAL,
                        linewidth=0.6,
                        alpha=0.7,
                        marker="." if len(when) < 3 else "",
                        markersize=2,
                    )
            for colour, p in zip(WEAK_COLOURS, weak, strict=False):
                if p <= r.shape[1]:
                    ax.plot(
                        when,
                        r[:, p - 1],
                        color=colour,
                        linewidth=1.2,
                        label=f"block {p}",
                        marker="o" if len(when) < 3 else "",
                        markersize=3,
                    )
            _date_axis(ax, tz)
            if weak:
                ax.legend(loc="upper left", fontsize=7, framealpha=0.8, ncol=3)
        else:
            ax.text(0.5, 0.5, "no resistance measured", transform=ax.transAxes, ha="center")
        ax.set_ylabel("mΩ")
        ax.set_title(f"String {trend.string}: {title}")
        return to_svg(fig)


def float_spread(series: list[Series], alarms_ms: Sequence[int], tz: tzinfo | None) -> str:
    """Per string, the spread (max − min) of the block voltages in every float sample."""
    with _style():
        fig = _figure(2.6)
        ax = fig.add_subplot()
        drawn = False
        for s in series:
            on_float = np.array([st.value == "float" for st in s.state], dtype=bool)
            if not on_float.any() or not s.blocks:
                continue
            v = s.volts[on_float]
            ok = ~np.all(np.isnan(v), axis=1)
            if not ok.any():
                continue
            spread = (np.nanmax(v[ok], axis=1) - np.nanmin(v[ok], axis=1)) * 1000.0
            ax.plot(_days(s.t_ms[on_float][ok]), spread, linewidth=0.9, label=f"string {s.string}")
            drawn = True
        for t in alarms_ms:
            ax.axvline(float(_days(t)), color=EARLY, linewidth=0.6, alpha=0.6)
        if drawn:
            _date_axis(ax, tz)
            ax.legend(loc="upper left", fontsize=7, framealpha=0.8, ncol=4)
        else:
            ax.text(0.5, 0.5, "no float samples in the period", transform=ax.transAxes, ha="center")
        ax.set_ylabel("mV")
        ax.set_title("Float voltage spread (highest − lowest block; red lines: alarms)")
        return to_svg(fig)


def balancing(series: list[Series], tz: tzinfo | None) -> str:
    """Per string, how many blocks were balancing in each stored sample."""
    with _style():
        fig = _figure(2.2)
        ax = fig.add_subplot()
        drawn = False
        for s in series:
            if not len(s) or not s.blocks or np.all(np.isnan(s.balance)):
                continue
            active = np.sum(np.nan_to_num(s.balance) > 0.005, axis=1)
            ax.step(_days(s.t_ms), active, where="post", linewidth=0.9, label=f"string {s.string}")
            drawn = True
        if drawn:
            _date_axis(ax, tz)
            ax.legend(loc="upper left", fontsize=7, framealpha=0.8, ncol=4)
        else:
            ax.text(0.5, 0.5, "no balancing recorded", transform=ax.transAxes, ha="center")
        ax.set_ylabel("blocks balancing")
        ax.set_title("Balancing activity")
        return to_svg(fig)
