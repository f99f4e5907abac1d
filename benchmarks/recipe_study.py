"""What the recipe studies (benchmarks/demo_recipe.py, benchmarks/cpu_recipe.py) share: a run's record, the summary
of candidates over seeds (final FG-ARI per seed, min, mean, sample std with ddof 1, curves against images), its
Markdown table and figure, the cost of a training step per image, and the command line.
"""

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from slotattn.data.batch import to_model_batch
from slotattn.data.build import build_train_source
from slotattn.models import build_model
from slotattn.tasks import build_task
from slotattn.training.engine import autocast_for
from slotattn.training.runlog import read_metrics, read_starts


def eval_curve(metrics: list[dict], batch_size: int) -> list[dict]:
    """A run's evaluations (from its `read_metrics`), oldest first: step, images seen, FG-ARI, ARI, mBO."""
    return [{"step": r["step"], "images": r["step"] * batch_size, "fg_ari": r["fg_ari"], "ari": r["ari"],
             "mbo": r["mbo"]} for r in metrics if r.get("split") == "eval"]


def run_record(cfg, run_dir: Path, name: str, overrides: list[str], seed: int) -> dict:
    """One finished run of a study: its candidate, budget, final FG-ARI, curve and where it trained
    (every (re)start's machine and precision, from the run's starts.jsonl)."""
    metrics, starts = read_metrics(run_dir), read_starts(run_dir)
    curve = eval_curve(metrics, cfg.train.batch_size)
    return {"candidate": name, "overrides": overrides, "seed": seed, "steps": cfg.train.steps,
            "batch_size": cfg.train.batch_size, "images": cfg.train.steps * cfg.train.batch_size,
            "precision": sorted({s["precision"] for s in starts}), "machine": sorted({s["device"] for s in starts}),
            "fg_ari": curve[-1]["fg_ari"], "mean_fg_ari_over_curve": statistics.fmean(c["fg_ari"] for c in curve),
            "curve": curve, "train_minutes": round(metrics[-1]["time_s"] / 60, 2),
            "date": time.strftime("%Y-%m-%d")}


def seconds_per_image(cfg, steps: int = 20, precision: str = "fp32") -> float:
    """Median time of a training step (forward, loss, backward, Adam) over `steps`, per image, in float32 or under
    bfloat16 autocast as the engine trains (`precision` "fp32" or "bf16")."""
    torch.manual_seed(0)
    model, task = build_model(cfg), build_task(cfg.task)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    source = build_train_source(cfg)
    times = []
    for step in range(steps + 3):
        batch = to_model_batch(source.batch(step))
        start = time.perf_counter()
        with autocast_for(precision, "cpu"):
            loss = task.loss(model(batch["image"]), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:]) / cfg.train.batch_size


def summarize(out: Path, per_seed: Sequence[str] = ()) -> dict:
    """Every OUT/*_s*.json run gathered per candidate (in order of first appearance), seeds in order. `curve_mean`
    is the mean over seeds of each run's mean FG-ARI over its evaluations: learning along the way, not only at
    the end. Each key in `per_seed` is gathered from the runs too, {seed: value} (None where a run lacks it)."""
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*_s*.json"))]
    table = {}
    for name in dict.fromkeys(r["candidate"] for r in runs):
        mine = sorted((r for r in runs if r["candidate"] == name), key=lambda r: r["seed"])
        finals = [r["fg_ari"] for r in mine]
        table[name] = {"overrides": mine[0]["overrides"], "images": mine[0]["images"],
                       "fg_ari": {str(r["seed"]): r["fg_ari"] for r in mine}, "n": len(finals),
                       "min": min(finals), "mean": statistics.fmean(finals),
                       "std": statistics.stdev(finals) if len(finals) > 1 else None,
                       "curve_mean": statistics.fmean(statistics.fmean(c["fg_ari"] for c in r["curve"])
                                                      for r in mine),
                       "curves": {str(r["seed"]): r["curve"] for r in mine},
                       "machine": mine[0]["machine"], "date": mine[-1]["date"],
                       **{key: {str(r["seed"]): r.get(key) for r in mine} for key in per_seed}}
    return {"candidates": table}


def markdown_table(summary: dict, base: str, per_seed_column: tuple[str, str] | None = None) -> str:
    """The study as a Markdown table, best mean first: overrides, images, FG-ARI per seed, min, mean ± sample std,
    the mean FG-ARI over the evaluations along the way, and optionally (header, key) a per-seed value of
    `summarize(per_seed=...)` ("–" where a run lacks it)."""
    extra = f" {per_seed_column[0]} |" if per_seed_column else ""
    lines = [f"| candidate (overrides of {base}) | images | FG-ARI per seed | min | mean ± std (n) | along the way |"
             + extra, "|---|---:|---|---:|---|---:|" + ("---|" if per_seed_column else "")]
    for name, row in sorted(summary["candidates"].items(), key=lambda kv: -kv[1]["mean"]):
        overrides = ", ".join(f"`{o}`" for o in row["overrides"]) or "none"
        seeds = ", ".join(f"{v:.3f}" for v in row["fg_ari"].values())
        spread = f" ± {row['std']:.3f}" if row["std"] is not None else ""
        cells = ""
        if per_seed_column:
            values = row[per_seed_column[1]].values()
            cells = " " + ", ".join("–" if v is None else f"{v:.2f}" for v in values) + " |"
        lines.append(f"| {name}: {overrides} | {row['images']:,} | {seeds} | {row['min']:.3f} | "
                     f"{row['mean']:.3f}{spread} ({row['n']}) | {row['curve_mean']:.3f} |" + cells)
    return "\n".join(lines)


def markers(study: str) -> tuple[str, str]:
    """The comments around STUDY's generated table in a docs page (STUDY: the benchmarks module's name)."""
    table = study.replace("_", "-")
    return f"<!-- {table}-table: begin (python -m benchmarks.{study} summary) -->", f"<!-- {table}-table: end -->"


def render_into(page: Path, study: str, table: str) -> str:
    """`page`'s text with the text between STUDY's markers replaced by `table`."""
    begin, end = markers(study)
    text = page.read_text()
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def mean_curve(curves: dict[str, list[dict]]) -> list[dict]:
    """At every image count all seeds evaluated: the mean FG-ARI over seeds and its sample std (0 for one seed)."""
    by_seed = [{p["images"]: p["fg_ari"] for p in curve} for curve in curves.values()]
    images = sorted(set.intersection(*(set(c) for c in by_seed)))
    return [{"images": n, "mean": statistics.fmean(c[n] for c in by_seed),
             "std": statistics.stdev(c[n] for c in by_seed) if len(by_seed) > 1 else 0.0} for n in images]


def plot_curves(summary: dict, path: Path, title: str) -> Path:
    """FG-ARI against training images, one line per candidate (mean over seeds, band: ± sample std)."""
    from slotattn.viz import new_figure, save_figure

    fig = new_figure(8, 5)
    ax = fig.add_subplot()
    for name, row in summary["candidates"].items():
        curve = mean_curve(row["curves"])
        x = [p["images"] / 1000 for p in curve]
        mean, std = [p["mean"] for p in curve], [p["std"] for p in curve]
        line, = ax.plot(x, mean, label=f"{name} (n={row['n']})")
        ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.15)
    ax.set(xlabel="training images (thousands)", ylabel="FG-ARI (held-out scenes)", title=title, ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def study_parser(doc: str, candidates: dict, study: str):
    """The command line both studies share: `run --candidate --seed --out` and `summary --out --json --page`.
    Returns (parser, the run subcommand's parser, the subparsers) for each study's own options."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--candidate", required=True, choices=sorted(candidates))
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("summary")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--page", type=Path, help=f"also rewrite the table between this page's {study} markers")
    return parser, run, sub


def print_summary(summary: dict) -> None:
    for name, row in sorted(summary["candidates"].items(), key=lambda kv: -kv[1]["mean"]):
        std = f"{row['std']:.3f}" if row["std"] is not None else "-"
        print(f"{name:28s} n={row['n']} min {row['min']:.3f} mean {row['mean']:.3f} std {std}  {row['fg_ari']}")
