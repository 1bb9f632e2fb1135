"""SNMP v1/v2c on pysnmp's protocol layer: a small read-only agent and an asyncio client.

Why the protocol layer and not pysnmp's high-level API: Home Assistant 2025.4 pins pysnmp 6.2.6
and 2026.2 pins 7.1.22, and their high-level APIs differ (names, return shapes, transport
creation). Messages, PDUs and the BER codec (pysnmp's ``proto.api`` on pyasn1) are the same in
both; only the method spelling changed (camelCase → snake_case), which :func:`_api` bridges. The
agent serves a :class:`~bacs_core.generex.image.Cs141Image` (a sorted OID table), so one answer
is a bisect, never a computation.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pysnmp.proto import api as snmp_api

from .cs141_map import Oid
from .image import Cs141Image

_LOG = logging.getLogger(__name__)

V1 = 0
V2C = 1
_MODULES: dict[int, Any] = {V1: snmp_api.v1, V2C: snmp_api.v2c}
MAX_BULK_VARBINDS = 200  # keeps one GETBULK answer near 6 kB
NOT_WRITABLE = 17  # v2c error-status
READ_ONLY = 4  # v1 error-status
NO_SUCH_NAME = 2  # v1 error-status


def _api(obj: Any, snake: str, camel: str) -> Any:
    """The pysnmp 7 (snake_case) or pysnmp 6 (camelCase) spelling of one method."""
    method = getattr(type(obj), snake, None)
    return getattr(obj, snake) if method is not None else getattr(obj, camel)


def _decode_version(data: bytes) -> int:
    decode = getattr(snmp_api, "decodeMessageVersion", None)
    if decode is None:  # pragma: no cover - both pinned versions have it
        decode = snmp_api.verdec.decode_message_version
    return int(decode(data))


def _to_asn1(p: Any, value: int | str | Oid) -> Any:
    if isinstance(value, int):
        return p.Integer(value)
    if isinstance(value, str):
        return p.OctetString(value)
    return p.ObjectIdentifier(value)


def _from_asn1(value: Any) -> int | str | Oid | None:
    """A plain Python value; None for noSuchObject/noSuchInstance/endOfMibView/null."""
    if isinstance(value, univ.Null):
        return None
    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, univ.ObjectIdentifier):
        return tuple(value)
    if isinstance(value, univ.OctetString):
        return bytes(value).decode("utf-8", errors="replace")
    with contextlib.suppress(TypeError, ValueError):
        return int(value)
    return str(value)


def _is_end(value: Any) -> bool:
    return bool(value.tagSet == snmp_api.v2c.EndOfMibView.tagSet)


# -- agent ------------------------------------------------------------------------------------


def _tlv(tag: int, content: bytes) -> bytes:
    """One BER tag-length-value with a definite length (X.690 8.1.3)."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


RESPONSE_PDU_TAG = 0xA2  # [2] IMPLICIT, constructed: GetResponse (v1) / Response (v2c)


def _tl(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, length, start of content) of the BER element at ``at``; ValueError if malformed."""
    tag = data[at]
    first = data[at + 1]
    if first < 0x80:
        return tag, first, at + 2
    size = first & 0x7F
    if not 1 <= size <= 4:
        raise ValueError("unsupported BER length")
    return tag, int.from_bytes(data[at + 2 : at + 2 + size], "big"), at + 2 + size


def request_key(data: bytes) -> tuple[bytes, int] | None:
    """The request without its request-id (a cache key) and the request-id, or None.

    Only locates the request-id (message → version → community → PDU → request-id); pyasn1
    still decodes every request that is not answered from the cache.
    """
    try:
        _, _, body = _tl(data, 0)  # message SEQUENCE
        at = body
        for _ in range(2):  # version, community
            _, length, start = _tl(data, at)
            at = start + length
        pdu_tag, _, rid_at = _tl(data, at)  # the PDU
        tag, length, start = _tl(data, rid_at)
        if tag != 0x02 or not 1 <= length <= 5:
            return None
        rid = int.from_bytes(data[start : start + length], "big", signed=True)
        # Lengths of the enclosing elements depend on the id's size: they are not in the key.
        return data[body:at] + bytes((pdu_tag,)) + data[start + length :], rid
    except (IndexError, ValueError):
        return None


class SnmpAgent(asyncio.DatagramProtocol):
    """Answers GET, GETNEXT and GETBULK from the current image; SET is refused (read-only).

    Each variable binding of an image is BER-encoded (by pyasn1) once, when first asked for;
    an answer is those encodings joined under the message header, so an NMS walking the
    tables every minute costs a decode of its small request and a join.
    """

    def __init__(self, image: Callable[[], Cs141Image], community: str = "public") -> None:
        self._image = image
        self._community = community
        self._transport: asyncio.DatagramTransport | None = None
        self.requests = 0
        self._encoded_for: Cs141Image | None = None
        self._encoded: dict[Oid, bytes] = {}
        # request without its id → (message header, response body after the request-id)
        self._answers: dict[bytes, tuple[bytes, bytes]] = {}
        self.cache_hits = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self._transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            answer = self.answer(data)
        except (PyAsn1Error, ValueError, KeyError, TypeError) as err:
            _LOG.debug("undecodable SNMP request from %s: %s", addr[0], err)
            return
        if answer is not None and self._transport is not None:
            self._transport.sendto(answer, addr)

    def answer(self, data: bytes) -> bytes | None:
        image = self._image()
        if image is not self._encoded_for:
            self._encoded_for, self._encoded, self._answers = image, {}, {}
        key = request_key(data)
        if key is not None and (cached := self._answers.get(key[0])) is not None:
            self.requests += 1
            self.cache_hits += 1
            header, tail = cached
            return _tlv(
                0x30, header + _tlv(RESPONSE_PDU_TAG, encoder.encode(univ.Integer(key[1])) + tail)
            )
        version = _decode_version(data)
        p = _MODULES.get(version)
        if p is None:
            return None  # SNMPv3 is not offered
        msg, _ = decoder.decode(data, asn1Spec=p.Message())
        community = bytes(_api(p.apiMessage, "get_community", "getCommunity")(msg))
        if community.decode("utf-8", errors="replace") != self._community:
            return None  # a wrong community gets no answer, as on every agent
        self.requests += 1
        pdu = _api(p.apiMessage, "get_pdu", "getPDU")(msg)
        rsp_msg = _api(p.apiMessage, "get_response", "getResponse")(msg)
        rsp = _api(p.apiMessage, "get_pdu", "getPDU")(rsp_msg)
        names = [tuple(o) for o, _ in _api(p.apiPDU, "get_varbinds", "getVarBinds")(pdu)]
        set_varbinds = _api(p.apiPDU, "set_varbinds", "setVarBinds")
        out: list[tuple[Oid, Any]] = []
        error: tuple[int, int] | None = None
        if pdu.isSameTypeWith(p.GetRequestPDU()):
            for i, oid in enumerate(names):
                value = image.get(oid)
                if value is not None:
                    out.append((oid, value))
                elif version == V1:
                    error = error or (NO_SUCH_NAME, i + 1)
                else:
                    out.append((oid, snmp_api.v2c.NoSuchInstance("")))
        elif pdu.isSameTypeWith(p.GetNextRequestPDU()):
            for i, oid in enumerate(names):
                found = image.next(oid)
                if found is not None:
                    out.append((found[0], found[1]))
                elif version == V1:
                    error = error or (NO_SUCH_NAME, i + 1)
                else:
                    out.append((oid, snmp_api.v2c.EndOfMibView("")))
        elif version == V2C and pdu.isSameTypeWith(p.GetBulkRequestPDU()):
            bulk = p.apiBulkPDU
            non_rep = int(_api(bulk, "get_non_repeaters", "getNonRepeaters")(pdu))
            max_rep = int(_api(bulk, "get_max_repetitions", "getMaxRepetitions")(pdu))
            out = self._bulk(p, image, names, max(0, non_rep), max(0, max_rep))
        else:  # SET and anything else: this agent is read-only
            error = (NOT_WRITABLE if version == V2C else READ_ONLY, 1)
        if error is not None:
            _api(p.apiPDU, "set_error_status", "setErrorStatus")(rsp, error[0])
            _api(p.apiPDU, "set_error_index", "setErrorIndex")(rsp, error[1])
            set_varbinds(rsp, [(oid, p.Null("")) for oid in names])
            return bytes(encoder.encode(rsp_msg))
        rid = int(_api(p.apiPDU, "get_request_id", "getRequestID")(pdu))
        varbinds = b"".join(self._varbind(p, image, oid, value) for oid, value in out)
        tail = encoder.encode(univ.Integer(0)) + encoder.encode(univ.Integer(0))
        tail += _tlv(0x30, varbinds)
        header = encoder.encode(univ.Integer(version)) + encoder.encode(univ.OctetString(community))
        if key is not None and key[1] == rid:
            self._answers[key[0]] = (header, tail)
        return _tlv(0x30, header + _tlv(RESPONSE_PDU_TAG, encoder.encode(univ.Integer(rid)) + tail))

    def _varbind(self, p: Any, image: Cs141Image, oid: Oid, value: Any) -> bytes:
        """The BER of one variable binding; an image's own values are encoded once."""
        cacheable = isinstance(value, int | str | tuple)
        if cacheable:
            found = self._encoded.get(oid)
            if found is not None:
                return found
            value = _to_asn1(p, value)
        vb = p.VarBind()
        _api(p.apiVarBind, "set_oid_value", "setOIDVal")(vb, (oid, value))
        encoded = bytes(encoder.encode(vb))
        if cacheable:
            self._encoded[oid] = encoded
        return encoded

    @staticmethod
    def _bulk(p: Any, image: Cs141Image, names: list[Oid], non_rep: int, max_rep: int) -> list[Any]:
        out: list[tuple[Oid, Any]] = []
        for oid in names[:non_rep]:
            found = image.next(oid)
            out.append((found[0], found[1]) if found else (oid, snmp_api.v2c.EndOfMibView("")))
        cursors = list(names[non_rep:])
        for _ in range(max_rep):
            if not cursors or len(out) + len(cursors) > MAX_BULK_VARBINDS:
                break
            ended = True
            for i, oid in enumerate(cursors):
                found = image.next(oid)
                if found is None:
                    out.append((oid, snmp_api.v2c.EndOfMibView("")))
                else:
                    ended = False
                    cursors[i] = found[0]
                    out.append((found[0], found[1]))
            if ended:
                break
        return out


async def serve_snmp(
    image: Callable[[], Cs141Image], host: str, port: int, community: str = "public"
) -> tuple[asyncio.DatagramTransport, SnmpAgent]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: SnmpAgent(image, community), local_addr=(host, port)
    )
    return transport, protocol


# -- client -----------------------------------------------------------------------------------


class SnmpError(Exception):
    """No answer, or an error answer; the message says which."""


class SnmpTimeoutError(SnmpError):
    pass


@dataclass(frozen=True, slots=True)
class SnmpTarget:
    host: str
    port: int = 161
    community: str = "public"
    timeout: float = 1.0
    retries: int = 1


class _ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[Any]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            version = _decode_version(data)
            p = _MODULES[version]
            msg, _ = decoder.decode(data, asn1Spec=p.Message())
            pdu = _api(p.apiMessage, "get_pdu", "getPDU")(msg)
            rid = int(_api(p.apiPDU, "get_request_id", "getRequestID")(pdu))
        except (PyAsn1Error, ValueError, KeyError, TypeError):
            return
        future = self.waiting.pop(rid, None)
        if future is not None and not future.done():
            future.set_result((version, pdu))


class SnmpClient:
    """One UDP socket to one agent; v2c with GETBULK, or v1 with GETNEXT."""

    _ids = itertools.count(1)

    def __init__(self, target: SnmpTarget, version: int = V2C) -> None:
        self.target = target
        self.version = version
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _ClientProtocol | None = None
        self.requests = 0

    async def __aenter__(self) -> SnmpClient:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            _ClientProtocol, remote_addr=(self.target.host, self.target.port)
        )
        self._transport, self._protocol = transport, protocol
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def _request(self, kind: str, names: Sequence[Oid], bulk: int = 0) -> list[Any]:
        assert self._transport is not None and self._protocol is not None
        p = _MODULES[self.version]
        pdu = {"get": p.GetRequestPDU, "next": p.GetNextRequestPDU}.get(kind)
        pdu = pdu() if pdu is not None else p.GetBulkRequestPDU()
        if kind == "bulk":
            _api(p.apiBulkPDU, "set_defaults", "setDefaults")(pdu)
            _api(p.apiBulkPDU, "set_non_repeaters", "setNonRepeaters")(pdu, 0)
            _api(p.apiBulkPDU, "set_max_repetitions", "setMaxRepetitions")(pdu, bulk)
        else:
            _api(p.apiPDU, "set_defaults", "setDefaults")(pdu)
        rid = next(self._ids) & 0x7FFFFFFF
        _api(p.apiPDU, "set_request_id", "setRequestID")(pdu, rid)
        _api(p.apiPDU, "set_varbinds", "setVarBinds")(pdu, [(o, p.Null("")) for o in names])
        msg = p.Message()
        _api(p.apiMessage, "set_defaults", "setDefaults")(msg)
        _api(p.apiMessage, "set_community", "setCommunity")(msg, self.target.community)
        _api(p.apiMessage, "set_pdu", "setPDU")(msg, pdu)
        data = bytes(encoder.encode(msg))
        loop = asyncio.get_running_loop()
        for _ in range(self.target.retries + 1):
            future: asyncio.Future[Any] = loop.create_future()
            self._protocol.waiting[rid] = future
            self.requests += 1
            self._transport.sendto(data)
            try:
                _, rsp = await asyncio.wait_for(future, self.target.timeout)
            except TimeoutError:
                self._protocol.waiting.pop(rid, None)
                continue
            status = int(_api(p.apiPDU, "get_error_status", "getErrorStatus")(rsp))
            if status == NO_SUCH_NAME and self.version == V1:
                return [(o, snmp_api.v2c.EndOfMibView("")) for o in names]
            if status:
                raise SnmpError(f"agent answered error-status {status}")
            return [(tuple(o), v) for o, v in _api(p.apiPDU, "get_varbinds", "getVarBinds")(rsp)]
        raise SnmpTimeoutError(
            f"no SNMP v{'2c' if self.version == V2C else '1'} answer from "
            f"{self.target.host}:{self.target.port} (wrong community or port?)"
        )

    async def get(self, names: Sequence[Oid]) -> dict[Oid, int | str | Oid | None]:
        return {oid: _from_asn1(v) for oid, v in await self._request("get", names)}

    async def walk(self, root: Oid, *, bulk: int = 40) -> list[tuple[Oid, int | str | Oid]]:
        """Every object under ``root``, in order (GETBULK on v2c, GETNEXT on v1)."""
        rows: list[tuple[Oid, int | str | Oid]] = []
        cursor = root
        n = len(root)
        while True:
            if self.version == V2C:
                answer = await self._request("bulk", [cursor], bulk)
            else:
                answer = await self._request("next", [cursor])
            if not answer:
                return rows
            for oid, value in answer:
                if _is_end(value) or oid[:n] != root or oid <= cursor:
                    return rows
                converted = _from_asn1(value)
                if converted is not None:
                    rows.append((oid, converted))
                cursor = oid
