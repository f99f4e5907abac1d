"""Imports point one way: nn <- models <- {tasks, engine} <- cli; data, metrics and viz import none of that chain.

And the repository is self-contained: nothing in it reads files from outside it (a fresh clone has nothing beside it).
"""

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "slotattn"

# For each part, the slotattn parts it must not import.
FORBIDDEN = {
    "shapes": {"config", "nn", "models", "metrics", "data", "viz", "tasks", "engine", "cli", "checkpoint"},
    "config": {"nn", "models", "metrics", "data", "viz", "tasks", "engine", "cli", "checkpoint"},
    "nn": {"models", "metrics", "data", "viz", "tasks", "engine", "cli", "config"},
    "models": {"metrics", "data", "viz", "tasks", "engine", "cli"},
    "metrics": {"nn", "models", "data", "viz", "tasks", "engine", "cli"},
    "data": {"nn", "models", "metrics", "viz", "tasks", "engine", "cli"},
    "viz": {"nn", "models", "metrics", "data", "tasks", "engine", "cli"},
    "tasks": {"engine", "cli"},
    "schedule": {"nn", "models", "data", "tasks", "engine", "cli"},
    "checkpoint": {"nn", "models", "data", "tasks", "engine", "cli"},
    "runlog": {"nn", "models", "data", "tasks", "engine", "cli"},
    "engine": {"cli", "models"},
    "report": {"nn", "models", "data", "tasks", "engine", "cli"},
}


def part_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def slotattn_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("slotattn."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("slotattn.")}
    return found


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_imports(path):
    part = part_of(path)
    bad = slotattn_imports(path) & FORBIDDEN.get(part, set())
    assert not bad, f"{path.relative_to(SRC)} ({part}) imports {sorted(bad)}"


def test_no_grab_bag_utils_module():
    assert not list(SRC.rglob("utils.py"))


# --- self-contained: a clone in an empty folder has everything the code and the tests read ----------------------

ROOT = SRC.parents[1]
# Places that ship or run the code; none may reach outside the repository (as the dev machines' ../shared).
SCANNED = ["src", "tests", "benchmarks", "configs", ".ci", "Makefile", "pyproject.toml"]
OUTSIDE = [
    re.compile(re.escape("../shared")),
    re.compile(re.escape("shared/data")),
    re.compile("clevr_dataset_gen"),
    re.compile("[\"']shared[\"']"),  # a path component, as in parents[2] / "shared"
]


def references_outside(text: str) -> list[str]:
    """The lines of `text` that name a place outside the repository."""
    return [line.strip() for line in text.splitlines() if any(p.search(line) for p in OUTSIDE)]


def scanned_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p for p in candidates if "__pycache__" not in p.parts and ".egg-info" not in str(p)]
    # this file names the patterns and examples of them (test_the_scan_catches_the_old_shared_paths checks those)
    files = [p for p in files if p.resolve() != Path(__file__).resolve()]
    return files


def test_the_scan_catches_the_old_shared_paths():
    old = [
        'SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "clevr_dataset_gen"',
        "cp ../shared/data/properties.json tests/",
        "json.load(open('/work/shared/data/x.json'))",
    ]
    assert [len(references_outside(line)) for line in old] == [1, 1, 1]
    assert references_outside("weights shared by all slots\nshared = dict(a=1)") == []


def test_nothing_reads_files_outside_the_repository():
    files = scanned_files()
    assert len(files) > 50 and {"test_clevr.py", "run", "Makefile"} <= {p.name for p in files}
    found = {}
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:  # binary fixtures, checkpoints
            continue
        if hits := references_outside(text):
            found[str(path.relative_to(ROOT))] = hits
    assert not found, f"files that refer to places outside the repository: {found}"
