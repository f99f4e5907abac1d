"""Learning-rate schedule (official formula) and checkpoint files (atomic, verified, pruned)."""

import errno
import io
import json
import os
import pickle
import re
import zipfile

import pytest
import torch

from slotattn.training import checkpoint
from slotattn.training.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from slotattn.config import OptimConfig
from slotattn.training.schedule import build_scheduler, lr_factor


def official_lr(step, base=4e-4, warmup=10_000, decay_rate=0.5, decay_steps=100_000):
    """Transcription of the official object_discovery/train.py schedule."""
    lr = base * step / warmup if step < warmup else base
    return lr * decay_rate ** (step / decay_steps)


@pytest.mark.parametrize("step", [0, 1, 5_000, 9_999, 10_000, 50_000, 100_000, 250_000, 499_999])
def test_lr_factor_matches_the_official_schedule(step):
    assert 4e-4 * lr_factor(step, 10_000, 0.5, 100_000) == pytest.approx(official_lr(step), rel=1e-12)


def test_scheduler_gives_step_i_the_lr_of_factor_i():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=4e-4)
    scheduler = build_scheduler(optimizer, OptimConfig(warmup_steps=10, decay_steps=20))
    seen = []
    for _ in range(30):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([official_lr(i, warmup=10, decay_steps=20) for i in range(30)], rel=1e-12)
    assert seen[0] == 0.0


def _state(value=1.0):
    return {"model": {"w": torch.full((3,), value)}, "config": {"task": "object_discovery"}}


def test_save_load_round_trip_and_keep_last(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, _state(step), step, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000030.pt", "step_00000040.pt"]
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 40 and torch.equal(state["model"]["w"], torch.full((3,), 40.0))
    meta = json.loads((tmp_path / "checkpoints" / "step_00000040.json").read_text())
    assert meta["step"] == 40 and len(meta["sha256"]) == 64


def test_corrupted_checkpoint_is_detected_and_skipped(tmp_path):
    save_checkpoint(tmp_path, _state(1), 1, keep_last=5)
    newest = save_checkpoint(tmp_path, _state(2), 2, keep_last=5)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(newest)
    assert latest_checkpoint(tmp_path).name == "step_00000001.pt"


def test_truncated_or_foreign_files_raise_checkpoint_error(tmp_path):
    path = save_checkpoint(tmp_path, _state(), 5, keep_last=1)
    path.with_suffix(".json").unlink()
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a slotattn checkpoint.*a truncated or damaged zip archive"):
        load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match=r"not a slotattn checkpoint of format 1; found a torch file holding a "
                                              r"dict without format_version \(keys: weights\)"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def _zip_without_data_pkl() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "not a model")
    return buffer.getvalue()


def _torch_file_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"format_version": 1, "model": {"w": torch.zeros(64)}, "config": {}, "step": 0}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("content, looks_like", [
    (bytes(range(7, 255)) * 3, r"744 bytes beginning 07 08 09 0a"),
    (b"step: 100\nloss: 0.5\n", r"a text file \(20 bytes\) beginning 'step: 100\\nloss: 0.5"),
    (_zip_without_data_pkl(), r"a zip archive without data.pkl \(\d+ bytes; holds notes/readme.txt\)"),
    (_torch_file_bytes()[:300], r"a truncated or damaged zip archive \(300 bytes\)"),
    (b"", "an empty file"),
    (pickle.dumps({"model": {}}), r"a Python pickle, not a zip archive"),
], ids=["garbage", "text", "zip-without-data.pkl", "truncated", "empty", "pickle"])
def test_unreadable_checkpoint_says_what_the_file_looks_like_and_never_suggests_weights_only_false(
        tmp_path, content, looks_like):
    path = tmp_path / "step_00000001.pt"  # no .json beside it: not caught by the checksum first
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: not a slotattn checkpoint (a torch.save zip archive); found ")
    assert re.search(looks_like, message), message
    assert "weights_only" not in message and "\n" not in message


@pytest.mark.parametrize("failing, code", [(".pt", errno.ENOSPC), (".json", errno.ENOSPC), (".pt", errno.EIO)])
def test_a_failed_write_names_the_file_the_size_the_intact_checkpoint_and_the_resume_command(
        tmp_path, monkeypatch, failing, code):
    intact = save_checkpoint(tmp_path, _state(1), 1, keep_last=5)
    write = checkpoint.atomic_write_bytes

    def fails(path, data):
        if path.name.startswith("step_00000002") and path.suffix == failing:
            raise OSError(code, os.strerror(code), str(path))
        write(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", fails)
    with pytest.raises(CheckpointError) as raised:
        save_checkpoint(tmp_path, _state(2), 2, keep_last=5)
    message = str(raised.value)
    reason = "the disk is full" if code == errno.ENOSPC else os.strerror(code)
    assert message.startswith(f"cannot write checkpoint {tmp_path / 'checkpoints' / 'step_00000002.pt'}: {reason} "
                              "(it needs 0.0 MB, ")
    assert f"; newest intact checkpoint: {intact};" in message and "\n" not in message
    assert message.endswith(f"continue with: slotattn train --run-dir {tmp_path} --resume")
    assert ("free some space" in message) == (code == errno.ENOSPC)
    # no half checkpoint is left (a .pt without its .json): only step 1's two files
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000001.json", "step_00000001.pt"]


def test_checkpoint_without_its_json_is_not_complete(tmp_path):
    """A kill between writing the .pt and its .json leaves an incomplete checkpoint that resume ignores."""
    save_checkpoint(tmp_path, _state(1), 1, keep_last=5)
    newest = save_checkpoint(tmp_path, _state(2), 2, keep_last=5)
    newest.with_suffix(".json").unlink()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000001.pt"]


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model": Evil(), "config": {}, "step": 0}, path)
    with pytest.raises(CheckpointError, match="holds more than tensors and plain containers") as raised:
        load_checkpoint(path)
    assert "GLOBAL print" in str(raised.value) and "weights_only" not in str(raised.value)


def test_the_cosine_schedule_warms_up_then_decays_to_zero_at_its_last_step():
    """Invariant Slot Attention's shape (optax warmup_cosine_decay_schedule): linear warm-up, cosine to 0."""
    factors = [lr_factor(step, 10, 0.5, 100, "cosine") for step in range(0, 130)]
    assert factors[0] == 0.0 and factors[5] == pytest.approx(0.5) and factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx(0.5) and factors[110] == pytest.approx(0.0, abs=1e-12)
    assert all(f == pytest.approx(0.0, abs=1e-12) for f in factors[110:])
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # never rises after the warm-up
    scheduler = build_scheduler(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0),
                                OptimConfig(warmup_steps=10, decay_steps=100, schedule="cosine"))
    assert scheduler.lr_lambdas[0](60) == pytest.approx(0.5)


def test_a_learned_query_model_round_trips_through_checkpoint_and_export(tmp_path):
    from slotattn import cli
    from slotattn.pretrained import load_model

    run_dir = tmp_path / "run"
    assert cli.main(["train", "--config", "debug", "--run-dir", str(run_dir), "--no-progress", "--set",
                     "model.slot_init=learned_queries", "--set", "train.precision=fp32"]) == 0
    assert cli.main(["export", "--checkpoint", str(run_dir), "--out", str(tmp_path / "m.safetensors")]) == 0
    from_ckpt, cfg = load_model(run_dir)
    from_file, _ = load_model(tmp_path / "m.safetensors")
    assert cfg.model.slot_init == "learned_queries"
    image = torch.rand(2, 3, *cfg.model.resolution) * 2 - 1
    assert torch.equal(from_ckpt(image).recon, from_file(image).recon)  # deterministic: no slot noise
    assert torch.equal(from_ckpt.slot_attention.slots_init, load_checkpoint(latest_checkpoint(run_dir))["model"][
        "slot_attention.slots_init"])
