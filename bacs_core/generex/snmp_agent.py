"""A small read-only SNMP v1/v2c agent serving a :class:`~bacs_core.generex.image.Cs141Image`.

GET, GETNEXT and GETBULK are answered from the image (a sorted OID table: one answer is a bisect,
never a computation); SET is refused. The same agent serves the impersonated CS141 and the
gateway.

Why it is cheap per request (an NMS walking 1 700 objects with net-snmp's 10 repetitions sends
170 GETBULKs, and the gateway's image changes every poll cycle):

- a request is decoded by pyasn1 once; later requests that differ only in their request-id (a
  walk repeats the same requests every time) reuse that decoding, whatever image is served;
- each object's OID and value are BER-encoded by pyasn1 once and kept (the OIDs do not change
  between images, and most values repeat), so an image's variable bindings are prebuilt by
  joining those encodings, in a few milliseconds for the gateway's 1 700 objects;
- a GETBULK of one table column is then a bisect and a slice of the prebuilt bindings, and the
  whole answer of a repeated request is kept for as long as its image is served.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pysnmp.proto import api as snmp_api

from .cs141_map import Oid
from .image import Cs141Image
from .snmp import (
    MAX_BULK_VARBINDS,
    MODULES,
    NO_SUCH_NAME,
    NOT_WRITABLE,
    READ_ONLY,
    RESPONSE_PDU_TAG,
    V1,
    V2C,
    api_call,
    decode_version,
    request_key,
    tlv,
    to_asn1,
)

_LOG = logging.getLogger(__name__)
MAX_CACHED = 20_000  # entries per cache; a cache that fills up is emptied (no unbounded growth)
_NO_ERROR = bytes(encoder.encode(univ.Integer(0))) * 2  # error-status 0, error-index 0
_SEQUENCE = 0x30


class _Kind(Enum):
    GET = "get"
    NEXT = "next"
    BULK = "bulk"
    OTHER = "other"  # SET and anything else: refused


@dataclass(frozen=True, slots=True)
class _Request:
    """What a request asks, without its request-id (shared by every repeat of it)."""

    version: int
    community: str
    kind: _Kind
    names: tuple[Oid, ...]
    non_repeaters: int
    max_repetitions: int
    header: bytes  # the answer's version and community, BER


class SnmpAgent(asyncio.DatagramProtocol):
    """Answers GET, GETNEXT and GETBULK from the current image; SET is refused (read-only)."""

    def __init__(self, image: Callable[[], Cs141Image], community: str = "public") -> None:
        self._image = image
        self._community = community
        self._transport: asyncio.DatagramTransport | None = None
        self.requests = 0
        self.cache_hits = 0
        # Across images: decoded requests by request_key, encoded OIDs, encoded values.
        self._parsed: dict[bytes, _Request | None] = {}
        self._oid_ber: dict[Oid, bytes] = {}
        self._value_ber: dict[int | str | Oid, bytes] = {}
        # Per image: its prebuilt variable bindings and the answers given from it.
        self._encoded_for: Cs141Image | None = None
        self._binds: tuple[bytes, ...] | None = None
        self._answers: dict[bytes, tuple[bytes, bytes]] = {}

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
            self._encoded_for, self._binds, self._answers = image, None, {}
        key = request_key(data)
        if key is not None and (cached := self._answers.get(key[0])) is not None:
            self.requests += 1
            self.cache_hits += 1
            return _message(cached[0], key[1], cached[1])
        request = self._parsed.get(key[0]) if key is not None else None
        if request is None:
            parsed = _parse(data)
            if parsed is None:
                return None  # SNMPv3 is not offered
            request, rid = parsed
            if key is not None and key[1] != rid:
                key = None  # the request-id was not where request_key looked: no caching
            if key is not None:
                _remember(self._parsed, key[0], request)
        else:
            rid = key[1] if key is not None else 0
        if request.community != self._community:
            return None  # a wrong community gets no answer, as on every agent
        self.requests += 1
        binds = self._answer_binds(request, image)
        if isinstance(binds, tuple):
            return _error_answer(data, *binds)
        tail = _NO_ERROR + tlv(_SEQUENCE, b"".join(binds))
        if key is not None:
            _remember(self._answers, key[0], (request.header, tail))
        return _message(request.header, rid, tail)

    # -- the variable bindings ---------------------------------------------------------------

    def _prebuilt(self, image: Cs141Image) -> tuple[bytes, ...]:
        """The image's variable bindings, in OID order, built on the first request after an
        image change from the kept encodings of OIDs and values."""
        if self._binds is None:
            self._binds = tuple(
                tlv(_SEQUENCE, self._encode_oid(oid) + self._encode_value(value))
                for oid, value in zip(image.oids, image.values, strict=True)
            )
        return self._binds

    def _encode_oid(self, oid: Oid) -> bytes:
        found = self._oid_ber.get(oid)
        if found is None:
            found = bytes(encoder.encode(univ.ObjectIdentifier(oid)))
            _remember(self._oid_ber, oid, found)
        return found

    def _encode_value(self, value: int | str | Oid) -> bytes:
        found = self._value_ber.get(value)
        if found is None:
            # The v2c types (Integer32 checks its range); INTEGER, OCTET STRING and OBJECT
            # IDENTIFIER encode alike in v1 and v2c.
            found = bytes(encoder.encode(to_asn1(snmp_api.v2c, value)))
            _remember(self._value_ber, value, found)
        return found

    def _exception(self, oid: Oid, value: Any) -> bytes:
        """A v2c exception binding (noSuchInstance, endOfMibView): rare, encoded each time."""
        return tlv(_SEQUENCE, self._encode_oid(oid) + bytes(encoder.encode(value)))

    def _answer_binds(self, request: _Request, image: Cs141Image) -> list[bytes] | tuple[int, int]:
        """The answer's bindings, or (error-status, error-index) for an error answer."""
        oids, version = image.oids, request.version
        if request.kind is _Kind.OTHER:
            return (NOT_WRITABLE if version == V2C else READ_ONLY, 1)
        binds = self._prebuilt(image)
        out: list[bytes] = []
        if request.kind is _Kind.GET:
            for i, oid in enumerate(request.names):
                at = bisect.bisect_left(oids, oid)
                if at < len(oids) and oids[at] == oid:
                    out.append(binds[at])
                elif version == V1:
                    return (NO_SUCH_NAME, i + 1)
                else:
                    out.append(self._exception(oid, snmp_api.v2c.NoSuchInstance("")))
            return out
        non_rep = request.non_repeaters if request.kind is _Kind.BULK else len(request.names)
        for i, oid in enumerate(request.names[:non_rep]):  # GETNEXT, or GETBULK non-repeaters
            at = bisect.bisect_right(oids, oid)
            if at < len(oids):
                out.append(binds[at])
            elif version == V1:
                return (NO_SUCH_NAME, i + 1)
            else:
                out.append(self._exception(oid, snmp_api.v2c.EndOfMibView("")))
        if request.kind is _Kind.BULK:
            out += self._repeat(request, image, binds, len(out))
        return out

    def _repeat(
        self, request: _Request, image: Cs141Image, binds: tuple[bytes, ...], used: int
    ) -> list[bytes]:
        """GETBULK's repetitions: each repeater's successors, interleaved row by row, until the
        end of the view or the answer's size limit; one repeater (a walk) is a slice."""
        oids, n = image.oids, len(image.oids)
        names = request.names[request.non_repeaters :]
        if not names:
            return []
        reps = min(request.max_repetitions, (MAX_BULK_VARBINDS - used) // len(names))
        starts = [bisect.bisect_right(oids, oid) for oid in names]
        if len(names) == 1:
            start = starts[0]
            out = list(binds[start : start + reps])
            if len(out) < reps:  # the view ended: endOfMibView after the last object
                last = oids[start + len(out) - 1] if out else names[0]
                out.append(self._exception(last, snmp_api.v2c.EndOfMibView("")))
            return out
        out = []
        for r in range(reps):
            ended = True
            for start, oid in zip(starts, names, strict=True):
                at = start + r
                if at < n:
                    ended = False
                    out.append(binds[at])
                else:
                    last = oids[n - 1] if start < n else oid
                    out.append(self._exception(last, snmp_api.v2c.EndOfMibView("")))
            if ended:
                break
        return out


def _remember[K, V](cache: dict[K, V], key: K, value: V) -> None:
    if len(cache) >= MAX_CACHED:
        cache.clear()
    cache[key] = value


def _message(header: bytes, rid: int, tail: bytes) -> bytes:
    pdu = bytes(encoder.encode(univ.Integer(rid))) + tail
    return tlv(_SEQUENCE, header + tlv(RESPONSE_PDU_TAG, pdu))


def _parse(data: bytes) -> tuple[_Request, int] | None:
    """pyasn1's decoding of one request; None for a version this agent does not speak."""
    version = decode_version(data)
    p = MODULES.get(version)
    if p is None:
        return None
    msg, _ = decoder.decode(data, asn1Spec=p.Message())
    community = bytes(api_call(p.apiMessage, "get_community", "getCommunity")(msg))
    pdu = api_call(p.apiMessage, "get_pdu", "getPDU")(msg)
    names = tuple(tuple(o) for o, _ in api_call(p.apiPDU, "get_varbinds", "getVarBinds")(pdu))
    rid = int(api_call(p.apiPDU, "get_request_id", "getRequestID")(pdu))
    non_rep = max_rep = 0
    if pdu.isSameTypeWith(p.GetRequestPDU()):
        kind = _Kind.GET
    elif pdu.isSameTypeWith(p.GetNextRequestPDU()):
        kind = _Kind.NEXT
    elif version == V2C and pdu.isSameTypeWith(p.GetBulkRequestPDU()):
        kind = _Kind.BULK
        bulk = p.apiBulkPDU
        non_rep = int(api_call(bulk, "get_non_repeaters", "getNonRepeaters")(pdu))
        max_rep = int(api_call(bulk, "get_max_repetitions", "getMaxRepetitions")(pdu))
    else:
        kind = _Kind.OTHER
    header = bytes(encoder.encode(univ.Integer(version)))
    header += bytes(encoder.encode(univ.OctetString(community)))
    request = _Request(
        version=version,
        community=community.decode("utf-8", errors="replace"),
        kind=kind,
        names=names,
        non_repeaters=min(max(0, non_rep), len(names)),
        max_repetitions=max(0, max_rep),
        header=header,
    )
    return request, rid


def _error_answer(data: bytes, status: int, index: int) -> bytes:
    """An error answer (pyasn1 builds it from the request: rare, not cached)."""
    p = MODULES[decode_version(data)]
    msg, _ = decoder.decode(data, asn1Spec=p.Message())
    pdu = api_call(p.apiMessage, "get_pdu", "getPDU")(msg)
    rsp_msg = api_call(p.apiMessage, "get_response", "getResponse")(msg)
    rsp = api_call(p.apiMessage, "get_pdu", "getPDU")(rsp_msg)
    names = [o for o, _ in api_call(p.apiPDU, "get_varbinds", "getVarBinds")(pdu)]
    api_call(p.apiPDU, "set_error_status", "setErrorStatus")(rsp, status)
    api_call(p.apiPDU, "set_error_index", "setErrorIndex")(rsp, index)
    api_call(p.apiPDU, "set_varbinds", "setVarBinds")(rsp, [(oid, p.Null("")) for oid in names])
    return bytes(encoder.encode(rsp_msg))


async def serve_snmp(
    image: Callable[[], Cs141Image], host: str, port: int, community: str = "public"
) -> tuple[asyncio.DatagramTransport, SnmpAgent]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: SnmpAgent(image, community), local_addr=(host, port)
    )
    return transport, protocol
