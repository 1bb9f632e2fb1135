"""The distribution's metadata agrees with the code (HA shows bacs_core.__version__)."""

import tomllib
from pathlib import Path

import bacs_core


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert bacs_core.__version__ == pyproject["project"]["version"]
