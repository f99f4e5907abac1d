"""The library's run layer: what the `slotattn` commands do, as functions (train, evaluate, visualize, export, ...).

The CLI parses arguments, calls one of these and prints; studies and the demo call them too. Each takes a config or
a checkpoint (a file, a run directory, an exported `.safetensors`, or the name of shipped weights) and returns what
it made. Nothing here prints: progress goes to the callbacks the caller passes.

    >>> from slotattn import load_config, run
    >>> metrics = run.train(load_config("debug"), "runs/debug")                          # doctest: +SKIP
    >>> run.evaluate("runs/debug", num_iterations=5)["fg_ari"]                           # doctest: +SKIP
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from slotattn.config import Config, ConfigError, apply_overrides, from_dict, load_config, parse_override, to_dict
from slotattn.data.build import (build_eval_batches, build_train_source, check_train_data_rate, generate_to_arrays,
                                 held_out_size)
from slotattn.data.store import Store, write_store
from slotattn.models import build_model
from slotattn.pretrained import load_model, load_weights_into, resolve_checkpoint
from slotattn.tasks import build_task
from slotattn.training import distributed, engine
from slotattn.training.checkpoint import (CheckpointError, checkpoint_step, export_path, export_safetensors,
                                         latest_checkpoint, load_checkpoint)
from slotattn.training.engine import Progress

log = logging.getLogger(__name__)


def train(cfg: Config, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
          progress: Progress | None = None) -> dict[str, float]:
    """Seed, build the model, task and data of `cfg`, and train them in `run_dir` (also under torchrun).

    The run holds `run_dir` while it trains: a second trainer there fails at once, and a new run refuses a
    directory that holds another run's files unless `overwrite` (`slotattn.training.rundir`).

    Args:
        cfg: the resolved config (`load_config`, or `resume_config` to continue a run).
        run_dir: where config, logs, figures and checkpoints go.
        resume: continue from the newest checkpoint in `run_dir` (exact continuation).
        overwrite: start afresh in a `run_dir` that holds another run, replacing that run's files whole.
        progress: progress(step, total, values or None) after every step, on rank 0.

    Returns:
        The last evaluation's metrics.
    """
    check_train_data_rate(cfg, engine.resolve_device(cfg.train.device))  # no CLEVR rendered while a GPU trains
    torch.manual_seed(cfg.train.seed)  # the only global seeding: slot noise and parameter init (same on all ranks)
    try:
        model = build_model(cfg)
    except ValueError as err:  # e.g. a decoder that cannot reach model.resolution
        raise ConfigError(f"the config's model cannot be built: {err}") from err
    if cfg.train.init_from is not None and not (resume and latest_checkpoint(run_dir) is not None):
        load_weights_into(model, cfg, cfg.train.init_from)  # fine-tuning; a resumed run has its own weights
    try:
        return engine.train(cfg, model, build_task(cfg.task),
                            lambda rank, world: build_train_source(cfg, rank, world),
                            lambda rank, world: build_eval_batches(cfg, rank=rank, world_size=world),
                            run_dir, resume=resume, overwrite=overwrite, progress=progress)
    finally:
        distributed.shutdown()


# The settings a resumed run may change: how long and how it trains and reports, not what it learns or from what.
SAFE_ON_RESUME = ("train.steps", "train.max_minutes", "train.log_every", "train.eval_every", "train.ckpt_every",
                  "train.vis_every", "train.keep_last", "train.tensorboard", "train.eval_batch_size", "train.device",
                  "train.precision", "train.compile", "data.num_workers")


def resume_config(run_dir: str | Path, recipe: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """The config to continue `run_dir` with: the one stored in its newest checkpoint (else its config.yaml, else
    `recipe`), plus `overrides` (e.g. more `train.steps`).

    Once the run has a checkpoint, `overrides` may change only `SAFE_ON_RESUME` settings: one that changes the
    model, data, optimiser or seed would continue the stored weights as another run, and is refused by name.
    """
    run_dir = Path(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        stored = from_dict(load_checkpoint(ckpt)["config"])
        cfg = apply_overrides(stored, overrides)
        changed = [key for key in (parse_override(text)[0] for text in overrides)
                   if key not in SAFE_ON_RESUME and _get(cfg, key) != _get(stored, key)]
        if changed:
            raise ConfigError(f"--resume continues {run_dir} as it was trained; --set {', '.join(changed)} would "
                              f"change what it learns (may change on resume: {', '.join(SAFE_ON_RESUME)}); start a "
                              "new run in another --run-dir instead")
        return cfg
    if recipe is not None or (run_dir / "config.yaml").exists():
        return load_config(recipe or run_dir / "config.yaml", overrides)
    raise CheckpointError(f"{run_dir}: nothing to resume (no checkpoint, no config.yaml) and no recipe")


def _get(cfg: Config, key: str) -> Any:
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def finished(run_dir: str | Path, cfg: Config) -> bool:
    """Whether `run_dir`'s newest checkpoint is at (or past) `cfg.train.steps`: resuming it would train nothing."""
    ckpt = latest_checkpoint(run_dir)
    return ckpt is not None and checkpoint_step(ckpt) >= cfg.train.steps


def load_for_inference(checkpoint: str | Path, overrides: Sequence[str] = ()) -> tuple[Config, torch.nn.Module, Path]:
    """(config, model, checkpoint file) rebuilt from the config stored with the weights.

    `overrides` may change how the model is run (data, batch sizes, device), not what it is: the model is built
    from the checkpoint's own config, so a `model.*` override is refused rather than silently ignored.
    """
    model_keys = [text for text in overrides if parse_override(text)[0].startswith("model.")]
    if model_keys:
        raise ConfigError(
            f"--set {model_keys[0]}: the model is rebuilt from the checkpoint's own config, so model.* settings "
            "cannot change here; for test-time slots or iterations use --num-slots / --num-iterations")
    ckpt = resolve_checkpoint(checkpoint)
    model, cfg = load_model(ckpt)
    return apply_overrides(cfg, overrides), model, ckpt


def inference_device(cfg: Config, device: str | None = None) -> torch.device:
    """Where to run a trained model: `device` if given (strictly: an unknown or absent device is an error), else
    the device it trained on, or the CPU, with a one-line warning, when that was a GPU this machine does not have
    (a GPU-trained checkpoint evaluated, drawn or exported on a CPU machine)."""
    if device is not None:
        return engine.resolve_device(device)
    try:
        return engine.resolve_device(cfg.train.device)
    except ConfigError:
        log.warning("the model trained on train.device=%s, which this machine does not have: running it on the CPU",
                    cfg.train.device)
        return torch.device("cpu")


# What `evaluate` returns besides the metrics.
EVAL_FIELDS = ("checkpoint", "data", "num_scenes", "num_slots", "num_iterations")


def evaluate(
    checkpoint: str | Path,
    *,
    data: str | Path | None = None,
    num: int | None = None,
    num_slots: int | None = None,
    num_iterations: int | None = None,
    device: str | None = None,
    overrides: Sequence[str] = (),
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """The task's metrics of a trained model over a held-out split.

    Args:
        checkpoint: a checkpoint, run directory, exported `.safetensors` or shipped-weights name.
        data: a dataset directory (default: the config's eval split, generated if unset).
        num: number of examples (default `data.num_eval`).
        num_slots, num_iterations: test-time K and T (paper Sec. 4; default: as trained).
        device: override `train.device`.
        overrides: `a.b=c` settings of the evaluation (not `model.*`).
        progress: wraps the iterable of batches (e.g. a progress bar).

    Returns:
        {"checkpoint", "data", "num_scenes", "num_slots", "num_iterations", **metrics} (`EVAL_FIELDS`, then the
        metrics).
    """
    if num is not None and num < 1:
        raise ConfigError(f"evaluate: num must be at least 1 (examples to score), got {num}")
    cfg, model, ckpt = load_for_inference(checkpoint, overrides)
    dev = inference_device(cfg, device)
    model.to(dev)
    num_scenes = held_out_size(cfg, data, num)
    batches = build_eval_batches(cfg, path=data, num=num)
    metrics = engine.evaluate(model, build_task(cfg.task), batches(), dev, seed=cfg.train.seed, progress=progress,
                              num_slots=num_slots, num_iterations=num_iterations)
    trained_iterations = getattr(model, "num_iterations", None)  # None: the Slot MLP baseline does not iterate
    return {"checkpoint": str(ckpt), "data": str(data or cfg.data.eval_path or f"generated:{cfg.data.name}"),
            "num_scenes": num_scenes, "num_slots": num_slots or model.num_slots,
            "num_iterations": num_iterations if trained_iterations is not None and num_iterations else
            trained_iterations, **metrics}


def visualize(checkpoint: str | Path, out: str | Path, *, num: int = 8, data: str | Path | None = None,
              device: str | None = None, num_slots: int | None = None, num_iterations: int | None = None,
              overrides: Sequence[str] = ()) -> Path:
    """The task's figure (decomposition or attention) of `num` held-out examples, written to `out` (PNG).
    `overrides`: `a.b=c` settings of the evaluation data (e.g. `data.eval_seed`), not `model.*`."""
    cfg, model, _ = load_for_inference(checkpoint, [*overrides, f"train.eval_batch_size={num}"])
    dev = inference_device(cfg, device)
    model.to(dev)
    batches = build_eval_batches(cfg, path=data, num=num)
    return engine.visualize(model, build_task(cfg.task), batches(), dev, Path(out), seed=cfg.train.seed,
                            num_slots=num_slots, num_iterations=num_iterations)


def export(checkpoint: str | Path, out: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a trained model's weights + config for inference (safetensors + JSON); returns (written, source).
    `out` without a suffix gets `.safetensors`; existing files are replaced only with `overwrite`."""
    export_path(out, overwrite)  # refuse before loading anything
    cfg, model, ckpt = load_for_inference(checkpoint)
    return export_safetensors(model.state_dict(), to_dict(cfg), out, overwrite), ckpt


def generate(dataset: str, num: int, out: str | Path, *, seed: int = 0, variant: str | None = None,
             chunk: int = 4096, overwrite: bool = False, progress: Any = None,
             resolution: tuple[int, int] | None = None) -> Store:
    """Generate `num` scenes of `dataset` into a store directory (`progress`: an object with `update(n)`), at the
    dataset's own resolution or `resolution` (H, W)."""
    chunks = generate_to_arrays(dataset, num, seed, chunk, variant, resolution)
    args = {"chunk": chunk, **({"resolution": list(resolution)} if resolution is not None else {})}
    meta = {"dataset": dataset, "variant": variant,
            "generator": {"name": f"slotattn.{dataset}", "seed": seed, "args": args}}
    return write_store(out, chunks, meta, num=num, overwrite=overwrite, progress=progress)
