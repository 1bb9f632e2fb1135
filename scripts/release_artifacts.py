"""What a release publishes, built and checked offline: bacs-core's sdist and wheel (PyPI) and
the HACS archive (the zip HACS downloads from the GitHub release, hacs.json ``filename``).

Used by scripts/release_check.py (which then installs and loads them in Home Assistant) and by
.github/workflows/release.yml (which publishes exactly these files)::

    python scripts/release_artifacts.py OUTDIR     # OUTDIR/dist/{sdist,wheel}, OUTDIR/hacs/bacs.zip
"""

from __future__ import annotations

import argparse
import email.parser
import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "bacs"
# Fixed timestamp in the archive: the same tree gives the same bytes (reproducible releases).
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ReleaseError(Exception):
    """A release file is missing, malformed, or disagrees with another one."""


@dataclass(frozen=True)
class Artifacts:
    sdist: Path
    wheel: Path
    hacs_zip: Path
    version: Version


def _source_files(root: Path) -> list[str]:
    """The files a release is built from: tracked and new files, not ignored ones (no .venv,
    caches or build leftovers), so the sdist holds what a clean checkout holds."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(f for f in out.split("\0") if f and (root / f).is_file())


def copy_tree(root: Path, dest: Path) -> Path:
    for name in _source_files(root):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return dest


def build_hacs_zip(integration: Path, dest: Path) -> Path:
    """HACS extracts the release asset into custom_components/<domain>/, so the integration's
    files sit at the archive's root (no folder around them)."""
    files = sorted(
        p
        for p in integration.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(integration).as_posix(), ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return dest


def build(outdir: Path, root: Path = ROOT) -> Artifacts:
    """sdist, then the wheel from the sdist (python -m build), then the HACS archive; offline
    (no build isolation: setuptools and build come from requirements/release.txt)."""
    src = copy_tree(root, outdir / "src")
    dist, hacs_dir = outdir / "dist", outdir / "hacs"
    hacs_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise ReleaseError(f"python -m build failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    hacs = json.loads((src / "hacs.json").read_text())
    hacs_zip = build_hacs_zip(src / "custom_components" / DOMAIN, hacs_dir / hacs["filename"])
    version = Version(tomllib.loads((src / "pyproject.toml").read_text())["project"]["version"])
    return Artifacts(sdist=sdist, wheel=wheel, hacs_zip=hacs_zip, version=version)


def check(art: Artifacts, root: Path = ROOT) -> list[str]:
    """Every way the published files could disagree with each other or with the tree."""
    problems: list[str] = []
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    manifest = json.loads((root / "custom_components" / DOMAIN / "manifest.json").read_text())
    hacs = json.loads((root / "hacs.json").read_text())

    name, version, _, _ = parse_wheel_filename(art.wheel.name)
    sdist_name, sdist_version = parse_sdist_filename(art.sdist.name)
    if (name, version) != (canonicalize_name(project["name"]), art.version):
        problems.append(f"wheel {art.wheel.name} is not {project['name']} {art.version}")
    if (sdist_name, sdist_version) != (name, version):
        problems.append(f"sdist {art.sdist.name} and wheel {art.wheel.name} differ")
    if Version(manifest["version"]) != art.version:
        problems.append(
            f"manifest.json version {manifest['version']} is not the library's {art.version}: "
            "one tag releases both"
        )
    ours = [Requirement(r) for r in manifest["requirements"]]
    lib = [r for r in ours if canonicalize_name(r.name) == name]
    if len(lib) != 1:
        problems.append(f"manifest requirements {manifest['requirements']} do not name {name}")
    elif not lib[0].specifier.contains(version):
        problems.append(f"manifest requirement {lib[0]} does not admit the wheel's {version}")
    problems += _extra_requirements(ours, lib, project)

    with zipfile.ZipFile(art.wheel) as whl:
        names = set(whl.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(whl.read(meta_name).decode())
        points = whl.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    requires = sorted(str(Requirement(r)) for r in meta.get_all("Requires-Dist") or [])
    declared = [str(Requirement(r)) for r in project["dependencies"]]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        declared += [str(Requirement(f'{r}; extra == "{extra}"')) for r in reqs]
    if requires != sorted(declared):
        problems.append(f"wheel Requires-Dist {requires} differ from pyproject.toml")
    if meta["Requires-Python"] != project["requires-python"]:
        problems.append(f"wheel Requires-Python {meta['Requires-Python']}")
    for needed in ("bacs_core/__init__.py", "bacs_core/py.typed", "bacs_core/registers.py"):
        if needed not in names:
            problems.append(f"wheel lacks {needed}")
    strays = sorted(
        n for n in names if n.split("/")[0] in ("tests", "custom_components", "scripts")
    )
    if strays:
        problems.append(f"wheel carries {strays[:3]}")
    if "bacs = bacs_core.cli:main" not in points:
        problems.append("wheel has no `bacs` console script")

    with tarfile.open(art.sdist) as sdist:
        members = {m.name.split("/", 1)[-1] for m in sdist.getmembers()}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "bacs_core/__init__.py"):
        if needed not in members:
            problems.append(f"sdist lacks {needed}")

    if not (hacs.get("zip_release") and hacs.get("filename") == art.hacs_zip.name):
        problems.append(f"hacs.json does not name {art.hacs_zip.name} as its zip_release")
    with zipfile.ZipFile(art.hacs_zip) as archive:
        inside = set(archive.namelist())
        zipped_manifest = (
            json.loads(archive.read("manifest.json")) if "manifest.json" in inside else {}
        )
    for needed in (
        "manifest.json",
        "__init__.py",
        "config_flow.py",
        "translations/en.json",
        "frontend/bacs-battery-room-card.js",  # the dashboard card, served by the integration
        "frontend/bacs-room.js",
        "frontend/bacs-room-view.js",
    ):
        if needed not in inside:
            problems.append(f"HACS archive lacks {needed} at its root")
    if zipped_manifest != manifest:
        problems.append("HACS archive's manifest.json differs from the tree's")
    if any("__pycache__" in n or n.endswith(".pyc") for n in inside):
        problems.append("HACS archive carries bytecode")
    return problems


# The extras Home Assistant needs: mqtt for a remote appliance, report for bacs.generate_report.
HA_EXTRAS = ("mqtt", "report")


def _extra_requirements(
    ours: list[Requirement], lib: list[Requirement], project: dict[str, Any]
) -> list[str]:
    """The integration needs the mqtt and report extras in Home Assistant. Home Assistant
    ignores the extras of a bacs-core it already has, so the manifest names each extra's
    packages too, with the extra's own ranges."""
    problems: list[str] = []
    named = {canonicalize_name(r.name): r.specifier for r in ours}
    for extra_name in HA_EXTRAS:
        if len(lib) == 1 and extra_name not in lib[0].extras:
            problems.append(f"manifest requirement {lib[0]} lacks the {extra_name} extra")
        extras = project.get("optional-dependencies", {}).get(extra_name, [])
        for req in (Requirement(r) for r in extras):
            if named.get(canonicalize_name(req.name)) != req.specifier:
                problems.append(f"manifest requirements do not name the {extra_name} extra's {req}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    if args.outdir.exists() and any(args.outdir.iterdir()):
        parser.error(f"{args.outdir} is not empty")
    try:
        art = build(args.outdir.resolve())
        problems = check(art)
    except ReleaseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    shutil.rmtree(args.outdir / "src")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    for path in (art.sdist, art.wheel, art.hacs_zip):
        print(path)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
