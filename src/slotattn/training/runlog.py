"""Run logs: one JSON object per line in `run_dir/metrics.jsonl`, mirrored to TensorBoard when asked, and one line
per start of the run in `run_dir/starts.jsonl` saying what it ran on (so a result names the hardware that trained
it, not the one that evaluated it)."""

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch


class RunLog:
    """Appends `{"step", "split", "time_s", **values}` lines; only the process with `enabled=True` writes.

    Args:
        run_dir: the run's directory.
        tensorboard: also write TensorBoard scalars under `run_dir/tb` (needs the `tb` extra).
        enabled: False on non-zero ranks.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = False, enabled: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.start = time.monotonic()
        self.offset = 0.0  # wall time of earlier segments of a resumed run
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise RuntimeError("train.tensorboard=true needs TensorBoard: pip install 'slotattn[tb]'") from err
            self.writer = SummaryWriter(str(Path(run_dir) / "tb"))

    def resume_from(self, step: int) -> None:
        """Drop lines after `step` (written after the checkpoint we resume from) and continue the clock."""
        if not (self.enabled and self.path.exists()):
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if record.get("step", 0) <= step:
                kept.append(line)
                self.offset = max(self.offset, float(record.get("time_s", 0.0)))
        self.path.write_text("".join(f"{line}\n" for line in kept))

    def write(self, step: int, split: str, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "split": split, "time_s": round(self.offset + time.monotonic() - self.start, 3)}
        for key, value in values.items():
            value = float(value)
            record[key] = value if math.isfinite(value) else str(value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{split}/{key}", float(value), step)
            self.writer.flush()

    def record_start(self, step: int, device: torch.device, precision: str, world_size: int) -> None:
        """Append where this (re)start of the run trains: `{"step", "date", "device", "precision", "world_size",
        "torch"}` to `run_dir/starts.jsonl` (`describe_device` of this process; all ranks run alike), and on a GPU
        the TF32 and cuDNN-autotuner settings in force (`engine.gpu_settings`)."""
        if not self.enabled:
            return
        record = {"step": step, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "device": describe_device(device),
                  "precision": precision, "world_size": world_size, "torch": torch.__version__}
        if device.type == "cuda":  # what decides a GPU run's float32 arithmetic and kernel choice
            record |= {"tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                       "tf32_cudnn": torch.backends.cudnn.allow_tf32, "cudnn_benchmark": torch.backends.cudnn.benchmark}
        with (self.path.parent / STARTS).open("a") as f:
            f.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of `run_dir/metrics.jsonl`."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


STARTS = "starts.jsonl"


def read_starts(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's start records (`RunLog.record_start`), oldest first; [] for a run that predates them."""
    path = Path(run_dir) / STARTS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def describe_device(device: torch.device) -> str:
    """The accelerator, or the CPU model and this process's thread count, as results name them."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"{cpu_model()} ({threads} thread{'s' * (threads != 1)})"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
