"""Record `make demo` runs (their output directories) as JSON, so that the README's demo numbers come from a file.

    python benchmarks/demo_runs.py --command "make demo ARGS='...'" DIR [DIR ...] --out benchmarks/results/demo_runs.json

For each DIR (a demo's --out): the training config's precision, seed and steps, the steps done, the machine its
run started on (run/starts.jsonl), and the last held-out evaluation (FG-ARI, ARI, mBO on the demo's scenes).
"""

import argparse
import json
import time
from pathlib import Path

import yaml

from slotattn.training.runlog import read_metrics, read_starts


def record(out_dir: Path) -> dict:
    run_dir = out_dir / "run"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    metrics = read_metrics(run_dir)
    last_eval = [r for r in metrics if r.get("split") == "eval"][-1]
    start = read_starts(run_dir)[0]
    return {"dir": str(out_dir), "seed": config["train"]["seed"], "precision": start.get("precision"),
            "machine": start.get("device"), "steps": last_eval["step"],
            "minutes": round(last_eval["time_s"] / 60, 2), "images": last_eval["step"] * config["train"]["batch_size"],
            **{key: last_eval[key] for key in ("fg_ari", "ari", "mbo")}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--command", required=True, help="the command that made each run (recorded)")
    parser.add_argument("--label", required=True, help="what these runs are, e.g. 'AVX2 budget on a fresh clone'")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data[args.label] = {"command": args.command, "date": time.strftime("%Y-%m-%d"),
                        "runs": [record(d) for d in args.dirs]}
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data[args.label], indent=1))


if __name__ == "__main__":
    main()
