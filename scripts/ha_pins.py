"""Which Home Assistant releases admit bacs-core's requirements: reads each release's own pins
(package_constraints.txt and every core integration's manifest) from its PyPI wheel.

    pip download --no-deps --only-binary=:all: --python-version 3.13.2 homeassistant==2025.2.0 -d W
    python scripts/ha_pins.py W/homeassistant-*.whl      # one line per release, oldest first

Home Assistant installs each integration's requirements with ``--constraint
package_constraints.txt``, and its modbus integration pins pymodbus exactly; one environment
holds one pymodbus, so a release admits bacs-core only if every pin of a shared package lies in
bacs-core's range (see docs/compatibility.md).
"""

from __future__ import annotations

import argparse
import json
import re
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
COMPONENT_MANIFEST = re.compile(r"^homeassistant/components/([^/]+)/manifest\.json$")


def pins(wheel: Path, names: set[str]) -> tuple[str, dict[str, set[str]]]:
    """(Requires-Python, {package: {"==X (where)"}}) for the packages in ``names``."""
    found: dict[str, set[str]] = {}
    with zipfile.ZipFile(wheel) as whl:
        listing = whl.namelist()
        meta = whl.read(next(n for n in listing if n.endswith(".dist-info/METADATA"))).decode()
        sources = [(n, COMPONENT_MANIFEST.match(n)) for n in listing]
        for name, match in sources:
            if match:
                reqs = json.loads(whl.read(name)).get("requirements", [])
                where = match.group(1)
            elif name == "homeassistant/package_constraints.txt":
                reqs = [ln for ln in whl.read(name).decode().splitlines() if "==" in ln]
                where = "constraints"
            else:
                continue
            for text in (r.split("#")[0].strip() for r in reqs):
                req = Requirement(text) if text else None
                if req is not None and canonicalize_name(req.name) in names:
                    found.setdefault(canonicalize_name(req.name), set()).add(
                        f"{req.specifier} ({where})"
                    )
    python = re.search(r"^Requires-Python: (.*)$", meta, re.M)
    return (python.group(1) if python else "?"), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheels", nargs="+", type=Path)
    args = parser.parse_args()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = {
        canonicalize_name(r.name): r.specifier for r in map(Requirement, project["dependencies"])
    }
    for wheel in sorted(args.wheels, key=lambda w: Version(w.name.split("-")[1])):
        python, found = pins(wheel, set(ours))
        refused = [
            f"{name}{pin.split()[0]} {pin.split()[1]}"
            for name, held in found.items()
            for pin in held
            if not ours[name].contains(pin.split()[0].removeprefix("=="))
        ]
        shown = {name: sorted(held) for name, held in sorted(found.items())}
        verdict = "refused: " + ", ".join(refused) if refused else "admitted"
        print(f"{wheel.name.split('-')[1]:<10} Python {python:<8} {verdict:<40} {shown}")


if __name__ == "__main__":
    main()
