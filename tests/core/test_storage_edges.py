"""State storage at its edges: a directory that does not exist yet, every way a write can go
(first write, overwrite, a write that fails half-way), durability (fsync before the rename),
and what a reader sees. The latch, the alarms and the baselines all go through here."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from bacs_core.manager import FileStorage, MemoryStorage
from bacs_core.manager.storage import BACKUP_NOTE_KEY, StateUnreadableError


def load(store: Any) -> Any:
    return asyncio.run(store.load())


def save(store: Any, data: dict[str, Any]) -> None:
    asyncio.run(store.save(data))


def temporaries(folder: Path) -> list[str]:
    """Files a write leaves behind besides the state and its copies: must be none."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


STATE = {"safety": {"state": "tripped", "reason": "string 1: block 3 at 61.0 °C"}, "n": 3}


# -- memory --------------------------------------------------------------------------------


def test_memory_storage_starts_empty_and_keeps_a_copy() -> None:
    store = MemoryStorage()
    assert load(store) is None
    assert store.saves == 0
    data = {"a": [1, 2], "b": {"c": None}}
    save(store, data)
    data["a"].append(3)  # the caller's object changes; the stored state must not
    assert load(store) == {"a": [1, 2], "b": {"c": None}}
    loaded = load(store)
    loaded["a"].append(9)  # nor through what a reader got
    assert load(store) == {"a": [1, 2], "b": {"c": None}}
    save(store, {"a": 1})
    assert store.saves == 2
    assert load(store) == {"a": 1}


def test_memory_storage_can_start_with_state() -> None:
    assert load(MemoryStorage({"x": 1})) == {"x": 1}
    assert MemoryStorage({"x": 1}).saves == 0


def test_memory_storage_refuses_what_json_cannot_hold() -> None:
    store = MemoryStorage({"old": 1})
    with pytest.raises(TypeError):
        save(store, {"when": object()})
    assert load(store) == {"old": 1}
    assert store.saves == 0


# -- file: reading -----------------------------------------------------------------------


def test_nothing_stored_yet_is_none(tmp_path: Path) -> None:
    assert load(FileStorage(tmp_path / "state.json")) is None
    assert load(FileStorage(tmp_path / "missing" / "dir" / "state.json")) is None
    assert not (tmp_path / "missing").exists()  # reading creates nothing


def test_a_path_given_as_text_works_too(tmp_path: Path) -> None:
    store = FileStorage(str(tmp_path / "state.json"))
    save(store, STATE)
    assert load(store) == STATE
    assert store.path == tmp_path / "state.json"


# -- file: writing -----------------------------------------------------------------------


def test_the_first_write_creates_the_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "config" / ".storage" / "bacs" / "state.json"
    store = FileStorage(path)
    save(store, STATE)
    assert path.is_file()
    assert load(store) == STATE
    assert load(FileStorage(path)) == STATE  # a new process reads the same
    assert temporaries(path.parent) == []


def test_a_write_to_an_existing_directory_and_an_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = FileStorage(path)
    save(store, STATE)
    save(store, {"n": 4})
    assert load(FileStorage(path)) == {"n": 4}
    assert temporaries(tmp_path) == []


def test_the_file_is_plain_readable_json(tmp_path: Path) -> None:
    """A person (or a support script) can read and diff it: sorted keys, one per line,
    indented by one space, nothing but ASCII (so no locale can misread it)."""
    path = tmp_path / "state.json"
    data = {"b": 1, "a": {"d": 2, "c": "61.0 °C"}}
    save(FileStorage(path), data)
    raw = path.read_bytes()
    assert raw.isascii()
    assert raw.decode("ascii") == json.dumps(data, indent=1, sort_keys=True)
    assert json.loads(raw) == data


def test_the_new_file_is_written_beside_the_old_one_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same directory (a rename across file systems is not atomic), a hidden name that says
    whose it is (a crash leaves a recognisable temporary, never a stray state file)."""
    path = tmp_path / "state.json"
    moves: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        moves.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    save(FileStorage(path), STATE)
    monkeypatch.undo()
    (src, dst) = next(m for m in moves if m[1] == path)
    assert src.parent == path.parent
    assert src.name.startswith(".state.json.")
    assert not src.exists()
    assert temporaries(tmp_path) == []


def test_a_rename_reported_failed_after_it_happened_raises_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a network file system a rename can succeed and still report an error (a lost
    reply). The caller must see that error, not one from cleaning up a temporary file that
    the rename already moved."""
    path = tmp_path / "state.json"
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        raise OSError(116, "Stale file handle")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="Stale file handle") as err:
        save(FileStorage(path), STATE)
    monkeypatch.undo()
    assert err.value.errno == 116
    assert not isinstance(err.value, FileNotFoundError)
    assert load(FileStorage(path)) == STATE


def test_a_write_that_fails_keeps_the_old_state_and_leaves_no_litter(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = FileStorage(path)
    save(store, STATE)
    with pytest.raises(TypeError):
        save(store, {"n": 5, "bad": object()})  # not JSON: fails before the rename
    assert load(FileStorage(path)) == STATE
    assert temporaries(tmp_path) == []


def test_a_write_interrupted_at_the_disk_keeps_the_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fails on fsync (full, pulled, read-only remount): the error reaches the caller,
    the previous state is intact and no temporary file stays behind."""
    path = tmp_path / "state.json"
    store = FileStorage(path)
    save(store, STATE)

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="No space"):
        save(store, {"n": 6})
    monkeypatch.undo()
    assert load(FileStorage(path)) == STATE
    assert temporaries(tmp_path) == []


def test_data_reaches_the_disk_before_it_replaces_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Atomic and durable: the new file is flushed and fsynced, then renamed over the old one,
    so a power cut leaves either the old state or the new one, never half of either."""
    path = tmp_path / "state.json"
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        try:
            size = os.fstat(fd).st_size
        except OSError:
            size = -1
        calls.append(("fsync", str(size)))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        calls.append(("replace", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save(FileStorage(path), STATE)
    monkeypatch.undo()
    onto_state = calls.index(("replace", "state.json"))
    synced = [c for c in calls[:onto_state] if c[0] == "fsync"]
    assert synced, calls
    # What was synced is the whole new file, not an empty one.
    assert int(synced[-1][1]) == len(path.read_bytes()), calls


def test_a_damaged_file_is_kept_for_a_person_never_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    damaged = '{"safety": {"state": "tripp'
    path.write_text(damaged, encoding="utf-8")
    store = FileStorage(path)
    try:
        loaded = load(store)
    except Exception:  # a store may refuse to guess (state unknown) instead of starting empty
        loaded = None
    assert loaded is None
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("state.json.corrupt-")]
    assert [p.read_text(encoding="utf-8") for p in kept] == [damaged]
    # The log says which file and where it went.
    said = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(str(kept[0]) in m and m.count(str(path)) >= 2 for m in said), said
    save(store, STATE)
    assert load(FileStorage(path)) == STATE
    assert [p.read_text(encoding="utf-8") for p in kept] == [damaged]


def test_a_json_value_that_is_not_an_object_is_damage_too(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("[1, 2, 3]", encoding="utf-8")
    try:
        loaded = load(FileStorage(path))
    except Exception:
        loaded = None
    assert loaded is None
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("state.json.corrupt-")]
    assert [p.read_text(encoding="utf-8") for p in kept] == ["[1, 2, 3]"]


# -- what the log and the store say about a damaged or missing file ------------------------


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def test_a_file_that_cannot_be_set_aside_is_logged_with_its_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json", encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("bacs_core.manager.storage.os.replace", refuse)
    with pytest.raises(StateUnreadableError):
        load(FileStorage(path))
    assert path.read_text(encoding="utf-8") == "{not json"  # left where it was
    said = errors(caplog)
    assert any(str(path) in m and "Read-only file system" in m for m in said), said


def test_reading_the_previous_copy_is_logged_with_the_problem_and_the_copy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    save(FileStorage(path), STATE)
    path.write_text("[1]", encoding="utf-8")
    data = load(FileStorage(path))
    assert data[BACKUP_NOTE_KEY].startswith(f"{path} holds a JSON list, not an object")
    said = errors(caplog)
    assert any("JSON list" in m and f"{path}.bak" in m for m in said), said


def test_a_missing_main_file_with_a_copy_left_reads_the_copy_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save(FileStorage(path), STATE)
    path.unlink()
    data = load(FileStorage(path))
    assert data[BACKUP_NOTE_KEY].startswith(f"{path} is missing")
    assert {k: v for k, v in data.items() if k != BACKUP_NOTE_KEY} == STATE


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "list"), ("3", "int"), ('"x"', "str")])
def test_a_json_value_that_is_not_an_object_is_named_in_the_problem(
    tmp_path: Path, text: str, kind: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StateUnreadableError, match=f"holds a JSON {kind}, not an object"):
        load(FileStorage(path))
