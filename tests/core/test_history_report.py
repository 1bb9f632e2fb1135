"""The discharge and period reports on a simulated discharge with a known weak block (capacity
×0.75, Ri ×1.4 at position 7 of string 1): the weak block is named, its bar drawn in red and
shorter than the others, the page is self-contained, and the CLI writes it."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from bacs_core.history import HistoryReader  # noqa: E402
from bacs_core.report import ReportError, discharge_report, period_report  # noqa: E402
from bacs_core.report.charts import EARLY, NORMAL  # noqa: E402
from bacs_core.report.data import ALARM_TYPES  # noqa: E402
from bacs_core.sim.room import Fault, Room, RoomConfig  # noqa: E402
from bacs_core.snapshot import SystemSnapshot  # noqa: E402
from tests.core.history_site import WEAK, HistorySite  # noqa: E402

BLOCKS = 16


@pytest.fixture(scope="module")
def html(discharged: tuple[HistorySite, SystemSnapshot]) -> str:
    site, _ = discharged
    return discharge_report(HistoryReader(site.store.path.parent), "last")


def _bar(html: str, position: int) -> tuple[str, float]:
    """The bar's fill colour and drawn height (SVG units) for block ``position`` of string 1."""
    found = re.search(
        rf'<g id="bar-s1-b{position}"><title>[^<]*</title>\s*<path d="([^"]+)"[^>]*'
        r'style="fill: (#[0-9a-f]{6})"',
        html,
    )
    assert found, f"no bar for block {position}"
    ys = [float(y) for y in re.findall(r"[ML] [-\d.]+ ([-\d.]+)", found.group(1))]
    return found.group(2), max(ys) - min(ys)


def test_the_weak_block_is_named_and_its_bar_drawn(html: str) -> None:
    # The findings name it first.
    findings = html[html.index("<h2>Findings</h2>") : html.index('<section class="string"')]
    assert f"String 1 block {WEAK} (bus1/{WEAK}) fell early" in findings
    assert "estimated" in findings and "replace by" in findings
    # One bar per block; the weak block's is red, says so in its tooltip, and is the shortest.
    assert html.count('<g id="bar-s1-b') == BLOCKS
    title = re.search(rf'<g id="bar-s1-b{WEAK}"><title>([^<]*)</title>', html)
    assert title and "fell early" in title.group(1) and "recovery" in title.group(1)
    colour, weak_height = _bar(html, WEAK)
    assert colour == EARLY
    others = [_bar(html, p) for p in range(1, BLOCKS + 1) if p != WEAK]
    assert all(c == NORMAL for c, _ in others)
    assert all(h > 1.3 * weak_height for _, h in others)
    assert f">#{WEAK}<" in html  # the label over its bar
    # The recovery voltage as a dotted line, in the legend.
    assert "after recovery" in html
    # Its curve against the string's mean, and its row in the block table marked.
    assert f'id="curve-s1-b{WEAK}"' in html
    row = re.search(rf'<tr class="early"><td class="n">{WEAK}</td><td>bus1/{WEAK}</td>', html)
    assert row


def test_the_figures_and_every_picture_are_on_the_page(
    html: str, discharged: tuple[HistorySite, SystemSnapshot]
) -> None:
    site, _ = discharged
    record = site.recorder.last_discharge(1)
    assert record is not None
    assert f"{record.ah:.2f} Ah" in html
    assert f"{record.wh / 1000:.3f} kWh" in html
    assert "1 h 59 min" in html or "2 h 00 min" in html
    assert "40.0 % of the rating" in html or f"{record.capacity_delivered_pct:.1f} %" in html
    for title in (
        "each block at the end of the discharge",
        "the weakest blocks against the string&#x27;s mean",
        "block temperatures",
        "internal resistance per block",
    ):
        assert title in html or title.replace("&#x27;", "'") in html, title
    # Only string 1 discharged: string 2 has no section.
    assert 'id="string-1"' in html and 'id="string-2"' not in html


def test_the_page_is_self_contained_and_prints_on_a4(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html
    assert not re.search(r'(src|href)="(https?:|//|file:)', html)
    assert "<script" not in html and "<link" not in html
    assert "@page { size: A4" in html and "@media print" in html


def test_a_missing_discharge_is_a_clear_error(
    discharged: tuple[HistorySite, SystemSnapshot],
) -> None:
    site, _ = discharged
    reader = HistoryReader(site.store.path.parent)
    with pytest.raises(ReportError, match="no discharge '2020-01-01'"):
        discharge_report(reader, "2020-01-01")
    with pytest.raises(ReportError, match="no discharge 'last'"):
        discharge_report(reader, "last", string=2)


def test_the_period_report(discharged: tuple[HistorySite, SystemSnapshot]) -> None:
    site, _ = discharged
    reader = HistoryReader(site.store.path.parent)
    record = site.recorder.last_discharge(1)
    assert record is not None
    page = period_report(reader, record.start - timedelta(hours=1), record.end + timedelta(hours=1))
    assert "Float voltage spread" in page and "Balancing activity" in page
    assert "string 1" in page and "string 2" in page
    # The discharge is listed with the block that fell early.
    assert f"<td>block {WEAK}</td>" in page
    assert "Energy since the history began" in page
    with pytest.raises(ReportError, match="no history"):
        period_report(reader, record.start - timedelta(days=30), record.start - timedelta(days=29))


async def test_alarms_in_the_period_report(tmp_path: Path) -> None:
    room = Room(RoomConfig(strings=1, blocks=8, capacity_ah=40, settle_days=0.2, seed=3))
    site = HistorySite(room, tmp_path, manager_config={"string_count": 1})
    await site.start()
    t0 = site.now()
    await site.cycles(3)
    room.inject(Fault.parse("dead:1:5"))
    await site.cycles(12)
    site.flush()
    await site.stop()
    page = period_report(HistoryReader(tmp_path), t0, site.now())
    alarms = [e for e in site.events if e.type.value in ALARM_TYPES]
    assert {e.type.value for e in alarms} >= {"device_lost", "alarm_raised"}
    assert f"Alarms and events ({len(alarms)})" in page
    assert "<td>device lost</td><td>—</td><td>bus1/5</td>" in page
    assert "String 1 block 5 does not answer" in page
    assert "balancing started" not in page  # not an alarm
    assert "stroke: #d62728" in page  # the alarm marked on the float spread


def test_bacs_report_cli(discharged: tuple[HistorySite, SystemSnapshot], tmp_path: Path) -> None:
    site, _ = discharged
    directory = str(site.store.path.parent)
    out = tmp_path / "r.html"
    bacs = [sys.executable, "-m", "bacs_core", "report", directory]
    done = subprocess.run(
        [*bacs, "--discharge", "last", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"String 1 block {WEAK}" in out.read_text(encoding="utf-8")
    bad = subprocess.run(
        [*bacs, "--discharge", "99", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "no discharge '99'" in bad.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "bacs_core",
            "report",
            str(tmp_path),
            "--discharge",
            "last",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2 and "no history.db" in missing.stderr
    period = subprocess.run(
        [*bacs, "--history", "--since", "2026-01-05", "--until", "2026-01-06", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert period.returncode == 0, period.stderr
    assert "Float voltage spread" in out.read_text(encoding="utf-8")


async def test_one_outage_of_two_strings_is_one_report(tmp_path: Path) -> None:
    """Both strings discharge together: the report of the last one holds both, each with its
    own weak block; --string keeps one."""
    from bacs_core.sim.physics import ChargerMode

    room = Room(
        RoomConfig(
            strings=2,
            blocks=8,
            capacity_ah=40,
            settle_days=0.5,
            seed=5,
            faults=(Fault.parse("weak:1:2"), Fault.parse("weak:2:6")),
        )
    )
    site = HistorySite(room, tmp_path)
    await site.start()
    await site.cycles(3)
    for s in (1, 2):
        room.set_mode(s, ChargerMode.DISCHARGE, 10.0)
    await site.cycles(480)  # 80 min at C/4: a third of the rating
    for s in (1, 2):
        room.set_mode(s, ChargerMode.FLOAT)
    await site.cycles(70)
    site.flush()
    await site.stop()
    reader = HistoryReader(tmp_path)
    both = discharge_report(reader, "last")
    assert 'id="string-1"' in both and 'id="string-2"' in both
    assert "String 1 block 2 (bus1/" in both and "String 2 block 6 (bus1/" in both
    assert _bar(both, 2)[0] == EARLY
    assert re.search(r'<g id="bar-s2-b6"><title>[^<]*fell early', both)
    one = discharge_report(reader, "last", string=2)
    assert 'id="string-1"' not in one and 'id="string-2"' in one
