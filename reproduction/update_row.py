"""Rewrite a committed reproduction row from the newest checkpoint of its run, keeping what the row says about how
the run differs from the paper's recipe (`overrides`) and what it started from (`started_from`).

    python -m reproduction.update_row tetrominoes --run-dir runs/tetro_s0 [--trained-on "AMD EPYC (1 thread)"]
    python -m reproduction.results_table            # then the README's table

For a run trained by `slotattn reproduce` the row is written by that command; this is for runs trained otherwise
(a CPU recipe, a fine-tuning run) and continued since their row was written. `--trained-on` names the hardware of a
run that did not record it (`run_dir/starts.jsonl`, written by every start since 2026-12-04).
"""

import argparse
import json
import sys

from reproduction.results_table import ROWS_DIR
from slotattn.reproduce import ROWS, write_row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("row", choices=sorted(ROWS))
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--trained-on", help="the training hardware, for a run without starts.jsonl")
    args = parser.parse_args(argv)
    path = ROWS_DIR / f"{args.row}.json"
    if not path.exists():
        sys.exit(f"no committed row {path}: write the first one with slotattn.reproduce.write_row (its overrides)")
    old = json.loads(path.read_text())
    row = write_row(args.row, args.run_dir, path, num_eval=old["num_eval"], overrides=old["overrides"],
                    started_from=old.get("started_from"), trained_on=args.trained_on)
    print(f"{path}: {row['metric']} {row['value']:.4f} at step {row['steps']:,} ({row['images_seen']:,} images, "
          f"{row['minutes']:g} minutes, {row['device']}); was {old['value']:.4f} at step {old['steps']:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
