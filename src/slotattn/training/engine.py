"""The ONE train/eval loop for every task: Adam + the paper's schedule, logs, evaluation, figures, checkpoints.

It knows a task only through `Task.loss/evaluator/visualize`, a model only as an `nn.Module` called on
`batch["image"]` (with `noise=` when it has a `noise_shape`), and data only as a step-indexed source
(`slotattn.data.stream`), which is what makes `resume` exact: the checkpoint of step s holds the whole
`TrainState` and the RNG states, and the batches after s are a function of s alone.

    train        set-up (devices, DDP, resume), then the loop: `train_step` + the log/eval/figure/checkpoint cadence
    train_step   one optimisation step: forward + loss, cross-rank agreement, backward, non-finite guard, update
    evaluate     a task's metrics over a split, with per-call test-time settings (slots, iterations)
"""

import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from slotattn.config import Config, ConfigError, dump_config, to_dict
from slotattn.data.batch import IMAGE, Batch, image_to_model
from slotattn.data.stream import BatchSource, StepBatches
from slotattn.tasks import Task
from slotattn.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from slotattn.training.distributed import DistInfo, all_reduce_sum, barrier, gather_objects, init_distributed
from slotattn.training.rundir import RunDirError, RunDirLock, claim_for_new_run
from slotattn.training.runlog import RunLog
from slotattn.training.state import TrainState

log = logging.getLogger(__name__)

# progress(step, total_steps, logged values or None): called after every step by `train`; the caller owns the bar.
Progress = Callable[[int, int, dict[str, float] | None], None]


class NonFiniteLossError(RuntimeError):
    """The loss or a gradient became NaN/inf; nothing of that step was applied or saved."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint of the last completed step was written."""


def resolve_device(name: str) -> torch.device:
    """The device a `train.device` / `--device` value names: "auto" (CUDA when available, else the CPU), "cpu",
    "cuda" or "cuda:N"; anything else, or CUDA where there is none, raises ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine (torch {torch.__version__}, "
                              f"CUDA build: {torch.version.cuda or 'no'}); use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: this machine shows {torch.cuda.device_count()} CUDA device(s)")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """The training precision `precision` stands for on `device`; "auto" is "bf16" where the hardware runs bfloat16
    natively, else "fp32". The one place that decides it.

    CUDA: `torch.cuda.is_bf16_supported(including_emulation=False)` (compute capability 8.0, Ampere, and later);
    its default also counts emulation, which would put a V100 or T4 on emulated bfloat16. CPU: the AVX512-BF16 or
    AMX-BF16 instructions (`torch.cpu._is_avx512_bf16_supported`, `_is_amx_tile_supported`) with AVX-512 kernels
    in use (`torch.backends.cpu.get_cpu_capability()`); oneDNN also "supports" bfloat16 on any AVX-512 CPU by
    emulating it, which trained 7-10x slower than float32 in slotattn's measurement (emulated with AVX2 kernels on
    an AMX Xeon, docs/performance.md). Other devices: "fp32".
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp32"
    if device.type == "cpu":
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return "bf16" if native and torch.backends.cpu.get_cpu_capability() == "AVX512" else "fp32"
    return "fp32"


# The most DataLoader workers "auto" starts per training process on CUDA: enough to keep a GPU step fed from a store
# (benchmarks/results/data_pipeline.json) without taking every core of a shared machine.
MAX_AUTO_WORKERS = 8


def resolve_num_workers(setting: int | str, device: torch.device) -> int:
    """The DataLoader workers `data.num_workers` stands for on `device`; the one place that decides it.

    "auto": none on the CPU, where a worker would take cores from the training step itself (batches are built in
    series with it, as before "auto" existed); on CUDA min(8, cores per process - 1), so batches are built in
    parallel with the GPU step while one core per process drives the GPU. "Cores" are the ones this process may
    use (`os.sched_getaffinity`: taskset, cgroups), shared by the `LOCAL_WORLD_SIZE` processes torchrun starts on
    the machine. A number is used as given.
    """
    if setting != "auto":
        return int(setting)
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(MAX_AUTO_WORKERS, per_process - 1))


def autocast_for(precision: str, device_type: str):
    """The context a training forward runs in: bfloat16 autocast for "bf16", nothing for "fp32"."""
    return torch.autocast(device_type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def to_device(batch: Batch, device: torch.device) -> Batch:
    """`batch` on `device`; a uint8 image (a training batch, `to_train_batch`) crosses as uint8 and becomes the
    model's float32 [B, 3, H, W] in [-1, 1] there (`image_to_model`), a quarter of the bytes of a float copy."""
    moved = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    if IMAGE in moved and moved[IMAGE].dtype == torch.uint8:
        moved[IMAGE] = image_to_model(moved[IMAGE])
    return moved


def eval_settings(num_slots: int | None = None, num_iterations: int | None = None) -> dict[str, int]:
    """The per-call keyword arguments of a model for test-time slots/iterations (only the ones given)."""
    return {k: v for k, v in (("num_slots", num_slots), ("num_iterations", num_iterations)) if v is not None}


def eval_outputs(
    model: torch.nn.Module, batches: Iterable[Batch], device: torch.device, seed: int = 0,
    num_slots: int | None = None, num_iterations: int | None = None,
) -> Iterator[tuple[Any, Batch]]:
    """(model output, batch on `device`) for each held-out batch, in eval mode, with `evaluate`'s slot noise.

    Slot noise is seeded by each batch's position in the split (`batch["index"]`), so the outputs are repeatable,
    the same on any number of ranks, and leave the training RNG untouched. `num_slots` / `num_iterations` (None:
    as trained) are passed to the model on every call: the paper's test-time generalisation.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator(device)
    settings = eval_settings(num_slots, num_iterations)
    try:
        for batch in batches:
            generator.manual_seed(seed * 1_000_003 + int(batch["index"][0]) if "index" in batch else seed)
            batch = to_device(batch, device)
            with torch.no_grad():  # not a decorator: a wrapper around a generator function would not hold it
                out = model(batch["image"], generator=generator, **settings)
            yield out, batch
    finally:
        model.train(was_training)


def evaluate(
    model: torch.nn.Module, task: Task, batches: Iterable[Batch], device: torch.device, seed: int = 0,
    progress: Callable[[Iterable[Batch]], Iterable[Batch]] | None = None, dist_info: DistInfo = DistInfo(),
    num_slots: int | None = None, num_iterations: int | None = None,
) -> dict[str, float]:
    """The task's metrics over a whole split (under DDP: this rank's shard, combined over ranks by the task).

    The outputs are `eval_outputs`'s (repeatable slot noise, test-time K and T), so evaluation gives the same
    numbers on any number of ranks.
    """
    evaluator = task.evaluator()
    for out, batch in eval_outputs(model, progress(batches) if progress else batches, device, seed,
                                   num_slots, num_iterations):
        evaluator.update(out, batch)
    return evaluator.compute(lambda obj: gather_objects(obj, dist_info))


@torch.no_grad()
def visualize(model: torch.nn.Module, task: Task, batches: Iterable[Batch], device: torch.device, path: Path,
              seed: int = 0, num_slots: int | None = None, num_iterations: int | None = None) -> Path:
    """The task's figure of the first held-out batch (test-time settings as in `evaluate`)."""
    was_training = model.training
    model.eval()
    batch = to_device(next(iter(batches)), device)
    out = model(batch["image"], generator=torch.Generator(device).manual_seed(seed),
                **eval_settings(num_slots, num_iterations))
    model.train(was_training)
    return task.visualize(out, batch, path)


def draw_slot_noise(model: torch.nn.Module, global_batch: int, dist_info: DistInfo,
                    device: torch.device, step: int = 0) -> torch.Tensor | None:
    """This rank's slice of one standard-normal draw for the whole global batch (None: the model has no noise),
    times the model's `noise_scale(step)` where it has one (learned slot queries anneal their noise).

    Every rank draws the same global noise from its (identical) RNG and keeps its slice, so N ranks x batch b
    follow 1 process x batch N*b.
    """
    if not hasattr(model, "noise_shape"):
        return None
    noise = torch.randn(model.noise_shape(global_batch), device=device)
    if hasattr(model, "noise_scale"):
        noise = noise * model.noise_scale(step)
    local = global_batch // dist_info.world_size
    return noise[dist_info.rank * local : (dist_info.rank + 1) * local]


def host_read(values: torch.Tensor) -> list[float]:
    """`values` on the host: the one point where a training step waits for the device (tests count its calls)."""
    return values.tolist()


@dataclass
class StepOutcome:
    """What one `train_step` did.

    Attributes:
        values: loss terms averaged over ranks, plus "grad_norm" when the gradient was computed.
        problem: None, or why the update was not applied ("non-finite loss" | "non-finite gradient").
        flags: the caller's stop flags, OR-ed over ranks (so every rank takes the same decision).
    """

    values: dict[str, float]
    problem: str | None
    flags: list[bool]


def train_step(
    state: TrainState,
    model: torch.nn.Module,
    task: Task,
    batch: Batch,
    noise: torch.Tensor | None,
    *,
    precision: str = "fp32",
    grad_clip_norm: float | None = None,
    dist_info: DistInfo = DistInfo(),
    flags: tuple[bool, ...] = (),
) -> StepOutcome:
    """One optimisation step on `batch`: forward + loss, backward, (clip), Adam, schedule; `state.step` += 1.

    A non-finite loss or gradient applies nothing (parameters and Adam's state stay as they were) and is reported
    in `problem`; the schedule still advances, so the step counts. `model` is what runs the forward pass (the
    DDP or compiled wrapper of `state.model`, or `state.model` itself).
    """
    with autocast_for(precision, batch["image"].device.type):  # bf16 mixed precision if asked; the models keep softmax/LayerNorm/losses in float32
        out = model(batch["image"]) if noise is None else model(batch["image"], noise=noise)
        terms = task.loss(out, batch)
    state.optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()  # also for a non-finite loss: the decision needs the host, and comes once, below
    # The total gradient norm (after DDP's all-reduce: the same on every rank), clipped if asked; a tensor.
    max_norm = grad_clip_norm if grad_clip_norm is not None else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), max_norm)
    # Loss terms averaged over ranks, the gradient norm and the caller's flags, in one collective so all ranks
    # decide alike, and read to the host once: the step's only device-to-host synchronisation.
    names = sorted(terms)
    device = batch["image"].device
    shared = torch.cat([torch.stack([t.detach().double() for t in [*(terms[k] for k in names), grad_norm]]),
                        torch.tensor([float(f) for f in flags], dtype=torch.float64, device=device)])
    shared = host_read(all_reduce_sum(shared, dist_info))
    values = {k: shared[i] / dist_info.world_size for i, k in enumerate(names)}
    reduced_flags = [v > 0 for v in shared[len(names) + 1:]]
    problem = None if all(math.isfinite(v) for v in values.values()) else "non-finite loss"
    if problem is None:  # a non-finite loss makes the gradient meaningless: not logged
        values["grad_norm"] = shared[len(names)] / dist_info.world_size
        if not math.isfinite(values["grad_norm"]):
            problem = "non-finite gradient"
    if problem is None:
        state.optimizer.step()
    else:
        state.skipped_steps += 1
    state.scheduler.step()
    state.step += 1
    return StepOutcome(values, problem, reduced_flags)


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
        log.warning("%s: stopping at the end of this step, after writing a checkpoint (again: stop at once, "
                    "without one)", self.signal_name)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def train(
    cfg: Config,
    model: torch.nn.Module,
    task: Task,
    make_source: Callable[[int, int], BatchSource],
    make_eval_batches: Callable[[int, int], Callable[[], Iterable[Batch]]],
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Train `model` on `task` until `cfg.train.steps`, logging, evaluating and checkpointing on the way.

    Under `torchrun` (WORLD_SIZE > 1) the model is wrapped in DistributedDataParallel, each rank reads its
    shard of every global batch of `cfg.train.batch_size`, only rank 0 writes, and evaluation is reduced over
    ranks; slot noise as `draw_slot_noise`. Training batches hold what `task.train_keys` names, are built by
    `resolve_num_workers(cfg.data.num_workers)` DataLoader workers and become float on the device (`to_device`).

    Args:
        cfg: the resolved config (written to `run_dir/config.yaml` and into every checkpoint).
        model: built by `build_model(cfg)`; moved to the configured device.
        task: loss, metrics and figures of the task.
        make_source: (rank, world_size) -> step-indexed training batches of this rank.
        make_eval_batches: (rank, world_size) -> a factory of fresh iterables over this rank's held-out shard;
            the run draws the shard from it once and replays it for every evaluation and figure (`ReplayBatches`).
        run_dir: where logs, figures and checkpoints go.
        resume: continue from the newest valid checkpoint in `run_dir` (start afresh if there is none).
        overwrite: a new run (not `resume`) may replace the run whose files `run_dir` holds
            (`rundir.claim_for_new_run`); without it such a directory is refused.
        progress: called on rank 0 after every step as progress(step, total, values or None).

    Returns:
        The last evaluation's metrics.

    Raises:
        NonFiniteLossError: the loss or gradient norm is not finite (unless `optim.skip_nonfinite`).
        TrainingInterrupted: SIGINT/SIGTERM; a checkpoint was written first.
        RunDirError: another trainer holds `run_dir`, it holds another run (and neither `resume` nor `overwrite`),
            or the resumed run is already at `cfg.train.steps`.
    """
    run_dir = Path(run_dir)
    dist_info, device = init_distributed(resolve_device(cfg.train.device))
    if cfg.train.batch_size % dist_info.world_size:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} is not divisible by {dist_info.world_size} ranks")
    with contextlib.ExitStack() as held:
        if dist_info.is_main:  # rank 0 holds the run directory for the whole run; the ranks of one job share it
            held.enter_context(RunDirLock(run_dir))
            if not (resume and latest_checkpoint(run_dir) is not None):
                # A run that never wrote a checkpoint has nothing to continue: --resume starts it afresh.
                note = claim_for_new_run(run_dir, overwrite=overwrite or resume)
                if note is not None:
                    log.warning("%s", note)
        barrier(dist_info)
        return _train(cfg, model, task, make_source, make_eval_batches, run_dir, dist_info, device, resume, progress)


def _train(cfg: Config, model: torch.nn.Module, task: Task, make_source: Callable[[int, int], BatchSource],
           make_eval_batches: Callable[[int, int], Callable[[], Iterable[Batch]]], run_dir: Path,
           dist_info: DistInfo, device: torch.device, resume: bool, progress: Progress | None) -> dict[str, float]:
    """`train` once rank 0 holds the run directory."""
    source = make_source(dist_info.rank, dist_info.world_size)
    # The held-out split is made once per run (~30 s for 512 generated CLEVR6 scenes) and replayed by every
    # evaluation and figure.
    eval_batches = ReplayBatches(make_eval_batches(dist_info.rank, dist_info.world_size))
    model.to(device)
    state = TrainState.create(model, cfg.optim)
    resumed_from = latest_checkpoint(run_dir) if resume else None
    if resumed_from is not None:
        state.restore(load_checkpoint(resumed_from))
        if state.step >= cfg.train.steps:  # nothing to train: say so, and leave config.yaml as the run left it
            raise RunDirError(f"{run_dir}: the run is finished (step {state.step:,}, train.steps="
                              f"{cfg.train.steps:,}); to train it longer: --resume --set train.steps=N with N > "
                              f"{state.step:,}")
        log.info("resumed from %s at step %d", resumed_from, state.step)
    runlog = RunLog(run_dir, tensorboard=cfg.train.tensorboard, enabled=dist_info.is_main)
    if resumed_from is not None:
        runlog.resume_from(state.step)
    if dist_info.is_main:
        dump_config(cfg, run_dir / "config.yaml")
    if device.type == "cuda":
        gpu_settings()
    forward = _training_forward(model, cfg.train.compile, dist_info, device)
    precision = resolve_precision(cfg.train.precision, device)
    if dist_info.is_main:
        log.info("training precision: %s (train.precision=%s)", precision, cfg.train.precision)
    runlog.record_start(state.step, device, precision, dist_info.world_size)
    num_workers = resolve_num_workers(cfg.data.num_workers, device)
    if dist_info.is_main:
        log.info("data loader workers: %d (data.num_workers=%s)", num_workers, cfg.data.num_workers)
    loader = _step_loader(source, state.step, num_workers, device, getattr(task, "train_keys", None))
    loop = _Loop(cfg, state, task, eval_batches, device, dist_info, run_dir, runlog, progress, resumed_from)
    stop = _Stop()
    stop.install()
    deadline = time.perf_counter() + 60 * cfg.train.max_minutes if cfg.train.max_minutes is not None else math.inf
    model.train()
    batches = iter(loader)
    try:
        while state.step < cfg.train.steps:
            waited = time.perf_counter()
            batch = to_device(next(batches), device)
            loop.data_wait += time.perf_counter() - waited
            noise = draw_slot_noise(model, cfg.train.batch_size, dist_info, device, state.step)
            outcome = train_step(state, forward, task, batch, noise, precision=precision,
                                 grad_clip_norm=cfg.optim.grad_clip_norm, dist_info=dist_info,
                                 flags=(stop.signal_name is not None, time.perf_counter() >= deadline))
            stop_requested, out_of_time = outcome.flags
            if outcome.problem is not None:
                loop.on_nonfinite(outcome)
            # The time budget ends the run like its last step: log, evaluate, draw and checkpoint now.
            last = state.step >= cfg.train.steps or out_of_time
            loop.after_step(outcome.values, last, stopping=stop_requested)
            if last:
                if state.step < cfg.train.steps:
                    log.warning("train.max_minutes=%s reached at step %d of %d", cfg.train.max_minutes,
                                state.step, cfg.train.steps)
                break
            if stop_requested:
                path = loop.checkpoint_if_needed()
                raise TrainingInterrupted(
                    f"{stop.signal_name or 'a signal to another rank'} at step {state.step}: checkpoint written to "
                    f"{path}; continue with: slotattn train --run-dir {run_dir} --resume")
    finally:
        stop.restore()
        runlog.close()
        # The last reference to the loader's iterator: its workers stop now, also while an exception unwinds (its
        # traceback keeps this frame, and with it the iterator, alive).
        del batches
    return loop.metrics


def gpu_settings() -> None:
    """The CUDA settings a training run uses, set here rather than left to whatever state the process is in.

    cuDNN's autotuner on (`cudnn.benchmark`): every step has the same shapes, so the fastest kernels are picked once.
    TF32: PyTorch's defaults, set explicitly: float32 matmuls in full float32
    (`torch.backends.cuda.matmul.allow_tf32 = False`), float32 convolutions in TF32 on Ampere and later
    (`torch.backends.cudnn.allow_tf32 = True`). `RunLog.record_start` writes all three into starts.jsonl. With
    `train.precision=bf16` (auto on Ampere and later) the large products run in bfloat16 under autocast anyway.
    The autotuner makes GPU runs non-deterministic: "exact resume" holds bit for bit on the CPU only.
    """
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True


def _training_forward(model: torch.nn.Module, use_compile: bool, dist_info: DistInfo,
                      device: torch.device) -> torch.nn.Module:
    """What runs the training forward: the model, or its DistributedDataParallel and/or compiled wrapper.

    Evaluation and checkpoints use the model itself.
    """
    forward = model
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        # Under implicit differentiation the learned slot initialisation gets no gradient; DDP must be told.
        unused = any(getattr(module, "implicit_diff", False) and getattr(module, "slot_init", "gaussian") ==
                     "gaussian" for module in model.modules())
        # The models' buffers are constant position grids (nn/position.py): nothing to re-send every step.
        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=unused, broadcast_buffers=False)
    if use_compile:
        forward = torch.compile(forward)
    return forward


def _step_loader(source: BatchSource, start_step: int, num_workers: int, device: torch.device,
                 keys: Sequence[str] | None = None) -> DataLoader:
    """The training batches of steps `start_step`, `start_step + 1`, ... of `source`, built by `num_workers`
    workers (0: on this thread, in series with the steps) in step order, holding only `keys` (`Task.train_keys`;
    None: all) with the image still uint8 (`to_device` converts it on the device); pinned for CUDA."""
    return DataLoader(
        StepBatches(source, start_step=start_step, keys=keys),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # keeps the loader from drawing on the global RNG (exact resume)
        persistent_workers=False,
        worker_init_fn=_ignore_stop_signals,
    )


def _ignore_stop_signals(worker_id: int) -> None:
    """In a DataLoader worker: ignore SIGINT and SIGTERM. A terminal or a scheduler (Slurm, torchrun) signals the
    whole process group; a worker killed by it makes the main process raise at once, before the checkpoint its own
    handler (`_Stop`) writes. The main process stops its workers itself when training ends (`_train`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class ReplayBatches:
    """A factory of fresh iterators over a split (`make()`'s batches), each batch made once and kept.

    The first pass draws batches from `make()` as it goes, and keeps them (CPU tensors, e.g. ~170 MB for 512 CLEVR6
    scenes with their float images and int64 ids); later passes replay them, and a pass that reaches past what was
    kept (a figure reads only the first batch) continues the same `make()` iterator. Evaluations see exactly the
    batches they would have got from fresh `make()` calls, which must give the same batches every time.
    """

    def __init__(self, make: Callable[[], Iterable[Batch]]):
        self.make = make
        self.kept: list[Batch] = []
        self._source: Iterator[Batch] | None = None
        self._complete = False

    def __call__(self) -> Iterator[Batch]:
        return self._replay()

    def _replay(self) -> Iterator[Batch]:
        position = 0
        while True:
            if position < len(self.kept):
                yield self.kept[position]
                position += 1
                continue
            if self._complete:
                return
            if self._source is None:
                self._source = iter(self.make())
            try:
                batch = next(self._source)
            except StopIteration:
                self._complete, self._source = True, None
                return
            self.kept.append(batch)


class _Loop:
    """The cadence around `train_step`: logs every `log_every`, evaluation, figures and checkpoints."""

    def __init__(self, cfg: Config, state: TrainState, task: Task, eval_batches: Callable[[], Iterable[Batch]],
                 device: torch.device, dist_info: DistInfo, run_dir: Path, runlog: RunLog,
                 progress: Progress | None, last_checkpoint: Path | None):
        self.cfg, self.state, self.task, self.eval_batches = cfg, state, task, eval_batches
        self.device, self.dist_info, self.run_dir, self.runlog = device, dist_info, run_dir, runlog
        self.progress = progress if dist_info.is_main else None
        self.metrics: dict[str, float] = {}
        self.last_checkpoint = last_checkpoint  # named by the non-finite guard
        self.window_start, self.window_images = time.perf_counter(), 0
        self.data_wait = 0.0  # seconds of this window spent waiting for the next batch (the main loop adds to it)
        self.lr = state.learning_rate  # the rate the coming step uses (logged with it)

    def on_nonfinite(self, outcome: StepOutcome) -> None:
        values = ", ".join(f"{k}={v:.6g}" for k, v in outcome.values.items())
        step = self.state.step - 1
        if not self.cfg.optim.skip_nonfinite:
            where = f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else \
                "no checkpoint written yet"
            raise NonFiniteLossError(f"step {step}: {outcome.problem} ({values}); {where}; "
                                     "set optim.skip_nonfinite=true to skip such steps instead")
        log.warning("step %d: %s (%s): step skipped (%d so far)", step, outcome.problem, values,
                    self.state.skipped_steps)

    def after_step(self, values: dict[str, float], last: bool, stopping: bool = False) -> None:
        """Log, evaluate, draw and checkpoint as the cadence says; when `stopping` (SIGINT/SIGTERM), no evaluation
        or figure: the checkpoint comes at once, within a scheduler's grace period before SIGKILL."""
        cfg, step = self.cfg.train, self.state.step
        self.window_images += cfg.batch_size
        logged = None
        if step % cfg.log_every == 0 or last:
            elapsed = time.perf_counter() - self.window_start
            # data_wait: the share of the window spent waiting for batches (near 0: the data keeps up)
            logged = values | {"lr": self.lr, "img_per_s": self.window_images / elapsed,
                               "data_wait": min(self.data_wait / elapsed, 1.0)}
            if self.cfg.optim.skip_nonfinite:
                logged["skipped_steps"] = self.state.skipped_steps
            self.runlog.write(step, "train", logged)
            self.window_start, self.window_images, self.data_wait = time.perf_counter(), 0, 0.0
        self.lr = self.state.learning_rate
        if self.progress is not None:
            self.progress(step, cfg.steps, logged)
        model = self.state.model
        if (step % cfg.eval_every == 0 or last) and not stopping:
            self.metrics = evaluate(model, self.task, self.eval_batches(), self.device, seed=cfg.seed,
                                    dist_info=self.dist_info)
            self.runlog.write(step, "eval", self.metrics)
            log.info("step %d eval %s", step, self.metrics)
        if (step % cfg.vis_every == 0 or last) and self.dist_info.is_main and not stopping:
            visualize(model, self.task, self.eval_batches(), self.device,
                      self.run_dir / "vis" / f"step_{step:08d}.png", seed=cfg.seed)
        if step % cfg.ckpt_every == 0 or last:
            self.checkpoint()
        if step % cfg.eval_every == 0 or step % cfg.vis_every == 0 or step % cfg.ckpt_every == 0:
            self.window_start, self.data_wait = time.perf_counter(), 0.0  # images/s measures training steps only

    def checkpoint(self) -> Path:
        """Rank 0 writes; every rank waits, then knows the path. Nothing non-finite is ever written."""
        step = self.state.step
        for name, param in self.state.model.named_parameters():
            if not torch.isfinite(param).all():
                raise NonFiniteLossError(f"step {step}: parameter '{name}' is not finite; checkpoint not written")
        path = self.run_dir / "checkpoints" / f"step_{step:08d}.pt"
        if self.dist_info.is_main:
            path = save_checkpoint(self.run_dir, self.state.checkpoint(to_dict(self.cfg)), step,
                                   self.cfg.train.keep_last)
        barrier(self.dist_info)
        self.last_checkpoint = path
        return path

    def checkpoint_if_needed(self) -> Path:
        """The checkpoint of the current step, written unless the cadence just wrote it."""
        if self.last_checkpoint is None or not self.last_checkpoint.name.endswith(f"{self.state.step:08d}.pt"):
            return self.checkpoint()
        return self.last_checkpoint
