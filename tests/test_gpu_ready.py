"""The CUDA code paths that a CPU can still exercise (issue 36): a GPU-trained run evaluated and resumed on a CPU
machine, the RNG state of one device, which GPU a rank takes, the GPU settings a run sets and records, and DDP's
buffers."""

import pytest
import torch

from slotattn import cli, load_config, run
from slotattn.models import build_model
from slotattn.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from slotattn.training.distributed import rank_device
from slotattn.training.engine import gpu_settings

DEBUG = ["--config", "debug", "--no-progress", "--set", "train.precision=fp32"]


def rewrite_checkpoint(run_dir, change):
    """Load the newest checkpoint, change its payload in place, and save it again (new SHA-256 sidecar)."""
    path = latest_checkpoint(run_dir)
    payload = load_checkpoint(path)
    change(payload)
    step = payload.pop("step")
    payload.pop("format_version", None)
    save_checkpoint(run_dir, payload, step, keep_last=10)


@pytest.fixture
def gpu_trained(tmp_path):
    """A debug run whose checkpoint says it trained on CUDA with a GPU RNG state, as a GPU machine writes it."""
    run_dir = tmp_path / "run"
    assert cli.main(["train", *DEBUG, "--run-dir", str(run_dir), "--set", "train.steps=3",
                     "--set", "train.ckpt_every=3"]) == 0

    def on_gpu(payload):
        payload["config"]["train"]["device"] = "cuda"
        payload["rng"]["device"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state (Philox: 16 bytes)

    rewrite_checkpoint(run_dir, on_gpu)
    return run_dir


def test_a_gpu_trained_checkpoint_evaluates_exports_and_draws_on_a_cpu_machine(gpu_trained, tmp_path, caplog):
    assert not torch.cuda.is_available()
    with caplog.at_level("WARNING"):
        result = run.evaluate(gpu_trained, num=4)
    assert 0 <= result["fg_ari"] <= 1 and result["num_scenes"] == 4
    assert sum("train.device=cuda" in r.message and "CPU" in r.message for r in caplog.records) == 1
    assert run.export(gpu_trained, tmp_path / "m.safetensors")[0].exists()
    assert run.visualize(gpu_trained, tmp_path / "fig.png", num=2).exists()
    with pytest.raises(ValueError, match="device 'cuda'"):  # asked for explicitly: an error, not a fallback
        run.evaluate(gpu_trained, num=4, device="cuda")


def test_resume_with_the_rng_state_of_a_device_that_is_not_there(tmp_path):
    """The CPU generator is restored exactly, the GPU one is skipped: on the CPU the run continues bit for bit."""
    straight = tmp_path / "straight"
    assert cli.main(["train", *DEBUG, "--run-dir", str(straight), "--set", "train.steps=4"]) == 0
    resumed = tmp_path / "resumed"
    assert cli.main(["train", *DEBUG, "--run-dir", str(resumed), "--set", "train.steps=2"]) == 0

    def old_and_new_gpu_states(payload):
        payload["rng"]["device"] = torch.zeros(16, dtype=torch.uint8)
        payload["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)] * 2  # the format before 2026-12-08

    rewrite_checkpoint(resumed, old_and_new_gpu_states)
    assert cli.main(["train", "--run-dir", str(resumed), "--resume", "--no-progress", "--set", "train.steps=4"]) == 0
    a, b = (load_checkpoint(latest_checkpoint(r))["model"] for r in (straight, resumed))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_checkpoint_holds_the_training_devices_rng_state_only(tmp_path):
    run_dir = tmp_path / "run"
    assert cli.main(["train", *DEBUG, "--run-dir", str(run_dir), "--set", "train.steps=1"]) == 0
    assert set(load_checkpoint(latest_checkpoint(run_dir))["rng"]) == {"torch"}  # trained on the CPU


@pytest.mark.parametrize("local_rank, visible, expected", [(0, 2, 0), (1, 2, 1), (1, 1, 0), (3, 1, 0)])
def test_a_rank_takes_its_local_gpu_only_where_that_many_are_visible(local_rank, visible, expected):
    assert rank_device(local_rank, visible) == torch.device("cuda", expected)


def test_gpu_runs_set_the_autotuner_and_pytorchs_tf32_defaults_explicitly():
    flags = [(torch.backends.cudnn, "benchmark"), (torch.backends.cuda.matmul, "allow_tf32"),
             (torch.backends.cudnn, "allow_tf32")]
    saved = [getattr(module, name) for module, name in flags]
    try:
        for module, name in flags:
            setattr(module, name, not getattr(module, name))
        gpu_settings()
        assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is True
    finally:
        for (module, name), value in zip(flags, saved):
            setattr(module, name, value)


@pytest.mark.parametrize("recipe", ["tetrominoes", "multi_dsprites", "clevr6", "set_prediction_clevr"])
def test_the_models_buffers_are_constant_grids_so_ddp_need_not_broadcast_them(recipe):
    """DDP runs with broadcast_buffers=False (engine._training_forward): right only while no buffer changes."""
    model = build_model(load_config(recipe))
    buffers = dict(model.named_buffers())
    assert buffers and all(name.endswith("grid") for name in buffers)
    before = {k: v.clone() for k, v in buffers.items()}
    model.train()
    image = torch.rand(1, 3, *model.resolution) * 2 - 1
    out = model(image)
    (out.recon if hasattr(out, "recon") else out.preds).sum().backward()
    assert all(torch.equal(before[k], v) for k, v in model.named_buffers())
    assert not any(name.endswith("grid") for name in model.state_dict())  # not persistent: not in checkpoints


READ_POINTS = ("item", "tolist", "__float__", "__int__", "__bool__", "cpu", "numpy")


@pytest.mark.parametrize("overrides", [[], ["optim.grad_clip_norm=1.0"], ["model.slot_init=learned_queries"]])
def test_a_training_step_reads_the_device_once(monkeypatch, overrides):
    """On a GPU every read of a tensor's value on the host (.item(), float(), .tolist(), .cpu(), ...) waits for the
    device; a step makes one (`engine.host_read`: loss terms, gradient norm, stop flags). Here the same step runs on
    the CPU with every read point of torch.Tensor counted."""
    from slotattn.data.batch import to_model_batch
    from slotattn.data.build import build_train_source
    from slotattn.tasks import build_task
    from slotattn.training import engine
    from slotattn.training.state import TrainState

    cfg = load_config("debug", overrides)
    model = build_model(cfg).train()
    state = TrainState.create(model, cfg.optim)
    task = build_task(cfg.task)
    batch = to_model_batch(build_train_source(cfg).batch(0))
    noise = engine.draw_slot_noise(model, cfg.train.batch_size, engine.DistInfo(), torch.device("cpu"), step=0)
    reads = []

    def is_adam_step_count(tensor):
        """Adam's per-parameter step counts live on the CPU whatever the device (torch.optim.Adam without
        capturable/fused): reading them never waits for a GPU."""
        return any(tensor is s.get("step") for s in state.optimizer.state.values())

    for name in READ_POINTS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            if not is_adam_step_count(self):
                reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    outcome = engine.train_step(state, model, task, batch, noise, grad_clip_norm=cfg.optim.grad_clip_norm,
                                flags=(False, False))
    monkeypatch.undo()
    assert reads == ["tolist"], reads  # host_read's, and nothing else
    assert outcome.problem is None and state.step == 1 and set(outcome.values) == {"loss", "mse", "grad_norm"}
