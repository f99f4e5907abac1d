"""Does mixed precision change what the model learns? FG-ARI learning curves, float32 vs bf16, over seeds.

Runs `benchmarks/learning_curve.py` (the engine, through `slotattn train`) for every (precision, seed) pair on the
same recipe and evaluation split, then prints a Markdown table: FG-ARI mean ± std over seeds at every evaluation
step, per precision, and the training throughput of each.

    taskset -c 1 env OMP_NUM_THREADS=1 python benchmarks/precision_curves.py --seeds 0 1 2 \\
        --run-root runs/precision --out benchmarks/results/precision_curves.json

The default recipe is the `cpu` scale of the studies (`slotattn.studies.SCALES["cpu"]`: configs/tetrominoes_small.yaml,
1,500 steps of batch 16), so the curves also say whether that scale's bf16 runs can be trusted.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import learning_curve

from slotattn.studies import SCALES


def summarize(runs: dict[str, dict[int, dict]]) -> str:
    steps = sorted({c["step"] for per_seed in runs.values() for r in per_seed.values() for c in r["curve"]})
    precisions = list(runs)
    lines = ["| step | " + " | ".join(f"FG-ARI {p} (mean ± std, {len(runs[p])} seeds)" for p in precisions) + " |",
             "|---:|" + "---:|" * len(precisions)]
    for step in steps:
        cells = []
        for p in precisions:
            values = [c["fg_ari"] for r in runs[p].values() for c in r["curve"] if c["step"] == step]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {std:.3f}" if values else "-")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines += ["", "| precision | seed | final FG-ARI | final ARI | median train img/s | minutes |",
              "|---|---:|---:|---:|---:|---:|"]
    for p in precisions:
        for seed, r in runs[p].items():
            last = r["curve"][-1]
            lines.append(f"| {p} | {seed} | {last['fg_ari']:.3f} | {last['ari']:.3f} | "
                         f"{r['median_train_img_per_s']:.1f} | {r['minutes']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=SCALES["cpu"].recipe)
    parser.add_argument("--set", dest="overrides", action="append", default=None,
                        help="overrides (default: the cpu study scale's)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--minutes", type=float, default=60.0, help="time budget of each run")
    parser.add_argument("--run-root", required=True)
    parser.add_argument("--out", help="write all curves as JSON here")
    args = parser.parse_args(argv)
    overrides = args.overrides if args.overrides is not None else [
        o for o in SCALES["cpu"].overrides if not o.startswith(("train.eval_every", "train.ckpt_every"))]
    runs: dict[str, dict[int, dict]] = {}
    for seed in args.seeds:  # seed-major, so that an interrupted campaign has both precisions for its seeds
        for precision in args.precisions:
            run_dir = Path(args.run_root) / f"{precision}_seed{seed}"
            code = learning_curve.main([
                "--config", args.config, "--run-dir", str(run_dir), "--minutes", str(args.minutes),
                "--eval-every", str(args.eval_every), "--out", str(run_dir / "curve.json"),
                *[item for o in [*overrides, f"train.seed={seed}", f"train.precision={precision}"]
                  for item in ("--set", o)]])
            if code != 0:
                return code
            runs.setdefault(precision, {})[seed] = json.loads((run_dir / "curve.json").read_text())
    table = summarize(runs)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"argv": sys.argv[1:], "overrides": overrides, "runs": runs,
                                              "table": table}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
