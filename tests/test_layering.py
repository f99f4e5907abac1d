"""Imports point one way, and the repository is self-contained.

Layers, bottom up (each part may import only the parts listed for it in ALLOWED, plus itself):

    leaves        shapes, config, clevr_layout (CLEVR's 19-number vector), protowire (protobuf wire format + CRC32C),
                  paper (the paper's reported numbers)
    blocks        nn <- models;  matching <- losses;  metrics;  viz;  data
    task          tasks (loss, metrics, figures of each task)
    machinery     training (engine, state, optimizer, schedule, checkpoint, runlog, distributed)
    loading       pretrained, tf_import
    run layer     run (train / evaluate / visualize / export / generate as functions), report
    front ends    studies, reproduce, cli, __main__; the package root re-exports the public API

Every import form counts: `import slotattn.x`, `from slotattn.x import y`, `from slotattn import x`, relative imports,
and imports inside functions. There is no import cycle between modules, and every part has a rule.
"""

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "slotattn"

LEAVES = {"shapes", "config", "clevr_layout", "protowire", "paper"}
# For each part (a top-level module or package of slotattn), the other parts it may import.
ALLOWED: dict[str, set[str]] = {
    "shapes": set(),
    "config": set(),
    "clevr_layout": set(),
    "protowire": set(),
    "paper": set(),
    "nn": {"shapes"},
    "models": {"nn", "shapes", "config"},
    "matching": {"shapes"},
    "losses": {"matching", "shapes"},
    "metrics": {"shapes", "clevr_layout"},
    "viz": {"shapes"},
    "data": {"config", "shapes", "clevr_layout", "protowire"},
    "tasks": {"models", "losses", "metrics", "viz", "data", "clevr_layout", "shapes"},
    "training": {"config", "shapes", "data", "tasks"},
    "pretrained": {"config", "models", "training"},
    "tf_import": {"config", "models", "nn", "training", "protowire"},
    "report": {"config", "paper", "viz"},
    "run": {"config", "data", "models", "pretrained", "tasks", "training"},
    "studies": {"config", "data", "pretrained", "run", "tasks", "training"},
    "reproduce": {"config", "paper", "run", "training"},
    "cli": {"config", "data", "report", "reproduce", "run", "studies", "tf_import", "training"},
    "__main__": {"cli"},
    "__init__": {"config", "models", "nn", "pretrained", "run"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def part_of(module: str) -> str:
    names = module.split(".")
    return names[1] if len(names) > 1 else "__init__"


def imported_modules(module: str) -> set[str]:
    """The slotattn modules `module` imports, in any form (a name from a package counts as the package)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    return imports_in(path.read_text(), package) - {module}


def imports_in(source: str, package: str) -> set[str]:
    """The slotattn modules that Python `source` in `package` imports, at module level or inside any function."""
    found = set()
    for node in ast.walk(ast.parse(source)):  # every node, so imports inside functions and classes count too
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "slotattn"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "slotattn":
                continue
            for alias in node.names:  # `from slotattn import cli` imports the module slotattn.cli
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in MODULES else source)
    return found


GRAPH = {module: imported_modules(module) for module in MODULES}


def test_the_import_parser_sees_every_form(tmp_path):
    assert "slotattn.cli" in GRAPH["slotattn.__main__"]  # from slotattn.cli import main / from slotattn import cli
    assert "slotattn.run" in GRAPH["slotattn.studies"]  # `from slotattn import run`


def test_the_import_parser_counts_imports_inside_functions():
    source = ("class Model:\n    def load(self):\n        from slotattn.pretrained import from_pretrained\n\n"
              "def draw():\n    import slotattn.viz\n    from .. import run\n")
    assert imports_in(source, "slotattn.models") == {"slotattn.pretrained", "slotattn.viz", "slotattn.run"}


def test_every_part_has_a_rule():
    parts = {part_of(m) for m in MODULES}
    assert parts == set(ALLOWED), f"parts without a rule: {parts - set(ALLOWED)}; rules without a part: " \
                                  f"{set(ALLOWED) - parts}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_one_way(module):
    part = part_of(module)
    bad = sorted(f"{target} ({part_of(target)})" for target in GRAPH[module]
                 if part_of(target) not in ALLOWED[part] | {part})
    assert not bad, f"{module} ({part}) may import only {sorted(ALLOWED[part])}, but imports {bad}"


def test_leaves_import_nothing_from_slotattn():
    for module in MODULES:
        if part_of(module) in LEAVES:
            assert not GRAPH[module], f"{module} is a leaf but imports {sorted(GRAPH[module])}"


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every back edge of a depth-first search, as the chain of modules it closes."""
    state, cycles = defaultdict(int), []

    def visit(node, stack):
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state[target] == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif state[target] == 0:
                visit(target, stack + [target])
        state[node] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module, [module])
    return cycles


def test_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycles():
    """No chain of imports, those inside functions included, leads back to where it started."""
    cycles = find_cycles(GRAPH)
    assert not cycles, f"import cycles: {[' -> '.join(c) for c in cycles]}"


def test_no_grab_bag_utils_module():
    assert not list(SRC.rglob("utils.py"))


# --- functions a reader can hold in mind, and none that pytest would collect -------------------------------------

MAX_FUNCTION_LINES = 100


def functions_in(source: str) -> list[tuple[str, int]]:
    """(name, lines from the `def` line to the last line, docstring included) of every function in `source`."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_function_lengths_are_counted_from_def_to_last_line():
    source = 'def outer():\n    """doc"""\n\n    def inner():\n        pass\n    return inner\n'
    assert sorted(functions_in(source)) == [("inner", 2), ("outer", 6)]


def test_no_function_is_longer_than_100_lines():
    long = sorted((lines, f"{path.relative_to(SRC)}: {name}") for path in MODULES.values()
                  for name, lines in functions_in(path.read_text()) if lines > MAX_FUNCTION_LINES)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them): {long}"


def test_no_library_name_looks_like_a_test_to_pytest():
    # pytest collects test_* functions and Test* classes from a test module that imports them.
    found = [f"{path.relative_to(SRC)}: {node.name}" for path in MODULES.values()
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
             or isinstance(node, ast.ClassDef) and node.name.startswith("Test")]
    assert not found, f"library names pytest would collect as tests: {found}"


# --- self-contained: a clone in an empty folder has everything the code and the tests read ----------------------

ROOT = SRC.parents[1]
# The folder the development machines keep beside the repository. It is named here only to forbid it: the patterns
# and examples below are built from this one name, so that no line of this file is itself a path to it.
DEV_FOLDER = "shared"
# Places that ship or run the code; none may reach outside the repository (as the dev machines' folder above).
SCANNED = ["src", "tests", "benchmarks", "reproduction", "scripts", "configs", ".ci", "Makefile", "pyproject.toml"]
OUTSIDE = [
    re.compile(re.escape(f"../{DEV_FOLDER}")),
    re.compile(re.escape(f"{DEV_FOLDER}/data")),
    re.compile("clevr_dataset_gen"),
    re.compile(f"[\"']{DEV_FOLDER}[\"']"),  # a path component, as in parents[2] / "<folder>"
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
        f'SHARED = Path(__file__).resolve().parents[2] / "{DEV_FOLDER}" / "data" / "clevr_dataset_gen"',
        f"cp ../{DEV_FOLDER}/data/properties.json tests/",
        f"json.load(open('/work/{DEV_FOLDER}/data/x.json'))",
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


# --- the folders around the library: run with `python -m`, importing by package name, never by editing sys.path ----

AROUND = ("benchmarks", "reproduction", "scripts")


def python_files(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((ROOT / f).rglob("*.py")) if "__pycache__" not in p.parts]


def top_level_imports(path: Path) -> set[str]:
    """The top-level names of the absolute imports of `path`, in any form and anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_code_edits_sys_path():
    pattern = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend)|\+?=)")
    assert pattern.search("sys.path.insert(0, here)") and pattern.search("sys.path += [here]")
    files = [p for p in python_files("src", "tests", *AROUND) if p.resolve() != Path(__file__).resolve()]  # examples
    edits = [str(p.relative_to(ROOT)) for p in files if pattern.search(p.read_text())]
    assert not edits, f"edit sys.path (run the script with python -m from the repository root instead): {edits}"


def test_the_library_imports_nothing_around_it_and_benchmarks_not_reproduction():
    assert {"data_throughput", "official_tf"} <= {p.stem for p in python_files("benchmarks")}
    for path in python_files("src"):
        assert not top_level_imports(path) & set(AROUND), path
    for path in python_files("benchmarks", "scripts"):
        assert "reproduction" not in top_level_imports(path), path
