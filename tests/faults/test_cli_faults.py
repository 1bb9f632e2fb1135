"""``bacs scan`` and ``bacs monitor`` against a hostile bus: the bad unit is left out, the
others are listed, and nothing prints a traceback (before, one malformed frame aborted a scan)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from tests.faults.hostile import Hostile, HostileServer
from tests.faults.scenarios import ROOT, UNITS, make_room

BACS = (sys.executable, "-m", "bacs_core")


async def bacs(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *BACS,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("mode", "rtu"),
    [
        (Hostile.BYTE_COUNT_LONG, False),
        (Hostile.MBAP_SHORT, False),
        (Hostile.HALF_THEN_CLOSE, False),
        (Hostile.HUGE, True),
    ],
)
async def test_scan_lists_every_healthy_unit(mode: Hostile, rtu: bool) -> None:
    server = HostileServer(make_room(1), mode, target=3, rtu=rtu)
    server.armed = True
    await server.start()
    try:
        code, out, err = await bacs(
            "scan", server.url, "--json", "--last", str(UNITS + 2), "--timeout", "0.1"
        )
    finally:
        await server.stop()
    assert code == 0, err
    assert "Traceback" not in err and "Fatal error" not in err
    units = [d["address"] for d in json.loads(out)]
    assert units == [u for u in range(1, UNITS + 1) if u != 3]


async def test_monitor_shows_the_string_with_one_bad_module() -> None:
    # The two identification reads of the scan pass; every measurement read is malformed.
    server = HostileServer(make_room(1), Hostile.BYTE_COUNT_SHORT, target=3, spare=2)
    await server.start()
    server.armed = True
    try:
        code, out, err = await bacs("monitor", server.url, "--once", "--last", str(UNITS))
    finally:
        await server.stop()
    assert code == 0, err
    assert "Traceback" not in err
    row = out.splitlines()[1].split()
    assert row[0] == "1" and row[-1] == "1"  # string 1, one block missing
