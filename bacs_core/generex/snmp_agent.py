"""A small read-only SNMP v1/v2c agent serving a :class:`~bacs_core.generex.image.Cs141Image`.

GET, GETNEXT and GETBULK are answered from the image (a sorted OID table: one answer is a bisect,
never a computation); SET is refused. The same agent serves the impersonated CS141 and the
gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
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
            return tlv(
                0x30, header + tlv(RESPONSE_PDU_TAG, encoder.encode(univ.Integer(key[1])) + tail)
            )
        version = decode_version(data)
        p = MODULES.get(version)
        if p is None:
            return None  # SNMPv3 is not offered
        msg, _ = decoder.decode(data, asn1Spec=p.Message())
        community = bytes(api_call(p.apiMessage, "get_community", "getCommunity")(msg))
        if community.decode("utf-8", errors="replace") != self._community:
            return None  # a wrong community gets no answer, as on every agent
        self.requests += 1
        pdu = api_call(p.apiMessage, "get_pdu", "getPDU")(msg)
        rsp_msg = api_call(p.apiMessage, "get_response", "getResponse")(msg)
        rsp = api_call(p.apiMessage, "get_pdu", "getPDU")(rsp_msg)
        names = [tuple(o) for o, _ in api_call(p.apiPDU, "get_varbinds", "getVarBinds")(pdu)]
        set_varbinds = api_call(p.apiPDU, "set_varbinds", "setVarBinds")
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
            non_rep = int(api_call(bulk, "get_non_repeaters", "getNonRepeaters")(pdu))
            max_rep = int(api_call(bulk, "get_max_repetitions", "getMaxRepetitions")(pdu))
            out = self._bulk(p, image, names, max(0, non_rep), max(0, max_rep))
        else:  # SET and anything else: this agent is read-only
            error = (NOT_WRITABLE if version == V2C else READ_ONLY, 1)
        if error is not None:
            api_call(p.apiPDU, "set_error_status", "setErrorStatus")(rsp, error[0])
            api_call(p.apiPDU, "set_error_index", "setErrorIndex")(rsp, error[1])
            set_varbinds(rsp, [(oid, p.Null("")) for oid in names])
            return bytes(encoder.encode(rsp_msg))
        rid = int(api_call(p.apiPDU, "get_request_id", "getRequestID")(pdu))
        varbinds = b"".join(self._varbind(p, image, oid, value) for oid, value in out)
        tail = encoder.encode(univ.Integer(0)) + encoder.encode(univ.Integer(0))
        tail += tlv(0x30, varbinds)
        header = encoder.encode(univ.Integer(version)) + encoder.encode(univ.OctetString(community))
        if key is not None and key[1] == rid:
            self._answers[key[0]] = (header, tail)
        return tlv(0x30, header + tlv(RESPONSE_PDU_TAG, encoder.encode(univ.Integer(rid)) + tail))

    def _varbind(self, p: Any, image: Cs141Image, oid: Oid, value: Any) -> bytes:
        """The BER of one variable binding; an image's own values are encoded once."""
        cacheable = isinstance(value, int | str | tuple)
        if cacheable:
            found = self._encoded.get(oid)
            if found is not None:
                return found
            value = to_asn1(p, value)
        vb = p.VarBind()
        api_call(p.apiVarBind, "set_oid_value", "setOIDVal")(vb, (oid, value))
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
