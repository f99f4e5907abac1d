"""Copy study directories without their checkpoints, e.g. into docs/ so that a committed report's links work.

    python scripts/package_studies.py runs/studies/iterations runs/studies/ablations --out docs/studies/cpu

Per study: results.json; per run: config.yaml, metrics.jsonl, study_eval.json and the newest slot-decomposition
figure (vis/) -- everything `slotattn report` reads -- but no checkpoints (megabytes per run). Then
`slotattn report docs/studies/cpu/* --out docs/studies/cpu/report`.
"""

import argparse
import shutil
import sys
from pathlib import Path

KEEP = ("config.yaml", "metrics.jsonl", "study_eval.json")


def package(study: Path, out: Path) -> int:
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
        if figures:
            (dest / "vis").mkdir(exist_ok=True)
            shutil.copy2(figures[-1], dest / "vis" / figures[-1].name)
        runs += 1
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    for study in args.studies:
        if not (study / "results.json").exists():
            parser.error(f"{study}: no results.json (not a study directory written by `slotattn study`)")
        print(f"{study} -> {args.out / study.name}: {package(study, args.out)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
