"""Copy study directories with what `slotattn report` reads, e.g. into docs/ so that a committed report's links work.

    python scripts/package_studies.py runs/studies/* --out docs/studies/cpu

Per study: results.json; per run: metrics.jsonl and the newest slot-decomposition figure (vis/), and nothing else
(no checkpoints, configs or evaluation caches: results.json holds every record the report shows). A figure
byte-identical to one already copied (a deterministic run of the same model and seed in another study) is left out.
Then `slotattn report docs/studies/cpu/* --out docs/studies/cpu/report`.
"""

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

KEEP = ("metrics.jsonl",)


def package(study: Path, out: Path, seen: set[str]) -> int:
    """Copy `study` into `out/<its name>`; `seen` holds the sha256 of the figures copied so far (updated)."""
    target = out / study.name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(study / "results.json", target / "results.json")
    runs = 0
    for metrics in sorted(study.glob("*/seed*/metrics.jsonl")):
        run, dest = metrics.parent, target / metrics.parent.relative_to(study)
        dest.mkdir(parents=True, exist_ok=True)
        for name in KEEP:
            if (run / name).exists():
                shutil.copy2(run / name, dest / name)
        figures = sorted((run / "vis").glob("*.png"))
        digest = hashlib.sha256(figures[-1].read_bytes()).hexdigest() if figures else None
        if digest is not None and digest not in seen:
            seen.add(digest)
            (dest / "vis").mkdir(exist_ok=True)
            shutil.copy2(figures[-1], dest / "vis" / figures[-1].name)
        runs += 1
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    seen: set[str] = set()
    for study in args.studies:
        if not (study / "results.json").exists():
            parser.error(f"{study}: no results.json (not a study directory written by `slotattn study`)")
        print(f"{study} -> {args.out / study.name}: {package(study, args.out, seen)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
