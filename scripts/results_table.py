"""Rewrite the README's "Paper vs slotattn" table from the committed rows in benchmarks/results/reproduce/.

    python scripts/results_table.py            # after `slotattn reproduce ... --out benchmarks/results/reproduce`

tests/test_reproduce.py checks that the README's table is what this writes.
"""

import sys
from pathlib import Path

from slotattn.reproduce import load_rows, results_table

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results-table: begin (scripts/results_table.py) -->", "<!-- results-table: end -->"


def render(readme: str) -> str:
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{results_table(load_rows(ROOT / 'benchmarks' / 'results' / 'reproduce'))}\n{END}{tail}"


if __name__ == "__main__":
    path = ROOT / "README.md"
    path.write_text(render(path.read_text()))
    print(f"rewrote the results table in {path}")
    sys.exit(0)
