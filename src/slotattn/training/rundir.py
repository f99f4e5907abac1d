"""A run directory belongs to one run: one trainer at a time holds it (an exclusive `flock` on `run_dir/.lock`,
freed by the kernel when the process dies, even by kill -9), and a new run never starts over an old one's files
unless asked to, and then replaces them whole.
"""

import fcntl
import os
import shutil
import socket
from pathlib import Path

import yaml

from slotattn.training.checkpoint import checkpoint_step, latest_checkpoint

# What a training run writes into its directory; nothing else there is ever touched.
RUN_FILES = ("config.yaml", "metrics.jsonl", "starts.jsonl", "checkpoints", "vis", "tb", "study_eval.json")
LOCK_FILE = ".lock"


class RunDirError(ValueError):
    """A run directory is held by another trainer, or holds a run that this call would mix with another."""


class RunDirLock:
    """An exclusive, non-blocking lock on a run directory for as long as the trainer runs (a context manager).

    The lock file says which host and process hold it, so that a second trainer can name them. The lock itself is
    the `flock`, not the file: a crashed process leaves the file behind but not the lock.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.file = None

    def __enter__(self) -> "RunDirLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / LOCK_FILE
        self.file = open(path, "a+")  # not "w": truncating would wipe the holder's name before we know we hold it
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "an unknown process"
            self.file.close()
            self.file = None
            raise RunDirError(f"{self.run_dir}: another trainer is running in this run directory ({holder}); wait "
                              "for it to end or stop it, or use another --run-dir") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"host {socket.gethostname()}, pid {os.getpid()}\n")
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()  # closing the descriptor releases the flock
            self.file = None


def describe_run(run_dir: Path) -> str | None:
    """'step N of recipe X' style summary of the run in `run_dir`, or None when it holds no run's files."""
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not present:
        return None
    ckpt = latest_checkpoint(run_dir) if (run_dir / "checkpoints").exists() else None
    step = f"checkpoint at step {checkpoint_step(ckpt):,}" if ckpt is not None else "no checkpoint"
    try:  # what the run trains, from the config it wrote at its start
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        what = f"{cfg['task']} on {cfg['data']['name']}, {cfg['train']['steps']:,} steps; "
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        what = ""
    return f"a run ({what}{step}; files {', '.join(present)})"


def claim_for_new_run(run_dir: str | Path, overwrite: bool = False) -> str | None:
    """Make `run_dir` ready for a run that starts at step 0 (the caller holds its `RunDirLock`).

    A directory that holds another run's files is refused, unless `overwrite`: then those files (`RUN_FILES`, and
    nothing else) are removed whole first. Returns a one-line note of what was replaced, or None.
    """
    run_dir = Path(run_dir)
    found = describe_run(run_dir)
    if found is None:
        return None
    if not overwrite:
        raise RunDirError(f"{run_dir} already holds {found}; continue it with --resume, or start a new run in "
                          "another --run-dir (or pass --overwrite to replace it)")
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return f"replaced {found} in {run_dir}"
