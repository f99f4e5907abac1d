"""Crashes: SIGKILL at several moments (between steps, inside a checkpoint write) or a full disk, then --resume, must
end with exactly the parameters of an uninterrupted run. Plus export to safetensors and skipping non-finite steps."""

import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from slotattn import cli, from_pretrained
from slotattn.pretrained import load_model
from slotattn.training import checkpoint
from slotattn.training.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
from slotattn.training.runlog import read_metrics

STEPS = 6
ARGS = ["--config", "debug", "--no-progress", "--set", f"train.steps={STEPS}", "--set", "train.ckpt_every=1",
        "--set", "train.eval_every=1000", "--set", "train.vis_every=1000", "--set", "train.keep_last=3"]


def train_losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if r["split"] == "train"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("crash") / "reference"
    assert cli.main(["train", "--run-dir", str(run_dir), *ARGS]) == 0
    return run_dir


def assert_same_run(run_dir, reference):
    a = load_checkpoint(latest_checkpoint(run_dir))
    b = load_checkpoint(latest_checkpoint(reference))
    assert a["step"] == b["step"] == STEPS
    for key in b["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0, msg=key)
    assert train_losses(run_dir) == train_losses(reference)


# Runs the CLI in a child process that SIGKILLs itself at a chosen moment: inside the Nth atomic write
# (after writing part of the temp file, before the rename), or right after the Nth completed write.
CHILD = textwrap.dedent("""
    import os, signal, sys
    import slotattn.training.checkpoint as ckpt
    mode, nth = sys.argv[1], int(sys.argv[2])
    original, calls = ckpt.atomic_write_bytes, [0]
    def patched(path, data):
        calls[0] += 1
        if calls[0] == nth and mode == "inside":
            with open(path.parent / f".{path.name}.partial.tmp", "wb") as f:
                f.write(data[: len(data) // 2]); f.flush(); os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        original(path, data)
        if calls[0] == nth and mode == "after":
            os.kill(os.getpid(), signal.SIGKILL)
    ckpt.atomic_write_bytes = patched
    from slotattn.cli import main
    sys.exit(main(sys.argv[3:]))
""")


# Each checkpoint is two atomic writes (.pt, then .json): write 5 = step 3's .pt, write 6 = its .json.
@pytest.mark.parametrize("mode, nth", [("inside", 5), ("after", 5), ("after", 8)],
                         ids=["mid-pt-write", "between-pt-and-json", "between-steps"])
def test_sigkill_then_resume_equals_uninterrupted(mode, nth, tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(nth), "train", "--run-dir", str(run_dir), *ARGS],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    newest = latest_checkpoint(run_dir)
    assert newest is not None and load_checkpoint(newest)["step"] < STEPS
    assert cli.main(["train", "--run-dir", str(run_dir), "--resume", "--no-progress"]) == 0
    assert_same_run(run_dir, uninterrupted)
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # leftovers of the killed write are cleaned up


def test_a_full_disk_during_a_checkpoint_says_what_happened_in_one_line_then_resume_works(
        tmp_path, uninterrupted, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    write = checkpoint.atomic_write_bytes

    def disk_full_at_step_4(path, data):
        if path.name.startswith("step_00000004"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", disk_full_at_step_4)
    capsys.readouterr()
    code = cli.main(["train", "--run-dir", str(run_dir), *ARGS])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "step_00000004.pt" in line]
    newest = run_dir / "checkpoints" / "step_00000003.pt"
    assert f"cannot write checkpoint {run_dir / 'checkpoints' / 'step_00000004.pt'}: the disk is full" in line
    assert re.search(r"it needs \d+\.\d MB, [\d.]+ [MG]B free\)", line), line
    assert f"newest intact checkpoint: {newest}" in line
    assert line.endswith(f"continue with: slotattn train --run-dir {run_dir} --resume")
    assert latest_checkpoint(run_dir) == newest and load_checkpoint(newest)["step"] == 3
    assert not list((run_dir / "checkpoints").glob("step_00000004*"))

    monkeypatch.undo()  # space freed: the command the message gives finishes the run as if nothing happened
    assert cli.main(["train", "--run-dir", str(run_dir), "--resume", "--no-progress"]) == 0
    assert_same_run(run_dir, uninterrupted)


def test_sigkill_of_a_running_process_at_an_arbitrary_moment(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    args = [a if a != f"train.steps={STEPS}" else "train.steps=100000" for a in ARGS]
    proc = subprocess.Popen([sys.executable, "-m", "slotattn", "train", "--run-dir", str(run_dir), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list_checkpoints(run_dir)) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    step = load_checkpoint(latest_checkpoint(run_dir))["step"]
    assert 2 <= step
    if step < STEPS:
        assert cli.main(["train", "--run-dir", str(run_dir), "--resume", "--no-progress", "--set",
                         f"train.steps={STEPS}"]) == 0
        a = load_checkpoint(latest_checkpoint(run_dir))["model"]
        b = load_checkpoint(latest_checkpoint(uninterrupted))["model"]
        for key in b:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_export_to_safetensors_and_load_for_inference(tmp_path, uninterrupted, capsys):
    out = tmp_path / "model.safetensors"
    assert cli.main(["export", "--checkpoint", str(uninterrupted), "--out", str(out)]) == 0
    assert out.with_suffix(".json").exists()
    model = from_pretrained(out)
    reference = from_pretrained(uninterrupted)
    _, cfg = load_model(out)  # the config travels with the exported weights
    assert cfg.train.steps == STEPS and not model.training
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    init = torch.randn(2, 4, 16)
    torch.testing.assert_close(model(image, slots_init=init).recon, reference(image, slots_init=init).recon)
    capsys.readouterr()
    assert cli.main(["eval", "--checkpoint", str(out), "--no-progress", "--num", "8"]) == 0
    plain = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="without slotattn metadata"):
        from_pretrained(plain)


def test_from_pretrained_loads_local_files_and_names_and_refuses_the_wrong_model(tmp_path, uninterrupted, monkeypatch):
    from slotattn import SlotAttentionAutoEncoder, SlotAttentionSetPredictor, pretrained

    out = tmp_path / "weights" / "my_model.safetensors"
    out.parent.mkdir()
    assert cli.main(["export", "--checkpoint", str(uninterrupted), "--out", str(out)]) == 0
    model = from_pretrained(str(out))
    assert isinstance(model, SlotAttentionAutoEncoder) and not model.training
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", out.parent)  # as if shipped: loaded by name
    assert pretrained.pretrained_names() == ["my_model"]
    by_name = from_pretrained("my_model", SlotAttentionAutoEncoder)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(by_name.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="not a SlotAttentionSetPredictor"):
        from_pretrained("my_model", SlotAttentionSetPredictor)
    with pytest.raises(CheckpointError, match=r"not the name of shipped weights \(available: my_model"):
        from_pretrained("no_such_model")


def test_skip_nonfinite_counts_skipped_steps_and_leaves_parameters_untouched(tmp_path, monkeypatch):
    from slotattn.tasks import ObjectDiscoveryTask

    original = ObjectDiscoveryTask.loss
    calls = {"n": 0}

    def sometimes_nan(self, out, batch):
        calls["n"] += 1
        terms = original(self, out, batch)
        return {k: v * float("nan") for k, v in terms.items()} if calls["n"] in (2, 3) else terms

    monkeypatch.setattr(ObjectDiscoveryTask, "loss", sometimes_nan)
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--run-dir", str(run_dir), *ARGS, "--set", "optim.skip_nonfinite=true",
                     "--set", "train.keep_last=10"]) == 0
    records = [r for r in read_metrics(run_dir) if r["split"] == "train"]
    assert [r["skipped_steps"] for r in records] == [0, 1, 2, 2, 2, 2]
    ckpts = {int(p.stem[5:]): load_checkpoint(p) for p in list_checkpoints(run_dir)}
    for key in ckpts[1]["model"]:  # steps 2 and 3 were skipped: no update at all
        torch.testing.assert_close(ckpts[3]["model"][key], ckpts[1]["model"][key], rtol=0, atol=0)
    assert any(not torch.equal(ckpts[4]["model"][k], ckpts[3]["model"][k]) for k in ckpts[3]["model"])  # step 4 ran
    assert ckpts[6]["skipped_steps"] == 2
    assert all(torch.isfinite(v).all() for v in load_checkpoint(latest_checkpoint(run_dir))["model"].values())
