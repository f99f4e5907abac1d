"""Checkpoints: atomic writes, a content checksum verified on load, the resolved config embedded, last N kept.

Layout under `run_dir/checkpoints/`: `step_00001200.pt` (a `torch.save` of plain containers and tensors, so it
loads with `weights_only=True`) next to `step_00001200.json` (step + SHA-256 of the .pt). The .json is written
only after the .pt is durably in place, so a checkpoint counts as complete only when both exist and agree; a
process killed mid-write leaves at most a temporary file that is ignored and cleaned up later.
"""

import hashlib
import io
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupted or of an unknown format."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on this platform
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: temp file in the same directory, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.chmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, state: dict[str, Any], step: int, keep_last: int) -> Path:
    """Write `state` (plain containers and tensors) as the checkpoint of `step`; keep the newest `keep_last`."""
    directory = checkpoint_dir(run_dir)
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, "step": step, **state}, buffer)
    payload = buffer.getvalue()
    path = directory / f"step_{step:08d}.pt"
    atomic_write_bytes(path, payload)
    meta = {"step": step, "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta).encode())
    for old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    for stale in directory.glob(".step_*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints (both .pt and .json present), oldest first."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _NAME.match(p.name) and p.with_suffix(".json").exists()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and verify a checkpoint file (SHA-256 against its .json when present; `weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    payload = path.read_bytes()
    meta_path = path.with_suffix(".json")
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            expected = meta["sha256"]
        except (json.JSONDecodeError, KeyError) as err:
            raise CheckpointError(f"{meta_path}: unreadable checkpoint metadata ({err})") from err
        actual = hashlib.sha256(payload).hexdigest()
        if actual != expected:
            raise CheckpointError(
                f"{path}: checksum mismatch (stored {expected[:12]}..., computed {actual[:12]}...): "
                "the file is truncated or corrupted"
            )
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(f"{path}: cannot be read as a slotattn checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path}: expected a slotattn checkpoint of format {FORMAT_VERSION}, found {found!r}")
    for key in ("model", "config", "step"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint lacks the key '{key}'")
    return state


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint that verifies; broken newer ones are skipped with a warning."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            load_checkpoint(path)
        except CheckpointError as err:
            log.warning("skipping a broken checkpoint: %s", err)
            continue
        return path
    return None


def export_safetensors(state_dict: dict[str, torch.Tensor], config: dict[str, Any], path: str | Path) -> Path:
    """Write model weights as safetensors (config JSON in its metadata) plus `<path>.json` with the config.

    safetensors files hold tensors only and load without unpickling anything, for inference and sharing.
    """
    try:
        from safetensors.torch import save
    except ImportError as err:
        raise CheckpointError("exporting needs safetensors: pip install 'slotattn[safetensors]'") from err
    path = Path(path)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    metadata = {"format": "slotattn", "format_version": str(FORMAT_VERSION), "config": json.dumps(config)}
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(config, indent=2) + "\n").encode())
    return path


def load_safetensors(path: str | Path) -> dict[str, Any]:
    """Load an exported model: {"model": state dict, "config": dict} (the config from the file's metadata)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    try:
        from safetensors import safe_open
        from safetensors.torch import load
    except ImportError as err:
        raise CheckpointError("loading .safetensors needs safetensors: pip install 'slotattn[safetensors]'") from err
    data = path.read_bytes()
    try:
        tensors = load(data)
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from err
    if metadata.get("format") != "slotattn" or "config" not in metadata:
        raise CheckpointError(f"{path}: a safetensors file without slotattn metadata (format/config); "
                              "export it with `slotattn export`")
    return {"model": tensors, "config": json.loads(metadata["config"]), "step": None}
