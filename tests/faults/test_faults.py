"""The fault suite: a representative subset of the benchmark's scenarios (scripts/bench_faults.py
runs them all). Each must end with no defect: no crash, no traceback, no false or missed trip,
no lost latch, no wrong value accepted, no lost alarm event, and the bus back within two cycles.
"""

from __future__ import annotations

import pytest

from tests.faults.scenarios import Scenario, representative, run

CASES = [pytest.param(sc, id=sc.name) for sc in representative()]


@pytest.mark.parametrize("scenario", CASES)
async def test_scenario(scenario: Scenario) -> None:
    outcome = await run(scenario)
    assert outcome.defects == 0, outcome
    if scenario.family in ("proxy", "hostile", "bus_killed"):
        assert outcome.recovery_cycles is not None and outcome.recovery_cycles <= 2, outcome
