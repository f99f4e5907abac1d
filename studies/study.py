"""The one shape of a recipe study: candidates as config overrides of a base recipe, each trained for the same
number of images on one core (resumable; fewer where a candidate costs more per image), evaluated along the way and
scored at the end; a per-run JSON; a summary over seeds (mean, sample std, n, min, the mean along the way); its
table and figure.

A study is a `RecipeStudy` (its definition, in `studies/<name>/definition.py`) plus this module. Its results live
in `studies/<name>/results/<scale>/`: `runs/<candidate>_s<seed>.json` per run, `summary.json`, `table.md`,
`curves.png`. Run directories (checkpoints, logs) go where `--out` says and are not committed.

    python -m studies.multi_dsprites run --candidate base --seed 0 --out runs/mds_study      # one run, one core
    python -m studies.multi_dsprites summary                                                  # JSON, table, figure
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from slotattn import run
from slotattn.config import Config, apply_overrides, load_config
from slotattn.data.build import build_eval_batches
from slotattn.metrics import ari
from slotattn.training.checkpoint import latest_checkpoint
from slotattn.training.engine import eval_outputs, resolve_device
from slotattn.training.runlog import read_metrics, read_starts

STUDIES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class RecipeStudy:
    """What a study compares and how much each run trains.

    Attributes:
        name: the study's folder under studies/.
        title: one line for the figure and the page.
        base: the recipe every candidate overrides (a name in configs/).
        candidates: name -> overrides of `base`; each changes one thing, the base is `[]`.
        budget_images: training images per run, the same for every candidate of the same cost (steps = budget /
            cost / batch size, rounded).
        eval_images: the in-run evaluation cadence, in images; None: `evaluations` per run instead.
        scales: scale name -> overrides applied to every candidate at that scale (e.g. a 32x32 proxy); the first is
            the default.
        final_iterations: the test-time T of the final scoring (the first is the trained T's row of the table).
        measures: name -> a function of a finished run's directory giving one number (e.g. the CPU-recipe study's
            band score); stored per run under "measures", shown per seed in the table.
        base_overrides: the base's own overrides of `base` for every run (candidates come after and may change them).
            Both may fix `train.precision`; the command line's `--precision` applies where neither does.
        costs: candidate -> its cost of a training image relative to the base's (default 1): a candidate that costs
            more gets proportionally fewer images, so that every candidate gets the same compute.
        evaluations: with `eval_images` None, the in-run evaluations per run: every steps // evaluations steps.
    """

    name: str
    title: str
    base: str
    candidates: dict[str, tuple[str, ...]]
    budget_images: int
    eval_images: int | None
    scales: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"full": ()})
    final_iterations: tuple[int, ...] = (3,)
    base_overrides: tuple[str, ...] = ()
    measures: dict[str, Callable[[Path], float]] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    evaluations: int | None = None

    def config(self, candidate: str, seed: int, scale: str | None = None, precision: str = "auto") -> Config:
        """The config of one run: base recipe + scale + `precision` + base_overrides + candidate overrides, sized to
        the candidate's budget."""
        if candidate not in self.candidates:
            raise ValueError(f"study '{self.name}' has no candidate '{candidate}'; it has {sorted(self.candidates)}")
        scale = scale or next(iter(self.scales))
        if scale not in self.scales:
            raise ValueError(f"study '{self.name}' has no scale '{scale}'; it has {sorted(self.scales)}")
        cfg = load_config(self.base, [*self.scales[scale], f"train.precision={precision}", *self.base_overrides,
                                      *self.candidates[candidate]])
        steps = round(self.budget_images / self.costs.get(candidate, 1.0) / cfg.train.batch_size)
        every = self.eval_images // cfg.train.batch_size if self.eval_images else steps // self.evaluations
        return apply_overrides(cfg, [f"train.seed={seed}", f"train.steps={steps}",
                                     f"train.eval_every={every}", f"train.ckpt_every={every}",
                                     f"train.vis_every={steps}", "train.log_every=100", "train.max_minutes=null",
                                     "train.keep_last=1"])

    def results(self, scale: str | None = None) -> Path:
        """studies/<name>/results/<scale>/."""
        return STUDIES_DIR / self.name / "results" / (scale or next(iter(self.scales)))


def mean_std(values: Sequence[float]) -> dict:
    """{"n", "mean", "std", "min"} of `values`: the sample std (ddof 1), None for a single value (no spread known)."""
    values = list(values)
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None, "min": min(values)}


def format_mean_std(stats: dict, digits: int = 3) -> str:
    """'0.912 ± 0.004 (n = 3)', or '0.912 (n = 1)' for one value."""
    spread = f" ± {stats['std']:.{digits}f}" if stats["std"] is not None else ""
    return f"{stats['mean']:.{digits}f}{spread} (n = {stats['n']})"


def eval_curve(run_dir: Path, batch_size: int) -> list[dict]:
    """A run's in-run evaluations from its metrics.jsonl, oldest first: step, images, FG-ARI, ARI, mBO."""
    return [{"step": r["step"], "images": r["step"] * batch_size, "fg_ari": r["fg_ari"], "ari": r["ari"],
             "mbo": r["mbo"]} for r in read_metrics(run_dir) if r.get("split") == "eval"]


def background_in_one_slot(true_ids: torch.Tensor, pred_ids: torch.Tensor, num_slots: int) -> torch.Tensor:
    """Per scene, the share of the background pixels (id 0) that the slot holding most of them holds: 1.0 when the
    background sits in one slot, 1/K when it is spread evenly over K slots; NaN for a scene without background.

    FG-ARI ignores the background, so it cannot tell objects from blobs whose slots also split the background.
    """
    background = (true_ids == 0).flatten(1)  # (B, H*W)
    counts = torch.nn.functional.one_hot(pred_ids.flatten(1), num_slots) * background[..., None]  # (B, H*W, K)
    per_slot = counts.sum(dim=1).double()  # (B, K)
    total = per_slot.sum(dim=1)
    return torch.where(total > 0, per_slot.max(dim=1).values / total.clamp(min=1), torch.nan)


def final_scores(run_dir: Path, iterations: Sequence[int]) -> dict[str, dict[str, float]]:
    """The run's newest checkpoint on its held-out scenes at each test-time T: FG-ARI, ARI with the background and
    `background_in_one_slot`, means over scenes (the engine's evaluation noise, so T = trained equals the in-run
    evaluation)."""
    cfg, model, _ = run.load_for_inference(run_dir, ["train.device=cpu"])
    device = resolve_device("cpu")
    scores = {}
    for t in iterations:
        sums: dict[str, list[torch.Tensor]] = {"fg_ari": [], "ari": [], "background_in_one_slot": []}
        for out, batch in eval_outputs(model, build_eval_batches(cfg)(), device, cfg.train.seed, num_iterations=t):
            pred = out.masks[:, :, 0].argmax(dim=1)  # (B, H, W)
            true = batch["mask_ids"]
            sums["fg_ari"].append(ari(true, pred, ignore_background=True))
            sums["ari"].append(ari(true, pred))
            sums["background_in_one_slot"].append(background_in_one_slot(true, pred, out.masks.shape[1]))
        scores[f"T{t}"] = {k: float(torch.cat(v).nanmean()) for k, v in sums.items()}
    return scores


def run_one(study: RecipeStudy, candidate: str, seed: int, out: Path, scale: str | None = None,
            precision: str = "auto") -> Path:
    """Train (or continue) one run in OUT/<candidate>_s<seed>, score it, write its JSON into the study's results."""
    run_dir = Path(out) / f"{candidate}_s{seed}"
    resume = latest_checkpoint(run_dir) is not None
    cfg = run.resume_config(run_dir) if resume else study.config(candidate, seed, scale, precision)
    start = time.time()
    if not run.finished(run_dir, cfg):
        run.train(cfg, run_dir, resume=True)  # resume: a run that never reached a checkpoint starts afresh
    curve, starts = eval_curve(run_dir, cfg.train.batch_size), read_starts(run_dir)
    final = final_scores(run_dir, study.final_iterations)
    record = {"study": study.name, "scale": scale or next(iter(study.scales)), "candidate": candidate,
              "overrides": list(study.candidates[candidate]), "seed": seed, "steps": cfg.train.steps,
              "batch_size": cfg.train.batch_size, "images": cfg.train.steps * cfg.train.batch_size,
              "precision": sorted({s["precision"] for s in starts}), "machine": sorted({s["device"] for s in starts}),
              "fg_ari": final[f"T{study.final_iterations[0]}"]["fg_ari"], "final": final,
              "mean_fg_ari_over_curve": statistics.fmean(c["fg_ari"] for c in curve), "curve": curve,
              "measures": {name: measure(run_dir) for name, measure in study.measures.items()},
              "train_minutes": round(read_metrics(run_dir)[-1]["time_s"] / 60, 2),
              "minutes_this_invocation": round((time.time() - start) / 60, 2), "date": time.strftime("%Y-%m-%d")}
    path = study.results(scale) / "runs" / f"{candidate}_s{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def summarize(study: RecipeStudy, scale: str | None = None) -> dict:
    """Every run of the scale gathered per candidate (in the study's order), seeds in order: final FG-ARI per seed
    and its `mean_std`, the same for each final measure at each T that all its runs have, and the mean over seeds
    of each run's mean FG-ARI along the way."""
    runs = [json.loads(p.read_text()) for p in sorted((study.results(scale) / "runs").glob("*_s*.json"))]
    table = {}
    for name in study.candidates:
        mine = sorted((r for r in runs if r["candidate"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        final = {t: {key: mean_std([r["final"][t][key] for r in mine]) for key in mine[0]["final"][t]
                     if all(key in r["final"].get(t, {}) for r in mine)} for t in mine[0]["final"]}
        table[name] = {"overrides": mine[0]["overrides"], "images": mine[0]["images"],
                       "fg_ari": {str(r["seed"]): r["fg_ari"] for r in mine}, **mean_std([r["fg_ari"] for r in mine]),
                       "along_the_way": statistics.fmean(r["mean_fg_ari_over_curve"] for r in mine),
                       "final": final, "curves": {str(r["seed"]): r["curve"] for r in mine},
                       "measures": {key: {str(r["seed"]): r.get("measures", {}).get(key) for r in mine}
                                    for key in {k for r in mine for k in r.get("measures", {})}},
                       "machine": sorted({m for r in mine for m in r["machine"]}),
                       "precision": sorted({p for r in mine for p in r["precision"]}), "date": mine[-1]["date"]}
    return {"study": study.name, "scale": scale or next(iter(study.scales)), "base": study.base,
            "budget_images": study.budget_images, "eval_images": study.eval_images, "evaluations": study.evaluations,
            "candidates": table}


def markdown_table(summary: dict) -> str:
    """The study as a Markdown table, best mean first: images per run, FG-ARI per seed, mean ± sample std (n), min,
    along the way, each other final measure's mean at each T ("–" where a candidate lacks it) and each measure per
    seed."""
    rows = summary["candidates"]
    finals = [(t, key) for row in rows.values() for t in row["final"] for key in row["final"][t]]
    extra = [c for c in dict.fromkeys(finals) if c != (finals[0][0], "fg_ari")] if finals else []
    measures = sorted({k for row in rows.values() for k in row.get("measures", {})})
    names = {"fg_ari": "FG-ARI", "ari": "ARI", "background_in_one_slot": "bg in one slot"}
    header = (f"| candidate (overrides of {summary['base']}) | images | FG-ARI per seed | mean ± std (n) | min | "
              "along the way |" + "".join(f" {names.get(k, k)} {t} |" for t, k in extra)
              + "".join(f" {m} per seed |" for m in measures))
    lines = [header, "|---|---:|---|---|---:|---:|" + "---:|" * len(extra) + "---|" * len(measures)]
    for name, row in sorted(rows.items(), key=lambda kv: -kv[1]["mean"]):
        overrides = ", ".join(f"`{o}`" for o in row["overrides"]) or "none"
        seeds = ", ".join(f"{v:.3f}" for v in row["fg_ari"].values())
        cells = "".join(f" {row['final'][t][k]['mean']:.3f} |" if k in row["final"].get(t, {}) else " – |"
                        for t, k in extra)
        cells += "".join(" " + ", ".join("–" if v is None else f"{v:.2f}" for v in
                                         row.get("measures", {}).get(m, {}).values()) + " |" for m in measures)
        lines.append(f"| {name}: {overrides} | {row['images']:,} | {seeds} | "
                     f"{format_mean_std(row).replace(' (n = ', ' (')} | {row['min']:.3f} | "
                     f"{row['along_the_way']:.3f} |{cells}")
    return "\n".join(lines)


def table_markers(study: RecipeStudy, scale: str | None = None) -> tuple[str, str]:
    """The comments around a study's table on a docs page; `summary --page` rewrites what lies between them."""
    folder = study.results(scale).relative_to(STUDIES_DIR.parent)
    return (f"<!-- {study.name} table: begin ({folder}/table.md, python -m studies.{study.name} summary) -->",
            f"<!-- {study.name} table: end -->")


def page_with_table(text: str, study: RecipeStudy, table: str, scale: str | None = None) -> str:
    """`text` (a docs page) with the text between the study's `table_markers` replaced by `table`."""
    begin, end = table_markers(study, scale)
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def mean_curve(curves: dict[str, list[dict]], key: str = "fg_ari") -> list[dict]:
    """At every image count all seeds evaluated: `mean_std` over seeds (std None for one seed)."""
    by_seed = [{p["images"]: p[key] for p in curve} for curve in curves.values()]
    images = sorted(set.intersection(*(set(c) for c in by_seed)))
    return [{"images": n, **mean_std([c[n] for c in by_seed])} for n in images]


def plot_curves(summary: dict, path: Path, title: str) -> Path:
    """FG-ARI against training images, one line per candidate (mean over seeds, band: ± sample std)."""
    from slotattn.viz import new_figure, save_figure

    fig = new_figure(8.0, 5.0)
    ax = fig.add_subplot()
    for name, row in summary["candidates"].items():
        curve = mean_curve(row["curves"])
        x = [p["images"] / 1000 for p in curve]
        mean, std = [p["mean"] for p in curve], [p["std"] or 0.0 for p in curve]
        line, = ax.plot(x, mean, label=f"{name} (n={row['n']})")
        ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.15)
    ax.set(xlabel="training images (thousands)", ylabel="FG-ARI (held-out scenes)", title=title, ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def write_summary(study: RecipeStudy, scale: str | None = None) -> dict:
    """summary.json, curves.png and table.md into the scale's results folder."""
    summary = summarize(study, scale)
    folder = study.results(scale)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (folder / "table.md").write_text(markdown_table(summary) + "\n")
    plot_curves(summary, folder / "curves.png", f"{study.title} ({summary['scale']})")
    return summary


def main(study: RecipeStudy, argv: Sequence[str] | None = None) -> None:
    """The command line of every study: `run --candidate --seed --out [--scale] [--precision]` and
    `summary [--scale] [--page PAGE]`."""
    parser = argparse.ArgumentParser(prog=f"python -m studies.{study.name}", description=study.title)
    sub = parser.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("run", help="train (or continue) one candidate x seed, then write its JSON")
    one.add_argument("--candidate", required=True, choices=list(study.candidates))
    one.add_argument("--seed", type=int, default=0)
    one.add_argument("--out", type=Path, required=True, help="where the run directories go (not committed)")
    one.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                     help="where the study's definition fixes none")
    summary = sub.add_parser("summary", help="summary.json, table.md and curves.png of a scale's runs")
    summary.add_argument("--page", type=Path, help="also rewrite the table between the study's markers on this page")
    for p in (one, summary):
        p.add_argument("--scale", default=next(iter(study.scales)), choices=list(study.scales))
    args = parser.parse_args(argv)
    if args.cmd == "run":
        print(run_one(study, args.candidate, args.seed, args.out, args.scale, args.precision))
    else:
        table = markdown_table(write_summary(study, args.scale))
        if args.page:
            args.page.write_text(page_with_table(args.page.read_text(), study, table, args.scale))
        print(table)
