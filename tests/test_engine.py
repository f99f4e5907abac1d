"""The training engine with a fake task and model: cadence, progress, exact resume, the non-finite guard, slot noise,
and test-time settings passed per call."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from slotattn.config import load_config
from slotattn.training.checkpoint import list_checkpoints
from slotattn.training.engine import NonFiniteLossError, evaluate, train


class FakeSource:
    """Step-indexed uint8 images, as `GeneratedSource` gives them."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size

    def batch(self, step: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([7, step])
        return {"image": rng.integers(0, 256, size=(self.batch_size, 4, 4, 3), dtype=np.uint8)}

    def where(self, step: int) -> str:
        return f"fake batch {step}"


class PlainModel(nn.Module):
    """A per-pixel linear map without slot noise; records the keyword arguments of every call."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 3)
        self.calls: list[dict] = []

    def forward(self, image, **kwargs):
        self.calls.append({k: (tuple(v.shape) if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()
                           if k != "generator"})
        return self.linear(image.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class FakeModel(PlainModel):
    """... that takes slot noise of shape [B, 2, 5], as the slot models do."""

    def noise_shape(self, batch_size: int) -> tuple[int, int, int]:
        return batch_size, 2, 5


class MeanEvaluator:
    def __init__(self):
        self.values = []

    def update(self, out, batch):
        assert not out.requires_grad, "evaluation must run without autograd"
        self.values.append(float(((out - batch["image"]) ** 2).mean()))

    def compute(self, gather):
        return {"score": float(np.mean(self.values))}


class FakeTask:
    """MSE to the input; `nan_at`: these (0-based) training calls of `loss` return NaN."""

    def __init__(self, nan_at: tuple[int, ...] = ()):
        self.nan_at, self.calls = set(nan_at), 0

    def loss(self, out, batch):
        loss = ((out - batch["image"]) ** 2).mean()
        if self.calls in self.nan_at:
            loss = loss * float("nan")
        self.calls += 1
        return {"loss": loss, "mse": loss.detach()}

    def evaluator(self):
        return MeanEvaluator()

    def visualize(self, out, batch, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"png")
        return path


def config(**train):
    settings = {"steps": 6, "batch_size": 4, "log_every": 2, "eval_every": 3, "ckpt_every": 3, "vis_every": 6,
                "keep_last": 2, "precision": "fp32", "device": "cpu", **train}
    return load_config("debug", [f"train.{k}={v}" for k, v in settings.items()])


def eval_batches(rank, world):
    def batches():
        for i in range(2):
            image = torch.from_numpy(FakeSource(3).batch(100 + i)["image"]).permute(0, 3, 1, 2).float() / 127.5 - 1
            yield {"image": image, "index": torch.arange(3 * i, 3 * i + 3)}

    return batches


def run(cfg, run_dir, model=None, task=None, resume=False, progress=None):
    torch.manual_seed(0)
    model = model or FakeModel()
    metrics = train(cfg, model, task or FakeTask(), lambda rank, world: FakeSource(cfg.train.batch_size),
                    eval_batches, run_dir, resume=resume, progress=progress)
    return model, metrics


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_cadence_of_logs_evaluations_figures_checkpoints_and_progress(tmp_path):
    calls = []
    _, metrics = run(config(), tmp_path, progress=lambda step, total, values: calls.append((step, total, values)))
    rows = records(tmp_path)
    assert [r["step"] for r in rows if r["split"] == "train"] == [2, 4, 6]
    assert [r["step"] for r in rows if r["split"] == "eval"] == [3, 6]
    assert set(rows[0]) >= {"loss", "mse", "grad_norm", "lr", "img_per_s", "time_s"}
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003.pt", "step_00000006.pt"]
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["step_00000006.png"]
    assert [(s, t) for s, t, _ in calls] == [(s, 6) for s in range(1, 7)]
    assert [s for s, _, values in calls if values is not None] == [2, 4, 6]
    assert metrics == {"score": rows[-1]["score"]}
    # The logged lr is the one the step used: step 1 has lr 0 (warm-up from 0), step 2 lr * 1/warmup.
    assert rows[0]["lr"] == pytest.approx(cfg_lr(1))


def cfg_lr(step_index):
    cfg = config()
    from slotattn.training.schedule import lr_factor

    return cfg.optim.learning_rate * lr_factor(step_index, cfg.optim.warmup_steps, cfg.optim.decay_rate,
                                               cfg.optim.decay_steps)


def test_resume_continues_exactly(tmp_path):
    whole, _ = run(config(), tmp_path / "whole")
    run(config(steps=3), tmp_path / "split")
    resumed, _ = run(config(), tmp_path / "split", resume=True)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    # The first run logged its last step (3); the resumed one goes on at the cadence.
    assert [r["step"] for r in records(tmp_path / "split") if r["split"] == "train"] == [2, 3, 4, 6]


def test_nonfinite_loss_stops_with_the_step_and_the_last_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"step 4: non-finite loss .*last good checkpoint: .*step_00000003"):
        run(config(), tmp_path, task=FakeTask(nan_at=(4,)))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003.pt"]


def test_skip_nonfinite_leaves_parameters_and_adam_untouched_for_that_step(tmp_path):
    cfg = config(steps=2, log_every=1, eval_every=2, ckpt_every=2)
    skipped, _ = run(load_config("debug", [*overrides(cfg), "optim.skip_nonfinite=true"]), tmp_path / "skip",
                     task=FakeTask(nan_at=(1,)))
    one_step, _ = run(config(steps=1, log_every=1, eval_every=1, ckpt_every=1), tmp_path / "one")
    for a, b in zip(one_step.parameters(), skipped.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert [r.get("skipped_steps") for r in records(tmp_path / "skip") if r["split"] == "train"] == [0, 1]


def overrides(cfg):
    return [f"train.{k}={getattr(cfg.train, k)}" for k in ("steps", "batch_size", "log_every", "eval_every",
                                                           "ckpt_every", "vis_every", "keep_last", "precision",
                                                           "device")]


def test_slot_noise_is_drawn_from_the_models_noise_shape(tmp_path):
    model, _ = run(config(steps=2, eval_every=2, ckpt_every=2, vis_every=2), tmp_path / "noise")
    training_calls = [c for c in model.calls if "num_slots" not in c][:2]
    assert training_calls == [{"noise": (4, 2, 5)}, {"noise": (4, 2, 5)}]
    plain, _ = run(config(steps=2, eval_every=2, ckpt_every=2, vis_every=2), tmp_path / "plain",
                   model=PlainModel())
    assert plain.calls[:2] == [{}, {}]


def test_evaluate_passes_test_time_settings_per_call_and_leaves_the_model_alone():
    model, task = FakeModel(), FakeTask()
    evaluate(model, task, eval_batches(0, 1)(), torch.device("cpu"), num_iterations=7)
    evaluate(model, task, eval_batches(0, 1)(), torch.device("cpu"), num_slots=9, num_iterations=2)
    evaluate(model, task, eval_batches(0, 1)(), torch.device("cpu"))
    assert model.calls == [{"num_iterations": 7}] * 2 + [{"num_slots": 9, "num_iterations": 2}] * 2 + [{}] * 2
    assert math.isfinite(evaluate(model, task, eval_batches(0, 1)(), torch.device("cpu"))["score"])
