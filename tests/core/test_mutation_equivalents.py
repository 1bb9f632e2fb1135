"""The equivalent mutants the mutation bench excludes are each argued, and docs/testing.md
shows exactly the list the bench reads."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "testing.md"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_mutation", ROOT / "scripts" / "bench_mutation.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_mutation", module)
    spec.loader.exec_module(module)
    return module


def test_every_equivalent_is_argued_and_names_a_target() -> None:
    b = bench()
    targets = {t.file for t in b.TARGETS}
    equivalents = b.load_equivalents()
    assert equivalents
    for e in equivalents:
        assert e.file in targets, e
        assert e.line > 0, e
        assert e.original.strip() and e.mutated.strip(), e
        assert e.original != e.mutated, e
        assert len(e.reason) > 20, e


def test_docs_show_the_equivalents_the_bench_reads() -> None:
    b = bench()
    text = DOC.read_text(encoding="utf-8")
    start, end = "<!-- equivalents:start -->\n", "<!-- equivalents:end -->"
    shown = text[text.index(start) + len(start) : text.index(end)]
    assert shown == b.equivalents_table(
        b.load_equivalents()
    ), "docs/testing.md is out of date: python scripts/bench_mutation.py --equivalents-table"


def test_every_target_maps_to_test_files_that_exist() -> None:
    for target in bench().TARGETS:
        assert any((ROOT / t).is_file() for t in target.tests), target
