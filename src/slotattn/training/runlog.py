"""Run logs: one JSON object per line in `run_dir/metrics.jsonl`, mirrored to TensorBoard when asked."""

import json
import math
import time
from pathlib import Path
from typing import Any


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

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of `run_dir/metrics.jsonl`."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
