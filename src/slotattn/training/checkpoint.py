"""Checkpoints: atomic writes, a content checksum verified on load, the resolved config embedded, last N kept.

Layout under `run_dir/checkpoints/`: `step_00001200.pt` (a `torch.save` of plain containers and tensors, so it
loads with `weights_only=True`) next to `step_00001200.json` (step + SHA-256 of the .pt). The .json is written
only after the .pt is durably in place, so a checkpoint counts as complete only when both exist and agree; a
process killed mid-write leaves at most a temporary file that is ignored and cleaned up later.
"""

import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupted or of an unknown format, or could not be written."""


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
    meta = {"step": step, "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    try:
        atomic_write_bytes(path, payload)
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta).encode())
    except OSError as err:
        path.unlink(missing_ok=True)  # a .pt without its .json is no checkpoint; free its space
        raise CheckpointError(_write_failure(run_dir, path, len(payload), err)) from err
    for old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    for stale in directory.glob(".step_*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    return path


def _write_failure(run_dir: str | Path, path: Path, size: int, err: OSError) -> str:
    """One line for a checkpoint write that failed: the file, the space it needed, what is left, how to resume."""
    full = err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # no space, or over quota
    what = "the disk is full" if full else (err.strerror or type(err).__name__)
    try:
        free = f", {_megabytes(shutil.disk_usage(path.parent).free)} free"
    except OSError:
        free = ""
    intact = latest_checkpoint(run_dir)
    kept = f"newest intact checkpoint: {intact}" if intact else "no earlier checkpoint was written"
    return (f"cannot write checkpoint {path}: {what} (it needs {_megabytes(size)}{free}); {kept}; "
            f"{'free some space, then ' if full else ''}continue with: slotattn train --run-dir {run_dir} --resume")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 1e9 else f"{size / 1e9:.1f} GB"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints (both .pt and .json present), oldest first."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _NAME.match(p.name) and p.with_suffix(".json").exists()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def checkpoint_step(path: str | Path) -> int:
    """The step of a checkpoint, from its file name (`step_00001200.pt` -> 1200)."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise CheckpointError(f"{path}: not a checkpoint name of the form step_NNNNNNNN.pt")
    return int(match.group(1))


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
    looks_like = _not_a_torch_archive(payload)
    if looks_like is not None:
        raise CheckpointError(f"{path}: not a slotattn checkpoint (a torch.save zip archive); found {looks_like}")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        # torch's own message advises loading with weights_only=False, i.e. running the file's pickled code:
        # never pass that on for a file that is not what it should be. Keep only the reason.
        raise CheckpointError(f"{path}: not a slotattn checkpoint; found a torch file ({len(payload):,} bytes) that "
                              f"holds more than tensors and plain containers ({_torch_reason(err)})") from err
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a slotattn checkpoint of format {FORMAT_VERSION}; found a torch file "
                              f"holding {_describe_contents(state)}")
    for key in ("model", "config", "step"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint lacks the key '{key}'")
    return state


def _not_a_torch_archive(payload: bytes) -> str | None:
    """What `payload` looks like if it is not a torch.save zip archive (None if it is one)."""
    size = f"{len(payload):,} bytes"
    if not payload:
        return "an empty file"
    if not payload.startswith(b"PK\x03\x04"):
        if payload[:1] == b"\x80":
            return f"a Python pickle, not a zip archive ({size})"
        text = payload[:64].decode("utf-8", errors="replace").removesuffix("\ufffd")[:40]  # a cut last character
        if all(c.isprintable() and c != "\ufffd" or c in "\n\r\t" for c in text):
            return f"a text file ({size}) beginning {text!r}"
        return f"{size} beginning {payload[:16].hex(' ')}"
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return f"a truncated or damaged zip archive ({size})"
    if not any(name.endswith("/data.pkl") for name in names):
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        return f"a zip archive without data.pkl ({size}; holds {shown or 'nothing'})"
    return None


def _describe_contents(state: Any) -> str:
    if not isinstance(state, dict):
        return f"a {type(state).__name__}"
    if "format_version" in state:
        return f"a dict of format_version {state['format_version']!r}"
    keys = sorted(map(str, state))
    return f"a dict without format_version (keys: {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})"


def _torch_reason(err: Exception) -> str:
    """The reason in a torch.load error, without its advice to retry with weights_only=False."""
    text = str(err)
    if "WeightsUnpickler error:" in text:  # e.g. "Unsupported global: GLOBAL mymodule.Foo was not an allowed ..."
        text = text.split("WeightsUnpickler error:", 1)[1].strip().split(". ", 1)[0]
    elif "weights_only" in text.lower() or "Weights only" in text:
        text = "the file holds objects that a weights-only load refuses"
    text = " ".join(text.split())
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


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


def export_path(path: str | Path, overwrite: bool = False) -> Path:
    """Where `export_safetensors` may write: PATH.safetensors (the suffix added when PATH has none), with its
    PATH.json beside it; refused for a directory, another suffix, a checkpoint's own sidecar, or (unless
    `overwrite`) an existing file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; export needs a file name ending in .safetensors")
    if path.suffix == "":
        path = path.with_suffix(".safetensors")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: export writes a .safetensors file (and its .json), got suffix '{path.suffix}'")
    sidecar = path.with_suffix(".json")
    if _NAME.match(path.with_suffix(".pt").name) and path.with_suffix(".pt").exists():
        raise CheckpointError(f"{sidecar} is the sidecar of checkpoint {path.with_suffix('.pt')}; export elsewhere")
    existing = [str(p) for p in (path, sidecar) if p.exists()]
    if existing and not overwrite:
        raise CheckpointError(f"{' and '.join(existing)} already exist(s); pass --overwrite to replace")
    return path


def export_safetensors(state_dict: dict[str, torch.Tensor], config: dict[str, Any], path: str | Path,
                       overwrite: bool = False) -> Path:
    """Write model weights as safetensors (config JSON in its metadata) plus `<path>.json` with the config, at
    `export_path(path, overwrite)`; returns the path written.

    safetensors files hold tensors only and load without unpickling anything, for inference and sharing.
    """
    from safetensors.torch import save
    path = export_path(path, overwrite)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    metadata = {"format": "slotattn", "format_version": str(FORMAT_VERSION), "config": json.dumps(config)}
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    atomic_write_bytes(path.with_suffix(".json"), (json.dumps(config, indent=2) + "\n").encode())
    return path


def load_safetensors(path: str | Path) -> dict[str, Any]:
    """Load an exported model: {"model": state dict, "config": dict} (the config from the file's metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
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
