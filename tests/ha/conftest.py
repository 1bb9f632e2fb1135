"""Fixtures: the integration against the in-process simulator (sim://, no sockets)."""

# PHCC ships its own testing_config/custom_components package; importing ours first makes
# `custom_components.bacs` resolve to this repository's integration.
import custom_components  # noqa: F401, I001

import os
import subprocess
import sys
from pathlib import Path
from collections.abc import AsyncGenerator, Iterator
from typing import Any
from unittest.mock import patch

import pytest
import voluptuous_serialize
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowHandler
from homeassistant.helpers import config_validation as cv
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.bacs.const import DOMAIN

# speed=0: the simulated room stands still, so values are deterministic for a seed.
SIM_URL = "sim://test?strings=2&blocks=4&speed=0&settle_days=0&seed=3"
SIM_DATA = {"kind": "simulator", "name": "test", "strings": 2, "blocks": 4, "url": SIM_URL}
OPTIONS = {"string_count": 2, "poll_interval": 60.0, "trip": {"auto": True}}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: Any) -> None:
    """Load custom_components/bacs in every test."""


@pytest.fixture(autouse=True)
def forms_serialise_for_the_frontend() -> Iterator[None]:
    """Every form any flow shows is serialised as Home Assistant's HTTP API does for the UI:
    a validator the frontend cannot receive fails here, not in a user's browser."""
    real = FlowHandler.async_show_form

    def show_form(self: FlowHandler, **kwargs: Any) -> Any:
        result = real(self, **kwargs)
        if result.get("data_schema") is not None:
            voluptuous_serialize.convert(
                result["data_schema"], custom_serializer=cv.custom_serializer
            )
        return result

    with patch.object(FlowHandler, "async_show_form", show_form):
        yield


def make_entry(
    data: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    unique_id: str = "sim:test",
    entry_id: str | None = None,
    version: int = 2,
    title: str = "BACS test",
) -> MockConfigEntry:
    return MockConfigEntry(
        entry_id=entry_id,
        domain=DOMAIN,
        title=title,
        unique_id=unique_id,
        data=data or SIM_DATA,
        options=OPTIONS if options is None else options,
        version=version,
        minor_version=1,
    )


async def setup(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture(autouse=True)
def history_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's battery history (history.db, reports, exports) in its own directory, not in
    PHCC's shared testing_config inside site-packages."""
    root = tmp_path / "bacs-history"
    monkeypatch.setattr(
        "custom_components.bacs.history.history_dir", lambda _hass, entry_id: root / entry_id
    )
    return root


@pytest.fixture
async def loaded_entry(hass: HomeAssistant) -> AsyncGenerator[MockConfigEntry]:
    entry = await setup(hass, make_entry(entry_id="01JBACSTESTENTRY0000000000"))
    yield entry
    if entry.state.recoverable:
        await hass.config_entries.async_unload(entry.entry_id)


async def cycle(hass: HomeAssistant, entry: MockConfigEntry, n: int = 1) -> None:
    """Run manager poll cycles now (the loop itself sleeps for the poll interval). Each
    device takes a new measurement first (its sequence moves; the values stay), so a room at
    speed 0 reads as fresh, not stale."""
    for _ in range(n):
        sim = getattr(entry.runtime_data.transport, "room", None)
        if sim is not None:
            for bus in sim.buses:
                for device in bus.devices.values():
                    device.tick(sim.time_s)
        await entry.runtime_data.manager.poll_once()
    await hass.async_block_till_done()


def room(entry: MockConfigEntry) -> Any:
    """The simulated room behind a sim:// entry (for fault injection)."""
    return entry.runtime_data.transport.room


@pytest.fixture
def busy_port() -> Iterator[tuple[str, int]]:
    """A real busy port: another process holds an exclusive lock on a pseudo-terminal."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"locked"
    try:
        yield path, proc.pid
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        os.close(master)
        os.close(slave)


HOT_OPTIONS = {
    **OPTIONS,
    "runaway": {"pre_alert_delta": 1, "alarm_delta": 2, "trip_delta": 3, "confirm_cycles": 1},
    "thresholds": {"temperature": {"warning_high": 26, "alarm_high": 27, "on_delay": 0}},
}


async def heat_until_tripped(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Thermal runaway on string 1 block 2, in accelerated simulated time (HOT_OPTIONS)."""
    from bacs_core.sim.room import Fault, FaultKind
    from bacs_core.snapshot import TripState

    sim = room(entry)
    sim.step(1)
    await cycle(hass, entry)
    sim.inject(Fault(FaultKind.RUNAWAY, 1, 2, 3.0))
    for _ in range(20):
        sim.step(1800)
        await cycle(hass, entry)
        if entry.runtime_data.manager.safety.state is TripState.TRIPPED:
            return
    raise AssertionError("the simulated runaway did not trip")


async def discharge_with_an_aged_block(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """String 1 block 3 ages (capacity ×0.6, Ri ×1.5), then an hour of discharge at 30 A:
    block 3 falls first."""
    from bacs_core.sim.physics import ChargerMode

    sim = room(entry)
    sim.string(1).physics.age_block(2, 0.6, 1.5)
    sim.set_mode(1, ChargerMode.DISCHARGE, 30.0)
    for _ in range(12):
        sim.step(300)
        await cycle(hass, entry)


class _SnapshotExtension(HomeAssistantSnapshotExtension):
    """One snapshot directory for both Home Assistant versions (PHCC's default differs)."""

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(Path(test_location.filepath).parent / "snapshots")


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(_SnapshotExtension)
