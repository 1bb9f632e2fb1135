"""The gateway: any snapshot served as a CS141 (registers 1000–1059, the SNMP subtree) plus our
own block; read by mbpoll, snmpwalk and by our own adapter (the round trip: simulator → manager
→ gateway → adapter gives the same values within one scale step); read-only unless commands
are enabled for an allow-list; a trip reset still refused while unsafe."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from generex_helpers import (
    SNMPBULKWALK,
    mbpoll_read,
    needs_mbpoll,
    needs_snmp,
    snmp_values,
    tool,
)
from pymodbus.client import AsyncModbusTcpClient

from bacs_core.bus.pymodbus_compat import unit_kwargs
from bacs_core.gateway import block as b
from bacs_core.gateway.options import GatewayOptionError, GatewayOptions, parse_listen
from bacs_core.gateway.service import Gateway
from bacs_core.gateway.worker import GatewayServing
from bacs_core.generex import cs141_map as m
from bacs_core.generex.adapter import GenerexAdapter
from bacs_core.generex.url import parse_generex_url
from bacs_core.manager import Manager, validate_config
from bacs_core.snapshot import ManagerStatus, SystemSnapshot

STRINGS, BLOCKS = 2, 8
LOCAL = ("127.0.0.1", 0)

UNIT = unit_kwargs(1)


def make_manager() -> Manager:
    url = f"sim://gw?strings={STRINGS}&blocks={BLOCKS}&seed=5&settle_days=0.2"
    config = validate_config(
        {"buses": [{"id": "bus1", "url": url}], "string_count": STRINGS, "poll_interval": 60}
    )
    return Manager(config)


async def wait_for_cycle(port: int, cycle: int) -> None:
    """Until the gateway serves the snapshot of ``cycle`` (its header's cycle word)."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    await client.connect()
    try:
        for _ in range(300):
            response = await client.read_holding_registers(b.HEADER_START, count=16, **UNIT)
            if not response.isError() and response.registers[7] == cycle & 0xFFFF:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the gateway never served cycle {cycle}")
    finally:
        client.close()


@pytest.fixture
async def manager() -> AsyncIterator[Manager]:
    mgr = make_manager()
    await mgr.start(run_loop=False)
    yield mgr
    await mgr.stop()


async def start_gateway(mgr: Manager, **options: Any) -> tuple[Gateway, SystemSnapshot]:
    gateway = Gateway(mgr, GatewayOptions(modbus=LOCAL, snmp=LOCAL, **options))
    await gateway.start()
    snap = await mgr.poll_once()
    assert gateway.modbus_port is not None
    await wait_for_cycle(gateway.modbus_port, snap.cycle)
    return gateway, snap


@pytest.fixture
async def served(manager: Manager) -> AsyncIterator[tuple[Gateway, SystemSnapshot]]:
    gateway, snap = await start_gateway(manager)
    yield gateway, snap
    await gateway.stop()


async def test_round_trip_gives_the_same_values_within_one_scale_step(
    served: tuple[Gateway, SystemSnapshot],
) -> None:
    gateway, snap = served
    adapter = GenerexAdapter(
        parse_generex_url(
            f"generex://127.0.0.1:{gateway.modbus_port}?snmp={gateway.snmp_port}&timeout=0.5"
        )
    )
    try:
        r = await adapter.read()
    finally:
        await adapter.close()
    assert r.modbus_ok and r.snmp_ok and r.mismatches == ()
    assert r.general is not None and m.GeneralFlag.RUNNING in r.general.flags
    assert (r.general.num_strings, r.general.num_modules) == (STRINGS, STRINGS * BLOCKS)
    ours = [mod for s in snap.strings for mod in s.modules]
    assert len(r.modules) == len(ours)
    for back, mod in zip(r.modules, ours, strict=True):
        assert (back.string, back.position) == (mod.string, mod.position)
        assert back.voltage.value == pytest.approx(mod.voltage.value, abs=0.01)
        assert back.temperature.value == pytest.approx(mod.temperature.value, abs=0.1)
        assert back.resistance.value == pytest.approx(mod.resistance.value, abs=0.01)
    for back_s, s in zip(r.strings, snap.strings, strict=True):
        assert back_s.current.value == pytest.approx(s.current or 0.0, abs=0.01)
        assert back_s.voltage.value == pytest.approx(s.voltage, abs=0.01)


async def test_our_own_block_carries_every_module(
    served: tuple[Gateway, SystemSnapshot],
) -> None:
    gateway, snap = served
    client = AsyncModbusTcpClient("127.0.0.1", port=gateway.modbus_port or 0, timeout=1)
    await client.connect()
    try:
        header = (await client.read_holding_registers(20000, count=16, **UNIT)).registers
        words = (await client.read_holding_registers(b.MODULE_START, count=120, **UNIT)).registers
        beyond = await client.read_holding_registers(
            b.module_address(STRINGS * BLOCKS + 1), count=1, **UNIT
        )
    finally:
        client.close()
    assert header[0] == b.FORMAT_VERSION
    assert header[1:3] == [STRINGS * BLOCKS, STRINGS]
    assert header[3] == b.STATUS_CODES[snap.status.value]
    assert (header[8] << 16 | header[9]) == int(snap.timestamp.timestamp())
    first = snap.strings[0].modules[0]
    assert words[0] == round((first.voltage.value or 0) * 1000)
    assert words[4:6] == [1, 1]
    assert words[6] & (1 << b.ModuleQualityBit.ONLINE)
    assert beyond.isError() and beyond.exception_code == 0x02


async def test_the_gateway_is_read_only_by_default(
    served: tuple[Gateway, SystemSnapshot],
) -> None:
    gateway, _ = served
    client = AsyncModbusTcpClient("127.0.0.1", port=gateway.modbus_port or 0, timeout=1)
    await client.connect()
    try:
        response = await client.write_register(b.ACK_ADDRESS, b.ACK_VALUE, **UNIT)
    finally:
        client.close()
    assert response.isError() and response.exception_code == 0x01


async def test_commands_for_the_allow_list_and_reset_refused_while_unsafe(
    manager: Manager,
) -> None:
    gateway, _ = await start_gateway(manager, commands=True, allow=("127.0.0.1",))
    client = AsyncModbusTcpClient("127.0.0.1", port=gateway.modbus_port or 0, timeout=5)
    await client.connect()
    try:
        ack = await client.write_register(b.ACK_ADDRESS, b.ACK_VALUE, **UNIT)
        wrong = await client.write_register(b.RESET_ADDRESS, 1, **UNIT)
        # No trip relay here: the manager refuses (SafetyRefusedError) and the client is told.
        reset = await client.write_register(b.RESET_ADDRESS, b.RESET_VALUE, **UNIT)
    finally:
        client.close()
        await gateway.stop()
    assert not ack.isError()
    assert wrong.isError() and wrong.exception_code == 0x03
    assert reset.isError() and reset.exception_code == 0x04


async def test_a_client_outside_the_allow_list_gets_exception_01() -> None:
    sent: list[tuple[Any, ...]] = []
    serving = GatewayServing(
        GatewayOptions(modbus=LOCAL, commands=True, allow=("10.0.0.5",)), send=sent.append
    )
    assert await serving.write("10.0.0.6", b.ACK_ADDRESS, [b.ACK_VALUE]) == 0x01
    assert sent == []
    pending = asyncio.ensure_future(serving.write("10.0.0.5", b.ACK_ADDRESS, [b.ACK_VALUE]))
    await asyncio.sleep(0)
    assert sent == [("command", 1, "acknowledge", "10.0.0.5")]
    serving.result(1, 0)
    assert await pending == 0
    assert await serving.write("10.0.0.5", 20012, [1]) == 0x02


def test_options_bind_localhost_and_need_an_allow_list_for_commands() -> None:
    assert parse_listen("1502") == ("127.0.0.1", 1502)
    assert parse_listen(":1502") == ("127.0.0.1", 1502)
    assert parse_listen("tcp://0.0.0.0:502") == ("0.0.0.0", 502)
    with pytest.raises(GatewayOptionError, match="HOST:PORT"):
        parse_listen("host:port")
    with pytest.raises(GatewayOptionError, match="allow-list"):
        GatewayOptions(modbus=LOCAL, commands=True)
    with pytest.raises(GatewayOptionError, match="not an IP"):
        GatewayOptions(modbus=LOCAL, commands=True, allow=("scada.local",))
    with pytest.raises(GatewayOptionError, match="Modbus, SNMP"):
        GatewayOptions()


async def test_a_lost_module_is_served_as_lost(manager: Manager) -> None:
    gateway = Gateway(manager, GatewayOptions(modbus=LOCAL))
    await gateway.start()
    try:
        snap = await manager.poll_once()
        first = snap.strings[0].modules[0]
        lost = snap.strings[0].modules[0].info
        from dataclasses import replace

        module = replace(first, info=replace(lost, online=False))
        strings = (replace(snap.strings[0], modules=(module, *snap.strings[0].modules[1:])),)
        fake = replace(snap, strings=strings + snap.strings[1:], cycle=snap.cycle + 1,
                       status=ManagerStatus.DEGRADED)  # fmt: skip
        gateway.publish(fake)
        assert gateway.modbus_port is not None
        await wait_for_cycle(gateway.modbus_port, fake.cycle)
        adapter = GenerexAdapter(
            parse_generex_url(f"generex://127.0.0.1:{gateway.modbus_port}?snmp=0")
        )
        r = await adapter.read()
        await adapter.close()
    finally:
        await gateway.stop()
    assert r.general is not None and m.GeneralFlag.MODULE_LOST in r.general.flags


@needs_mbpoll
async def test_mbpoll_reads_the_gateway(served: tuple[Gateway, SystemSnapshot]) -> None:
    gateway, snap = served
    port = gateway.modbus_port or 0
    general = await mbpoll_read(port, 1000, 5)
    assert (general[1003], general[1004]) == (STRINGS, STRINGS * BLOCKS)
    module = await mbpoll_read(port, b.MODULE_START, b.MODULE_STRIDE)
    first = snap.strings[0].modules[0]
    assert module[b.MODULE_START] == round((first.voltage.value or 0) * 1000)
    assert module[b.MODULE_START + 4] == 1


@needs_snmp
async def test_snmpbulkwalk_reads_the_gateway(served: tuple[Gateway, SystemSnapshot]) -> None:
    gateway, snap = served
    assert SNMPBULKWALK
    rc, out = await tool(
        SNMPBULKWALK, "-v2c", "-c", "public", "-On", f"127.0.0.1:{gateway.snmp_port}",
        ".1.3.6.1.2.1.33.5.2.5.1.2",
    )  # fmt: skip
    assert rc == 0, out
    volts = snmp_values(out)
    ours = [mod for s in snap.strings for mod in s.modules]
    assert len(volts) == len(ours)
    for i, mod in enumerate(ours, start=1):
        assert volts[f".1.3.6.1.2.1.33.5.2.5.1.2.{i}"] == round((mod.voltage.value or 0) * 100)


def test_bacs_run_refuses_commands_without_an_allow_list() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bacs_core", "run", "sim://x", "--serve-modbus", "1502",
         "--gateway-commands"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "allow-list" in out.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_bacs_run_serves_modbus_and_snmp() -> None:
    port, snmp = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bacs_core", "run", "sim://x?strings=1&blocks=4",
        "--interval", "1", "--json",
        "--serve-modbus", f"127.0.0.1:{port}", "--serve-snmp", f"127.0.0.1:{snmp}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line.startswith("gateway:") and "read-only" in line, line
        await wait_for_cycle(port, 2)
        adapter = GenerexAdapter(parse_generex_url(f"generex://127.0.0.1:{port}?snmp={snmp}"))
        r = await adapter.read()
        await adapter.close()
        assert len(r.modules) == 4 and r.snmp_ok
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def test_a_gateway_without_new_snapshots_says_communication_interrupted(
    manager: Manager,
) -> None:
    snap = await manager.poll_once()
    serving = GatewayServing(GatewayOptions(modbus=LOCAL, stale_after_s=0.05))
    serving.update(snap)
    fresh = serving.current().read(1000, 1)
    assert fresh is not None and fresh[0] & m.GeneralFlag.RUNNING
    await asyncio.sleep(0.1)
    stale = serving.current()
    assert stale.read(1000, 1) == [0]
    header = stale.read(b.HEADER_START, b.HEADER_COUNT)
    assert header is not None and header[3] == b.STATUS_CODES[ManagerStatus.STOPPED.value]
    assert stale.read(b.MODULE_START, 1) == serving.image.read(b.MODULE_START, 1)
    serving.update(snap)
    assert serving.current() is serving.image


async def test_a_reset_over_modbus_is_refused_while_a_runaway_is_hot_then_accepted() -> None:
    """The real unsafe case: tripped by a runaway, the allowed SCADA's reset is refused
    (exception 04) and the trip stays latched; once the block is cool the same write resets."""
    from bacs_core.manager import MemoryStorage
    from bacs_core.sim.loopback import LoopbackTransport
    from bacs_core.sim.room import Fault, FaultKind, Room, RoomConfig
    from bacs_core.snapshot import TripState

    room = Room(RoomConfig(strings=2, blocks=16, capacity_ah=40, settle_days=2, seed=4))
    clock = [0.0]
    mgr = Manager(
        validate_config(
            {
                "buses": [{"id": "bus1", "url": "sim://x"}],
                "string_count": 2,
                "capacity_ah": 40,
                "trip": {"auto": True},
                "poll_interval": 10,
            }
        ),
        storage=MemoryStorage(),
        transports={"bus1": LoopbackTransport(room)},
        clock=lambda: clock[0],
    )

    async def cycle() -> SystemSnapshot:
        room.step(10.0)
        clock[0] += 10.0
        return await mgr.poll_once()

    await mgr.start(run_loop=False)
    gateway = Gateway(mgr, GatewayOptions(modbus=LOCAL, commands=True, allow=("127.0.0.1",)))
    await gateway.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=gateway.modbus_port or 0, timeout=5)
    try:
        for _ in range(30):
            await cycle()
        room.inject(Fault(FaultKind.RUNAWAY, 1, 5, 3.0))
        for _ in range(2000):
            snap = await cycle()
            if snap.safety.trip_state is not TripState.ARMED:
                break
        assert snap.safety.trip_state is TripState.TRIPPED
        await client.connect()
        refused = await client.write_register(b.RESET_ADDRESS, b.RESET_VALUE, **UNIT)
        assert refused.isError() and refused.exception_code == 0x04
        assert mgr.safety.state is TripState.TRIPPED
        physics = room.string(1).physics
        physics.replace_block(4, physics.blocks[0])
        for _ in range(200):
            snap = await cycle()
            if not snap.safety.pre_alert:
                break
        accepted = await client.write_register(b.RESET_ADDRESS, b.RESET_VALUE, **UNIT)
        assert not accepted.isError()
        assert mgr.safety.state is TripState.ARMED
    finally:
        client.close()
        await gateway.stop()
        await mgr.stop()
