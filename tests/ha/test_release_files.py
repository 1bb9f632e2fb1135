"""The consistency checks of scripts/release_artifacts.py (run for real, on built files, by
scripts/release_check.py in ./scripts/test): each must notice the mistake it exists for."""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from release_artifacts import Artifacts, build_hacs_zip, check  # noqa: E402

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]
# What the wheel's METADATA says: the dependencies, and each extra's under its marker.
REQUIRES = list(PROJECT["dependencies"]) + [
    f'{r}; extra == "{extra}"'
    for extra, reqs in PROJECT.get("optional-dependencies", {}).items()
    for r in reqs
]


def _wheel(path: Path, requires: list[str]) -> Path:
    head = ["Metadata-Version: 2.4", "Name: bacs-core", f"Version: {VERSION}"]
    head.append(f"Requires-Python: {PROJECT['requires-python']}")
    meta = "\n".join(head + [f"Requires-Dist: {r}" for r in requires])
    info = f"bacs_core-{VERSION}.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        for name in ("__init__.py", "py.typed", "registers.py"):
            whl.writestr(f"bacs_core/{name}", "")
        whl.writestr(f"{info}/METADATA", meta + "\n")
        whl.writestr(f"{info}/entry_points.txt", "[console_scripts]\nbacs = bacs_core.cli:main\n")
    return path


def _sdist(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as sdist:
        for name in ("pyproject.toml", "README.md", "LICENSE", "bacs_core/__init__.py"):
            sdist.add(ROOT / name, f"bacs_core-{VERSION}/{name}")
    return path


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, Artifacts]:
    """A copy of the files check() reads, and release files that agree with them."""
    root = tmp_path / "root"
    for name in ("pyproject.toml", "hacs.json", "custom_components/bacs/manifest.json"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    art = Artifacts(
        sdist=_sdist(tmp_path / f"bacs_core-{VERSION}.tar.gz"),
        wheel=_wheel(tmp_path / f"bacs_core-{VERSION}-py3-none-any.whl", REQUIRES),
        hacs_zip=build_hacs_zip(ROOT / "custom_components" / "bacs", tmp_path / "bacs.zip"),
        version=Version(VERSION),
    )
    return root, art


def test_consistent_release_passes(release: tuple[Path, Artifacts]) -> None:
    root, art = release
    assert check(art, root) == []
    with zipfile.ZipFile(art.hacs_zip) as archive:
        names = archive.namelist()
    assert "manifest.json" in names, "HACS unpacks the archive into custom_components/bacs"
    assert not any(n.startswith("custom_components/") or "__pycache__" in n for n in names)


def test_manifest_requirement_that_refuses_the_wheel(release: tuple[Path, Artifacts]) -> None:
    root, art = release
    path = root / "custom_components" / "bacs" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["requirements"] = ["bacs-core>=9.0"]
    path.write_text(json.dumps(manifest))
    assert any("does not admit" in p for p in check(art, root))


def test_wheel_dependencies_must_be_pyprojects(
    release: tuple[Path, Artifacts], tmp_path: Path
) -> None:
    root, art = release
    (tmp_path / "stale").mkdir()
    stale = _wheel(tmp_path / "stale" / art.wheel.name, ["pymodbus>=3.11.2,<4"])
    problems = check(Artifacts(art.sdist, stale, art.hacs_zip, art.version), root)
    assert any("Requires-Dist" in p for p in problems)
    # An extra the wheel does not declare is a difference too.
    (tmp_path / "no-extras").mkdir()
    bare = _wheel(tmp_path / "no-extras" / art.wheel.name, PROJECT["dependencies"])
    problems = check(Artifacts(art.sdist, bare, art.hacs_zip, art.version), root)
    assert any("Requires-Dist" in p for p in problems)


def test_hacs_json_must_name_the_archive(release: tuple[Path, Artifacts]) -> None:
    root, art = release
    (root / "hacs.json").write_text(json.dumps({"name": "BACS"}))
    assert any("zip_release" in p for p in check(art, root))
