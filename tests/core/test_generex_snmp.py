"""The SNMP agent and client on pysnmp's protocol layer (pysnmp 6.2.6 and 7.1.22 alike)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

from bacs_core.generex import cs141_map as m
from bacs_core.generex.image import Cs141Content, ModuleContent, StringContent, build_image
from bacs_core.generex.snmp import V1, V2C, request_key
from bacs_core.generex.snmp_agent import SnmpAgent, serve_snmp
from bacs_core.generex.snmp_client import SnmpClient, SnmpError, SnmpTarget, SnmpTimeoutError

IMAGE = build_image(
    Cs141Content(
        flags=0x41,
        strings=(StringContent(-1.5, 27.3, 13.65),),
        modules=(
            ModuleContent(1, 13.6, 25.1, 4.5, m.ModuleState.OK),
            ModuleContent(2, 13.7, 25.3, 4.6, m.ModuleState.NOT_INITIALISED),
        ),
    ),
    m.Cs141Settings(),
)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    transport, _ = await serve_snmp(lambda: IMAGE, "127.0.0.1", 0, "public")
    yield int(transport.get_extra_info("sockname")[1])
    transport.close()


@pytest.mark.parametrize("version", [V2C, V1])
async def test_walk_and_get_on_both_versions(port: int, version: int) -> None:
    async with SnmpClient(SnmpTarget("127.0.0.1", port), version) as client:
        rows = dict(await client.walk(m.BACS))
        found = await client.get([m.SYS_OBJECT_ID])
    assert rows[(*m.MODULE_TABLE, m.ModuleColumn.VOLTAGE, 2)] == 1370
    assert rows[(*m.MODULE_TABLE, m.ModuleColumn.STATE, 2)] == m.ModuleState.NOT_INITIALISED
    assert rows[(*m.STRING_TABLE, m.StringColumn.CURRENT, 1)] == -150
    assert rows[(*m.SETTINGS, 3, 0)] == 2
    assert len(rows) == len(m.SETTINGS_OBJECTS) + 2 * 5 + 4
    assert found[m.SYS_OBJECT_ID] == m.UPS_MIB


async def test_a_wrong_community_gets_no_answer(port: int) -> None:
    target = SnmpTarget("127.0.0.1", port, community="private", timeout=0.2, retries=0)
    async with SnmpClient(target) as client:
        with pytest.raises(SnmpTimeoutError, match="community"):
            await client.get([m.SYS_DESCR])


def _request(version: int, rid: int, kind: str = "bulk") -> bytes:
    p = api.v2c if version == V2C else api.v1
    if kind == "set":
        pdu = p.SetRequestPDU()
    elif version == V2C:
        pdu = p.GetBulkRequestPDU()
    else:
        pdu = p.GetNextRequestPDU()
    msg = p.Message()
    api_pdu = p.apiBulkPDU if kind == "bulk" and version == V2C else p.apiPDU
    (getattr(api_pdu, "set_defaults", None) or api_pdu.setDefaults)(pdu)
    (getattr(p.apiPDU, "set_request_id", None) or p.apiPDU.setRequestID)(pdu, rid)
    if kind == "bulk" and version == V2C:
        (getattr(p.apiBulkPDU, "set_max_repetitions", None) or p.apiBulkPDU.setMaxRepetitions)(
            pdu, 3
        )
    value = p.Integer(1) if kind == "set" else p.Null("")
    (getattr(p.apiPDU, "set_varbinds", None) or p.apiPDU.setVarBinds)(
        pdu, [(m.MODULE_TABLE, value)]
    )
    (getattr(p.apiMessage, "set_defaults", None) or p.apiMessage.setDefaults)(msg)
    (getattr(p.apiMessage, "set_community", None) or p.apiMessage.setCommunity)(msg, "public")
    (getattr(p.apiMessage, "set_pdu", None) or p.apiMessage.setPDU)(msg, pdu)
    return bytes(encoder.encode(msg))


def _answer(data: bytes, version: int) -> tuple[int, int, list[tuple[object, object]]]:
    p = api.v2c if version == V2C else api.v1
    msg, _ = decoder.decode(data, asn1Spec=p.Message())
    pdu = (getattr(p.apiMessage, "get_pdu", None) or p.apiMessage.getPDU)(msg)
    rid = int((getattr(p.apiPDU, "get_request_id", None) or p.apiPDU.getRequestID)(pdu))
    status = int((getattr(p.apiPDU, "get_error_status", None) or p.apiPDU.getErrorStatus)(pdu))
    varbinds = (getattr(p.apiPDU, "get_varbinds", None) or p.apiPDU.getVarBinds)(pdu)
    return rid, status, [(tuple(o), v) for o, v in varbinds]


@pytest.mark.parametrize("version", [V2C, V1])
def test_a_cached_answer_carries_the_new_request_id(version: int) -> None:
    agent = SnmpAgent(lambda: IMAGE)
    first, second = _request(version, 7), _request(version, 123456)
    assert request_key(first) is not None
    assert request_key(first)[0] == request_key(second)[0]  # type: ignore[index]
    a = agent.answer(first)
    b = agent.answer(second)
    assert a is not None and b is not None and agent.cache_hits == 1
    rid_a, _, binds_a = _answer(a, version)
    rid_b, _, binds_b = _answer(b, version)
    assert (rid_a, rid_b) == (7, 123456)
    assert binds_a == binds_b and len(binds_a) == (3 if version == V2C else 1)


@pytest.mark.parametrize(("version", "status"), [(V2C, 17), (V1, 4)])
def test_set_is_refused(version: int, status: int) -> None:
    answer = SnmpAgent(lambda: IMAGE).answer(_request(version, 9, "set"))
    assert answer is not None
    assert _answer(answer, version)[1] == status


async def test_an_error_answer_raises(port: int) -> None:
    # SNMPv1 GET of an unknown object: noSuchName, which the client turns into "missing".
    async with SnmpClient(SnmpTarget("127.0.0.1", port), V1) as client:
        assert await client.get([(1, 3, 6, 1, 4, 1, 99)]) == {(1, 3, 6, 1, 4, 1, 99): None}
    assert issubclass(SnmpTimeoutError, SnmpError)
    await asyncio.sleep(0)


def test_pysnmp_range_admits_home_assistants_own_snmp_integration() -> None:
    """bacs-core and Home Assistant's snmp integration must fit in one environment, and the
    environment under test runs the pysnmp Home Assistant pins (6.2.6 on 2025.4, 7.1.22 on
    2026.2), so these tests cover both APIs."""
    import importlib.metadata
    import importlib.util
    import json
    import re
    import sys
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    spec = importlib.util.find_spec("homeassistant")
    if spec is None or spec.origin is None:
        pytest.skip("Home Assistant is not installed in this environment")
    manifest = Path(spec.origin).parent / "components" / "snmp" / "manifest.json"
    (pin,) = [
        r.split("==")[1]
        for r in json.loads(manifest.read_text())["requirements"]
        if r.startswith("pysnmp==")
    ]
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    match = re.search(r'"pysnmp([^"]+)"', pyproject)
    assert match is not None
    assert pin in SpecifierSet(match.group(1))
    if Path(sys.prefix).name in (".venv", ".venv-ha2026"):  # the project's own environments
        assert importlib.metadata.version("pysnmp") == pin
