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
        assert all((ROOT / t).is_file() for t in target.tests), target


def test_tests_left_out_of_a_target_exist_in_its_own_test_files() -> None:
    """A renamed simulator test must not silently join the mutant runs again (or vanish)."""
    for target in bench().TARGETS:
        for node in target.left_out:
            path, _, name = node.partition("::")
            assert path in target.tests, node
            assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), node


SOURCE = """\
class Detector:
    def update(self, x):
        a = 1
        if x > 2:
            a += 1
        if x > 2:
            a += 1
        return a


def helper(y):
    return y + 1
"""


def test_a_mutant_is_placed_on_its_line_and_function() -> None:
    b = bench()
    lines, ranges = SOURCE.splitlines(), b._function_ranges(SOURCE)
    assert ranges == {"xǁDetectorǁupdate": (2, 8), "x_helper": (11, 12)}
    # mutmut diffs the whole function; the hunk counts from its first line. The changed
    # line occurs twice: the hunk says which.
    diff = "\n".join(
        [
            "--- f.py",
            "+++ f.py",
            "@@ -3,5 +3,5 @@",
            "     a = 1",
            "     if x > 2:",
            "         a += 1",
            "     if x > 2:",
            "-        a += 1",
            "+        a -= 1",
            "     return a",
        ]
    )
    m = b._parse_mutant("pkg.f.xǁDetectorǁupdate__mutmut_7", "survived", diff, lines, ranges)
    assert (m.line, m.function, m.original, m.mutated) == (7, "Detector.update", "a += 1", "a -= 1")
    diff = (
        "--- f.py\n+++ f.py\n@@ -1,2 +1,2 @@\n def helper(y):\n-    return y + 1\n+    return y - 1"
    )
    m = b._parse_mutant("pkg.f.x_helper__mutmut_1", "killed", diff, lines, ranges)
    assert (m.line, m.function) == (12, "helper")


def test_an_equivalent_matches_only_its_own_place_and_change() -> None:
    b = bench()
    e = b.Equivalent("f.py", "Detector.update", 7, "a += 1", "a -= 1", "argued")
    at = [5, 7]  # the lines of Detector.update that hold `a += 1`

    def mutant(line: int, original: str = "a += 1", mutated: str = "a -= 1", f: str = "") -> object:
        return b.Mutant("n", "survived", line, original, mutated, f or "Detector.update")

    assert e.matches("f.py", mutant(7, "a  += 1"), at)  # whitespace does not matter
    assert not e.matches("f.py", mutant(5), at)  # the same code two lines up is another place
    assert e.matches("f.py", mutant(9), [3, 9])  # both moved by two lines: still this one
    assert not e.matches("f.py", mutant(12), [5, 12])  # moved too far: stale, argue again
    assert not e.matches("g.py", mutant(7), at)
    assert not e.matches("f.py", mutant(7, mutated="a = 1"), at)
    assert not e.matches("f.py", mutant(7, f="helper"), at)
    result = b.FileResult(
        b.TARGETS[0], lines=SOURCE.splitlines(), ranges=b._function_ranges(SOURCE)
    )
    assert result.occurrences(mutant(7)) == [5, 7]
    assert result.occurrences(mutant(12, "return y + 1", "return y - 1", "helper")) == [12]
