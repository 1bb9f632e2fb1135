"""The whole ``SystemSnapshot`` on one retained MQTT topic, for a remote reader.

The per-value topics (projection.py) are what Home Assistant's MQTT discovery and a SCADA
read; they carry display values, not the typed picture. A remote source
(bacs_core/remote) needs the same snapshot the appliance's manager built, so a consumer on
the far side of the broker (the Home Assistant integration) behaves exactly as it does on a
local bus. mashumaro (Home Assistant's own) maps the frozen dataclasses to JSON and back:
enums by value, datetimes as ISO 8601, tuples as lists.

The payload is an envelope ``{"format": 1, "site", "sent_at", "commands", "float_voltage",
"float_voltage_per_cell", "snapshot": {...}}``. ``format`` changes only when an old reader
would misread the new payload; a reader refuses a newer format and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mashumaro.codecs.basic import BasicDecoder, BasicEncoder

from ..snapshot import SystemSnapshot

SNAPSHOT_FORMAT = 1

_ENCODER: BasicEncoder[SystemSnapshot] = BasicEncoder(SystemSnapshot)
_DECODER: BasicDecoder[SystemSnapshot] = BasicDecoder(SystemSnapshot)


class SnapshotFormatError(ValueError):
    """The payload is not a snapshot this reader understands (damaged, or a newer format)."""


@dataclass(frozen=True, slots=True)
class ApplianceState:
    """What the appliance says about itself along with its snapshot."""

    snapshot: SystemSnapshot
    site: str
    sent_at: datetime
    commands: frozenset[str]  # the commands its site file enables (mqtt.commands)
    float_voltage: float | None  # the float target override in force, None: the chemistry's
    float_voltage_per_cell: float


def encode_snapshot(
    snap: SystemSnapshot,
    *,
    site: str,
    commands: frozenset[str],
    float_voltage: float | None,
    float_voltage_per_cell: float,
    now: datetime | None = None,
) -> str:
    envelope = {
        "format": SNAPSHOT_FORMAT,
        "site": site,
        "sent_at": (now or datetime.now(UTC)).isoformat(),
        "commands": sorted(commands),
        "float_voltage": float_voltage,
        "float_voltage_per_cell": float_voltage_per_cell,
        "snapshot": _ENCODER.encode(snap),
    }
    return json.dumps(envelope, separators=(",", ":"))


def decode_snapshot(payload: bytes | str) -> ApplianceState:
    """The appliance's state from the retained payload; SnapshotFormatError says what is wrong."""
    try:
        raw: Any = json.loads(payload)
    except ValueError as err:
        raise SnapshotFormatError(f"not JSON: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("format"), int):
        raise SnapshotFormatError("no snapshot envelope (a 'format' number is missing)")
    if raw["format"] > SNAPSHOT_FORMAT:
        raise SnapshotFormatError(
            f"the appliance sends snapshot format {raw['format']}; this bacs-core reads up to "
            f"{SNAPSHOT_FORMAT}: update bacs-core (the integration) to match the appliance"
        )
    try:
        snap = _DECODER.decode(raw["snapshot"])
        fv = raw.get("float_voltage")
        return ApplianceState(
            snapshot=snap,
            site=str(raw["site"]),
            sent_at=datetime.fromisoformat(raw["sent_at"]),
            commands=frozenset(str(c) for c in raw.get("commands", ())),
            float_voltage=float(fv) if fv is not None else None,
            float_voltage_per_cell=float(raw.get("float_voltage_per_cell", 2.27)),
        )
    except Exception as err:  # mashumaro raises its own errors for every kind of bad field
        raise SnapshotFormatError(f"damaged snapshot: {err}") from None
