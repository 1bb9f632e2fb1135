"""docs/protocol.md must show exactly what registers.py defines."""

from __future__ import annotations

from pathlib import Path

from bacs_core.registers_doc import generated_section, render_markdown

DOC = Path(__file__).parents[2] / "docs" / "protocol.md"


def test_protocol_doc_matches_the_register_table() -> None:
    assert (
        generated_section(DOC.read_text()) == render_markdown()
    ), "docs/protocol.md is out of date: run python -m bacs_core.registers_doc"


def test_every_register_is_documented() -> None:
    text = DOC.read_text()
    from bacs_core import registers as reg

    for block in reg.all_blocks():
        for r in block.registers:
            assert f"`{r.name}`" in text
