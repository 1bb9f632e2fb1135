"""Offline stand-ins for hassfest and the HACS action (neither can run here: hassfest needs a
core checkout and Docker, the HACS action the GitHub API). Each check restates one of their
rules for this repository; see /work/shared/specs/ha-integration.md §2 and §3."""

from __future__ import annotations

import ast
import json
import re
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from PIL import Image
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.bacs.const import DOMAIN
from custom_components.bacs.device_trigger import TRIGGER_TYPES

from .conftest import cycle

ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = ROOT / "custom_components" / DOMAIN
MANIFEST = json.loads((INTEGRATION / "manifest.json").read_text())
STRINGS = json.loads((INTEGRATION / "translations" / "en.json").read_text())
ICONS = json.loads((INTEGRATION / "icons.json").read_text())
SERVICES = yaml.safe_load((INTEGRATION / "services.yaml").read_text())
KEY = re.compile(r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")
SOURCES = {p.name: p.read_text() for p in INTEGRATION.glob("*.py")}
# The config and options flows with the modules their forms are in.
FLOWS = "\n".join(
    text
    for name, text in sorted(SOURCES.items())
    if name.startswith(("config_flow", "flow_", "options_"))
)
# The oldest Home Assistant whose own pins admit bacs-core's requirements, measured and run
# (docs/compatibility.md); hacs.json and the README must say the same.
MIN_HA = "2025.2.0"


# -- manifest (hassfest manifest plugin, HACS integration_manifest) ----------------------
def test_manifest_keys_and_order() -> None:
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:]), "hassfest: domain, name, then alphabetical"
    allowed = {
        "domain", "name", "after_dependencies", "codeowners", "config_flow", "dependencies",
        "documentation", "integration_type", "iot_class", "issue_tracker", "loggers",
        "quality_scale", "requirements", "single_config_entry", "usb", "version",
    }  # fmt: skip
    assert set(keys) <= allowed
    assert MANIFEST["domain"] == INTEGRATION.name
    for key in ("domain", "name", "documentation", "issue_tracker", "codeowners", "version"):
        assert MANIFEST.get(key), f"HACS requires {key}"
    assert MANIFEST["documentation"].startswith("https://")
    assert "home-assistant.io/integrations" not in MANIFEST["documentation"]
    assert MANIFEST["issue_tracker"].startswith("https://")
    assert isinstance(MANIFEST["codeowners"], list)
    assert all(o.startswith("@") for o in MANIFEST["codeowners"])
    assert AwesomeVersion(MANIFEST["version"]).valid
    assert re.fullmatch(r"\d+\.\d+\.\d+", MANIFEST["version"]), "SemVer"
    assert MANIFEST["integration_type"] == "hub"
    assert MANIFEST["iot_class"] == "local_polling"
    assert MANIFEST["config_flow"] is True
    assert (INTEGRATION / "config_flow.py").is_file()
    assert MANIFEST["loggers"] == ["bacs_core", "pymodbus"]
    assert MANIFEST["after_dependencies"] == ["frontend", "usb"]  # frontend: the card


def test_requirements_are_ranges() -> None:
    for req in MANIFEST["requirements"]:
        assert "==" not in req, "pinning breaks other integrations (pymodbus conflicts)"
    # The extras' packages by name too: Home Assistant ignores the extras of a bacs-core it
    # already has. mqtt: paho-mqtt and mashumaro (a remote appliance); report: matplotlib.
    assert MANIFEST["requirements"] == [
        "bacs-core[mqtt,report]>=0.1.0,<0.2",
        "mashumaro>=3.13.1,<4",
        "matplotlib>=3.10,<4",
        "paho-mqtt>=2.1.0,<3",
    ]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'version = "0.1.0"' in pyproject  # the library version the range admits


def _home_assistant_pins() -> dict[str, list[tuple[str, str]]]:
    """Every exact pin of this Home Assistant: package -> [(version, where)], from its
    package_constraints.txt and each core integration's manifest."""
    import homeassistant
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    root = Path(homeassistant.__file__).parent
    sources = [("constraints", (root / "package_constraints.txt").read_text().splitlines())]
    for manifest in sorted((root / "components").glob("*/manifest.json")):
        reqs = json.loads(manifest.read_text()).get("requirements", [])
        sources.append((manifest.parent.name, reqs))
    pins: dict[str, list[tuple[str, str]]] = {}
    for where, lines in sources:
        for line in (ln.split("#")[0].strip() for ln in lines):
            if "==" in line and not line.startswith("-"):
                req = Requirement(line)
                for spec in req.specifier:
                    if spec.operator == "==":
                        entry = (spec.version, where)
                        pins.setdefault(canonicalize_name(req.name), []).append(entry)
    return pins


def test_requirements_admit_home_assistants_own_pins() -> None:
    """bacs-core and Home Assistant (its constraints, its Modbus integration's exact pymodbus)
    must fit in one environment: one package has one version there."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = {
        canonicalize_name(r.name): r.specifier for r in map(Requirement, project["dependencies"])
    }
    pins = _home_assistant_pins()
    assert "modbus" in {where for _, where in pins["pymodbus"]}, "core modbus pins pymodbus"
    for name, spec in ours.items():
        for version, where in pins.get(name, []):
            assert spec.contains(version), f"HA {HA_VERSION} {where} pins {name}=={version}"


def test_the_report_stack_fits_home_assistants_own_pins() -> None:
    """matplotlib (the manifest's range, and the version the release check installs) and
    what it needs admit this Home Assistant's numpy and Pillow (and any other exact pin)."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    (mpl,) = [Requirement(r) for r in MANIFEST["requirements"] if r.startswith("matplotlib")]
    wheelhouse = (ROOT / "requirements" / "release-wheelhouse.txt").read_text()
    pinned = re.search(r"^matplotlib==(\S+)$", wheelhouse, re.M)
    assert pinned is not None and mpl.specifier.contains(pinned.group(1))
    assert version("matplotlib") == pinned.group(1)  # the environment runs the same
    pins = _home_assistant_pins()
    checked = set()
    for package in ("matplotlib", "contourpy"):
        for line in requires(package) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            for pin, where in pins.get(canonicalize_name(req.name), []):
                assert req.specifier.contains(pin), f"HA {HA_VERSION} {where}: {req.name}=={pin}"
                checked.add(canonicalize_name(req.name))
    assert {"numpy", "pillow"} <= checked


def test_usb_matchers() -> None:
    pairs = {(m["vid"], m["pid"]) for m in MANIFEST["usb"]}
    assert {("0403", "6001"), ("10C4", "EA60")} <= pairs
    for m in MANIFEST["usb"]:
        assert set(m) <= {"vid", "pid", "serial_number", "manufacturer", "description"}
        assert m["description"] == m["description"].lower()  # hassfest: lowercase patterns
        assert "485" in m["description"]  # RS-485 adapters only (test_usb_discovery.py)
        assert re.fullmatch(r"[0-9A-F]{4}", m["vid"]) and re.fullmatch(r"[0-9A-F]{4}", m["pid"])
    assert "async_step_usb" in SOURCES["config_flow.py"]


def test_component_imports_are_declared() -> None:
    """hassfest dependencies: homeassistant.components.X imports must be declared (a set of
    entity platforms and helpers are always allowed)."""
    always = {
        "automation", "binary_sensor", "button", "device_automation", "diagnostics",
        "homeassistant", "number", "repairs", "sensor", "switch",
    }  # fmt: skip
    declared = set(MANIFEST.get("dependencies", [])) | set(MANIFEST["after_dependencies"])
    for name, text in SOURCES.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[:2] == ["homeassistant", "components"] and len(parts) > 2:
                    if name == f"{parts[2]}.py":
                        continue  # an integration platform (logbook.py) uses its component
                    assert parts[2] in always | declared, f"{name} imports {node.module}"


def test_exactly_one_manifest_in_the_repository() -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    manifests = [f for f in files if f.endswith("manifest.json")]
    assert manifests == ["custom_components/bacs/manifest.json"]


# -- hacs.json and the repository layout (HACS action) -----------------------------------
def test_hacs_json() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text())
    allowed = {
        "name", "content_in_root", "zip_release", "filename", "hide_default_branch",
        "country", "homeassistant", "hacs", "persistent_directory", "render_readme",
    }  # fmt: skip
    assert set(hacs) <= allowed
    assert isinstance(hacs["name"], str) and hacs["name"]
    assert hacs["homeassistant"] == MIN_HA
    assert AwesomeVersion(hacs["homeassistant"]) <= AwesomeVersion(HA_VERSION)
    # The release asset HACS downloads (scripts/release_artifacts.py builds it, the release
    # workflow attaches it); HACS unpacks it into custom_components/bacs.
    assert hacs["zip_release"] is True
    assert hacs["filename"] == f"{DOMAIN}.zip"
    assert not hacs.get("content_in_root")


def test_minimum_home_assistant_is_stated_alike() -> None:
    readme = (ROOT / "README.md").read_text()
    compat = (ROOT / "docs" / "compatibility.md").read_text()
    assert f"**Minimum: Home Assistant {MIN_HA}**" in compat
    assert f"Home Assistant {MIN_HA}" in readme
    assert "docs/compatibility.md" in readme
    pyproject = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'"pymodbus>=([\d.]+),<4"', pyproject)
    assert floor is not None
    assert f"{floor.group(1)} (modbus)" in compat, "the minimum's pin is the pymodbus floor"


def test_release_workflow_publishes_what_the_release_check_built() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    steps = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    text = "\n".join(steps)
    assert "./scripts/test" in text  # which runs scripts/release_check.py
    assert "scripts/release_artifacts.py release" in text
    assert "release/hacs/bacs.zip" in text and "release/dist/*.whl" in text
    assert "release/dist/*.tar.gz" in text
    assert workflow["jobs"]["github-release"]["needs"] == ["build", "pypi"], "PyPI first"
    assert "scripts/release_check.py" in (ROOT / "scripts" / "test").read_text()


def test_brand_icon() -> None:
    with Image.open(INTEGRATION / "brand" / "icon.png") as img:
        assert img.format == "PNG"
        assert img.size == (256, 256)
        assert img.mode == "RGBA"


# -- translations (hassfest translations plugin) -----------------------------------------
def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        out = []
        for k, v in node.items():
            out += _walk(v, f"{path}.{k}" if path else k)
        return out
    return [(path, node)]


def test_translations_well_formed() -> None:
    for path, value in _walk(STRINGS):
        assert isinstance(value, str) and value, path
        assert value == value.strip(), f"{path}: leading or trailing space"
        assert "<" not in value and "http" not in value, f"{path}: no HTML or URLs"
        assert not re.search(r"'\{[^}]*\}'", value), f"{path}: quoted placeholder"
        for _, field, _, _ in string.Formatter().parse(value):
            if field is not None:
                assert field.isidentifier(), f"{path}: placeholder {field!r}"
        for part in path.split("."):
            if not part.startswith("{"):
                assert KEY.match(part) or part.isdigit(), f"{path}: key {part!r}"

    def check_steps(steps: dict[str, Any], where: str) -> None:
        for step_id, step in steps.items():
            assert set(step.get("data_description", {})) <= set(
                step.get("data", {})
            ), f"{where}.{step_id}: data_description without data"
            for sec_id, sec in step.get("sections", {}).items():
                assert set(sec.get("data_description", {})) <= set(sec["data"]), sec_id

    check_steps(STRINGS["config"]["step"], "config")
    check_steps(STRINGS["options"]["step"], "options")
    for issue_id, issue in STRINGS["issues"].items():
        assert "title" in issue and ("description" in issue or "fix_flow" in issue), issue_id


def _quoted(source: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, source))


def test_flow_steps_errors_and_aborts_are_translated() -> None:
    flow = FLOWS
    config = STRINGS["config"]
    steps = _quoted(flow, r"async_step_(\w+)\(") - {"init"}
    for step in steps - {"usb"}:
        assert step in config["step"], f"config step {step}"
    assert set(config["step"]["user"]["menu_options"]) == {
        "serial",
        "tcp",
        "generex",
        "remote",
        "simulator",
    }
    for error in _quoted(flow, r'errors\["base"\] = "(\w+)"'):
        assert error in config["error"] or error in STRINGS["options"]["error"], error
    for reason in ("already_configured", "already_in_progress", "reconfigure_successful"):
        assert reason in config["abort"]
    assert {"init", "generex"} <= set(STRINGS["options"]["step"])
    assert set(STRINGS["options"]["step"]["generex"]["sections"]) == {"thresholds", "ups"}
    assert set(STRINGS["options"]["step"]["init"]["sections"]) == {
        "equalization",
        "thresholds",
        "trip",
        "ups",
    }
    repair = STRINGS["issues"]["port_missing"]["fix_flow"]
    assert "select_port" in repair["step"]
    assert "cannot_connect" in repair["error"]
    assert "entry_removed" in repair["abort"]


def test_exceptions_and_issues_are_translated() -> None:
    keys: set[str] = set()
    for text in SOURCES.values():
        keys |= _quoted(text, r'translation_key="(\w+)"')
    issue_keys = {"port_missing", "devices_not_answering"}
    entity_keys = {
        k for platform in STRINGS["entity"].values() for k in platform
    }  # descriptions also use translation_key=
    for key in keys - issue_keys - entity_keys - set(STRINGS["selector"]):
        assert key in STRINGS["exceptions"], f"exception {key}"
        assert "message" in STRINGS["exceptions"][key]
    assert issue_keys <= set(STRINGS["issues"])


def test_selector_translations() -> None:
    keys = _quoted(FLOWS, r'dropdown\(\s*(?:\[[^\]]*\]|\w+\([^()]*\)|\w+),\s*"(\w+)"')
    assert keys == set(STRINGS["selector"])  # each translated, each translation used
    for key in keys:
        assert key in STRINGS["selector"], key
        for option in STRINGS["selector"][key]["options"]:
            assert KEY.match(option)


def test_trigger_types_are_translated() -> None:
    assert set(STRINGS["device_automation"]["trigger_type"]) >= TRIGGER_TYPES


async def test_every_entity_translation_exists(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Every entity's translation_key (and every enum state) has its text, and its icon."""
    await cycle(hass, loaded_entry)
    entries = er.async_entries_for_config_entry(er.async_get(hass), loaded_entry.entry_id)
    assert len(entries) > 100
    seen = set()
    for entry in entries:
        if entry.translation_key is None:
            assert entry.original_device_class is not None, entry.entity_id  # named by class
            continue
        platform = entry.domain
        seen.add((platform, entry.translation_key))
        text = STRINGS["entity"][platform][entry.translation_key]
        assert "name" in text
        if entry.original_device_class == "enum":
            state = hass.states.get(entry.entity_id)
            assert set(state.attributes["options"]) == set(text["state"])
        assert entry.translation_key in ICONS["entity"][platform], entry.entity_id
    # Nothing translated that no entity uses (block_voltages etc. are created disabled); a
    # GENEREX web manager's general flags are checked in test_generex.py.
    declared = {(p, k) for p, keys in STRINGS["entity"].items() for k in keys}
    assert {(p, k) for p, k in declared if not k.startswith("generex_")} == seen


# -- services (hassfest services plugin) -------------------------------------------------
async def test_services_yaml_matches_registered_actions(hass: HomeAssistant) -> None:
    from homeassistant.setup import async_setup_component

    assert await async_setup_component(hass, DOMAIN, {})
    registered = set(hass.services.async_services_for_domain(DOMAIN))
    assert registered == set(SERVICES)
    assert registered == set(STRINGS["services"])
    for name, spec in SERVICES.items():
        fields = set(spec.get("fields", {}))
        assert fields == set(STRINGS["services"][name].get("fields", {})), name
        text = STRINGS["services"][name]
        assert text["name"] and text["description"]
        assert ICONS["services"][name]["service"].startswith("mdi:")


# -- icons (hassfest icons plugin) ---------------------------------------------------------
def test_icons_json() -> None:
    assert set(ICONS) <= {"entity", "services"}
    for platform, keys in ICONS["entity"].items():
        for key, icon in keys.items():
            assert key in STRINGS["entity"][platform], f"icon for unknown {platform}.{key}"
            assert icon["default"].startswith("mdi:")
            for state, state_icon in icon.get("state", {}).items():
                assert state_icon.startswith("mdi:")
                assert state_icon != icon["default"], f"{platform}.{key}.{state}"


# -- quality scale ---------------------------------------------------------------------------
RULES = {
    "bronze": "action-setup appropriate-polling brands common-modules config-flow-test-coverage "
    "config-flow dependency-transparency docs-actions docs-high-level-description "
    "docs-installation-instructions docs-removal-instructions docs-triggers docs-conditions "
    "entity-event-setup entity-unique-id has-entity-name runtime-data test-before-configure "
    "test-before-setup unique-config-entry",
    "silver": "action-exceptions config-entry-unloading docs-configuration-parameters "
    "docs-installation-parameters entity-unavailable integration-owner log-when-unavailable "
    "parallel-updates reauthentication-flow test-coverage",
    "gold": "devices diagnostics discovery-update-info discovery docs-data-update docs-examples "
    "docs-known-limitations docs-supported-devices docs-supported-functions "
    "docs-troubleshooting docs-use-cases dynamic-devices entity-category entity-device-class "
    "entity-disabled-by-default entity-translations exception-translations "
    "icon-translations reconfiguration-flow repair-issues stale-devices",
    "platinum": "async-dependency inject-websession strict-typing",
}


def test_quality_scale_yaml() -> None:
    rules = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())["rules"]
    known = {r for tier in RULES.values() for r in tier.split()}
    assert len(known) == 54
    assert set(rules) == known
    for rule, value in rules.items():
        status = value if isinstance(value, str) else value["status"]
        assert status in ("done", "exempt", "todo"), rule
        if isinstance(value, dict) or status == "exempt":
            assert isinstance(value, dict) and value["comment"], f"{rule}: a comment is required"


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_quality_scale_cites_files_that_exist() -> None:
    """Every file (and README section) a quality_scale.yaml comment cites is there."""
    text = (INTEGRATION / "quality_scale.yaml").read_text()
    cited = re.findall(r"((?:[\w.-]+/)*[\w.-]+\.(?:md|py|png|yaml|yml|json))(#[\w-]+)?", text)
    assert cited, "the docs rules cite where they are documented"
    for path, anchor in cited:
        target = ROOT / path
        assert target.is_file(), f"quality_scale.yaml cites {path}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M)
            assert anchor[1:] in {_github_anchor(h) for h in headings}, f"{path}{anchor}"
    rules = yaml.safe_load(text)["rules"]
    # Not on PyPI yet: dependency-transparency stays "todo" until the first release.
    assert rules["dependency-transparency"]["status"] == "todo"


@pytest.mark.parametrize("platform", ["binary_sensor", "button", "number", "sensor", "switch"])
def test_parallel_updates_everywhere(platform: str) -> None:
    assert re.search(r"^PARALLEL_UPDATES = \d", SOURCES[f"{platform}.py"], re.M)


def test_actions_registered_in_async_setup_only() -> None:
    for name, text in SOURCES.items():
        tree = ast.parse(text)
        for fn in ast.walk(tree):
            if isinstance(fn, ast.AsyncFunctionDef) and fn.name == "async_setup_entry":
                assert "async_register" not in ast.unparse(fn), name
    assert "async_setup_services(hass)" in SOURCES["__init__.py"]
    assert "CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)" in SOURCES["__init__.py"]
