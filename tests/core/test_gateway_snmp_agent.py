"""The SNMP agent's answers, request shape by request shape, against RFC 3416's rules applied
to the image directly: GET, GETNEXT and GETBULK (non-repeaters, several repeaters, the end of
the view, the size limit) on v1 and v2c, and the same request answered again after the image
changed (the decoded requests and encoded objects are kept across images; the answers not)."""

from __future__ import annotations

from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api

from bacs_core.generex import cs141_map as m
from bacs_core.generex.image import (
    Cs141Content,
    Cs141Image,
    ModuleContent,
    StringContent,
    build_image,
)
from bacs_core.generex.snmp import MAX_BULK_VARBINDS, V1, V2C, from_asn1
from bacs_core.generex.snmp_agent import SnmpAgent

END = "endOfMibView"
MISSING = "noSuchInstance"


def image(modules: int, offset: float = 0.0) -> Cs141Image:
    return build_image(
        Cs141Content(
            flags=0x41,
            strings=(StringContent(-1.5 + offset, 27.3, 13.65), StringContent(2.0, 27.1, 13.55)),
            modules=tuple(
                ModuleContent(i, 13.5 + i / 100 + offset, 25.0, 4.5, m.ModuleState.OK)
                for i in range(1, modules + 1)
            ),
        ),
        m.Cs141Settings(),
    )


def call(obj: Any, snake: str, camel: str) -> Any:
    return getattr(obj, snake, None) or getattr(obj, camel)


def request(
    version: int, kind: str, names: list[tuple[int, ...]], rid: int = 1, *, non_rep: int = 0,
    max_rep: int = 10, community: str = "public",
) -> bytes:  # fmt: skip
    p = api.v2c if version == V2C else api.v1
    pdu = {"get": p.GetRequestPDU, "next": p.GetNextRequestPDU}.get(kind) or p.GetBulkRequestPDU
    pdu = pdu()
    api_pdu = p.apiBulkPDU if kind == "bulk" else p.apiPDU
    call(api_pdu, "set_defaults", "setDefaults")(pdu)
    call(p.apiPDU, "set_request_id", "setRequestID")(pdu, rid)
    if kind == "bulk":
        call(p.apiBulkPDU, "set_non_repeaters", "setNonRepeaters")(pdu, non_rep)
        call(p.apiBulkPDU, "set_max_repetitions", "setMaxRepetitions")(pdu, max_rep)
    call(p.apiPDU, "set_varbinds", "setVarBinds")(pdu, [(n, p.Null("")) for n in names])
    msg = p.Message()
    call(p.apiMessage, "set_defaults", "setDefaults")(msg)
    call(p.apiMessage, "set_community", "setCommunity")(msg, community)
    call(p.apiMessage, "set_pdu", "setPDU")(msg, pdu)
    return bytes(encoder.encode(msg))


def decode(data: bytes, version: int) -> tuple[int, int, int, list[tuple[Any, Any]]]:
    p = api.v2c if version == V2C else api.v1
    msg, _ = decoder.decode(data, asn1Spec=p.Message())
    pdu = call(p.apiMessage, "get_pdu", "getPDU")(msg)
    rid = int(call(p.apiPDU, "get_request_id", "getRequestID")(pdu))
    status = int(call(p.apiPDU, "get_error_status", "getErrorStatus")(pdu))
    index = int(call(p.apiPDU, "get_error_index", "getErrorIndex")(pdu))
    binds = []
    for oid, value in call(p.apiPDU, "get_varbinds", "getVarBinds")(pdu):
        if value.tagSet == api.v2c.EndOfMibView.tagSet:
            shown: Any = END
        elif value.tagSet == api.v2c.NoSuchInstance.tagSet:
            shown = MISSING
        else:
            shown = from_asn1(value)
        binds.append((tuple(oid), shown))
    return rid, status, index, binds


def expected_next(img: Cs141Image, oid: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
    found = img.next(oid)
    return found if found is not None else (oid, END)


def expected_bulk(
    img: Cs141Image, names: list[tuple[int, ...]], non_rep: int, max_rep: int
) -> list[tuple[Any, Any]]:
    """RFC 3416 4.2.3, stopping once every repeater is at the end, within the size limit."""
    out = [expected_next(img, n) for n in names[:non_rep]]
    cursors = names[non_rep:]
    for _ in range(max_rep):
        if not cursors or len(out) + len(cursors) > MAX_BULK_VARBINDS:
            break
        row = [expected_next(img, c) for c in cursors]
        out += row
        cursors = [oid for oid, _ in row]
        if all(value == END for _, value in row):
            break
    return out


IMG = image(40)


@pytest.mark.parametrize(
    ("names", "non_rep", "max_rep"),
    [
        ([m.MODULE_TABLE], 0, 10),  # a walk's first request
        ([(*m.MODULE_TABLE, m.ModuleColumn.VOLTAGE, 39)], 0, 10),  # crosses a column
        ([(*m.STRING_TABLE, m.StringColumn.AVERAGE_VOLTAGE, 1)], 0, 10),  # hits the end
        ([(*m.STRING_TABLE, 9)], 0, 5),  # past the last object
        ([m.MODULE_TABLE], 0, 0),
        ([m.MODULE_TABLE], 0, 500),  # capped by the size limit
        ([m.SYS_DESCR, m.MODULE_TABLE, m.STRING_TABLE], 1, 7),  # non-repeater, two repeaters
        ([m.MODULE_TABLE, (*m.STRING_TABLE, m.StringColumn.AVERAGE_VOLTAGE, 1)], 0, 4),
        ([m.SETTINGS, m.STRING_TABLE], 2, 3),  # only non-repeaters
        ([m.MODULE_TABLE, m.STRING_TABLE, m.SETTINGS], 0, 100),  # three repeaters, capped
    ],
)
def test_getbulk_answers_as_rfc_3416_says(
    names: list[tuple[int, ...]], non_rep: int, max_rep: int
) -> None:
    agent = SnmpAgent(lambda: IMG)
    for rid in (5, 6):  # the second is answered from the cache, with its own request-id
        data = agent.answer(request(V2C, "bulk", names, rid, non_rep=non_rep, max_rep=max_rep))
        assert data is not None
        got_rid, status, _, binds = decode(data, V2C)
        assert (got_rid, status) == (rid, 0)
        assert binds == expected_bulk(IMG, names, non_rep, max_rep)


@pytest.mark.parametrize("version", [V1, V2C])
def test_get_and_getnext(version: int) -> None:
    agent = SnmpAgent(lambda: IMG)
    voltage = (*m.MODULE_TABLE, m.ModuleColumn.VOLTAGE, 7)
    data = agent.answer(request(version, "get", [voltage, m.SYS_DESCR]))
    assert data is not None
    assert decode(data, version)[3] == [(voltage, 1357), (m.SYS_DESCR, IMG.get(m.SYS_DESCR))]
    data = agent.answer(request(version, "next", [voltage, m.SETTINGS]))
    assert data is not None
    assert decode(data, version)[3] == [IMG.next(voltage), IMG.next(m.SETTINGS)]


def test_missing_objects_v2c_exceptions_v1_errors() -> None:
    agent = SnmpAgent(lambda: IMG)
    missing, last = (1, 3, 6, 1, 4, 1, 99, 0), IMG.oids[-1]
    data = agent.answer(request(V2C, "get", [m.SYS_DESCR, missing]))
    assert data is not None
    assert decode(data, V2C)[3][1] == (missing, MISSING)
    data = agent.answer(request(V2C, "next", [last]))
    assert data is not None
    assert decode(data, V2C)[3] == [(last, END)]
    for kind, name in (("get", missing), ("next", last)):
        data = agent.answer(request(V1, kind, [m.SYS_DESCR, name], 77))
        assert data is not None
        assert decode(data, V1)[:3] == (77, 2, 2)  # noSuchName at the second binding


def test_a_new_image_is_served_by_the_same_request_and_old_answers_are_dropped() -> None:
    current = {"image": image(40)}
    agent = SnmpAgent(lambda: current["image"])
    ask = request(V2C, "bulk", [(*m.MODULE_TABLE, m.ModuleColumn.VOLTAGE)], max_rep=3)
    first = agent.answer(ask)
    current["image"] = image(40, offset=0.5)
    second = agent.answer(ask)
    assert first is not None and second is not None
    assert [v for _, v in decode(first, V2C)[3]] == [1351, 1352, 1353]
    assert [v for _, v in decode(second, V2C)[3]] == [1401, 1402, 1403]
    assert agent.cache_hits == 0
    current["image"] = image(41)  # a module more: the layout changed
    third = agent.answer(request(V2C, "bulk", [(*m.MODULE_TABLE, 1, 40)], max_rep=2))
    assert third is not None
    assert decode(third, V2C)[3] == [
        ((*m.MODULE_TABLE, 1, 41), 41),
        ((*m.MODULE_TABLE, 2, 1), 1351),
    ]


def test_the_wrong_community_gets_no_answer() -> None:
    agent = SnmpAgent(lambda: IMG)
    ask = request(V2C, "get", [m.SYS_DESCR], community="private")
    assert agent.answer(ask) is None
    assert agent.answer(ask) is None  # also when the decoding is kept
    assert agent.requests == 0
