"""A small asyncio SNMP v1/v2c client: GET, and walks with GETBULK (v2c) or GETNEXT (v1)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pysnmp.proto import api as snmp_api

from .cs141_map import Oid
from .snmp import (
    MODULES,
    NO_SUCH_NAME,
    V1,
    V2C,
    api_call,
    decode_version,
    from_asn1,
    is_end,
)


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
            version = decode_version(data)
            p = MODULES[version]
            msg, _ = decoder.decode(data, asn1Spec=p.Message())
            pdu = api_call(p.apiMessage, "get_pdu", "getPDU")(msg)
            rid = int(api_call(p.apiPDU, "get_request_id", "getRequestID")(pdu))
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
        p = MODULES[self.version]
        pdu = {"get": p.GetRequestPDU, "next": p.GetNextRequestPDU}.get(kind)
        pdu = pdu() if pdu is not None else p.GetBulkRequestPDU()
        if kind == "bulk":
            api_call(p.apiBulkPDU, "set_defaults", "setDefaults")(pdu)
            api_call(p.apiBulkPDU, "set_non_repeaters", "setNonRepeaters")(pdu, 0)
            api_call(p.apiBulkPDU, "set_max_repetitions", "setMaxRepetitions")(pdu, bulk)
        else:
            api_call(p.apiPDU, "set_defaults", "setDefaults")(pdu)
        rid = next(self._ids) & 0x7FFFFFFF
        api_call(p.apiPDU, "set_request_id", "setRequestID")(pdu, rid)
        api_call(p.apiPDU, "set_varbinds", "setVarBinds")(pdu, [(o, p.Null("")) for o in names])
        msg = p.Message()
        api_call(p.apiMessage, "set_defaults", "setDefaults")(msg)
        api_call(p.apiMessage, "set_community", "setCommunity")(msg, self.target.community)
        api_call(p.apiMessage, "set_pdu", "setPDU")(msg, pdu)
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
            status = int(api_call(p.apiPDU, "get_error_status", "getErrorStatus")(rsp))
            if status == NO_SUCH_NAME and self.version == V1:
                return [(o, snmp_api.v2c.EndOfMibView("")) for o in names]
            if status:
                raise SnmpError(f"agent answered error-status {status}")
            return [
                (tuple(o), v) for o, v in api_call(p.apiPDU, "get_varbinds", "getVarBinds")(rsp)
            ]
        raise SnmpTimeoutError(
            f"no SNMP v{'2c' if self.version == V2C else '1'} answer from "
            f"{self.target.host}:{self.target.port} (wrong community or port?)"
        )

    async def get(self, names: Sequence[Oid]) -> dict[Oid, int | str | Oid | None]:
        return {oid: from_asn1(v) for oid, v in await self._request("get", names)}

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
                if is_end(value) or oid[:n] != root or oid <= cursor:
                    return rows
                converted = from_asn1(value)
                if converted is not None:
                    rows.append((oid, converted))
                cursor = oid
