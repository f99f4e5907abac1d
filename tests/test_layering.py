"""Imports point one way: nn <- models <- {tasks, engine} <- cli; data, metrics and viz import none of that chain."""

import ast
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
