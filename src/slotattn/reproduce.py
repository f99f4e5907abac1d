"""One command per row of the paper's results: train with the paper's recipe for a time budget, evaluate with the
paper's protocol, and write the row (value, images seen, minutes, device) as JSON.

    slotattn reproduce tetrominoes --minutes 60 --out runs/reproduce        # rerun to continue: resumes the run
    slotattn reproduce clevr6 --minutes 480 --device cuda --out runs/reproduce
"""

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slotattn import run
from slotattn.config import from_dict, load_config, to_dict
from slotattn.paper import TABLE_1_FG_ARI, TABLE_2_SLOT_ATTENTION_AP
from slotattn.training.checkpoint import latest_checkpoint, load_checkpoint
from slotattn.training.engine import Progress, resolve_precision
from slotattn.training.runlog import describe_device, read_metrics, read_starts


@dataclass(frozen=True)
class Row:
    """A row of the paper's results and how it is measured.

    Attributes:
        name: the row's name (`slotattn reproduce NAME`).
        recipe: the packaged recipe with the paper's model and schedule.
        metric: the metric the paper reports for the row.
        paper: the paper's value in % (mean, std over seeds).
        source: where in the paper.
        num_eval: held-out scenes evaluated (the paper's protocol).
    """

    name: str
    recipe: str
    metric: str
    paper: tuple[float, float]
    source: str
    num_eval: int


ROWS: dict[str, Row] = {r.name: r for r in (
    *(Row(name, name, "fg_ari", TABLE_1_FG_ARI["slot_attention"][name], "Table 1", 320)
      for name in ("clevr6", "multi_dsprites", "tetrominoes")),
    Row("set_prediction", "set_prediction_clevr", "ap@inf", TABLE_2_SLOT_ATTENTION_AP["ap@inf"], "Table 2", 512),
)}


def training_device(run_dir: str | Path, step: int,
                    unrecorded: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """(device, precision) of the run's training up to `step`: what it recorded at its starts
    (`RunLog.record_start`), after `unrecorded` -- (device, precision) of the steps before its first recorded start,
    for a run that began before the record (2026-12-04; `write_row` drops it when the record covers step 0). None
    if neither says."""
    starts = [s for s in read_starts(run_dir) if s["step"] <= step]
    parts = [(s["device"] + (f" x {s['world_size']} processes" if s["world_size"] > 1 else ""), s["precision"])
             for s in starts]
    if unrecorded is not None:
        parts.insert(0, unrecorded)
    if not parts:
        return None
    return " + ".join(dict.fromkeys(d for d, _ in parts)), " + ".join(dict.fromkeys(p for _, p in parts))


def reproduce(name: str, out_dir: str | Path, *, minutes: float | None = None, device: str = "auto",
              data: str | None = None, num_eval: int | None = None, overrides: Sequence[str] = (),
              progress: Progress | None = None) -> dict[str, Any]:
    """Train row `name` with the paper's recipe (continuing an earlier call's run), evaluate it, write the row.

    Args:
        name: a key of `ROWS`.
        out_dir: the run goes to `out_dir/NAME/run`, the row to `out_dir/NAME.json`.
        minutes: training time of this call (`train.max_minutes`); None: to the recipe's last step.
        device: "auto" | "cpu" | "cuda" | "cuda:N".
        data: a dataset directory (`slotattn generate`/`convert`) instead of scenes generated on the fly.
        num_eval: held-out scenes (default: the paper's protocol for the row).
        overrides: further `a.b=c` settings (recorded in the row; the row is then not the paper's recipe).
        progress: the training progress callback.

    Returns:
        The row: {"row", "metric", "value", "paper", "metrics", "steps", "images_seen", "minutes", "device",
        "precision", "date", "recipe", "overrides", "config"}.
    """
    if name not in ROWS:
        raise ValueError(f"unknown row {name!r}; expected one of {sorted(ROWS)}")
    row = ROWS[name]
    num_eval = num_eval or row.num_eval
    settings = [f"train.device={device}", f"data.num_eval={num_eval}", *([f"data.path={data}"] if data else []),
                *overrides]
    run_dir = Path(out_dir) / name / "run"
    resume = latest_checkpoint(run_dir) is not None
    cfg = run.resume_config(run_dir, overrides=settings) if resume else load_config(row.recipe, settings)
    cfg = from_dict({"train": {"max_minutes": minutes}}, base=cfg)
    if not run.finished(run_dir, cfg):  # a finished row is only evaluated again
        run.train(cfg, run_dir, resume=resume, progress=progress)
    return write_row(name, run_dir, Path(out_dir) / f"{name}.json", num_eval=num_eval, overrides=overrides,
                     data=data)


def write_row(name: str, run_dir: str | Path, path: str | Path, *, num_eval: int | None = None,
              overrides: Sequence[str] = (), data: str | None = None,
              started_from: dict[str, Any] | None = None,
              unrecorded: tuple[str, str] | None = None) -> dict[str, Any]:
    """Evaluate the newest checkpoint of `run_dir` with row `name`'s protocol and write the row to `path`.

    Also for runs trained otherwise than by `reproduce` (e.g. a CPU recipe): `overrides` then names the settings in
    which the run differed from the paper's recipe, and the row records them. `started_from` is for a run that
    fine-tuned earlier weights (`train.init_from`): {"what": ..., "images": ..., "minutes": ...} of the training
    behind those weights, added to the row's images and minutes and kept in the row. The row's device is
    what the run recorded at its starts (`run_dir/starts.jsonl`), after `unrecorded` = (device, precision) of the
    steps before the first recorded start (a run older than the record); without either the row says it names the
    evaluating process.
    """
    if started_from is not None and set(started_from) != {"what", "images", "minutes"}:
        raise ValueError(f"started_from needs exactly the keys what, images, minutes; got {sorted(started_from)}")
    row = ROWS[name]
    num_eval = num_eval or row.num_eval
    result = run.evaluate(run_dir, num=num_eval)
    ckpt = latest_checkpoint(run_dir)
    payload = load_checkpoint(ckpt)
    cfg = from_dict(payload["config"])
    step = int(payload["step"])
    # rows logged after the checkpoint (by a run stopped between checkpoints) describe training it does not hold
    train_rows = [r for r in read_metrics(run_dir) if r["split"] == "train" and r["step"] <= step]
    dev = run.inference_device(cfg)
    if any(start["step"] == 0 for start in read_starts(run_dir)):
        unrecorded = None  # the record covers the whole run
    recorded = training_device(run_dir, step, unrecorded)
    if recorded is not None:
        device, precision = recorded
    else:
        device = f"{describe_device(dev)}, evaluating: the run did not record where it trained"
        precision = resolve_precision(cfg.train.precision, dev)
    metrics = {k: v for k, v in result.items() if k not in run.EVAL_FIELDS}
    row_json = {
        "row": name, "metric": row.metric, "value": metrics[row.metric], "paper": list(row.paper),
        "paper_source": row.source, "metrics": metrics, "num_eval": num_eval, "steps": step,
        "images_seen": step * cfg.train.batch_size + (started_from["images"] if started_from else 0),
        "minutes": round((train_rows[-1]["time_s"] / 60 if train_rows else 0.0)
                         + (started_from["minutes"] if started_from else 0.0), 1),
        "started_from": started_from,
        "device": device, "precision": precision,
        "unrecorded": list(unrecorded) if unrecorded is not None else None,
        "date": time.strftime("%Y-%m-%d"), "recipe": row.recipe, "overrides": list(overrides),
        "data": data or cfg.data.path or f"generated:{cfg.data.name}", "config": to_dict(cfg),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row_json, indent=1) + "\n")
    return row_json


__all__ = ["ROWS", "Row", "reproduce", "training_device", "write_row"]
