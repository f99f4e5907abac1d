"""The ONE train/eval loop for every task: Adam + the paper's schedule, logs, evaluation, figures, checkpoints.

It knows a task only through `Task.loss/metrics/visualize`, a model only as an `nn.Module` called on
`batch["image"]`, and data only as a step-indexed source (`slotattn.data.stream`), which is what makes
`resume` exact: the checkpoint of step s holds model, optimizer, scheduler and RNG states, and the batches
after s are a function of s alone.
"""

import contextlib
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
from slotattn.distributed import DistInfo, all_reduce_sum, barrier, gather_objects, init_distributed
from slotattn.optimizer import build_optimizer
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
    progress: Callable[[Iterable[Batch]], Iterable[Batch]] | None = None, dist_info: DistInfo = DistInfo(),
) -> dict[str, float]:
    """The task's metrics over a whole split (under DDP: this rank's shard, combined over ranks by the task).

    Slot noise is seeded by each batch's position in the split (`batch["index"]`), so evaluation is repeatable,
    gives the same numbers on any number of ranks, and leaves the training RNG untouched.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator(device)
    evaluator = task.evaluator()
    for batch in progress(batches) if progress else batches:
        generator.manual_seed(seed * 1_000_003 + int(batch["index"][0]) if "index" in batch else seed)
        batch = to_device(batch, device)
        evaluator.update(model(batch["image"], generator=generator), batch)
    model.train(was_training)
    return evaluator.compute(lambda obj: gather_objects(obj, dist_info))


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
    make_source: Callable[[int, int], GeneratedSource | StoreSource],
    make_eval_batches: Callable[[int, int], Callable[[], Iterable[Batch]]],
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Train `model` on `task` until `cfg.train.steps`, logging, evaluating and checkpointing on the way.

    Under `torchrun` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel, each rank reads its
    shard of every global batch of `cfg.train.batch_size`, only rank 0 writes, and evaluation is reduced over
    ranks. Slot noise is drawn for the whole global batch from the (identical) RNG of every rank and sliced,
    so N ranks x batch b follow 1 process x batch N*b.

    Args:
        cfg: the resolved config (written to `run_dir/config.yaml` and into every checkpoint).
        model: built by `build_model(cfg)` (has `.slot_attention`); moved to the configured device.
        task: loss, metrics and figures of the task.
        make_source: (rank, world_size) -> step-indexed training batches of this rank.
        make_eval_batches: (rank, world_size) -> a factory of fresh iterables over this rank's held-out shard.
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
    dist_info, device = init_distributed(resolve_device(cfg.train.device))
    main = dist_info.is_main
    if cfg.train.batch_size % dist_info.world_size:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} is not divisible by {dist_info.world_size} ranks")
    local_batch = cfg.train.batch_size // dist_info.world_size
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    source = make_source(dist_info.rank, dist_info.world_size)
    eval_batches = make_eval_batches(dist_info.rank, dist_info.world_size)
    model.to(device)
    optimizer = build_optimizer(model.parameters(), cfg.optim.learning_rate)  # Adam with Keras' epsilon
    scheduler = build_scheduler(optimizer, cfg.optim)
    runlog = RunLog(run_dir, tensorboard=cfg.train.tensorboard, enabled=main)
    step = skipped_steps = 0
    last_ckpt: Path | None = None
    if resume and (last_ckpt := latest_checkpoint(run_dir)) is not None:
        state = load_checkpoint(last_ckpt)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step = int(state["step"])
        skipped_steps = int(state.get("skipped_steps", 0))
        runlog.resume_from(step)
        log.info("resumed from %s at step %d", last_ckpt, step)
    if main:
        dump_config(cfg, run_dir / "config.yaml")
    module = model  # the plain model: what checkpoints hold and evaluation runs
    sa = module.slot_attention
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.train.compile:
        model = torch.compile(model)  # the training forward only; `module` (checkpoints, evaluation) stays plain

    def checkpoint() -> Path:
        """Rank 0 writes; every rank waits, then knows the path."""
        for name, param in module.named_parameters():  # nothing non-finite is ever written
            if not torch.isfinite(param).all():
                raise NonFiniteLossError(f"step {step}: parameter '{name}' is not finite; checkpoint not written")
        path = run_dir / "checkpoints" / f"step_{step:08d}.pt"
        if main:
            state = {"model": module.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "rng": _rng_state(), "config": to_dict(cfg),
                     "skipped_steps": skipped_steps}
            path = save_checkpoint(run_dir, state, step, cfg.train.keep_last)
        barrier(dist_info)
        return path

    loader = DataLoader(
        StepBatches(source, start_step=step),
        batch_size=None,
        num_workers=cfg.data.num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # keeps the loader from drawing on the global RNG (exact resume)
        persistent_workers=False,
    )
    bar = None
    if progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.train.steps, initial=step, desc="train", dynamic_ncols=True)
    metrics: dict[str, float] = {}
    stop = _Stop()
    stop.install()
    precision = resolve_precision(cfg.train.precision, device)
    if main:
        log.info("training precision: %s (train.precision=%s)", precision, cfg.train.precision)
    use_bf16 = precision == "bf16"
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    model.train()
    started = time.perf_counter()
    deadline = started + 60 * cfg.train.max_minutes if cfg.train.max_minutes is not None else math.inf
    window_start, window_images = time.perf_counter(), 0
    batches = iter(loader)
    try:
        while step < cfg.train.steps:
            batch = to_device(next(batches), device)
            # One global draw of slot noise on every rank (same RNG state), sliced: rank count does not matter.
            noise = torch.randn(cfg.train.batch_size, sa.num_slots, sa.slot_size, device=device)
            noise = noise[dist_info.rank * local_batch : (dist_info.rank + 1) * local_batch]
            with autocast():  # bf16 mixed precision if asked; autocast keeps softmax/LayerNorm/losses in fp32
                out = model(batch["image"], noise=noise)
                terms = task.loss(out, batch)
            loss = terms["loss"]
            # Loss terms averaged over ranks, plus stop flags, in one collective so all ranks decide alike.
            names = sorted(terms)
            flags = [float(stop.signal_name is not None), float(time.perf_counter() >= deadline)]
            shared = all_reduce_sum(torch.tensor([float(terms[k].detach()) for k in names] + flags,
                                                 dtype=torch.float64, device=device), dist_info)
            logged = {k: float(shared[i]) / dist_info.world_size for i, k in enumerate(names)}
            stop_requested, out_of_time = bool(shared[-2] > 0), bool(shared[-1] > 0)
            lr = optimizer.param_groups[0]["lr"]
            problem = None if all(math.isfinite(v) for v in logged.values()) else "non-finite loss"
            if problem is None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # The total gradient norm (after DDP's all-reduce: the same on every rank), clipped if asked.
                max_norm = cfg.optim.grad_clip_norm if cfg.optim.grad_clip_norm is not None else math.inf
                grad_norm = float(torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm))
                logged["grad_norm"] = grad_norm
                if not math.isfinite(grad_norm):
                    problem = "non-finite gradient"
            if problem is not None:
                values = ", ".join(f"{k}={v:.6g}" for k, v in logged.items())
                if not cfg.optim.skip_nonfinite:
                    where = f"last good checkpoint: {last_ckpt}" if last_ckpt else "no checkpoint written yet"
                    raise NonFiniteLossError(f"step {step}: {problem} ({values}); {where}; "
                                             "set optim.skip_nonfinite=true to skip such steps instead")
                skipped_steps += 1  # no update: parameters and Adam state stay as they were
                log.warning("step %d: %s (%s): step skipped (%d so far)", step, problem, values, skipped_steps)
            else:
                optimizer.step()
            scheduler.step()
            step += 1
            window_images += cfg.train.batch_size
            # The time budget ends the run like its last step: log, evaluate, draw and checkpoint now.
            last = step == cfg.train.steps or out_of_time

            if step % cfg.train.log_every == 0 or last:
                elapsed = time.perf_counter() - window_start
                values = logged | {"lr": lr, "img_per_s": window_images / elapsed}
                if cfg.optim.skip_nonfinite:
                    values["skipped_steps"] = skipped_steps
                runlog.write(step, "train", values)
                if bar is not None:
                    bar.set_postfix(loss=f"{values['loss']:.4g}", lr=f"{lr:.2e}", img_s=f"{values['img_per_s']:.0f}")
                window_start, window_images = time.perf_counter(), 0
            if bar is not None:
                bar.update(1)
            if step % cfg.train.eval_every == 0 or last:
                metrics = evaluate(module, task, eval_batches(), device, seed=cfg.train.seed, dist_info=dist_info)
                runlog.write(step, "eval", metrics)
                log.info("step %d eval %s", step, metrics)
            if (step % cfg.train.vis_every == 0 or last) and main:
                visualize(module, task, eval_batches(), device, run_dir / "vis" / f"step_{step:08d}.png",
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
            if stop_requested:
                if last_ckpt is None or not last_ckpt.name.endswith(f"{step:08d}.pt"):
                    last_ckpt = checkpoint()
                raise TrainingInterrupted(
                    f"{stop.signal_name or 'a signal to another rank'} at step {step}: checkpoint written to {last_ckpt}; "
                    f"continue with: slotattn train --run-dir {run_dir} --resume"
                )
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
        runlog.close()
    return metrics


def resolve_precision(precision: str, device: torch.device) -> str:
    """The training precision "auto" stands for on `device`: "bf16" where bfloat16 runs natively, else "fp32".

    CUDA: `torch.cuda.is_bf16_supported()` (Ampere and later). CPU: oneDNN's bfloat16 support, i.e. AVX512-BF16
    or AMX instructions; emulated bfloat16 elsewhere would be slower than float32.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    return "fp32"


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
