"""What the manager keeps across restarts, in a versioned form that is read back strictly.

Format 3: ``{"version": 3, "safety": {"strings": {"1": TRIP, "2": TRIP, ...}, "others":
TRIP}, "alarms": {...}, "runaway": {...}, "trends": {...}, "topology": {"relays":
["bus1/40", ...], "units": ["bus1/1", ...]}}`` where TRIP is ``{"state", "reason",
"tripped_at", "note"}``: one trip per string, and ``others`` for a string not listed.
Formats 1 and 2 (format 1 had no ``topology``) stored one trip for the whole room as
``"safety": TRIP``: it is read as ``others`` with no string listed, so an old latched trip
latches every string (fail safe). Every field is checked on the way in; the first wrong one
raises ``StateFormatError`` naming it, and the manager then treats the copy as unreadable
(the trip state becomes UNKNOWN unless the previous copy is good).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..snapshot import DeviceRef, TripState
from .safety import SafetyRecord, TripRecord
from .storage import BACKUP_NOTE_KEY, BackupStorage, StateUnreadableError, Storage
from .trend import ResistanceTrend

FORMAT_VERSION = 3
_KNOWN_VERSIONS = (1, 2, 3)


class StateFormatError(ValueError):
    """A stored field is missing or of the wrong type; the message names it."""


@dataclass
class PersistedState:
    safety: SafetyRecord = field(default_factory=SafetyRecord)
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)
    runaway: dict[str, dict[str, Any]] = field(default_factory=dict)
    trends: dict[DeviceRef, ResistanceTrend] = field(default_factory=dict)
    relays: tuple[DeviceRef, ...] = ()  # relay modules seen: looked for first when missing
    units: tuple[DeviceRef, ...] = ()  # every device seen: probed first at the next start
    recovered: str | None = None  # read from the backup copy: why (not stored)

    def as_dict(self) -> dict[str, Any]:
        s = self.safety
        return {
            "version": FORMAT_VERSION,
            "safety": {
                "strings": {str(k): _trip_dict(r) for k, r in sorted(s.strings.items())},
                "others": _trip_dict(s.others),
            },
            "alarms": self.alarms,
            "runaway": self.runaway,
            "trends": {str(k): v.state_dict() for k, v in self.trends.items()},
            "topology": {
                "relays": [str(r) for r in self.relays],
                "units": [str(r) for r in self.units],
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PersistedState:
        """Validate and upgrade; raises StateFormatError naming the first bad field."""
        recovered = data.get(BACKUP_NOTE_KEY)
        version = data.get("version", 1)
        if type(version) is not int or version not in _KNOWN_VERSIONS:
            raise StateFormatError(
                f"version: {version!r} is not a known state format {_KNOWN_VERSIONS}"
            )
        # The trip state is never assumed: a store without it is damaged, not "armed".
        if "safety" not in data:
            raise StateFormatError("safety: missing (the trip state is not in the store)")
        safety = _mapping(data, "safety")
        if version >= 3:
            if "others" not in safety:
                raise StateFormatError("safety.others: missing")
            strings = {}
            for key, value in _as_mapping(safety.get("strings", {}), "safety.strings").items():
                where = f"safety.strings.{key}"
                if not key.isdigit() or int(key) < 1:
                    raise StateFormatError(f"{where}: the key must be a string number from 1")
                strings[int(key)] = _trip(_as_mapping(value, where), where)
            record = SafetyRecord(
                strings, _trip(_as_mapping(safety["others"], "safety.others"), "safety.others")
            )
        else:  # one trip for the room: every string takes it
            record = SafetyRecord({}, _trip(safety, "safety"))
        alarms = {
            key: _alarm(f"alarms.{key}", value) for key, value in _mapping(data, "alarms").items()
        }
        runaway = {}
        for key, value in _mapping(data, "runaway").items():
            where = f"runaway.{key}"
            _integer_key(key, where)
            rec = _as_mapping(value, where)
            _number(rec, f"{where}.baseline", "baseline")
            runaway[key] = dict(rec)
        trends = {}
        for key, value in _mapping(data, "trends").items():
            where = f"trends.{key}"
            rec = _as_mapping(value, where)
            _number(rec, f"{where}.baseline", "baseline")
            _numbers(rec.get("first", []), f"{where}.first")
            history = rec.get("history", [])
            if not isinstance(history, list) or not all(
                isinstance(p, list) and len(p) == 2 for p in history
            ):
                raise StateFormatError(f"{where}.history: a list of [time, mΩ] pairs is expected")
            for p in history:
                _numbers(p, f"{where}.history")
            trend = ResistanceTrend()
            trend.restore(dict(rec))
            trends[_ref(key, where)] = trend
        topology = _mapping(data, "topology") if version >= 2 else {}
        relays = _refs(topology, "relays")
        units = _refs(topology, "units")
        if recovered is not None and not isinstance(recovered, str):
            raise StateFormatError(f"{BACKUP_NOTE_KEY}: text expected")
        return cls(record, alarms, runaway, trends, relays, units, recovered)


async def load_state(storage: Storage) -> PersistedState | str | None:
    """The validated state, None when nothing is stored, or what is wrong with it (the
    manager then starts with the trip state UNKNOWN). A copy with a wrong field is set aside
    and the storage's previous good copy, if it keeps one, is read instead."""
    try:
        data = await storage.load()
    except StateUnreadableError as err:
        return str(err)
    except (OSError, ValueError) as err:  # a Storage that does not follow the contract
        return f"state store unreadable: {err}"
    if data is None:
        return None
    try:
        return PersistedState.from_dict(data)
    except StateFormatError as err:
        problem = f"wrong field {err}"
        if BACKUP_NOTE_KEY in data or not isinstance(storage, BackupStorage):
            return f"{problem}; {data.get(BACKUP_NOTE_KEY) or 'no previous copy'}"
    try:
        backup = await storage.fall_back(problem)
        if backup is None:
            return f"{problem}; no previous copy"
        return PersistedState.from_dict(backup)
    except StateUnreadableError as err:
        return str(err)
    except StateFormatError as err:
        return f"{problem}; the previous copy too: wrong field {err}"


def _trip_dict(r: TripRecord) -> dict[str, Any]:
    return {
        "state": r.state.value,
        "reason": r.reason,
        "tripped_at": r.tripped_at.isoformat() if r.tripped_at else None,
        "note": r.note,
    }


def _trip(data: Mapping[str, Any], where: str) -> TripRecord:
    if "state" not in data:
        raise StateFormatError(f"{where}.state: missing")
    state = _text(data, f"{where}.state", "state", required=True)
    assert state is not None
    try:
        trip_state = TripState(state)
    except ValueError:
        choices = ", ".join(t.value for t in TripState)
        raise StateFormatError(f"{where}.state: {state!r} is not one of {choices}") from None
    return TripRecord(
        trip_state,
        _text(data, f"{where}.reason", "reason"),
        _stamp(data, f"{where}.tripped_at", "tripped_at"),
        _text(data, f"{where}.note", "note"),
    )


# -- field checks -----------------------------------------------------------------------------
def _as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise StateFormatError(f"{where}: an object is expected, found {_kind(value)}")
    return value


def _mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _as_mapping(data.get(key, {}), key)


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:60]


def _text(data: Mapping[str, Any], where: str, key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise StateFormatError(f"{where}: text expected, found {_kind(value)}")
    return value


def _stamp(data: Mapping[str, Any], where: str, key: str) -> datetime | None:
    text = _text(data, where, key)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise StateFormatError(f"{where}: {text!r} is not an ISO date and time") from None


def _number(data: Mapping[str, Any], where: str, key: str) -> None:
    value = data.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise StateFormatError(f"{where}: a number expected, found {_kind(value)}")


def _numbers(values: Any, where: str) -> None:
    if not isinstance(values, list) or any(
        isinstance(v, bool) or not isinstance(v, int | float) for v in values
    ):
        raise StateFormatError(f"{where}: a list of numbers is expected, found {_kind(values)}")


def _integer_key(key: str, where: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise StateFormatError(f"{where}: the key must be a string index") from None


def _refs(topology: Mapping[str, Any], key: str) -> tuple[DeviceRef, ...]:
    listed = topology.get(key, [])
    if not isinstance(listed, list):
        raise StateFormatError(f"topology.{key}: a list of 'bus/unit' is expected")
    return tuple(_ref(r, f"topology.{key}") for r in listed)


def _ref(text: Any, where: str) -> DeviceRef:
    if isinstance(text, str):
        bus, _, unit = text.rpartition("/")
        if bus and unit.isdigit():
            return DeviceRef(bus, int(unit))
    raise StateFormatError(f"{where}: {text!r} is not a device 'bus/unit'")


_ALARM_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    # field: (types, may be null)
    "level": (int, False),
    "latched": (bool, False),
    "acknowledged": (bool, False),
    "since": (str, True),
    "value": ((int, float), True),
    "threshold": ((int, float), True),
    "message": (str, False),
    "code": (str, False),
    "source": (str, False),
    "string": (int, True),
    "latch": (bool, False),
    "device": (list, True),
}


def _alarm(where: str, value: Any) -> dict[str, Any]:
    rec = _as_mapping(value, where)
    for name, (types, nullable) in _ALARM_FIELDS.items():
        v = rec.get(name)
        if v is None and nullable and name in rec:
            continue
        bad_bool = isinstance(v, bool) and types is not bool
        if name not in rec:
            raise StateFormatError(f"{where}.{name}: missing")
        if bad_bool or not isinstance(v, types):
            raise StateFormatError(f"{where}.{name}: found {_kind(v)}")
    for name, types in (("unit", str), ("reported", int)):  # later fields, optional
        v = rec.get(name)
        if name in rec and (isinstance(v, bool) or not isinstance(v, types)):
            raise StateFormatError(f"{where}.{name}: found {_kind(v)}")
    if not 0 <= rec["level"] <= 3:
        raise StateFormatError(f"{where}.level: {rec['level']} is not 0..3")
    device = rec["device"]
    if device is not None and not (
        len(device) == 2 and isinstance(device[0], str) and type(device[1]) is int
    ):
        raise StateFormatError(f"{where}.device: [bus, unit] expected, found {device!r}")
    if rec["since"] is not None:
        _stamp(rec, f"{where}.since", "since")
    return dict(rec)
