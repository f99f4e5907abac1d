"""The paper's analysis (Sec. 4) as ready-made studies: test-time iterations and slots, ablations, baselines.

`run_study` trains every variant x seed with `slotattn.run.train` (resumable), evaluates each trained model with
`engine.evaluate` (also at other test-time T or K) and writes `out_dir/results.json`; `slotattn.report` turns
that into tables and figures. Scales (`SCALES`): smoke (debug recipe, seconds), cpu (Tetrominoes on the demo
recipe, ~1 CPU-hour for the iterations and ablations studies with 3 seeds), paper (the paper's recipe, a GPU).
"""

import dataclasses
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from slotattn import run
from slotattn.config import Config, ConfigError, load_config
from slotattn.data.build import build_eval_batches, default_max_objects, generator_for
from slotattn.data.errors import DataError
from slotattn.pretrained import load_model
from slotattn.tasks import build_task
from slotattn.training.checkpoint import latest_checkpoint
from slotattn.training.engine import NonFiniteLossError, evaluate, to_device

log = logging.getLogger(__name__)

RESULTS_VERSION = 1


@dataclass(frozen=True)
class Variant:
    """One model to train: a name (its directory under the study) and the config overrides that define it."""

    name: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    """Variants to train, and (optionally) a model setting to sweep at test time.

    Attributes:
        name: the study's name (`slotattn study NAME`).
        description: one line for the report.
        variants: the models trained, each over every seed.
        test_setting: "num_iterations" or "num_slots" to evaluate each model at several values; None evaluates it
            as trained.
        test_values: the values of `test_setting` (absolute, or offsets from the trained value if `relative`).
        relative: `test_values` are offsets from the trained value (slots: K..K+4).
        extra_objects: evaluate on generated scenes with up to this many more objects than the training data
            (`data.eval_max_objects`); 0 evaluates on the training distribution.
    """

    name: str
    description: str
    variants: tuple[Variant, ...]
    test_setting: str | None = None
    test_values: tuple[int, ...] = ()
    relative: bool = False
    extra_objects: int = 0

    def eval_config(self, cfg: Config) -> Config:
        """The config whose held-out split the study evaluates on: the training one, or with more objects."""
        if not self.extra_objects:
            return cfg
        if cfg.data.eval_path is not None:
            raise StudyError(f"study '{self.name}' evaluates on generated scenes with more objects, but "
                             f"data.eval_path={cfg.data.eval_path} is set")
        trained = cfg.data.max_objects or default_max_objects(cfg.data.name, cfg.data.variant)
        return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                                                 eval_max_objects=trained + self.extra_objects))

    def settings(self, cfg: Config) -> list[int | None]:
        """The test-time values of `test_setting` for a model trained with `cfg` ([None]: as trained)."""
        if self.test_setting is None:
            return [None]
        trained = getattr(cfg.model, self.test_setting)
        return [trained + v if self.relative else v for v in self.test_values]


PAPER_MODEL = Variant("slot_attention")

STUDIES: dict[str, Study] = {
    "iterations": Study(
        "iterations", "Slot Attention trained with T=3 iterations, evaluated with T=1..7 (paper Fig. 4).",
        (Variant("slot_attention", ("model.num_iterations=3",)),),
        test_setting="num_iterations", test_values=(1, 2, 3, 4, 5, 6, 7),
    ),
    "slots": Study(
        "slots", "Slot Attention trained with the recipe's K slots, evaluated with K..K+4 slots (paper Sec. 4.1).",
        (PAPER_MODEL,),
        test_setting="num_slots", test_values=(0, 1, 2, 3, 4), relative=True,
    ),
    "ablations": Study(
        "ablations", "Each switch of Slot Attention turned off alone, against the paper's model (paper Sec. 4).",
        (
            PAPER_MODEL,
            Variant("no_encoder_position", ("model.use_encoder_position=false",)),
            Variant("no_decoder_position", ("model.use_decoder_position=false",)),
            Variant("softmax_over_inputs", ("model.attention_axis=inputs",)),
            Variant("no_gru", ("model.use_gru=false",)),
            Variant("no_mlp", ("model.use_mlp=false",)),
        ),
    ),
    "generalisation": Study(
        "generalisation", "Trained on the recipe's scenes with K slots; evaluated on scenes with up to 4 more "
        "objects, with K and K+4 slots (paper Sec. 4.1: trained on CLEVR6 with 7 slots, tested on CLEVR10 with 11).",
        (PAPER_MODEL,),
        test_setting="num_slots", test_values=(0, 4), relative=True, extra_objects=4,
    ),
    "baselines": Study(
        "baselines", "Slot Attention against the Slot MLP and soft k-means groupings on the same encoder (Table 1).",
        (
            PAPER_MODEL,
            Variant("slot_mlp", ("model.grouping=slot_mlp",)),
            Variant("soft_kmeans", ("model.grouping=soft_kmeans",)),
        ),
    ),
}


@dataclass(frozen=True)
class Scale:
    """A recipe plus the overrides that size it, and the default number of seeds."""

    name: str
    recipe: str
    overrides: tuple[str, ...]
    seeds: int
    description: str


SCALES: dict[str, Scale] = {
    "smoke": Scale(
        "smoke", "debug", ("train.steps=4", "data.num_eval=16", "train.device=cpu"), 2,
        "configs/debug.yaml (tiny Tetrominoes model) for 4 steps: checks the plumbing in seconds; "
        "the numbers mean nothing.",
    ),
    "cpu": Scale(
        "cpu", "tetrominoes_small",
        ("train.steps=1500", "train.batch_size=16", "optim.warmup_steps=150", "optim.decay_steps=1500",
         "train.max_minutes=null", "data.num_eval=256", "train.eval_every=250", "train.ckpt_every=250",
         "train.vis_every=500", "train.log_every=25", "train.device=cpu"),
        2,
        "configs/tetrominoes_small.yaml (Tetrominoes 35x35, the paper's 4 slots, 64-d slots, narrowed convs: 4x32 encoder, "
        "2x16 3x3 decoder) for 1,500 steps of batch 16 with warm-up 150 and x0.5 decay every 1,500 steps, "
        "FG-ARI on 256 held-out scenes, 2 seeds unless --seeds. Measured on one core of the 2-core development VM "
        "(2026-11-26) with the default bf16 fast path: ~3 minutes per run (~135 img/s; float32 1.6x slower), so "
        "the iterations study takes ~3 min per seed, ablations ~18 min per seed, baselines ~9 min per seed. "
        "That is ~0.1% of the paper's 500k steps x batch 64, and FG-ARI is still rising at the last step, with "
        "seeds far apart: compare variants with each other, not with the paper.",
    ),
    "paper": Scale(
        "paper", "tetrominoes", (), 5,
        "The paper's recipe (configs/tetrominoes.yaml unless --config names another: 500k steps, batch 64, "
        "5 seeds as in Table 1); needs a GPU.",
    ),
}


class StudyError(ValueError):
    """An unknown study or scale, or a study directory that does not fit the request."""


def _step_of(ckpt: Path) -> int:
    match = re.match(r"^step_(\d+)\.pt$", ckpt.name)
    if match is None:
        raise StudyError(f"{ckpt}: not a checkpoint name of the form step_NNNNNNNN.pt")
    return int(match.group(1))


def run_config(name: str, scale: str, variant: str, seed: int, recipe: str | Path | None = None,
               overrides: Sequence[str] = ()) -> tuple[str, list[str]]:
    """The recipe and `--set` overrides that train one variant x seed of a study (scale, variant, seed, extra)."""
    study, sc = _lookup(name, scale)
    found = [v for v in study.variants if v.name == variant]
    if not found:
        raise StudyError(f"study '{name}' has no variant '{variant}'; it has {[v.name for v in study.variants]}")
    return str(recipe or sc.recipe), [*sc.overrides, *found[0].overrides, f"train.seed={seed}", *overrides]


def _lookup(name: str, scale: str) -> tuple[Study, Scale]:
    if name not in STUDIES:
        raise StudyError(f"unknown study '{name}'; expected one of {sorted(STUDIES)}")
    if scale not in SCALES:
        raise StudyError(f"unknown scale '{scale}'; expected one of {sorted(SCALES)}")
    return STUDIES[name], SCALES[scale]


def _train(recipe: str, overrides: list[str], run_dir: Path, progress: bool) -> tuple[Config, str]:
    """Train (or finish) one run; returns its config and "trained" | "skipped" | "failed (...)" | "incomplete (...)".

    A run that stops on a non-finite loss, or whose config cannot be built, is recorded as failed and the study goes
    on; SIGINT/SIGTERM (`TrainingInterrupted`) stops the whole study, its checkpoint written.
    """
    cfg = load_config(recipe, overrides)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None and _step_of(ckpt) >= cfg.train.steps:
        log.info("%s: finished (checkpoint %s), not retrained", run_dir, ckpt.name)
        return cfg, "skipped"
    resume = ckpt is not None or (run_dir / "config.yaml").exists()  # interrupted earlier: continue
    log.info("training %s (recipe %s, overrides %s%s)", run_dir, recipe, overrides, ", resumed" if resume else "")
    try:
        run.train(cfg, run_dir, resume=resume, progress=_progress_bar() if progress else None)
    except (NonFiniteLossError, ConfigError, DataError) as err:
        log.warning("%s: training failed: %s", run_dir, err)
        return cfg, f"failed ({type(err).__name__}: {err})"
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None or _step_of(ckpt) < cfg.train.steps:  # e.g. train.max_minutes ran out
        return cfg, f"incomplete (step {_step_of(ckpt) if ckpt else 0} of {cfg.train.steps})"
    return cfg, "trained"


def _progress_bar():
    """A tqdm bar per run, as `run.train`'s progress callback (studies are run from the CLI or a notebook)."""
    from tqdm.auto import tqdm

    bar = None

    def update(step: int, total: int, values: dict[str, float] | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=step - 1, desc="train", dynamic_ncols=True)
        bar.update(1)
        if step >= total:
            bar.close()

    return update


@torch.no_grad()
def _slot_share(model: torch.nn.Module, batch: dict[str, torch.Tensor], device: torch.device, seed: int,
                **test_time: int) -> float:
    """Share of all pixels of one held-out batch whose argmax slot is the most used slot (1.0: total collapse)."""
    out = model(to_device(batch, device)["image"], generator=torch.Generator(device).manual_seed(seed), **test_time)
    masks = getattr(out, "masks", None)
    if masks is None:  # set prediction: no masks
        return math.nan
    ids = masks[:, :, 0].argmax(dim=1).flatten()  # (B*H*W,)
    return float(torch.bincount(ids, minlength=masks.shape[1]).max()) / ids.numel()


def evaluate_run(run_dir: str | Path, study: Study, device: str | None = None) -> list[dict[str, Any]]:
    """The metrics of the run's newest checkpoint at each test-time setting of `study` (cached in the run).

    Returns:
        One dict per setting: {"setting": int | None, "trained_setting": bool, "step": int, "metrics": {...}}.
        Cached in `run_dir/study_eval.json`, reused while the checkpoint and the settings are unchanged.
    """
    run_dir = Path(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise StudyError(f"{run_dir}: no complete checkpoint to evaluate")
    cache = run_dir / "study_eval.json"
    model, cfg = load_model(ckpt)
    settings = study.settings(cfg)
    cfg = study.eval_config(cfg)
    key = {"checkpoint": ckpt.name, "setting": study.test_setting, "values": settings,
           "eval_max_objects": cfg.data.eval_max_objects}
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return stored["results"]
    dev = run.inference_device(cfg, device)
    model.to(dev)
    task = build_task(cfg.task)
    batches = build_eval_batches(cfg)
    trained = getattr(cfg.model, study.test_setting) if study.test_setting else None
    results = []
    for value in settings:
        test_time = {study.test_setting: value} if study.test_setting is not None else {}  # per call, T or K
        metrics = evaluate(model, task, batches(), dev, seed=cfg.train.seed, **test_time)
        metrics["largest_slot_share"] = _slot_share(model, next(iter(batches())), dev, cfg.train.seed, **test_time)
        results.append({"setting": value, "trained_setting": value == trained, "step": _step_of(ckpt),
                        "eval_max_objects": cfg.data.eval_max_objects, "metrics": metrics})
    cache.write_text(json.dumps({"key": key, "results": results}, indent=1) + "\n")
    return results


def run_study(
    name: str,
    scale: str,
    out_dir: str | Path,
    seeds: int | None = None,
    recipe: str | Path | None = None,
    progress: bool = True,
    overrides: Sequence[str] = (),
) -> Path:
    """Train every variant x seed of a study into `out_dir/<variant>/seed<k>`, evaluate them, write results.json.

    Resumable: a run whose newest checkpoint is at `train.steps` is not retrained, an interrupted one continues
    with `--resume`, and evaluations are cached per checkpoint. A run whose training fails (e.g. a non-finite loss)
    is recorded with its status and no metrics; the other runs go on.

    Args:
        name: a key of `STUDIES`: iterations | slots | ablations | baselines.
        scale: a key of `SCALES`: smoke | cpu | paper.
        out_dir: the study directory.
        seeds: number of seeds (train.seed = 0..seeds-1); default the scale's.
        recipe: YAML recipe (name or path) instead of the scale's, e.g. multi_dsprites; the scale's overrides apply.
        progress: show the training progress bars.
        overrides: extra `a.b=c` overrides applied to every run (after the scale's and the variant's).

    Returns:
        The path of `out_dir/results.json`: {"version", "study", "scale", "recipe", "description", "test_setting",
        "records": [...]}, one record per run x setting: study, variant, seed, setting, trained_setting, step,
        status, metrics, run_dir (relative to out_dir), dataset, model (the switches of the run's config).
    """
    study, sc = _lookup(name, scale)
    seeds = sc.seeds if seeds is None else seeds
    if seeds < 1:
        raise StudyError(f"seeds must be >= 1, got {seeds}")
    if study.extra_objects:  # fail before training if the dataset cannot have more objects
        first_recipe, first_overrides = run_config(name, scale, study.variants[0].name, 0, recipe, overrides)
        eval_cfg = study.eval_config(load_config(first_recipe, first_overrides))
        try:
            generator_for(eval_cfg.data.name, eval_cfg.data.variant, eval_cfg.data.eval_max_objects)
        except DataError as err:
            raise StudyError(f"study '{name}': {err}; pass --config multi_dsprites or clevr6") from err
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    results_path = out_dir / "results.json"

    def write() -> None:  # after every run, so an interrupted study still leaves its finished results
        doc = {"version": RESULTS_VERSION, "study": name, "scale": scale, "recipe": str(recipe or sc.recipe),
               "description": study.description, "scale_description": sc.description,
               "test_setting": study.test_setting, "overrides": list(overrides), "records": records}
        results_path.write_text(json.dumps(doc, indent=1) + "\n")

    for variant in study.variants:
        for seed in range(seeds):
            run_dir = out_dir / variant.name / f"seed{seed}"
            run_recipe, run_overrides = run_config(name, scale, variant.name, seed, recipe, overrides)
            cfg, status = _train(run_recipe, run_overrides, run_dir, progress)
            base = {"study": name, "variant": variant.name, "seed": seed, "run_dir": f"{variant.name}/seed{seed}",
                    "dataset": cfg.data.name, "status": status,
                    "model": {k: getattr(cfg.model, k) for k in (
                        "grouping", "attention_axis", "use_gru", "use_mlp", "use_encoder_position",
                        "use_decoder_position", "num_slots", "num_iterations")},
                    "train_steps": cfg.train.steps, "test_setting": study.test_setting}
            if status.startswith("failed"):
                records.append(base | {"setting": None, "trained_setting": True, "step": None, "metrics": {}})
            else:
                for result in evaluate_run(run_dir, study):
                    records.append(base | result)
            write()
    return results_path
