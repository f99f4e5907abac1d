"""Rewrite a committed reproduction row from the newest checkpoint of its run, keeping what the row says about how
the run differs from the paper's recipe (`overrides`) and what it started from (`started_from`).

    python -m reproduction.update_row tetrominoes --run-dir runs/tetro_s0 [--overrides TEXT ...]
    python -m reproduction.results_table            # then the README's table

For a run trained by `slotattn reproduce` the row is written by that command; this is for runs trained otherwise
(a CPU recipe, a fine-tuning run) and continued since their row was written. A run that began before starts were
recorded (`run_dir/starts.jsonl`, written by every start since 2026-12-04) trained its first steps where the old
row says: those steps keep the old row's device and precision (kept in the row as `unrecorded`), and the recorded
starts follow them.
`--unrecorded DEVICE PRECISION` names them instead; `--overrides` replaces the row's list of differences from the
paper's recipe (when a continuation changed one, e.g. its precision).
"""

import argparse
import json
import sys

from reproduction.results_table import ROWS_DIR
from slotattn.reproduce import ROWS, write_row
from slotattn.training.runlog import read_starts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("row", choices=sorted(ROWS))
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--unrecorded", nargs=2, metavar=("DEVICE", "PRECISION"),
                        help="where the steps before the run's first recorded start trained (default: the old row's)")
    parser.add_argument("--overrides", nargs="+", help="the row's differences from the paper's recipe (default: kept)")
    args = parser.parse_args(argv)
    path = ROWS_DIR / f"{args.row}.json"
    if not path.exists():
        sys.exit(f"no committed row {path}: write the first one with slotattn.reproduce.write_row (its overrides)")
    old = json.loads(path.read_text())
    unrecorded = args.unrecorded or old.get("unrecorded")  # what an earlier update kept
    starts = read_starts(args.run_dir)
    if unrecorded is None and old["steps"] <= (starts[0]["step"] if starts else old["steps"]):
        unrecorded = (old["device"], old["precision"])  # the old row described training before the record
    row = write_row(args.row, args.run_dir, path, num_eval=old["num_eval"],
                    overrides=args.overrides if args.overrides else old["overrides"],
                    started_from=old.get("started_from"), unrecorded=tuple(unrecorded) if unrecorded else None)
    print(f"{path}: {row['metric']} {row['value']:.4f} at step {row['steps']:,} ({row['images_seen']:,} images, "
          f"{row['minutes']:g} minutes, {row['device']}, {row['precision']}); was {old['value']:.4f} at step "
          f"{old['steps']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
