"""The stored state's format at its edges (bacs_core/manager/persisted.py): every field read
back strictly, the first wrong one named, the latch never assumed; and load_state's answer for
each way a store can be wrong (nothing, unreadable, wrong field, a good or bad previous copy).
Plain dicts in, no disk (test_storage_edges.py and test_safety_latch.py cover the file)."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bacs_core.manager import FileStorage, MemoryStorage
from bacs_core.manager.latch import SafetyRecord
from bacs_core.manager.persisted import (
    FORMAT_VERSION,
    PersistedState,
    StateFormatError,
    load_state,
)
from bacs_core.manager.safety import TripRecord
from bacs_core.manager.storage import BACKUP_NOTE_KEY, StateUnreadableError
from bacs_core.manager.trend import ResistanceTrend
from bacs_core.snapshot import DeviceRef, TripState

TRIPPED_AT = datetime(2026, 11, 30, 8, 15, tzinfo=UTC)


def alarm_record(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "level": 2,
        "latched": True,
        "acknowledged": False,
        "since": "2026-11-30T08:00:00+00:00",
        "value": 61.5,
        "threshold": 60,
        "message": "block too warm",
        "code": "temperature_high",
        "source": "module",
        "string": 1,
        "latch": True,
        "device": ["bus1", 3],
    }
    rec.update(changes)
    return rec


def good() -> dict[str, Any]:
    trend = ResistanceTrend()
    trend.restore({"baseline": 4.2, "first": [4.1, 4.3], "history": [[1.0, 4.2], [2.0, 4.4]]})
    state = PersistedState(
        SafetyRecord(
            {
                1: TripRecord(TripState.TRIPPED, "runaway on string 1", TRIPPED_AT, "by relay"),
                2: TripRecord(TripState.ARMED),
            },
            TripRecord(TripState.UNKNOWN, note="not seen yet"),
        ),
        {"temp:bus1/3": alarm_record()},
        {"1": {"baseline": 0.35}},
        {DeviceRef("bus1", 3): trend},
        (DeviceRef("bus1", 40),),
        (DeviceRef("bus1", 1), DeviceRef("bus-2/x", 7)),
    )
    return json.loads(json.dumps(state.as_dict()))


def test_a_full_state_comes_back_as_it_was_stored() -> None:
    data = good()
    assert data["version"] == FORMAT_VERSION == 3
    back = PersistedState.from_dict(data)
    assert back.safety == SafetyRecord(
        {
            1: TripRecord(TripState.TRIPPED, "runaway on string 1", TRIPPED_AT, "by relay"),
            2: TripRecord(TripState.ARMED),
        },
        TripRecord(TripState.UNKNOWN, note="not seen yet"),
    )
    assert back.alarms == {"temp:bus1/3": alarm_record()}
    assert back.runaway == {"1": {"baseline": 0.35}}
    assert back.trends[DeviceRef("bus1", 3)].state_dict() == {
        "baseline": 4.2,
        "first": [4.1, 4.3],
        "history": [(1.0, 4.2), (2.0, 4.4)],
    }
    assert back.relays == (DeviceRef("bus1", 40),)
    # A bus name may hold a slash: the unit is after the last one.
    assert back.units == (DeviceRef("bus1", 1), DeviceRef("bus-2/x", 7))
    assert back.recovered is None
    assert json.loads(json.dumps(back.as_dict())) == data


def test_the_smallest_state_is_the_trip_state_alone() -> None:
    back = PersistedState.from_dict({"version": 3, "safety": {"others": {"state": "armed"}}})
    assert back.safety == SafetyRecord({}, TripRecord(TripState.ARMED))
    assert (back.alarms, back.runaway, back.trends, back.relays, back.units) == ({}, {}, {}, (), ())


def test_a_new_state_is_armed_and_stores_nulls() -> None:
    d = PersistedState().as_dict()
    armed = {"state": "armed", "reason": None, "tripped_at": None, "note": None}
    assert d["safety"] == {"strings": {}, "others": armed}
    assert d["topology"] == {"relays": [], "units": []}


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_single_trip_latches_every_string(version: int) -> None:
    old = {"state": "tripped", "reason": "runaway", "tripped_at": TRIPPED_AT.isoformat()}
    back = PersistedState.from_dict({"version": version, "safety": old})
    assert back.safety == SafetyRecord({}, TripRecord(TripState.TRIPPED, "runaway", TRIPPED_AT))
    with pytest.raises(StateFormatError, match=r"^safety\.state:"):
        PersistedState.from_dict({"version": version, "safety": {"state": "open"}})


def test_format_1_had_no_version_and_no_topology() -> None:
    # Format 1: no "version" key; a topology in it is not read (it had none).
    back = PersistedState.from_dict(
        {"safety": {"state": "tripped"}, "topology": {"relays": "junk"}}
    )
    assert back.safety.others.state is TripState.TRIPPED
    assert back.relays == ()
    v2 = PersistedState.from_dict(
        {"version": 2, "safety": {"state": "failed"}, "topology": {"relays": ["b/4"]}}
    )
    assert v2.safety.others.state is TripState.FAILED
    assert v2.relays == (DeviceRef("b", 4),)


def test_the_recovery_note_is_read_back_and_must_be_text() -> None:
    data = good() | {BACKUP_NOTE_KEY: "state.json: bad; the previous copy was used"}
    assert PersistedState.from_dict(data).recovered == data[BACKUP_NOTE_KEY]
    assert BACKUP_NOTE_KEY not in PersistedState.from_dict(data).as_dict()
    with pytest.raises(StateFormatError, match=BACKUP_NOTE_KEY):
        PersistedState.from_dict(good() | {BACKUP_NOTE_KEY: 3})


def _set(path: str, value: Any) -> dict[str, Any]:
    """``good()`` with the field at a dotted path set (or deleted with ``...``)."""
    data = good()
    *parents, last = path.split("|")
    node = data
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


# (path to change, new value or ... to delete, the field the error must name)
WRONG = [
    ("version", 4, "version"),
    ("version", "2", "version"),
    ("version", True, "version"),
    ("version", 0, "version"),
    ("safety", ..., "safety"),
    ("safety", None, "safety"),
    ("safety", ["tripped"], "safety"),
    ("safety|others", ..., "safety.others"),
    ("safety|others", "armed", "safety.others"),
    ("safety|others|state", ..., "safety.others.state"),
    ("safety|others|state", "open", "safety.others.state"),
    ("safety|others|note", 3, "safety.others.note"),
    ("safety|strings", [], "safety.strings"),
    ("safety|strings|0", {"state": "armed"}, "safety.strings.0"),
    ("safety|strings|x", {"state": "armed"}, "safety.strings.x"),
    ("safety|strings|-1", {"state": "armed"}, "safety.strings.-1"),
    ("safety|strings|2", "armed", "safety.strings.2"),
    ("safety|strings|1|state", ..., "safety.strings.1.state"),
    ("safety|strings|1|state", None, "safety.strings.1.state"),
    ("safety|strings|1|state", "open", "safety.strings.1.state"),
    ("safety|strings|1|state", 1, "safety.strings.1.state"),
    ("safety|strings|1|reason", 5, "safety.strings.1.reason"),
    ("safety|strings|1|note", ["x"], "safety.strings.1.note"),
    ("safety|strings|1|tripped_at", "yesterday", "safety.strings.1.tripped_at"),
    ("safety|strings|1|tripped_at", 1700000000, "safety.strings.1.tripped_at"),
    ("alarms", [], "alarms"),
    ("alarms|temp:bus1/3", "on", "alarms.temp:bus1/3"),
    ("runaway", "x", "runaway"),
    ("runaway|one", {"baseline": 0.3}, "runaway.one"),
    ("runaway|1", 0.3, "runaway.1"),
    ("runaway|1|baseline", "0.3", "runaway.1.baseline"),
    ("runaway|1|baseline", True, "runaway.1.baseline"),
    ("trends", [], "trends"),
    ("trends|bus1/3", [], "trends.bus1/3"),
    ("trends|bus1/3|baseline", "4", "trends.bus1/3.baseline"),
    ("trends|bus1/3|first", [4.1, "4.3"], "trends.bus1/3.first"),
    ("trends|bus1/3|first", [True], "trends.bus1/3.first"),
    ("trends|bus1/3|first", 4.1, "trends.bus1/3.first"),
    ("trends|bus1/3|history", {"1": 4}, "trends.bus1/3.history"),
    ("trends|bus1/3|history", [[1.0, 4.2, 9]], "trends.bus1/3.history"),
    ("trends|bus1/3|history", [(1.0,)], "trends.bus1/3.history"),
    ("trends|bus1/3|history", [[1.0, "x"]], "trends.bus1/3.history"),
    ("topology", [], "topology"),
    ("topology|relays", "bus1/40", "topology.relays"),
    ("topology|relays", ["bus1/forty"], "topology.relays"),
    ("topology|relays", ["/40"], "topology.relays"),
    ("topology|units", [["bus1", 1]], "topology.units"),
    ("topology|units", ["bus1-1"], "topology.units"),
]


@pytest.mark.parametrize(("path", "value", "field"), WRONG)
def test_a_wrong_field_is_refused_and_named(path: str, value: Any, field: str) -> None:
    with pytest.raises(StateFormatError) as err:
        PersistedState.from_dict(_set(path, value))
    assert str(err.value).startswith(field + ":") or str(err.value).startswith(field + "."), str(
        err.value
    )


def test_a_trend_key_that_is_not_a_device_is_refused() -> None:
    data = good()
    data["trends"]["bus1"] = data["trends"].pop("bus1/3")
    with pytest.raises(StateFormatError, match="^trends.bus1:"):
        PersistedState.from_dict(data)


def test_optional_trend_and_runaway_fields_may_be_absent_or_null() -> None:
    data = good()
    data["trends"]["bus1/3"] = {"baseline": None}
    data["runaway"]["2"] = {}
    back = PersistedState.from_dict(data)
    assert back.trends[DeviceRef("bus1", 3)].state_dict() == {
        "baseline": None,
        "first": [],
        "history": [],
    }
    assert back.runaway["2"] == {}


# -- alarm records --------------------------------------------------------------------------

NULLABLE = ("since", "value", "threshold", "string", "device")
REQUIRED = ("level", "latched", "acknowledged", "message", "code", "source", "latch")


@pytest.mark.parametrize("name", NULLABLE)
def test_an_alarm_field_that_may_be_null(name: str) -> None:
    data = good()
    data["alarms"]["temp:bus1/3"][name] = None
    assert PersistedState.from_dict(data).alarms["temp:bus1/3"][name] is None


@pytest.mark.parametrize("name", NULLABLE + REQUIRED)
def test_every_alarm_field_must_be_present(name: str) -> None:
    data = good()
    del data["alarms"]["temp:bus1/3"][name]
    with pytest.raises(StateFormatError, match=rf"^alarms\.temp:bus1/3\.{name}: missing"):
        PersistedState.from_dict(data)


@pytest.mark.parametrize("name", REQUIRED)
def test_a_required_alarm_field_may_not_be_null(name: str) -> None:
    data = good()
    data["alarms"]["temp:bus1/3"][name] = None
    with pytest.raises(StateFormatError, match=rf"^alarms\.temp:bus1/3\.{name}:"):
        PersistedState.from_dict(data)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("level", True),  # a bool is not a level
        ("level", 2.0),
        ("level", "2"),
        ("latched", 1),
        ("acknowledged", "no"),
        ("latch", 0),
        ("since", 5),
        ("value", "61"),
        ("value", False),
        ("threshold", [60]),
        ("message", 3),
        ("code", None),
        ("source", 1),
        ("string", 1.0),
        ("string", True),
        ("device", "bus1/3"),
        ("unit", 5),
        ("unit", None),
        ("reported", "1"),
        ("reported", True),
    ],
)
def test_an_alarm_field_of_the_wrong_type_is_named(name: str, value: Any) -> None:
    data = good()
    data["alarms"]["temp:bus1/3"][name] = value
    with pytest.raises(StateFormatError, match=rf"^alarms\.temp:bus1/3\.{name}:"):
        PersistedState.from_dict(data)


def test_later_alarm_fields_are_optional_and_kept() -> None:
    data = good()
    data["alarms"]["temp:bus1/3"] |= {"unit": "°C", "reported": 3}
    assert PersistedState.from_dict(data).alarms["temp:bus1/3"]["reported"] == 3


@pytest.mark.parametrize(("level", "ok"), [(-1, False), (0, True), (3, True), (4, False)])
def test_an_alarm_level_is_0_to_3(level: int, ok: bool) -> None:
    data = good()
    data["alarms"]["temp:bus1/3"]["level"] = level
    if ok:
        assert PersistedState.from_dict(data).alarms["temp:bus1/3"]["level"] == level
    else:
        with pytest.raises(StateFormatError, match=r"^alarms\.temp:bus1/3\.level:"):
            PersistedState.from_dict(data)


@pytest.mark.parametrize(
    "device",
    [["bus1"], ["bus1", 3, 4], [1, 3], ["bus1", "3"], ["bus1", True], ["bus1", 3.0]],
)
def test_an_alarm_device_is_bus_and_unit(device: list[Any]) -> None:
    data = good()
    data["alarms"]["temp:bus1/3"]["device"] = device
    with pytest.raises(StateFormatError, match=r"^alarms\.temp:bus1/3\.device:"):
        PersistedState.from_dict(data)


def test_an_alarm_since_must_be_a_date() -> None:
    data = good()
    data["alarms"]["temp:bus1/3"]["since"] = "at eight"
    with pytest.raises(StateFormatError, match=r"^alarms\.temp:bus1/3\.since:"):
        PersistedState.from_dict(data)


# -- load_state ---------------------------------------------------------------------------------


class Backed:
    """A store that keeps a previous copy (the BackupStorage protocol), in memory."""

    def __init__(self, data: Any, backup: Any, unreadable: bool = False) -> None:
        self.data, self.backup, self.unreadable = data, backup, unreadable
        self.fell_back: list[str] = []

    async def load(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.data)

    async def save(self, data: dict[str, Any]) -> None:
        self.data = data

    async def fall_back(self, problem: str) -> dict[str, Any] | None:
        self.fell_back.append(problem)
        if self.unreadable:
            raise StateUnreadableError(f"{problem}; the backup copy is damaged too")
        if self.backup is None:
            return None
        return {**copy.deepcopy(self.backup), BACKUP_NOTE_KEY: f"{problem}; previous used"}


def load(storage: Any) -> PersistedState | str | None:
    return asyncio.run(load_state(storage))


def test_nothing_stored_is_none() -> None:
    assert load(MemoryStorage()) is None
    assert load(Backed(None, good())) is None


def test_a_good_store_is_read() -> None:
    got = load(MemoryStorage(good()))
    assert isinstance(got, PersistedState) and got.safety.strings[1].state is TripState.TRIPPED


def test_a_wrong_field_without_a_previous_copy_is_a_problem_naming_it() -> None:
    got = load(MemoryStorage(_set("safety|strings|1|state", "open")))
    assert isinstance(got, str)
    assert got.startswith("wrong field safety.strings.1.state:")
    assert got.endswith("no previous copy")


def test_a_wrong_field_falls_back_to_the_previous_copy() -> None:
    store = Backed(_set("safety|strings|1|state", "open"), good())
    got = load(store)
    assert isinstance(got, PersistedState)
    assert got.safety.strings[1].state is TripState.TRIPPED
    assert len(store.fell_back) == 1 and store.fell_back[0].startswith(
        "wrong field safety.strings.1.state"
    )
    assert got.recovered is not None and "previous used" in got.recovered


def test_a_wrong_field_with_no_previous_copy_kept() -> None:
    got = load(Backed(_set("safety", ...), None))
    assert isinstance(got, str) and got.startswith("wrong field safety:")
    assert got.endswith("no previous copy")


def test_a_wrong_previous_copy_too_names_both() -> None:
    got = load(Backed(_set("safety|strings|1|state", "open"), _set("version", 9)))
    assert isinstance(got, str)
    assert got.startswith("wrong field safety.strings.1.state:")
    assert "the previous copy too: wrong field version:" in got


def test_an_unreadable_previous_copy_is_the_storage_s_word() -> None:
    got = load(Backed(_set("safety|strings|1|state", "open"), None, unreadable=True))
    assert isinstance(got, str) and got.endswith("the backup copy is damaged too")


def test_a_copy_already_read_from_the_backup_does_not_fall_back_again() -> None:
    data = _set("safety|strings|1|state", "open") | {
        BACKUP_NOTE_KEY: "main file damaged; backup used"
    }
    store = Backed(data, good())
    got = load(store)
    assert isinstance(got, str)
    assert got.startswith("wrong field safety.strings.1.state:")
    assert got.endswith("main file damaged; backup used")
    assert store.fell_back == []


class Broken:
    def __init__(self, err: Exception) -> None:
        self.err = err

    async def load(self) -> dict[str, Any] | None:
        raise self.err

    async def save(self, data: dict[str, Any]) -> None:
        raise AssertionError("not reached")


@pytest.mark.parametrize(
    ("err", "want"),
    [
        (StateUnreadableError("state.json: damaged; no backup copy"), "state.json: damaged"),
        (OSError("I/O error"), "state store unreadable: I/O error"),
        (ValueError("bad json"), "state store unreadable: bad json"),
    ],
)
def test_a_store_that_cannot_be_read_is_a_problem(err: Exception, want: str) -> None:
    got = load(Broken(err))
    assert isinstance(got, str) and got.startswith(want)


def test_a_file_with_a_wrong_field_falls_back_to_its_bak_copy(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    storage = FileStorage(path)
    asyncio.run(storage.save(good()))
    asyncio.run(storage.save(good()))  # the first copy is now the .bak
    path.write_text(json.dumps(_set("safety|strings|1|state", "open")), encoding="utf-8")
    got = load(FileStorage(path))
    assert isinstance(got, PersistedState)
    assert got.safety.strings[1].state is TripState.TRIPPED
    assert got.recovered is not None and "wrong field safety.strings.1.state" in got.recovered


def test_a_null_alarm_field_does_not_end_the_checks_of_the_fields_after_it() -> None:
    data = good()
    data["alarms"]["temp:bus1/3"] |= {"since": None, "code": 5}  # since comes before code
    with pytest.raises(StateFormatError, match=r"^alarms\.temp:bus1/3\.code:"):
        PersistedState.from_dict(data)


@pytest.mark.parametrize(
    ("path", "value", "found"),
    [
        ("safety|strings|1|reason", 5, "found int 5"),
        ("safety|strings|1|state", None, "found null"),
        ("runaway|1|baseline", "0.3", "found str '0.3'"),
        ("trends|bus1/3|first", "4", "found str '4'"),
        ("alarms", [], "found list []"),
        ("alarms|temp:bus1/3|latched", "yes", "found str 'yes'"),
    ],
)
def test_the_error_says_what_was_found(path: str, value: Any, found: str) -> None:
    with pytest.raises(StateFormatError, match=re.escape(found)):
        PersistedState.from_dict(_set(path, value))


def test_a_found_value_is_shown_cut_to_sixty_characters() -> None:
    with pytest.raises(StateFormatError) as err:
        PersistedState.from_dict(_set("safety|strings|1|reason", ["x" * 100]))
    shown = str(err.value).split("found ", 1)[1]
    assert shown == f"list {['x' * 100]!r}"[:60]


def test_an_unknown_trip_state_lists_the_known_ones() -> None:
    with pytest.raises(StateFormatError) as err:
        PersistedState.from_dict(_set("safety|strings|1|state", "open"))
    assert all(t.value in str(err.value) for t in TripState)
    assert ", ".join(t.value for t in TripState) in str(err.value)
