"""The Home Assistant environment of the release check: a fresh virtualenv that sees an
installed Home Assistant without bacs-core and pymodbus (a view of its site-packages), and the
wheelhouse it may install from. See scripts/release_check.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from release_artifacts import ROOT, Artifacts, ReleaseError

# Left out of the view of Home Assistant's site-packages: our own package (the shared venv
# holds it editable) and what Home Assistant must install itself: pymodbus, and the report's
# matplotlib with what it needs beyond Home Assistant's own packages (numpy, Pillow,
# packaging and python-dateutil, which Home Assistant itself needs, stay).
HIDDEN = re.compile(
    r"^(bacs_core|__editable__.*bacs_core.*|pymodbus|matplotlib|mpl_toolkits|pylab|contourpy"
    r"|cycler|fontTools|fonttools|kiwisolver|pyparsing)([-.].*)?$|\.pth$"
)


def clean_env() -> dict[str, str]:
    """The environment without the worktree's PYTHONPATH or an active venv: what runs there
    must import the installed wheel, never the source tree."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def query(python: Path, code: str, cwd: Path | None = None) -> Any:
    """Run ``code`` (which prints JSON) in another interpreter, outside the source tree."""
    proc = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=clean_env(),
        cwd=cwd,
    )
    if proc.returncode:
        raise ReleaseError(f"{python} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def make_ha_env(ha_python: Path, work: Path) -> Path:
    """A virtualenv whose Home Assistant is ``ha_python``'s, without bacs-core or pymodbus."""
    info = query(
        ha_python,
        "import json, os, sys, sysconfig; print(json.dumps({'base': sys._base_executable, "
        "'sites': [p for p in sys.path if p.endswith('site-packages') and os.path.isdir(p)], "
        "'scripts': sysconfig.get_path('scripts')}))",
    )
    view = work / "ha-site-packages"
    view.mkdir()
    for site_dir in info["sites"]:  # in import order: the first of a name wins
        for entry in Path(site_dir).iterdir():
            if not HIDDEN.match(entry.name) and not (view / entry.name).exists():
                (view / entry.name).symlink_to(entry)
    env = work / "ha-env"
    subprocess.run([info["base"], "-m", "venv", "--without-pip", str(env)], check=True)
    site = query(
        env / "bin" / "python",
        "import json, sysconfig; print(json.dumps(sysconfig.get_path('purelib')))",
    )
    (Path(site) / "ha-view.pth").write_text(f"{view}\n")
    # Home Assistant installs requirements with `python -m uv pip install`; uv's module finds
    # its binary next to the interpreter.
    (env / "bin" / "uv").symlink_to(Path(info["scripts"]) / "uv")
    return env


def make_wheelhouse(art: Artifacts, deps: Path, work: Path) -> Path:
    house = work / "wheelhouse"
    house.mkdir()
    shutil.copy2(art.wheel, house)
    for wheel in deps.glob("*.whl"):
        shutil.copy2(wheel, house)
    return house


def ha_pins(env: Path) -> dict[str, str]:
    """What this Home Assistant pins: its modbus integration's pymodbus, its constraints file."""
    code = """
import json, pathlib
from homeassistant.const import __version__
import homeassistant
root = pathlib.Path(homeassistant.__file__).parent
pins = json.loads((root / "components/modbus/manifest.json").read_text())["requirements"]
print(json.dumps({"version": __version__, "constraints": str(root / "package_constraints.txt"),
                  "pymodbus": next(r for r in pins if r.startswith("pymodbus"))}))
"""
    return dict(query(env / "bin" / "python", code))


def installed(env: Path, work: Path) -> dict[str, Any]:
    return dict(
        query(
            env / "bin" / "python",
            "import json, importlib.metadata as md, bacs_core, pymodbus, matplotlib; "
            "print(json.dumps({'bacs-core': md.version('bacs-core'), "
            "'pymodbus': md.version('pymodbus'), 'file': bacs_core.__file__, "
            "'matplotlib': md.version('matplotlib'), 'matplotlib_file': matplotlib.__file__}))",
            cwd=work,
        )
    )


def wire_tests(env: Path) -> str:
    """bacs_core's wire tests on the Home Assistant environment's (pinned) pymodbus."""
    proc = subprocess.run(
        [str(env / "bin" / "python"), "-m", "pytest", "tests/core/test_bus_wire.py", "-q",
         "-p", "no:homeassistant", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, check=False, env=clean_env(),
    )  # fmt: skip
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    if proc.returncode:
        raise ReleaseError(f"wire tests failed:\n{proc.stdout[-4000:]}")
    return summary
