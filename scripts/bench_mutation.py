"""./scripts/bench mutation [--json] [--only NAME ...] [--survivors]: would the tests notice?

Mutation testing of the safety path with mutmut (docs/testing.md says why this tool): every
single-point change it knows (flipped comparisons, negated conditions, changed constants and
strings, dropped arguments, assignments set to None) is made to one function at a time, and
the tests that exercise that function run against it. A mutant the tests fail on is killed;
one they pass is a gap, unless it is listed as equivalent (it cannot change behaviour) in
tests/mutation_equivalents.toml, each entry with its argument.

Each target file is mutated against only the test files mapped to it in TARGETS, in a
scratch copy of the project, so the bench never touches the work tree. mutmut runs in its
own environment, .venv-mutation, built here from requirements/mutation.txt (its click
requirement conflicts with the demo's pins in .venv). Output: one JSON object whose `files`
give per file mutants, killed, equivalent and kill_rate = killed / (mutants - equivalent).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-mutation"
REQUIREMENTS = ROOT / "requirements" / "mutation.txt"
EQUIVALENTS = ROOT / "tests" / "mutation_equivalents.toml"


@dataclass(frozen=True)
class Target:
    name: str
    file: str
    tests: tuple[str, ...]  # test files that exercise it; a new or renamed one goes here
    target: float  # kill rate the issue asks for
    # Tests not run against the mutants (pytest node ids), each with its reason beside it:
    # whole-room simulations that take seconds each, whose rules pure tests pin, and tests
    # of files outside the package the scratch copy holds.
    left_out: tuple[str, ...] = ()


SAFETY_TESTS = (
    "tests/core/test_safety_edges.py",
    "tests/core/test_safety_latch.py",
    "tests/core/test_trip_strings.py",
    "tests/core/test_trip_events.py",
    "tests/core/test_trip_latch.py",
    "tests/core/test_trip_breakers.py",
    "tests/core/test_manager_rules.py",
)

# It loads scripts/demo.py (not in the scratch copy) and tests the demo's control channel.
DEMO = ("tests/core/test_trip_strings.py::test_the_demo_clears_a_fault_over_its_control_channel",)

TARGETS = (
    Target(
        "runaway",
        "bacs_core/manager/runaway.py",
        ("tests/core/test_runaway_edges.py", "tests/core/test_manager_rules.py"),
        0.90,
    ),
    Target(
        "alarms",
        "bacs_core/manager/alarms.py",
        (
            "tests/core/test_alarm_edges.py",
            "tests/core/test_alarm_engine_edges.py",
            "tests/core/test_alarm_rules.py",
            "tests/core/test_alarm_engine.py",
            "tests/core/test_manager_rules.py",
        ),
        0.85,
        # Hours of a simulated room being equalized (18 s a run, 2 h for 1000 mutants): the
        # grace they show is pinned by the pure deviation-grace tests of the same file.
        left_out=(
            "tests/core/test_alarm_engine.py::"
            "test_on_the_simulator_a_healthy_string_being_equalized_does_not_alarm",
            "tests/core/test_alarm_engine.py::"
            "test_on_the_simulator_without_the_grace_the_same_string_alarms_in_minutes",
        ),
    ),
    # The manager's own safety alarms (trip state unknown, trip path, trip failed, state not
    # saved, unwatched and frozen blocks): rules that turn state into alarm conditions, judged
    # with the alarm engine that raises them. The trip decision itself is in safety.py.
    Target(
        "conditions",
        "bacs_core/manager/conditions.py",
        (
            "tests/core/test_conditions_edges.py",
            "tests/core/test_safety_latch.py",
            "tests/core/test_trip_strings.py",
        ),
        0.85,
        DEMO,
    ),
    Target(
        "storage",
        "bacs_core/manager/storage.py",
        (
            "tests/core/test_storage_edges.py",
            "tests/core/test_safety_latch.py",
            "tests/core/test_manager_rules.py",
        ),
        0.85,
    ),
    # The state file's format: versioned, validated, so a damaged file never clears the latch.
    Target(
        "persisted",
        "bacs_core/manager/persisted.py",
        (
            "tests/core/test_persisted_edges.py",
            "tests/core/test_storage_edges.py",
            "tests/core/test_safety_latch.py",
            "tests/core/test_trip_strings.py",
        ),
        0.85,
        DEMO,
    ),
    Target(
        "equalization",
        "bacs_core/manager/equalization.py",
        ("tests/core/test_equalization.py", "tests/core/test_equalization_edges.py"),
        0.75,
    ),
    Target(
        "equalization_reach",
        "bacs_core/manager/equalization_reach.py",
        (
            "tests/core/test_equalization_reach_edges.py",
            "tests/core/test_equalization.py",
            "tests/core/test_equalization_edges.py",
        ),
        0.75,
    ),
    # What equalization identifies about the plant (b, κ, the lag), from its own moves.
    Target(
        "plant_estimate",
        "bacs_core/manager/plant_estimate.py",
        ("tests/core/test_plant_estimate.py", "tests/core/test_equalization.py"),
        0.75,
    ),
    # The trip state machine, since the trip became per string: the engine (safety.py), each
    # string's latch (latch.py) and the breakers it drives and reads back (breakers.py).
    Target("safety", "bacs_core/manager/safety.py", SAFETY_TESTS, 0.90, DEMO),
    Target("latch", "bacs_core/manager/latch.py", SAFETY_TESTS, 0.90, DEMO),
    Target("breakers", "bacs_core/manager/breakers.py", SAFETY_TESTS, 0.90, DEMO),
)

# Statuses (mutmut's words) that mean the tests noticed the mutant.
DETECTED = {"killed", "timeout", "segfault"}

# Runs inside .venv-mutation in the scratch directory: every mutant of one file, its status
# and mutmut's own diff of the function it lives in.
_DUMP = """
import json, sys
from pathlib import Path
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
path = Path(sys.argv[1])
data = SourceFileMutationData(path=path)
data.load()
print(json.dumps([
    {"name": k, "status": status_by_exit_code[v], "diff": get_diff_for_mutant(k, path=path)}
    for k, v in data.exit_code_by_key.items()
]))
"""


@dataclass
class Mutant:
    name: str
    status: str
    line: int | None
    original: str
    mutated: str
    function: str  # Class.method or function


LINE_SLACK = 3  # an entry still matches when its code moved this many lines


@dataclass
class Equivalent:
    file: str
    function: str
    line: int
    original: str
    mutated: str
    reason: str
    matched: int = 0

    def matches(self, file: str, m: Mutant, occurrences: list[int]) -> bool:
        """Same change at the same place: file, function, and of the lines of that function
        that hold the original code (``occurrences``), the one nearest to ``line``, at most
        LINE_SLACK away."""
        if not (
            self.file == file
            and self.function == m.function
            and m.line is not None
            and _norm(self.original) == _norm(m.original)
            and _norm(self.mutated) == _norm(m.mutated)
        ):
            return False
        nearest = min(occurrences, key=lambda n: abs(n - self.line), default=None)
        return nearest == m.line and abs(nearest - self.line) <= LINE_SLACK


@dataclass
class FileResult:
    target: Target
    mutants: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)  # the source as it was mutated
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)

    def occurrences(self, m: Mutant) -> list[int]:
        """Lines of the mutant's function that hold its original code's first line."""
        key = "xǁ" + m.function.replace(".", "ǁ") if "." in m.function else f"x_{m.function}"
        if key not in self.ranges or not m.original:
            return []
        first, last = self.ranges[key]
        want = _norm(m.original.splitlines()[0])
        return [n for n in range(first, last + 1) if _norm(self.lines[n - 1]) == want]


def _norm(code: str) -> str:
    return " ".join(code.split())


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def ensure_venv() -> Path:
    """(Re)build .venv-mutation when requirements/mutation.txt or core.txt changed."""
    inputs = REQUIREMENTS.read_bytes() + (ROOT / "requirements" / "core.txt").read_bytes()
    base = getattr(sys, "_base_executable", sys.executable)
    want = hashlib.sha256(inputs + base.encode()).hexdigest()[:16]
    stamp = VENV / ".bacs-stamp"
    python = VENV / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return python
    log(f">> preparing {VENV} from {REQUIREMENTS.relative_to(ROOT)}")
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "-r", str(REQUIREMENTS)],
        check=True,
        cwd=ROOT,
    )
    stamp.write_text(want + "\n")
    return python


def load_equivalents() -> list[Equivalent]:
    if not EQUIVALENTS.exists():
        return []
    data = tomllib.loads(EQUIVALENTS.read_text(encoding="utf-8"))
    out = []
    for entry in data.get("equivalent", []):
        out.append(
            Equivalent(
                entry["file"],
                entry["function"],
                int(entry["line"]),
                entry["original"],
                entry["mutant"],
                entry["reason"],
            )
        )
    return out


def equivalents_table(equivalents: list[Equivalent]) -> str:
    """The Markdown table docs/testing.md shows between its equivalents markers."""

    def code(text: str) -> str:
        return "`" + _norm(text).replace("|", "\\|") + "`"

    rows = [
        "| where | original → mutant | why no input can tell them apart |",
        "|---|---|---|",
    ]
    for e in equivalents:
        where = f"`{e.file.removeprefix('bacs_core/')}:{e.line}` {e.function}"
        rows.append(f"| {where} | {code(e.original)} → {code(e.mutated)} | {e.reason} |")
    return "\n".join(rows) + "\n"


def _scratch(target: Target, tests: list[str]) -> Path:
    """A copy of the package, the mapped tests and the pytest configuration."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bacs-mutation-{target.name}-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "bacs_core", tmp / "bacs_core", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    for test in tests:
        folder = Path(test).parent
        (tmp / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / test, tmp / test)
        while folder != Path("."):  # conftest.py and __init__.py on the way down
            for helper in ("conftest.py", "__init__.py"):
                if (ROOT / folder / helper).exists():
                    shutil.copy2(ROOT / folder / helper, tmp / folder / helper)
            folder = folder.parent
    indent = "\n    "
    deselect = [f"{indent}--deselect={node}" for node in target.left_out]
    (tmp / "setup.cfg").write_text(
        "[mutmut]\n"
        "source_paths=bacs_core\n"
        f"only_mutate={target.file}\n"
        "use_git_change_detection=false\n"
        f"pytest_add_cli_args=-p no:cacheprovider{''.join(deselect)}\n"
        f"pytest_add_cli_args_test_selection={indent}{indent.join(tests)}\n",
        encoding="utf-8",
    )
    return tmp


def _function_ranges(source: str) -> dict[str, tuple[int, int]]:
    """mutmut's mangled function names (xǁClassǁmethod, x_function) -> first and last line."""
    ranges: dict[str, tuple[int, int]] = {}

    def visit(body: list[ast.stmt], cls: str | None) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                key = f"xǁ{cls}ǁ{node.name}" if cls else f"x_{node.name}"
                ranges[key] = (first, node.end_lineno or node.lineno)
            elif isinstance(node, ast.ClassDef) and cls is None:
                visit(node.body, node.name)

    visit(ast.parse(source).body, None)
    return ranges


def _parse_mutant(name: str, status: str, diff: str, lines: list[str], ranges: dict) -> Mutant:
    removed = [
        ln[1:] for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")
    ]
    added = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    original = "\n".join(x.strip() for x in removed)
    mutated = "\n".join(x.strip() for x in added)
    func = name.rsplit(".", 1)[-1].rsplit("__mutmut_", 1)[0]
    parts = func.split("ǁ")
    function = f"{parts[1]}.{parts[2]}" if len(parts) == 3 else func.removeprefix("x_")
    line = None
    hunk = re.search(r"^@@ -(\d+)", diff, re.M)
    if removed and func in ranges:
        first, last = ranges[func]
        expected = first
        if hunk:  # the hunk counts from the function's first line
            body = diff.split("\n@@", 1)[-1].splitlines()[1:]
            offset = next(i for i, ln in enumerate(body) if ln.startswith("-"))
            expected = first + int(hunk.group(1)) - 1 + offset
        want = removed[0].strip()
        candidates = [n for n in range(first, last + 1) if lines[n - 1].strip() == want]
        if candidates:
            line = min(candidates, key=lambda n: abs(n - expected))
    return Mutant(name, status, line, original, mutated, function)


def run_target(python: Path, target: Target, jobs: int) -> FileResult:
    tests = [t for t in target.tests if (ROOT / t).exists()]
    missing = sorted(set(target.tests) - set(tests))
    if missing:
        log(
            f"   {target.name}: no such test file (mapping in scripts/bench_mutation.py): {missing}"
        )
    if not tests:
        raise SystemExit(f"{target.name}: none of its test files exist: {target.tests}")
    tmp = _scratch(target, tests)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    mutmut = [str(python.parent / "mutmut"), "run", "--max-children", str(jobs)]
    started = time.monotonic()
    try:
        with open(tmp / "mutmut.log", "w", encoding="utf-8") as out:
            proc = subprocess.run(
                ["nice", "-n", "10", *mutmut],
                cwd=tmp,
                env=env,
                stdout=out,
                stderr=out,
                check=False,
            )
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            tail = (tmp / "mutmut.log").read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(f"mutmut failed on {target.file} ({proc.returncode}):\n{tail}")
        dump = subprocess.run(
            [str(python), "-c", _DUMP, target.file],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if not os.environ.get("BACS_KEEP_MUTANTS"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"   kept {tmp}")
    source = (ROOT / target.file).read_text(encoding="utf-8")
    lines, ranges = source.splitlines(), _function_ranges(source)
    result = FileResult(target, seconds=seconds, lines=lines, ranges=ranges)
    for item in json.loads(dump.stdout):
        result.mutants.append(
            _parse_mutant(item["name"], item["status"], item["diff"], lines, ranges)
        )
    return result


def summarise(result: FileResult, equivalents: list[Equivalent]) -> dict[str, object]:
    t = result.target
    killed = sum(m.status in DETECTED for m in result.mutants)
    survivors = []
    equivalent = 0
    for m in result.mutants:
        if m.status in DETECTED:
            continue
        # The same code can occur twice in a function: the entry nearest to it answers.
        occurrences = result.occurrences(m)
        candidates = [e for e in equivalents if e.matches(t.file, m, occurrences)]
        match = min(candidates, key=lambda e: abs(e.line - (m.line or 0)), default=None)
        if match is not None:
            match.matched += 1
            equivalent += 1
        else:
            survivors.append(m)
    judged = len(result.mutants) - equivalent
    return {
        "file": t.file,
        "mutants": len(result.mutants),
        "killed": killed,
        "equivalent": equivalent,
        "kill_rate": round(killed / judged, 3) if judged else None,
        "target": t.target,
        "not_covered": sum(m.status == "no tests" for m in result.mutants),
        "seconds": round(result.seconds, 1),
        "survivors": [
            {
                "line": m.line,
                "function": m.function,
                "original": m.original,
                "mutant": m.mutated,
                "status": m.status,
            }
            for m in sorted(survivors, key=lambda m: (m.line or 0, m.name))
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", action="append", choices=[t.name for t in TARGETS])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--survivors", action="store_true", help="list surviving mutants in the output"
    )
    parser.add_argument(
        "--equivalents-table",
        action="store_true",
        help="print the table of equivalent mutants for docs/testing.md and stop",
    )
    args = parser.parse_args()
    equivalents = load_equivalents()
    if args.equivalents_table:
        print(equivalents_table(equivalents), end="")
        return 0
    python = ensure_venv()
    started = time.monotonic()
    files = []
    for target in TARGETS:
        if args.only and target.name not in args.only:
            continue
        log(f">> {target.file}: mutating against {', '.join(target.tests)}")
        summary = summarise(run_target(python, target, args.jobs), equivalents)
        log(
            f"   {summary['killed']} of {summary['mutants']} killed, "
            f"{summary['equivalent']} equivalent: {summary['kill_rate']} in {summary['seconds']} s"
        )
        if not args.survivors:
            summary.pop("survivors")
        files.append(summary)
    checked = {f["file"] for f in files}
    # An equivalent that matched nothing: its line changed or the mutant is now killed.
    stale = [
        f"{e.file}:{e.line}: {e.original} -> {e.mutated}"
        for e in equivalents
        if e.file in checked and not e.matched
    ]
    result = {
        "tool": f"mutmut {_tool_version(python)}",
        "files": files,
        "seconds": round(time.monotonic() - started, 1),
        "stale_equivalents": stale,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for f in files:
            print(
                f"{f['file']}: {f['killed']}/{f['mutants']} killed, {f['equivalent']} equivalent,"
                f" kill rate {f['kill_rate']} (target {f['target']}), {f['seconds']} s"
            )
            for s in f.get("survivors", []):  # type: ignore[attr-defined]
                print(f"    line {s['line']} [{s['status']}]: {s['original']!r} -> {s['mutant']!r}")
        print(f"total {result['seconds']} s; stale equivalents: {stale or 'none'}")
    met = all(f["kill_rate"] is not None and f["kill_rate"] >= f["target"] for f in files)
    return 0 if met else 1


def _tool_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('mutmut'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
