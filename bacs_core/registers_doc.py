"""Renders the register table as Markdown for docs/protocol.md (checked by a test)."""

from __future__ import annotations

from . import registers as reg
from .model import DeviceKind, Status

BEGIN = "<!-- BEGIN GENERATED REGISTER MAP: python -m bacs_core.registers_doc -->"
END = "<!-- END GENERATED REGISTER MAP -->"


def render_markdown() -> str:
    lines = [BEGIN, ""]
    for block in reg.all_blocks():
        lines += [
            f"### `{block.name}` — 0x{block.start:04X}, {block.count} registers",
            "",
            block.description,
            "",
            "| address | name | type | scale | unit | access | description |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in block.registers:
            bounds = ""
            if r.minimum is not None or r.maximum is not None:
                bounds = (
                    f" (accepted {r.minimum:g} … {r.maximum:g})" if r.maximum is not None else ""
                )
            lines.append(
                f"| 0x{r.address:04X} | `{r.name}` | {r.type.value} | {r.scale:g} | {r.unit} | "
                f"{r.access.value} | {r.description}{bounds} |"
            )
        lines.append("")
    lines += ["### Device type codes", "", "| code | kind | family |", "|---|---|---|"]
    lines += [f"| 0x{k.value:04X} | {k.name} | {k.family.value} |" for k in DeviceKind]
    lines += ["", "### Status bits", "", "| bit | name |", "|---|---|"]
    lines += [f"| {s.value.bit_length() - 1} | {s.name} |" for s in Status]
    lines += ["", END]
    return "\n".join(lines)


def generated_section(text: str) -> str:
    start = text.index(BEGIN)
    end = text.index(END) + len(END)
    return text[start:end]


if __name__ == "__main__":
    print(render_markdown())
