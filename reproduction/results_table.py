"""The README's results table, "paper vs slotattn", from the committed rows in benchmarks/results/reproduce/.

    python -m reproduction.results_table            # rewrite the block between the README's markers
    python -m reproduction.results_table --check    # exit 1 if the block is not what the committed rows give

Short cells for a first reader; each row's JSON (`benchmarks/results/reproduce/ROW.json`) holds the rest: the held-out
data, every difference from the paper's recipe, the date and the full config.
"""

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from slotattn.reproduce import ROWS

ROOT = Path(__file__).resolve().parents[1]
ROWS_DIR = ROOT / "benchmarks" / "results" / "reproduce"
README = ROOT / "README.md"
BEGIN, END = "<!-- results-table: begin (python -m reproduction.results_table) -->", "<!-- results-table: end -->"
METRIC_NAMES = {"fg_ari": "FG-ARI", "ap@inf": "AP@inf"}
LEGEND = """\
Values in %; slotattn: the row's metric on held-out scenes ("generated": by slotattn's generators, not the paper's
test split), at the trained number of iterations. The paper trains 500k steps of batch 64 (set prediction: 150k of
512) on a GPU. "differs": the run's recipe is not the paper's; its JSON in `benchmarks/results/reproduce/` lists how.
† counts in the images and minutes of the weights the run continued from."""


def load_rows(directory: str | Path = ROWS_DIR) -> list[dict[str, Any]]:
    """The committed rows (`NAME.json` for each NAME of `ROWS`) in `directory`."""
    return [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json")) if p.stem in ROWS]


def cells(name: str, r: dict[str, Any] | None) -> list[str]:
    """The table's cells of row `name`; `r` is its committed JSON, None if not measured."""
    row = ROWS[name]
    paper = f"{METRIC_NAMES[row.metric]} {row.paper[0]} ± {row.paper[1]} ({row.source})"
    if r is None:
        return [name, paper, "not run", "", "", "needs a GPU"]
    planned = r["config"]["train"]["steps"]
    steps = f"{r['steps']:,} of {planned:,} steps" if r["steps"] < planned else f"{r['steps']:,} steps"
    images = f"{r['images_seen']:,}{'†' if r.get('started_from') else ''} ({steps})"
    recipe = f"differs (batch {r['config']['train']['batch_size']})" if r["overrides"] else "paper's"
    data = "generated" if r["data"].startswith("generated:") else "test"
    return [name, paper, f"{100 * r['value']:.1f} ({r['num_eval']} {data} scenes)", images, recipe,
            f"{short_device(r['device'])}, {r['precision']}, {r['minutes']:g} min"]


def short_device(device: str) -> str:
    """A device as the table names it: without trademark signs and the word "Processor"
    ("Intel(R) Xeon(R) Processor (1 thread)" -> "Intel Xeon (1 thread)")."""
    return re.sub(r"\(R\)|\(TM\)| Processor\b", "", device)


def results_table(rows: Iterable[dict[str, Any]]) -> str:
    """Every row of `ROWS` as a Markdown table line, measured (its JSON in `rows`) or not, and the legend."""
    measured = {r["row"]: r for r in rows}
    lines = ["| row | paper | slotattn | images (steps) | recipe | trained on, precision, time |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cells(name, measured.get(name))) + " |" for name in ROWS]
    legend = LEGEND
    if not_run := [name for name in ROWS if name not in measured]:
        legend += f" To run a row, e.g.:\n`slotattn reproduce {not_run[0]} --device cuda --out runs/reproduce`."
    return "\n".join(lines) + "\n\n" + legend


def render(readme: str, rows: Iterable[dict[str, Any]]) -> str:
    """`readme` with the block between the markers rewritten as the table of `rows`."""
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{results_table(rows)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the README's table; exit 1 if stale")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = render(text, load_rows())
    if args.check:
        if new != text:
            print(f"{README}: the results table is stale; run: python -m reproduction.results_table")
            return 1
        return 0
    README.write_text(new)
    print(f"rewrote the results table in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
