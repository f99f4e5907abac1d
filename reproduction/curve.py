"""The learning curve of a (long, resumed) reproduction run: FG-ARI, ARI, mBO against steps, images and minutes.

Reads `run_dir/metrics.jsonl` and the run's config; writes OUT.json (the curve, what the run was, the machine) and
OUT.png. Minutes are the run's cumulative wall time including evaluation, summed over resumed segments.

    python -m reproduction.curve --run-dir runs/tetro_clip1_s0 \
        --out benchmarks/results/reproduce/tetrominoes_cpu_clip1_s0
"""

import argparse
import json
import time
from pathlib import Path

import yaml

from benchmarks.data_throughput import machine
from benchmarks.learning_curve import analyze
from slotattn.paper import TABLE_1_FG_ARI
from slotattn.training.checkpoint import latest_checkpoint


def paper_fg_ari(dataset: str) -> float | None:
    """The paper model's Table 1 FG-ARI (a fraction) on `dataset`, None where Table 1 has none."""
    value = TABLE_1_FG_ARI["slot_attention"].get(dataset)
    return value[0] / 100 if value else None


def plot(curve: list[dict], batch_size: int, title: str, path: Path, paper: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = [c["step"] * batch_size / 1000 for c in curve]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for key, style in (("fg_ari", "o-"), ("mbo", "s--"), ("ari", "^:")):
        left.plot(images, [c[key] for c in curve], style, ms=3, label=key.replace("_", "-").upper())
    if paper is not None:
        left.axhline(paper, color="grey", lw=0.8, ls="--", label=f"paper FG-ARI {paper:g}")
    left.set(xlabel="training images (thousands)", ylabel="score on held-out scenes", ylim=(-0.1, 1.02), title=title)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.plot([c["minutes"] for c in curve], [c["fg_ari"] for c in curve], "o-", ms=3)
    right.set(xlabel="minutes (one CPU core, incl. evaluation)", ylabel="FG-ARI", ylim=(0, 1.02))
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="path without suffix: OUT.json and OUT.png")
    parser.add_argument("--title", default="Tetrominoes, paper model")
    args = parser.parse_args(argv)
    config = yaml.safe_load((args.run_dir / "config.yaml").read_text())
    summary = analyze(args.run_dir)
    batch_size = config["train"]["batch_size"]
    for point in summary["curve"]:
        point["images"] = point["step"] * batch_size
    checkpoint = latest_checkpoint(args.run_dir)  # where a resume continues: the run's last step, not its last log
    checkpoint_step = json.loads(checkpoint.with_suffix(".json").read_text())["step"] if checkpoint else None
    result = {"run": str(args.run_dir), "machine": machine(), "date": time.strftime("%Y-%m-%d"),
              "checkpoint_step": checkpoint_step, "config": config, **summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    plot(summary["curve"], batch_size, args.title, args.out.with_suffix(".png"), paper_fg_ari(config["data"]["name"]))
    best = summary["best"]
    print(f"wrote {args.out}.json/.png; best FG-ARI {best['fg_ari']:.3f} at step {best['step']}")


if __name__ == "__main__":
    main()
