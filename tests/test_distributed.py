"""Data-parallel training with a real `torchrun` launch of 2 CPU processes (gloo) against 1 process."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from slotattn import cli
from slotattn.training.checkpoint import latest_checkpoint, load_checkpoint, list_checkpoints
from slotattn.data.generators.tetrominoes import generate_tetrominoes
from slotattn.data.store import write_store
from slotattn.training.runlog import read_metrics


def settings(store, steps):
    return ["--set", f"data.path={store}", "--set", f"data.eval_path={store}", "--set", "train.batch_size=8",
            "--set", f"train.steps={steps}", "--set", "train.eval_every=2", "--set", "train.ckpt_every=2",
            "--set", "train.vis_every=2", "--set", "data.num_eval=12", "--set", "train.eval_batch_size=4",
            # float32: the comparison below is DDP against one process; bfloat16 rounding would blur it
            "--set", "train.precision=fp32"]


def torchrun(args, run_dir):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "slotattn",
           "train", "--run-dir", str(run_dir), "--no-progress", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "data"
    write_store(path, generate_tetrominoes(48, np.random.default_rng(0)), {"dataset": "tetrominoes"})
    return path


def test_two_ranks_match_one_process_with_the_global_batch_and_resume(store, tmp_path):
    single = tmp_path / "single"
    assert cli.main(["train", "--config", "debug", "--run-dir", str(single), "--no-progress",
                     *settings(store, 4)]) == 0
    ddp = tmp_path / "ddp"
    first = torchrun(["--config", "debug", *settings(store, 2)], ddp)
    assert first.stdout.count("run directory:") == 1  # only rank 0 prints
    torchrun(["--resume", *settings(store, 4)], ddp)

    a = load_checkpoint(latest_checkpoint(single))
    b = load_checkpoint(latest_checkpoint(ddp))
    assert a["step"] == b["step"] == 4
    # Gradients agree to float rounding (all-reduce order differs); Adam divides by sqrt(v), which magnifies
    # rounding where a gradient is near zero, so parameters agree to ~1e-5 rather than 1e-7 after 4 steps.
    for key in a["model"]:
        torch.testing.assert_close(b["model"][key], a["model"][key], atol=2e-4, rtol=1e-3, msg=key)

    rec_a, rec_b = read_metrics(single), read_metrics(ddp)
    assert [(r["step"], r["split"]) for r in rec_b] == [(r["step"], r["split"]) for r in rec_a]  # rank 0 alone logs
    for ra, rb in zip(rec_a, rec_b):
        for key in ("loss", "ari", "fg_ari", "mbo"):
            if key in ra:
                assert rb[key] == pytest.approx(ra[key], abs=1e-4), (ra["step"], key)
    assert [p.name for p in list_checkpoints(ddp)] == ["step_00000002.pt", "step_00000004.pt"]


def test_implicit_differentiation_trains_under_two_ranks_as_in_one_process(store, tmp_path):
    """Under model.implicit_diff the slot initialisation gets no gradient; DDP must accept parameters without one."""
    args = [*settings(store, 2), "--set", "model.implicit_diff=true"]
    single = tmp_path / "single"
    assert cli.main(["train", "--config", "debug", "--run-dir", str(single), "--no-progress", *args]) == 0
    ddp = tmp_path / "ddp"
    torchrun(["--config", "debug", *args], ddp)
    a, b = (load_checkpoint(latest_checkpoint(run))["model"] for run in (single, ddp))
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=2e-4, rtol=1e-3, msg=key)
    assert torch.equal(a["slot_attention.slots_mu"], b["slot_attention.slots_mu"])  # no gradient, never moved


def test_learned_slot_queries_train_under_two_ranks_as_in_one_process(store, tmp_path):
    """Learned queries with their annealed noise: the global noise draw, scaled by the step's sigma, is sliced per
    rank, so 2 ranks follow 1 process; and a 2-rank job holds its run directory once (rank 0), not twice."""
    args = [*settings(store, 2), "--set", "model.slot_init=learned_queries", "--set", "model.query_noise_steps=3"]
    single = tmp_path / "single"
    assert cli.main(["train", "--config", "debug", "--run-dir", str(single), "--no-progress", *args]) == 0
    ddp = tmp_path / "ddp"
    torchrun(["--config", "debug", *args], ddp)
    a, b = (load_checkpoint(latest_checkpoint(run))["model"] for run in (single, ddp))
    assert "slot_attention.slots_init" in a and "slot_attention.slots_mu" not in a
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=2e-4, rtol=1e-3, msg=key)
