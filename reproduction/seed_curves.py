"""FG-ARI against training images for several runs of one recipe (seeds), from their reproduction-curve JSONs.

    python -m reproduction.seed_curves benchmarks/results/reproduce/tetrominoes_cpu_s0.json \
        benchmarks/results/reproduce/tetrominoes_cpu_s1.json --out benchmarks/results/reproduce/tetrominoes_cpu_seeds

Writes OUT.png (one line per run, the paper's Table 1 value of their dataset) and OUT.json: for every step that all runs evaluated, each
run's FG-ARI and their mean and standard deviation (ddof 1, as the paper's "mean ± std over seeds").
"""

import argparse
import json
import statistics
from pathlib import Path

from reproduction.curve import paper_fg_ari


def common_steps(curves: dict[str, list[dict]]) -> list[dict]:
    """Steps evaluated by every run, with each run's FG-ARI, the mean and the std over runs."""
    by_run = {name: {p["step"]: p["fg_ari"] for p in curve} for name, curve in curves.items()}
    steps = sorted(set.intersection(*(set(v) for v in by_run.values())))
    rows = []
    for step in steps:
        values = [by_run[name][step] for name in by_run]
        rows.append({"step": step, "fg_ari": dict(zip(by_run, values)), "mean": statistics.fmean(values),
                     "std": statistics.stdev(values) if len(values) > 1 else 0.0})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curves", nargs="+", type=Path, help="JSON files written by reproduction.curve")
    parser.add_argument("--out", type=Path, required=True, help="path without suffix: OUT.json and OUT.png")
    parser.add_argument("--title", default="Tetrominoes, paper model, CPU recipe")
    args = parser.parse_args(argv)
    runs = {path.stem: json.loads(path.read_text()) for path in args.curves}
    curves = {name: run["curve"] for name, run in runs.items()}
    paper = paper_fg_ari(next(iter(runs.values()))["config"]["data"]["name"])
    table = common_steps(curves)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"runs": {name: str(path) for name, path in zip(runs, args.curves)}, "common_steps": table}, indent=1) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, curve in curves.items():
        ax.plot([p["images"] / 1000 for p in curve], [p["fg_ari"] for p in curve], "o-", ms=3, label=name)
    if paper is not None:
        ax.axhline(paper, color="grey", lw=0.8, ls="--", label=f"paper FG-ARI {paper:g}")
    ax.set(xlabel="training images (thousands)", ylabel="FG-ARI, 320 held-out scenes", ylim=(0, 1.02),
           title=args.title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    last = table[-1] if table else None
    print(f"wrote {args.out}.json/.png" + (f"; at step {last['step']:,}: mean {last['mean']:.3f} ± "
                                            f"{last['std']:.3f} over {len(curves)} runs" if last else ""))


if __name__ == "__main__":
    main()
