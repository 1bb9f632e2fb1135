"""The simulator impersonates a CS141, and the adapter reads it: values within one scale step,
faults as a CS141 shows them, and every unknown handled (index base, wrong scale, one protocol
missing, v1-only agents, busy and refusing Modbus servers). Third-party clients read it too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from generex_helpers import (
    MBPOLL,
    SNMPGET,
    SNMPWALK,
    mbpoll_read,
    needs_mbpoll,
    needs_snmp,
    snmp_values,
    tool,
)
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from bacs_core.bus.pymodbus_compat import unit_kwargs
from bacs_core.generex import cs141_map as m
from bacs_core.generex.adapter import GenerexAdapter, GenerexUnreachableError
from bacs_core.generex.modbus_server import Cs141ModbusServer
from bacs_core.generex.readings import Protocol
from bacs_core.generex.snmp import V2C
from bacs_core.generex.snmp_agent import SnmpAgent
from bacs_core.generex.to_snapshot import build_snapshot
from bacs_core.generex.url import parse_generex_url
from bacs_core.model import Quality
from bacs_core.sim.generex import Cs141Impersonation, ImpersonationOptions
from bacs_core.sim.room import Fault, Room, RoomConfig
from bacs_core.snapshot import DeviceRef, ManagerStatus

BLOCKS = 6

UNIT = unit_kwargs(1)


def make_room(*faults: str) -> Room:
    return Room(
        RoomConfig(
            strings=2,
            blocks=BLOCKS,
            seed=3,
            settle_days=0.2,
            faults=tuple(Fault.parse(f) for f in faults),
        )
    )


async def serve(room: Room, **options: object) -> Cs141Impersonation:
    cs141 = Cs141Impersonation(room, ImpersonationOptions(**options))  # type: ignore[arg-type]
    await cs141.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    return cs141


def url_of(cs141: Cs141Impersonation, extra: str = "") -> str:
    assert cs141.modbus is not None
    return f"generex://127.0.0.1:{cs141.modbus.port}?snmp={cs141.snmp_port}&timeout=0.4{extra}"


@pytest.fixture
async def cs141() -> AsyncIterator[Cs141Impersonation]:
    served = await serve(make_room())
    yield served
    await served.stop()


async def read(url: str) -> GenerexAdapter:
    return GenerexAdapter(parse_generex_url(url))


async def test_adapter_reads_every_value_within_one_scale_step(
    cs141: Cs141Impersonation,
) -> None:
    adapter = await read(url_of(cs141))
    try:
        r = await adapter.read()
    finally:
        await adapter.close()
    assert r.modbus_ok and r.snmp_ok and r.snmp_version == "2c"
    assert r.general is not None
    assert r.general.flags == m.GeneralFlag.RUNNING | m.GeneralFlag.FLOAT_CHARGING
    assert (r.general.num_strings, r.general.num_modules) == (2, 2 * BLOCKS)
    assert r.mismatches == () and r.index_base == 1
    devices = [dev for s in cs141.room.strings for dev in s.modules]
    assert [x.module_id for x in r.modules] == list(range(1, 2 * BLOCKS + 1))
    for reading, dev in zip(r.modules, devices, strict=True):
        assert reading.voltage.value == pytest.approx(dev.voltage, abs=0.0051)
        assert reading.temperature.value == pytest.approx(dev.temperature, abs=0.051)
        assert reading.resistance.value == pytest.approx(dev.resistance_mohm, abs=0.0051)
    assert [(x.string, x.position) for x in r.modules[BLOCKS - 1 : BLOCKS + 1]] == [
        (1, BLOCKS),
        (2, 1),
    ]
    for reading, s in zip(r.strings, cs141.room.strings, strict=True):
        assert reading.source is Protocol.SNMP
        assert reading.current.value == pytest.approx(s.sensor.current, abs=0.0051)
        total = sum(dev.voltage for dev in s.modules)
        assert reading.voltage.value == pytest.approx(total, abs=0.0051)
    snap = build_snapshot(r, "cs141")
    assert snap.status is ManagerStatus.OK
    assert snap.module(DeviceRef("cs141", 7)) is snap.strings[1].modules[0]
    assert snap.safety.trip_state.value == "disabled" and not snap.equalization_enabled


async def test_a_lost_module_shows_as_a_cs141_shows_it() -> None:
    cs141 = await serve(make_room("dead:2:3"))
    adapter = await read(url_of(cs141))
    try:
        r = await adapter.read()
    finally:
        await adapter.close()
        await cs141.stop()
    assert r.general is not None and m.GeneralFlag.MODULE_LOST in r.general.flags
    lost = [x for x in r.modules if x.lost]
    assert [x.module_id for x in lost] == [BLOCKS + 3]
    assert lost[0].state == m.ModuleState.NOT_INITIALISED
    assert lost[0].voltage.quality is Quality.MISSING
    assert r.strings[1].voltage.quality is Quality.MISSING  # a sum without one block
    snap = build_snapshot(r)
    assert snap.status is ManagerStatus.DEGRADED
    module = snap.module(DeviceRef("generex", BLOCKS + 3))
    assert module is not None and not module.info.online and module.problem


async def test_index_base_zero_is_detected_and_module_ids_stay_generex_ids() -> None:
    cs141 = await serve(make_room(), index_base=0)
    adapter = await read(url_of(cs141))
    try:
        r = await adapter.read()
    finally:
        await adapter.close()
        await cs141.stop()
    assert r.index_base == 0
    assert [x.module_id for x in r.modules] == list(range(1, 2 * BLOCKS + 1))
    assert r.strings[0].voltage.usable


async def test_a_wrong_string_scale_is_reported_not_shown(cs141: Cs141Impersonation) -> None:
    adapter = await read(url_of(cs141, "&string_scale=100"))
    try:
        r = await adapter.read()
    finally:
        await adapter.close()
    voltage = [x for x in r.mismatches if x.quantity == "string_voltage"]
    assert [x.string for x in voltage] == [1, 2]
    assert all(x.suggested_scale == 10 for x in voltage)
    assert any("string_scale=10 would match" in note for note in r.notes)
    # What is shown comes from SNMP, not from the mis-scaled register.
    assert r.strings[0].voltage.value == pytest.approx(
        sum(d.voltage for d in cs141.room.strings[0].modules), abs=0.0051
    )


async def test_modbus_only_and_snmp_only(cs141: Cs141Impersonation) -> None:
    assert cs141.modbus is not None
    adapter = await read(f"generex://127.0.0.1:{cs141.modbus.port}?snmp=0&timeout=0.4")
    try:
        r = await adapter.read()
    finally:
        await adapter.close()
    assert r.modbus_ok and not r.snmp_ok and r.modules == ()
    assert r.strings[0].source is Protocol.MODBUS
    total = sum(d.voltage for d in cs141.room.strings[0].modules)
    assert r.strings[0].voltage.value == pytest.approx(total, abs=0.051)  # ×10: 0.1 V steps

    closed = cs141.modbus.port
    await cs141.modbus.stop()
    adapter = await read(f"generex://127.0.0.1:{closed}?snmp={cs141.snmp_port}&timeout=0.4")
    try:
        r = await adapter.read()
    finally:
        await adapter.close()
    assert not r.modbus_ok and r.snmp_ok and len(r.modules) == 2 * BLOCKS
    assert any(note.startswith("Modbus:") for note in r.notes)
    assert build_snapshot(r).status is ManagerStatus.DEGRADED  # no flags without Modbus


async def test_nothing_answering_is_one_clear_error() -> None:
    adapter = await read("generex://127.0.0.1:1?snmp=9&timeout=0.1")
    with pytest.raises(GenerexUnreachableError, match="Modbus"):
        await adapter.read()
    await adapter.close()


class _V1Only(SnmpAgent):
    def answer(self, data: bytes) -> bytes | None:
        from pysnmp.proto import api

        if int(api.decodeMessageVersion(data)) == V2C:
            return None
        return super().answer(data)


async def test_snmp_falls_back_to_v1(cs141: Cs141Impersonation) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _V1Only(cs141.image), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    assert cs141.modbus is not None
    adapter = await read(f"generex://127.0.0.1:{cs141.modbus.port}?snmp={port}&timeout=0.4")
    try:
        r = await adapter.read()
        again = await adapter.read()  # remembers v1: no v2c timeout on every cycle
    finally:
        await adapter.close()
        transport.close()
    assert r.snmp_version == "1" and len(r.modules) == 2 * BLOCKS
    assert again.snmp_version == "1" and not any("v2c" in n for n in again.notes)


class _Awkward(Cs141ModbusServer):
    """Refuses FC03 (01), is busy twice (06), and refuses the whole block (02)."""

    busy = 2

    async def answer(self, request: ModbusPDU, host: str) -> ModbusPDU:
        fc = request.function_code
        if fc == 3:
            return ExceptionResponse(fc, 0x01, request.dev_id)
        if self.busy:
            self.busy -= 1
            return ExceptionResponse(fc, 0x06, request.dev_id)
        if request.count > 5:
            return ExceptionResponse(fc, 0x02, request.dev_id)
        return await super().answer(request, host)


async def test_fc04_fallback_busy_retry_and_piecewise_reads(cs141: Cs141Impersonation) -> None:
    server = _Awkward(cs141.image)
    await server.start()
    adapter = await read(f"generex://127.0.0.1:{server.port}?snmp=0&timeout=0.4")
    try:
        r = await adapter.read()
    finally:
        await adapter.close()
        await server.stop()
    assert adapter.modbus.function == 4 and server.busy == 0
    assert r.general is not None and r.general.num_modules == 2 * BLOCKS
    assert [s.voltage.usable for s in r.strings] == [True, True]
    assert any("piecewise" in note for note in r.notes)


async def test_the_impersonation_is_read_only(cs141: Cs141Impersonation) -> None:
    assert cs141.modbus is not None
    client = AsyncModbusTcpClient("127.0.0.1", port=cs141.modbus.port, timeout=1, retries=0)
    await client.connect()
    try:
        response = await client.write_register(1000, 0, **UNIT)
        assert response.isError() and response.exception_code == 0x01
        response = await client.read_holding_registers(1060, count=1, **UNIT)
        assert response.isError() and response.exception_code == 0x02
    finally:
        client.close()


@needs_mbpoll
async def test_mbpoll_reads_the_impersonated_cs141(cs141: Cs141Impersonation) -> None:
    assert cs141.modbus is not None and MBPOLL
    holding = await mbpoll_read(cs141.modbus.port, 1000, 15)
    assert holding[1000] == int(m.GeneralFlag.RUNNING | m.GeneralFlag.FLOAT_CHARGING)
    assert (holding[1003], holding[1004]) == (2, 2 * BLOCKS)
    total = sum(d.voltage for d in cs141.room.strings[0].modules)
    assert holding[1011] == pytest.approx(total * 10, abs=1)
    inputs = await mbpoll_read(cs141.modbus.port, 1000, 5, fc=4)  # FC04: the same space
    assert inputs == {a: holding[a] for a in range(1000, 1005)}


@needs_snmp
async def test_snmpwalk_and_snmpget_read_the_impersonated_cs141(
    cs141: Cs141Impersonation,
) -> None:
    assert SNMPWALK and SNMPGET
    port = str(cs141.snmp_port)
    target = f"127.0.0.1:{port}"
    rc, out = await tool(SNMPWALK, "-v2c", "-c", "public", "-On", target, ".1.3.6.1.2.1.33.5.2")
    assert rc == 0, out
    values = snmp_values(out)
    assert len([o for o in values if o.startswith(".1.3.6.1.2.1.33.5.2.5.1.")]) == 5 * 2 * BLOCKS
    assert len([o for o in values if o.startswith(".1.3.6.1.2.1.33.5.2.7.1.")]) == 4 * 2
    dev = cs141.room.strings[0].modules[0]
    rc, out = await tool(
        SNMPGET, "-v1", "-c", "public", "-On", target,
        ".1.3.6.1.2.1.33.5.2.5.1.2.1", ".1.3.6.1.2.1.33.5.2.5.1.3.1", ".1.3.6.1.2.1.1.2.0",
    )  # fmt: skip
    assert rc == 0, out
    got = snmp_values(out)
    assert got[".1.3.6.1.2.1.33.5.2.5.1.2.1"] == pytest.approx(dev.voltage * 100, abs=1)
    assert got[".1.3.6.1.2.1.33.5.2.5.1.3.1"] == pytest.approx(dev.temperature * 10, abs=1)
    assert ".1.3.6.1.2.1.33" in out  # sysObjectID: how monitoring tools recognise a BACS
    rc, out = await tool(SNMPGET, "-v2c", "-c", "wrong", "-On", "-t", "0.3", "-r", "0", target,
                         ".1.3.6.1.2.1.1.2.0")  # fmt: skip
    assert rc != 0 and "Timeout" in out


def test_a_hot_block_raises_the_temperature_flag_and_its_module_state() -> None:
    from bacs_core.sim.generex import room_content

    room = make_room("runaway:2:4=3")
    for _ in range(3000):
        room.step(30.0)
        if room.strings[1].modules[3].temperature > 36.0:
            break
    content = room_content(room)
    assert content.flags & m.GeneralFlag.TEMPERATURE_OUT_OF_RANGE
    module = content.modules[BLOCKS + 3]
    assert module.state is m.ModuleState.TEMPERATURE_ALARM
    assert content.modules[0].state is m.ModuleState.OK
