"""The bus client against the simulator over the real wire protocols and its faults."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bacs_core import registers as reg
from bacs_core.bus import (
    BusClient,
    BusConnectionError,
    CurrentReading,
    DeviceExceptionError,
    ModuleReading,
    RelayReading,
    open_transport,
)
from bacs_core.model import FACTORY_UNIT_ID, DeviceFamily, DeviceKind, Quality
from bacs_core.sim.room import Fault, FaultKind, Room
from bacs_core.sim.server import PtyBusServer, TcpBusServer

UNITS = range(1, 25)  # 2 × 8 modules, 2 sensors, a relay module, an environment sensor


async def scan(client: BusClient) -> list:
    return list((await client.scan(UNITS, timeout=0.05)).devices)


async def test_scan_finds_every_device_over_tcp(tcp_client: BusClient) -> None:
    devices = await scan(tcp_client)
    families = [d.family for d in devices]
    assert families.count(DeviceFamily.BATTERY_MODULE) == 16
    assert families.count(DeviceFamily.CURRENT_SENSOR) == 2
    assert families.count(DeviceFamily.RELAY) == 1
    assert families.count(DeviceFamily.ENVIRONMENT) == 1
    assert [d.unit for d in devices] == list(range(1, 21))
    assert devices[0].kind is DeviceKind.C20 and devices[0].rating == 150
    # Units 21..24 are empty: their silence is what a scan looks for, not a bad link.
    assert tcp_client.link_quality == 100.0
    await tcp_client.poll(devices)
    assert tcp_client.link_quality == 100.0


@pytest.mark.parametrize("framing", ["tcp", "rtu+tcp", "pty"])
async def test_registers_round_trip_on_every_transport(
    room: Room, tmp_path: Path, framing: str
) -> None:
    if framing == "pty":
        server: TcpBusServer | PtyBusServer = PtyBusServer(room, 0, str(tmp_path / "bus"))
    else:
        server = TcpBusServer(room, 0, rtu=framing == "rtu+tcp")
    await server.start()
    url = server.url + ("?baudrate=115200" if framing == "pty" else "")
    client = BusClient(open_transport(url, timeout=0.3))
    try:
        await client.connect()
        devices = await scan(client)
        assert len(devices) == 20
        readings = await client.poll(devices)
        module = readings[3]
        assert isinstance(module, ModuleReading) and module.quality is Quality.OK
        truth = room.string(1).physics
        assert module.voltage.value == pytest.approx(truth.voltages[2], abs=0.02)
        assert module.resistance.value == pytest.approx(truth.resistance_mohm(2), abs=0.002)
        # A write goes through the table and reaches the device.
        await client.set_balance(devices[2], 0.1)
        assert room.string(1).modules[2].control["balance_setpoint"] == pytest.approx(0.1)
        relay = next(d for d in devices if d.family is DeviceFamily.RELAY)
        await client.set_relays(relay, [True, False, False, False])
        room.step(1.0)
        after = await client.poll([relay])
        assert isinstance(after[relay.unit], RelayReading)
        assert after[relay.unit].relays == (True, False, False, False)
        assert after[relay.unit].inputs[:2] == (False, True)  # string 1 breaker open
    finally:
        await client.close()
        await server.stop()


async def test_dead_module_is_missing_and_does_not_block_the_others(
    room: Room, tcp_client: BusClient
) -> None:
    devices = await scan(tcp_client)
    room.inject(Fault(FaultKind.DEAD, 1, 4))
    started = time.monotonic()
    readings = await tcp_client.poll(devices)
    elapsed = time.monotonic() - started
    assert readings[4].quality is Quality.MISSING
    assert all(r.quality is Quality.OK for u, r in readings.items() if u != 4)
    assert tcp_client.consecutive_failures(4) == 1
    # Its cost is its own timeout and retry (2 × 0.2 s), never the whole bus.
    assert elapsed < 5.0
    assert tcp_client.link_quality < 100.0


async def test_stuck_sensor_turns_stale(room: Room, tcp_client: BusClient) -> None:
    devices = await scan(tcp_client)
    room.inject(Fault(FaultKind.STUCK, 2, 1))
    stuck_unit = room.string(2).modules[0].unit
    qualities = []
    for _ in range(5):
        room.step(2.0)
        qualities.append((await tcp_client.poll(devices))[stuck_unit].quality)
    assert qualities[:2] == [Quality.OK, Quality.OK]
    assert qualities[-1] is Quality.STALE
    assert (await tcp_client.poll(devices[:1]))[1].quality is Quality.OK


async def test_out_of_range_values_are_flagged(room: Room, tcp_client: BusClient) -> None:
    devices = await scan(tcp_client)
    room.string(1).physics.cell_loss[0] = 2  # two shorted cells: ~9.3 V, below C20's 9.7 V
    room.step(1.0)
    reading = (await tcp_client.poll(devices[:1]))[1]
    assert isinstance(reading, ModuleReading)
    assert reading.voltage.quality is Quality.OUT_OF_RANGE
    assert reading.temperature.quality is Quality.OK


async def test_crc_errors_and_garbage_never_raise(room: Room) -> None:
    rtu = TcpBusServer(room, 0, rtu=True)
    await rtu.start()
    client = BusClient(open_transport(rtu.url, timeout=0.1, retries=1))
    try:
        await client.connect()
        devices = (await scan(client))[:8]
        for kind in (FaultKind.CRC, FaultKind.GARBAGE, FaultKind.TIMEOUTS):
            room.inject(Fault(kind, 1, value=0.2))
        seen: set[Quality] = set()
        for _ in range(4):
            readings = await client.poll(devices)  # must not raise
            seen |= {r.quality for r in readings.values()}
        assert Quality.OK in seen  # retries recover most exchanges
        assert client.link_quality < 100.0
        assert rtu.handlers[0].stats.corrupted > 0
    finally:
        await client.close()
        await rtu.stop()


async def test_vanished_port_comes_back_and_the_client_reconnects(
    room: Room, tcp_server: TcpBusServer, tcp_client: BusClient
) -> None:
    devices = await scan(tcp_client)
    room.inject(Fault(FaultKind.VANISH, 1, value=10.0))
    await asyncio.sleep(0.2)
    lost = await tcp_client.poll(devices)
    assert all(r.quality is Quality.MISSING for r in lost.values())
    assert not tcp_client.connected
    room.step(11.0)
    for _ in range(50):
        await asyncio.sleep(0.1)
        back = await tcp_client.poll(devices)
        if all(r.quality is Quality.OK for r in back.values()):
            break
    else:
        pytest.fail("client never reconnected")


async def test_vanished_pty_comes_back(room: Room, pty_server: PtyBusServer) -> None:
    client = BusClient(open_transport(pty_server.url, timeout=0.2), backoff_min_s=0.05)
    try:
        await client.connect()
        devices = await scan(client)
        room.inject(Fault(FaultKind.VANISH, 1, value=5.0))
        await asyncio.sleep(0.2)
        assert all(r.quality is Quality.MISSING for r in (await client.poll(devices)).values())
        room.step(6.0)
        for _ in range(50):
            await asyncio.sleep(0.1)
            back = await client.poll(devices)
            if all(r.quality is Quality.OK for r in back.values()):
                break
        else:
            pytest.fail("client never reopened the pty")
    finally:
        await client.close()


async def test_writes_are_validated_before_anything_is_sent(
    room: Room, tcp_client: BusClient
) -> None:
    devices = await scan(tcp_client)
    requests = room.buses[0].requests
    with pytest.raises(reg.RegisterError):
        await tcp_client.write_values(devices[0], {"watchdog": 0})
    with pytest.raises(KeyError):
        await tcp_client.write_values(devices[0], {"relay_setpoint": 1})
    assert room.buses[0].requests == requests
    with pytest.raises(DeviceExceptionError):
        await tcp_client.transport.read(1, 0x0050, 1)


async def test_addressing_procedure(room: Room, tcp_client: BusClient) -> None:
    fresh = room.add_factory_device(0, DeviceKind.C20)
    with pytest.raises(Exception, match="press the addressing button"):
        await tcp_client.assign_address(30)
    room.press_button(0, FACTORY_UNIT_ID)
    with pytest.raises(Exception, match="already used"):
        await tcp_client.assign_address(1)
    room.press_button(0, FACTORY_UNIT_ID)
    identity = await tcp_client.assign_address(30)
    assert identity.unit == 30 and identity.serial == fresh.serial


async def test_unreachable_host_raises_a_connection_error() -> None:
    client = BusClient(open_transport("tcp://127.0.0.1:9", timeout=0.2))
    with pytest.raises(BusConnectionError):
        await client.connect()
    assert await client.poll([]) == {}


async def test_current_sensor_reads_the_string_current(room: Room, tcp_client: BusClient) -> None:
    devices = await scan(tcp_client)
    sensor = next(d for d in devices if d.family is DeviceFamily.CURRENT_SENSOR)
    room.step(10.0)
    reading = (await tcp_client.poll([sensor]))[sensor.unit]
    assert isinstance(reading, CurrentReading)
    assert reading.current.value == pytest.approx(
        room.string(1).physics.string_current_a, abs=0.002
    )
