"""FG-ARI versus wall-clock minutes and steps on Tetrominoes, on this machine.

Trains with the engine (through `slotattn train`) under a time budget, evaluating on the held-out split every
`--eval-every` steps, then reports the steps and minutes to reach each FG-ARI threshold and the best FG-ARI.

    python benchmarks/learning_curve.py --config tetrominoes --set train.batch_size=16 --minutes 120 \
        --run-dir runs/lc-paper --out benchmarks/results/lc-paper.json

Wall time in `metrics.jsonl` includes evaluation; rerunning with `--analyze-only` re-reads a finished run.
"""

import argparse
import json
import sys
from pathlib import Path

from slotattn import cli
from slotattn.training.runlog import read_metrics

THRESHOLDS = (0.5, 0.9, 0.97)


def analyze(run_dir: Path) -> dict:
    records = read_metrics(run_dir)
    evals = [r for r in records if r["split"] == "eval"]
    train = [r for r in records if r["split"] == "train"]
    curve = [{"step": r["step"], "minutes": round(r["time_s"] / 60, 2), "fg_ari": r["fg_ari"], "ari": r["ari"],
              "mbo": r["mbo"]} for r in evals]
    reached = {}
    for threshold in THRESHOLDS:
        hit = next((c for c in curve if c["fg_ari"] >= threshold), None)
        reached[str(threshold)] = {"step": hit["step"], "minutes": hit["minutes"]} if hit else None
    best = max(curve, key=lambda c: c["fg_ari"]) if curve else None
    img_per_s = [r["img_per_s"] for r in train[len(train) // 10 :]]
    return {
        "run_dir": str(run_dir),
        "curve": curve,
        "reached": reached,
        "best": best,
        "final_step": train[-1]["step"] if train else 0,
        "minutes": round(train[-1]["time_s"] / 60, 2) if train else 0.0,
        "median_train_img_per_s": sorted(img_per_s)[len(img_per_s) // 2] if img_per_s else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tetrominoes")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--out", help="write the analysis as JSON here")
    parser.add_argument("--analyze-only", action="store_true")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not args.analyze_only:
        overrides = [*args.overrides, f"train.max_minutes={args.minutes}", f"train.eval_every={args.eval_every}",
                     "train.log_every=50", f"train.ckpt_every={args.eval_every}", f"train.vis_every={args.eval_every * 10}"]
        resume = ["--resume"] if (run_dir / "checkpoints").exists() else []
        code = cli.main(["train", "--config", args.config, "--run-dir", str(run_dir), "--no-progress", *resume,
                         *[item for o in overrides for item in ("--set", o)]])
        if code != 0:
            return code
    result = analyze(run_dir)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
