"""SNMP v1/v2c on pysnmp's protocol layer: what the agent and the client share.

Why the protocol layer and not pysnmp's high-level API: Home Assistant 2025.4 pins pysnmp 6.2.6
and 2026.2 pins 7.1.22, and their high-level APIs differ (names, return shapes, transport
creation). Messages, PDUs and the BER codec (pysnmp's ``proto.api`` on pyasn1) are the same in
both; only the method spelling changed (camelCase → snake_case), which :func:`api_call` bridges.
The agent is ``snmp_agent.py``, the client ``snmp_client.py``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pyasn1.type import univ
from pysnmp.proto import api as snmp_api

from .cs141_map import Oid

V1 = 0
V2C = 1
MODULES: dict[int, Any] = {V1: snmp_api.v1, V2C: snmp_api.v2c}
MAX_BULK_VARBINDS = 200  # keeps one GETBULK answer near 6 kB
NOT_WRITABLE = 17  # v2c error-status
READ_ONLY = 4  # v1 error-status
NO_SUCH_NAME = 2  # v1 error-status


def api_call(obj: Any, snake: str, camel: str) -> Any:
    """The pysnmp 7 (snake_case) or pysnmp 6 (camelCase) spelling of one method."""
    method = getattr(type(obj), snake, None)
    return getattr(obj, snake) if method is not None else getattr(obj, camel)


def decode_version(data: bytes) -> int:
    decode = getattr(snmp_api, "decodeMessageVersion", None)
    if decode is None:  # pragma: no cover - both pinned versions have it
        decode = snmp_api.verdec.decode_message_version
    return int(decode(data))


def to_asn1(p: Any, value: int | str | Oid) -> Any:
    if isinstance(value, int):
        return p.Integer(value)
    if isinstance(value, str):
        return p.OctetString(value)
    return p.ObjectIdentifier(value)


def from_asn1(value: Any) -> int | str | Oid | None:
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


def is_end(value: Any) -> bool:
    return bool(value.tagSet == snmp_api.v2c.EndOfMibView.tagSet)


def tlv(tag: int, content: bytes) -> bytes:
    """One BER tag-length-value with a definite length (X.690 8.1.3)."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


RESPONSE_PDU_TAG = 0xA2  # [2] IMPLICIT, constructed: GetResponse (v1) / Response (v2c)


def tl(data: bytes, at: int) -> tuple[int, int, int]:
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
        _, _, body = tl(data, 0)  # message SEQUENCE
        at = body
        for _ in range(2):  # version, community
            _, length, start = tl(data, at)
            at = start + length
        pdu_tag, _, rid_at = tl(data, at)  # the PDU
        tag, length, start = tl(data, rid_at)
        if tag != 0x02 or not 1 <= length <= 5:
            return None
        rid = int.from_bytes(data[start : start + length], "big", signed=True)
        # Lengths of the enclosing elements depend on the id's size: they are not in the key.
        return data[body:at] + bytes((pdu_tag,)) + data[start + length :], rid
    except (IndexError, ValueError):
        return None
