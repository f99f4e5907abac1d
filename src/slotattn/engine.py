"""The ONE train/eval loop for every task: Adam + the paper's schedule, logs, evaluation, figures, checkpoints.

It knows a task only through `Task.loss/metrics/visualize`, a model only as an `nn.Module` called on
`batch["image"]`, and data only as a step-indexed source (`slotattn.data.stream`), which is what makes
`resume` exact: the checkpoint of step s holds model, optimizer, scheduler and RNG states, and the batches
after s are a function of s alone.
"""

import logging
import math
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from slotattn.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from slotattn.config import Config, dump_config, to_dict
from slotattn.data.stream import GeneratedSource, StepBatches, StoreSource
from slotattn.runlog import RunLog
from slotattn.schedule import build_scheduler
from slotattn.tasks import Task

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


class NonFiniteLossError(RuntimeError):
    """The loss or a gradient became NaN/inf; nothing of that step was applied or saved."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint of the last completed step was written."""


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available on this machine")
    return device


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, task: Task, batches: Iterable[Batch], device: torch.device, seed: int = 0,
    progress: Callable[[Iterable[Batch]], Iterable[Batch]] | None = None,
) -> dict[str, float]:
    """Mean of the task's per-example metrics over a whole split (NaN examples, e.g. no foreground, left out).

    Slot noise comes from a generator seeded with `seed`, so evaluation is repeatable and leaves the
    training RNG untouched.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator(device).manual_seed(seed)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for batch in progress(batches) if progress else batches:
        batch = to_device(batch, device)
        values = task.metrics(model(batch["image"], generator=generator), batch)
        for key, value in values.items():
            finite = value[~value.isnan()]
            sums[key] = sums.get(key, 0.0) + float(finite.sum())
            counts[key] = counts.get(key, 0) + int(finite.numel())
    model.train(was_training)
    return {key: sums[key] / counts[key] if counts[key] else math.nan for key in sums}


@dataclass
class _Stop:
    """Set by the SIGINT/SIGTERM handlers; checked between steps."""

    signal_name: str | None = None
    previous: dict[int, Any] = field(default_factory=dict)

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def train(
    cfg: Config,
    model: torch.nn.Module,
    task: Task,
    source: GeneratedSource | StoreSource,
    make_eval_batches: Callable[[], Iterable[Batch]],
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Train `model` on `task` until `cfg.train.steps`, logging, evaluating and checkpointing on the way.

    Args:
        cfg: the resolved config (written to `run_dir/config.yaml` and into every checkpoint).
        model: built by `build_model(cfg)`; moved to the configured device.
        task: loss, metrics and figures of the task.
        source: step-indexed training batches.
        make_eval_batches: returns a fresh iterable over the held-out split.
        run_dir: where logs, figures and checkpoints go.
        resume: continue from the newest valid checkpoint in `run_dir` (start afresh if there is none).
        progress: show a tqdm progress bar.

    Returns:
        The last evaluation's metrics.

    Raises:
        NonFiniteLossError: the loss or gradient norm is not finite.
        TrainingInterrupted: SIGINT/SIGTERM; a checkpoint was written first.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.train.device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.learning_rate, eps=1e-8)  # official eps
    scheduler = build_scheduler(optimizer, cfg.optim)
    runlog = RunLog(run_dir, tensorboard=cfg.train.tensorboard)
    step = 0
    last_ckpt: Path | None = None
    if resume and (last_ckpt := latest_checkpoint(run_dir)) is not None:
        state = load_checkpoint(last_ckpt)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step = int(state["step"])
        runlog.resume_from(step)
        log.info("resumed from %s at step %d", last_ckpt, step)
    dump_config(cfg, run_dir / "config.yaml")

    def checkpoint() -> Path:
        for name, param in model.named_parameters():  # nothing non-finite is ever written
            if not torch.isfinite(param).all():
                raise NonFiniteLossError(f"step {step}: parameter '{name}' is not finite; checkpoint not written")
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": _rng_state(), "config": to_dict(cfg)}
        return save_checkpoint(run_dir, state, step, cfg.train.keep_last)

    loader = DataLoader(
        StepBatches(source, start_step=step),
        batch_size=None,
        num_workers=cfg.data.num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # keeps the loader from drawing on the global RNG (exact resume)
        persistent_workers=False,
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.train.steps, initial=step, desc="train", dynamic_ncols=True)
    metrics: dict[str, float] = {}
    stop = _Stop()
    stop.install()
    model.train()
    started = time.perf_counter()
    deadline = started + 60 * cfg.train.max_minutes if cfg.train.max_minutes is not None else math.inf
    window_start, window_images = time.perf_counter(), 0
    batches = iter(loader)
    try:
        while step < cfg.train.steps:
            batch = to_device(next(batches), device)
            out = model(batch["image"])
            terms = task.loss(out, batch)
            loss = terms["loss"]
            if not torch.isfinite(loss):
                where = f"last good checkpoint: {last_ckpt}" if last_ckpt else "no checkpoint written yet"
                values = ", ".join(f"{k}={float(v.detach()):.6g}" for k, v in terms.items())
                raise NonFiniteLossError(f"step {step}: non-finite loss ({values}); {where}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip_norm)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            step += 1
            window_images += batch["image"].shape[0]
            # The time budget ends the run like its last step: log, evaluate, draw and checkpoint now.
            last = step == cfg.train.steps or time.perf_counter() >= deadline

            if step % cfg.train.log_every == 0 or last:
                elapsed = time.perf_counter() - window_start
                values = {k: float(v.detach()) for k, v in terms.items()} | {"lr": lr, "img_per_s": window_images / elapsed}
                runlog.write(step, "train", values)
                if bar is not None:
                    bar.set_postfix(loss=f"{values['loss']:.4g}", lr=f"{lr:.2e}", img_s=f"{values['img_per_s']:.0f}")
                window_start, window_images = time.perf_counter(), 0
            if bar is not None:
                bar.update(1)
            if step % cfg.train.eval_every == 0 or last:
                metrics = evaluate(model, task, make_eval_batches(), device, seed=cfg.train.seed)
                runlog.write(step, "eval", metrics)
                log.info("step %d eval %s", step, metrics)
            if step % cfg.train.vis_every == 0 or last:
                visualize(model, task, make_eval_batches(), device, run_dir / "vis" / f"step_{step:08d}.png",
                          seed=cfg.train.seed)
            if step % cfg.train.ckpt_every == 0 or last:
                last_ckpt = checkpoint()
            if step % cfg.train.eval_every == 0 or step % cfg.train.vis_every == 0 or step % cfg.train.ckpt_every == 0:
                window_start = time.perf_counter()  # images/s measures training steps only
            if last:
                if step < cfg.train.steps:
                    log.warning("train.max_minutes=%s reached at step %d of %d", cfg.train.max_minutes, step,
                                cfg.train.steps)
                break
            if stop.signal_name is not None:
                if last_ckpt is None or not last_ckpt.name.endswith(f"{step:08d}.pt"):
                    last_ckpt = checkpoint()
                raise TrainingInterrupted(
                    f"{stop.signal_name} at step {step}: checkpoint written to {last_ckpt}; "
                    f"continue with: slotattn train --run-dir {run_dir} --resume"
                )
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
        runlog.close()
    return metrics


@torch.no_grad()
def visualize(model: torch.nn.Module, task: Task, batches: Iterable[Batch], device: torch.device, path: Path,
              seed: int = 0) -> Path:
    """The task's figure of the first held-out batch."""
    was_training = model.training
    model.eval()
    batch = to_device(next(iter(batches)), device)
    out = model(batch["image"], generator=torch.Generator(device).manual_seed(seed))
    model.train(was_training)
    return task.visualize(out, batch, path)
