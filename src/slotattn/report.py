"""A reproduction report (Markdown + HTML) from study directories (`results.json`) or plain run directories.

Tables of mean ± std over seeds next to the paper's numbers, collapsed runs listed apart, learning curves from each
run's `metrics.jsonl`, and each run's latest slot-decomposition figure; every number links to its run directory.
"""

import html
import json
import math
import os
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slotattn.paper import TABLE_1_FG_ARI, TABLE_1_SOURCE
from slotattn.viz import new_figure, save_figure

# The switches of the paper's model; a run matches a TABLE_1_FG_ARI row only if its model has all of them.
PAPER_SWITCHES = {"attention_axis": "slots", "use_gru": True, "use_mlp": True, "use_encoder_position": True,
                  "use_decoder_position": True}

COLLAPSE_SLOT_SHARE = 0.95  # largest slot's share of all pixels at or above which a run counts as collapsed
COLLAPSE_FG_ARI_GAP = 0.2  # FG-ARI this far below the median of the variant's seeds: collapsed

METRIC_ORDER = ("fg_ari", "ari", "mbo", "ap@inf", "ap@1", "ap@0.5", "ap@0.25", "ap@0.125")
METRIC_NAMES = {"fg_ari": "FG-ARI", "ari": "ARI", "mbo": "mBO"}
SECTIONS = ("Summary", "Collapsed and failed runs", "All runs", "Learning curves", "Slot decompositions",
            "Paper numbers")


class ReportError(ValueError):
    """A report input is neither a study directory (results.json) nor a run directory (metrics.jsonl)."""


@dataclass
class Source:
    """One report input: a study's records (or one plain run's), with run directories resolved."""

    label: str
    path: Path
    doc: dict[str, Any]
    records: list[dict[str, Any]]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); std is NaN for fewer than two values, both NaN for none."""
    values = [float(v) for v in values if not math.isnan(float(v))]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def _run_record(run_dir: Path) -> dict[str, Any]:
    """A plain run directory as one record: its last evaluation in metrics.jsonl."""
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    evals = [r for r in lines if r.get("split") == "eval"]
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else {}
    model = cfg.get("model", {})
    metrics = {k: float(v) for k, v in evals[-1].items() if k not in ("step", "split", "time_s")} if evals else {}
    return {"study": "runs", "variant": run_dir.name, "seed": cfg.get("train", {}).get("seed", 0),
            "run_dir": str(run_dir.resolve()), "dataset": cfg.get("data", {}).get("name"),
            "status": "trained" if evals else "no evaluation", "setting": None, "trained_setting": True,
            "step": evals[-1]["step"] if evals else None, "metrics": metrics, "test_setting": None,
            "model": {k: model.get(k) for k in ("grouping", *PAPER_SWITCHES)}}


def load_sources(paths: Sequence[str | Path]) -> list[Source]:
    """Study directories as one source each; plain run directories together as one source named "runs"."""
    sources, runs = [], []
    for path in map(Path, paths):
        if (path / "results.json").exists():
            doc = json.loads((path / "results.json").read_text())
            records = [r | {"run_dir": str((path / r["run_dir"]).resolve())} for r in doc["records"]]
            sources.append(Source(f"{doc['study']} ({doc['scale']}, {doc['recipe']})", path, doc, records))
        elif (path / "metrics.jsonl").exists():
            runs.append(_run_record(path))
        else:
            raise ReportError(f"{path}: neither a study directory (no results.json) nor a run directory "
                              "(no metrics.jsonl); make one with `slotattn study` or `slotattn train`")
    if runs:
        sources.append(Source("runs", Path("."), {"study": "runs"}, runs))
    return sources


def find_collapsed(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Run directory -> why the run counts as collapsed, judged at its training setting.

    A run collapsed if its largest slot takes >= COLLAPSE_SLOT_SHARE of the pixels, or if its FG-ARI is more than
    COLLAPSE_FG_ARI_GAP below the median FG-ARI of the same variant's seeds.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("trained_setting") and r.get("metrics"):
            groups.setdefault((r["study"], r["variant"]), []).append(r)
    collapsed = {}
    for group in groups.values():
        scores = [r["metrics"]["fg_ari"] for r in group if not math.isnan(r["metrics"].get("fg_ari", math.nan))]
        median = statistics.median(scores) if len(scores) > 1 else math.nan
        for r in group:
            share = r["metrics"].get("largest_slot_share", math.nan)
            fg = r["metrics"].get("fg_ari", math.nan)
            if share >= COLLAPSE_SLOT_SHARE:
                collapsed[r["run_dir"]] = f"one slot takes {100 * share:.0f}% of the pixels"
            elif fg < median - COLLAPSE_FG_ARI_GAP:
                collapsed[r["run_dir"]] = f"FG-ARI {100 * fg:.1f} vs the seeds' median {100 * median:.1f}"
    return collapsed


def paper_number(record: dict[str, Any]) -> tuple[float, float] | None:
    """The paper's FG-ARI for this record's model and dataset as trained, if Table 1 gives one (not for
    evaluations on scenes with more objects than the training data: Table 1 is on the training distribution)."""
    model = record.get("model") or {}
    if not record.get("trained_setting") or any(model.get(k) != v for k, v in PAPER_SWITCHES.items()):
        return None
    if record.get("eval_max_objects") is not None:
        return None
    return TABLE_1_FG_ARI.get(model.get("grouping"), {}).get(record.get("dataset"))


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{100 * mean:.1f}" if math.isnan(std) else f"{100 * mean:.1f} ± {100 * std:.1f}"


def _link(text: str, run_dir: str, out_dir: Path) -> str:
    return f"[{text}]({os.path.relpath(run_dir, out_dir)})"


def _setting(r: dict[str, Any]) -> str:
    name = {"num_iterations": "T", "num_slots": "K"}.get(r.get("test_setting") or "", "")
    return "as trained" if r.get("setting") is None else f"{name}={r['setting']}" + (
        " (trained)" if r.get("trained_setting") else "")


def _metrics_of(records: Sequence[dict[str, Any]]) -> list[str]:
    found = {k for r in records for k in r.get("metrics", {})}
    return [k for k in METRIC_ORDER if k in found]


def _summary_table(source: Source, collapsed: dict[str, str], out_dir: Path) -> list[str]:
    ok = [r for r in source.records if r.get("metrics")]
    metrics = _metrics_of(ok)
    if not ok:
        return ["No evaluated runs."]
    head = ["variant", "setting", "seeds (kept/all)", *[f"{METRIC_NAMES.get(m, m)} (kept)" for m in metrics]]
    if "fg_ari" in metrics:
        head += ["FG-ARI (all seeds)", "paper FG-ARI"]
    head.append("runs")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for r in ok:
        groups.setdefault((r["variant"], r.get("setting")), []).append(r)
    for (variant, _), group in groups.items():  # insertion order: the study's variant and setting order
        kept = [r for r in group if r["run_dir"] not in collapsed]
        row = [variant, _setting(group[0]), f"{len(kept)}/{len(group)}"]
        row += [_fmt(*mean_std([r["metrics"].get(m, math.nan) for r in kept])) for m in metrics]
        if "fg_ari" in metrics:
            row.append(_fmt(*mean_std([r["metrics"].get("fg_ari", math.nan) for r in group])))
            paper = paper_number(group[0])
            row.append(f"{paper[0]:.1f} ± {paper[1]:.1f}" if paper else "")
        row.append(" ".join(_link(f"s{r['seed']}" + ("†" if r["run_dir"] in collapsed else ""), r["run_dir"],
                                  out_dir) for r in group))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _all_runs_table(source: Source, out_dir: Path) -> list[str]:
    metrics = _metrics_of(source.records)
    head = ["variant", "seed", "setting", "step", "status", *[METRIC_NAMES.get(m, m) for m in metrics],
            "largest slot share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in source.records:
        values = [*(r["metrics"].get(m, math.nan) for m in metrics), r["metrics"].get("largest_slot_share", math.nan)]
        cells = ["–" if math.isnan(v) else _link(f"{100 * v:.1f}", r["run_dir"], out_dir) for v in values]
        lines.append("| " + " | ".join([r["variant"], str(r["seed"]), _setting(r), str(r.get("step")),
                                        r.get("status", ""), *cells]) + " |")
    return lines


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _runs(source: Source) -> list[dict[str, Any]]:
    """One record per run directory, in order."""
    seen: dict[str, dict[str, Any]] = {}
    for r in source.records:
        seen.setdefault(r["run_dir"], r)
    return list(seen.values())


def learning_curves(source: Source, path: Path) -> Path | None:
    """Training loss and held-out FG-ARI (or the first eval metric) against step, one line per run; None if no logs."""
    runs = [(r, Path(r["run_dir"]) / "metrics.jsonl") for r in _runs(source)]
    runs = [(r, p) for r, p in runs if p.exists()]
    if not runs:
        return None
    import matplotlib  # when drawing, not at import (a notebook's backend stays as it is)

    fig = new_figure(11.0, 4.0)
    ax_loss, ax_eval = fig.subplots(1, 2)
    tab10 = matplotlib.colormaps["tab10"]
    colors = {v: tab10(i % 10) for i, v in enumerate(dict.fromkeys(r["variant"] for r, _ in runs))}
    eval_key = None
    for r, p in runs:
        lines = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
        train = [x for x in lines if x.get("split") == "train" and isinstance(x.get("loss"), float)]
        evals = [x for x in lines if x.get("split") == "eval"]
        if eval_key is None and evals:
            eval_key = next((k for k in METRIC_ORDER if k in evals[0]), None)
        label = f"{r['variant']} s{r['seed']}"
        style = ("-", "--", ":", "-.")[int(r["seed"]) % 4]  # colour: variant; line style: seed
        ax_loss.plot([x["step"] for x in train], [x["loss"] for x in train], color=colors[r["variant"]], lw=1,
                     ls=style, label=label)
        if eval_key:
            pts = [(x["step"], 100 * float(x[eval_key])) for x in evals if eval_key in x]
            ax_eval.plot([s for s, _ in pts], [v for _, v in pts], marker="o", ls=style, color=colors[r["variant"]],
                         ms=3, lw=1, label=label)
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="training loss")
    ax_eval.set(xlabel="step", ylabel=f"{METRIC_NAMES.get(eval_key or '', eval_key)} (%)",
                title=f"held-out {METRIC_NAMES.get(eval_key or '', eval_key)}")
    ax_eval.legend(fontsize=7, loc="best")
    return save_figure(fig, path)


def markdown_to_html(text: str, title: str = "report") -> str:
    """The report's Markdown as one HTML page, rendered by Python-Markdown (with its tables extension)."""
    import markdown

    body = markdown.markdown(text, extensions=["tables", "fenced_code"])
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}img{max-width:100%}"
             "pre{background:#f4f4f4;padding:.5em}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


def write_report(paths: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Write `out_dir/report.md` and `out_dir/report.html` (+ learning curves under `out_dir/figures/`).

    Slot-decomposition figures are linked where the run directories keep them (`vis/`), not copied.

    Args:
        paths: study directories (holding results.json from `run_study`) and/or run directories (metrics.jsonl).
        out_dir: where the report goes; links to runs are relative to it.

    Returns:
        The path of report.md.
    """
    out_dir = Path(out_dir)
    sources = load_sources(paths)  # before anything is written: a failed report leaves no empty --out behind
    if not sources:
        raise ReportError("no study or run directories given")
    out_dir.mkdir(parents=True, exist_ok=True)
    out_abs = out_dir.resolve()
    collapsed = {k: v for s in sources for k, v in find_collapsed(s.records).items()}
    md = ["# Reproduction report", "",
          ("Metrics in % (×100), mean ± sample std over seeds. **kept**: without the runs detected as collapsed "
          "(marked † and listed below); **all seeds**: every run. Each `sN` link and every number in the run tables "
          "opens the run directory that produced it."), ""]
    md += ["## Summary", ""]
    for s in sources:
        md += [f"### {s.label}", ""]
        if s.doc.get("description"):
            md += [s.doc["description"], ""]
        if s.doc.get("scale_description"):
            md += [f"Scale: {s.doc['scale_description']}", ""]
        if s.doc.get("overrides"):
            md += ["Extra overrides: " + ", ".join(f"`{o}`" for o in s.doc["overrides"]), ""]
        md += [*_summary_table(s, collapsed, out_abs), ""]
    md += ["## Collapsed and failed runs", "",
           (f"Collapsed: the largest slot takes ≥ {100 * COLLAPSE_SLOT_SHARE:.0f}% of the pixels of the first "
           f"held-out batch, or FG-ARI is more than {100 * COLLAPSE_FG_ARI_GAP:.0f} points below the median of the "
           "variant's seeds. These runs are left out of the **kept** columns."), ""]
    bad = [(r, collapsed.get(r["run_dir"]) or r.get("status")) for s in sources for r in _runs(s)
           if r["run_dir"] in collapsed or not str(r.get("status", "")).startswith(("trained", "skipped"))]
    md += [f"- {_link(r['study'] + ' / ' + r['variant'] + ' / seed ' + str(r['seed']), r['run_dir'], out_abs)}: "
           f"{why}" for r, why in bad] or ["None."]
    md += ["", "## All runs", ""]
    for s in sources:
        md += [f"### {s.label}", "", *_all_runs_table(s, out_abs), ""]
    md += ["## Learning curves", ""]
    for s in sources:
        png = learning_curves(s, out_dir / "figures" / f"curves_{_slug(s.label)}.png")
        md += [f"### {s.label}", "", f"![learning curves]({png.relative_to(out_dir)})" if png else "No metrics.jsonl.",
               ""]
    md += ["## Slot decompositions", "",
           "Each run's latest figure from `vis/`: input, reconstruction, each slot, segmentation, ground truth.", ""]
    for s in sources:
        md += [f"### {s.label}", ""]
        shown = 0
        for r in _runs(s):
            figures = sorted((Path(r["run_dir"]) / "vis").glob("*.png"))
            if not figures:
                continue
            # linked where the run keeps it, not copied: a committed report holds each figure once
            md += [f"{_link(r['variant'] + ' seed ' + str(r['seed']), r['run_dir'], out_abs)} ({figures[-1].name})",
                   "", f"![{r['variant']} seed {r['seed']}]({os.path.relpath(figures[-1], out_abs)})", ""]
            shown += 1
        md += [] if shown else ["No figures in these run directories.", ""]
    md += ["## Paper numbers", "", (f"Source: {TABLE_1_SOURCE}. Shown only next to a model with the paper's switches, "
           "evaluated as trained, on the same dataset; a short CPU run is not expected to reach them."), "",
           "| grouping | dataset | FG-ARI |", "|---|---|---|"]
    md += [f"| {g} | {d} | {m:.1f} ± {sd:.1f} |" for g, rows in TABLE_1_FG_ARI.items() for d, (m, sd) in rows.items()]
    text = "\n".join(md) + "\n"
    (out_dir / "report.md").write_text(text)
    (out_dir / "report.html").write_text(markdown_to_html(text, "slotattn reproduction report"))
    return out_dir / "report.md"
