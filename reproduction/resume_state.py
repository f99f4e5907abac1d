"""Replace a run's committed resume state with its current one: config.yaml, metrics.jsonl, starts.jsonl and the
newest checkpoint only (.pt + .json), so that the repository holds one checkpoint per run in progress.

    python -m reproduction.resume_state runs/tetro_clip1_s0 tetrominoes_cpu_clip1_s0  # -> .../reproduce/resume/
"""

import argparse
import shutil
import sys
from pathlib import Path

from slotattn.training.checkpoint import latest_checkpoint

RESUME_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "reproduce" / "resume"
FILES = ("config.yaml", "metrics.jsonl", "starts.jsonl")


def save(run_dir: str | Path, dest: str | Path) -> Path:
    """Copy the resume state of `run_dir` to `dest`, replacing what `dest` held; returns the checkpoint copied."""
    run_dir, dest = Path(run_dir), Path(dest)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise SystemExit(f"{run_dir}: no readable checkpoint")
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "checkpoints").mkdir(parents=True)
    for name in FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, dest / name)
    for path in (ckpt, ckpt.with_suffix(".json")):
        if path.exists():
            shutil.copy2(path, dest / "checkpoints" / path.name)
    return dest / "checkpoints" / ckpt.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name", help=f"the folder under {RESUME_DIR.relative_to(RESUME_DIR.parents[3])}/")
    args = parser.parse_args(argv)
    print(f"wrote {save(args.run_dir, RESUME_DIR / args.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
