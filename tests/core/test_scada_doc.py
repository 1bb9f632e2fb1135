"""docs/scada.md must show exactly what the CS141 map and the gateway block define."""

from __future__ import annotations

from pathlib import Path

from bacs_core.gateway import block as b
from bacs_core.generex import cs141_map as m
from bacs_core.generex.cs141_doc import generated_section, render_markdown

DOC = Path(__file__).parents[2] / "docs" / "scada.md"


def test_scada_doc_matches_the_map() -> None:
    assert (
        generated_section(DOC.read_text()) == render_markdown()
    ), "docs/scada.md is out of date: run python -m bacs_core.generex.cs141_doc"


def test_every_register_and_object_is_documented() -> None:
    text = DOC.read_text()
    names = [r.name for r in m.GENERAL_REGISTERS]
    names += [o.name for o in (*m.SETTINGS_OBJECTS, *m.MODULE_COLUMNS, *m.STRING_COLUMNS)]
    names += [f.name for f in (*b.HEADER_FIELDS, *b.STRING_FIELDS, *b.MODULE_FIELDS)]
    names += [flag.name for flag in m.GeneralFlag if flag.name]
    for name in names:
        assert f"`{name}`" in text, name
