"""KerasAdam against a transcription of TensorFlow's Adam update (the official models' optimizer)."""

import copy
import math

import numpy as np
import pytest
import torch

from slotattn.training.optimizer import KerasAdam
from slotattn.training.schedule import lr_factor


def tf_adam(param, grads, lrs, beta1=0.9, beta2=0.999, eps=1e-8):
    """TF's ApplyAdam / Keras Adam, step by step in float64: eps added to the uncorrected sqrt(v)."""
    param, m, v = param.copy(), np.zeros_like(param), np.zeros_like(param)
    for t, (grad, lr) in enumerate(zip(grads, lrs), start=1):
        lr_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        param = param - lr_t * m / (np.sqrt(v) + eps)
    return param


def run(optimizer_cls, param0, grads, lrs, **kwargs):
    param = torch.nn.Parameter(torch.tensor(param0))
    optimizer = optimizer_cls([param], lr=lrs[0], **kwargs)
    for grad, lr in zip(grads, lrs):
        optimizer.param_groups[0]["lr"] = lr
        param.grad = torch.tensor(grad)
        optimizer.step()
    return param.detach().numpy()


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    param0 = rng.normal(size=64)
    # Gradient scales from 1 down to 1e-9: where sqrt(v) is near eps the placement of eps decides the update.
    scales = 10.0 ** -rng.integers(0, 10, size=64)
    grads = [rng.normal(size=64) * scales for _ in range(30)]
    lrs = [4e-4 * lr_factor(step, warmup_steps=10, decay_rate=0.5, decay_steps=100) for step in range(30)]
    return param0, grads, lrs  # lrs[0] == 0: the official first step only fills m and v


def test_keras_adam_is_tensorflows_update(problem):
    param0, grads, lrs = problem
    expected = tf_adam(param0, grads, lrs)
    np.testing.assert_allclose(run(KerasAdam, param0, grads, lrs), expected, rtol=1e-12, atol=1e-15)


def test_torch_adam_differs_where_gradients_are_small(problem):
    """The difference KerasAdam exists for: PyTorch's eps placement moves small-gradient parameters less."""
    param0, grads, lrs = problem
    expected = tf_adam(param0, grads, lrs)
    plain = run(torch.optim.Adam, param0, grads, lrs, eps=1e-8)
    assert not np.allclose(plain, expected, rtol=1e-9, atol=1e-12)


def test_state_dict_round_trip_continues_exactly(problem):
    param0, grads, lrs = problem
    param = torch.nn.Parameter(torch.tensor(param0))
    optimizer = KerasAdam([param], lr=0.0)
    for grad, lr in zip(grads[:10], lrs[:10]):
        optimizer.param_groups[0]["lr"] = lr
        param.grad = torch.tensor(grad)
        optimizer.step()
    resumed_param = torch.nn.Parameter(param.detach().clone())
    resumed = KerasAdam([resumed_param], lr=0.0)
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # as saved: no tensors shared
    for grad, lr in zip(grads[10:], lrs[10:]):
        for opt, p in ((optimizer, param), (resumed, resumed_param)):
            opt.param_groups[0]["lr"] = lr
            p.grad = torch.tensor(grad)
            opt.step()
    torch.testing.assert_close(resumed_param, param, rtol=0, atol=0)
    np.testing.assert_allclose(param.detach().numpy(), tf_adam(param0, grads, lrs), rtol=1e-12, atol=1e-15)


def test_loads_a_plain_torch_adam_checkpoint():
    """Checkpoints written before KerasAdam (torch.optim.Adam, eps=1e-8) resume with Keras' eps = 1e-8."""
    param = torch.nn.Parameter(torch.ones(3))
    plain = torch.optim.Adam([param], lr=1e-3, eps=1e-8)
    param.grad = torch.ones(3)
    plain.step()
    optimizer = KerasAdam([torch.nn.Parameter(torch.ones(3))], lr=1e-3)
    optimizer.load_state_dict(plain.state_dict())
    assert optimizer.param_groups[0]["keras_eps"] == 1e-8
