"""Adam as the official code runs it: TensorFlow/Keras put Adam's epsilon in a different place than PyTorch.

The official `train.py` files use `tf.keras.optimizers.Adam(lr, epsilon=1e-8)`, whose update (TF's `ApplyAdam`
kernel, and Keras' own optimizers since) is

    theta <- theta - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)            (Keras, TF)

with epsilon added to the *uncorrected* sqrt(v); `torch.optim.Adam` adds it after the bias correction:

    theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)             (PyTorch)

The two are the same update when PyTorch's eps is eps_keras / sqrt(1 - beta2^t): 3.2e-7 instead of 1e-8 at the first
step, within 1 % of eps_keras after ~5,000 steps. `KerasAdam` sets that before every step, so slotattn trains with the
official optimizer while running PyTorch's own Adam kernels.
"""

import math
from collections.abc import Iterable
from typing import Any

import torch

# The official train.py: tf.keras.optimizers.Adam(base_learning_rate, epsilon=1e-08), Keras' default betas.
ADAM_EPSILON = 1e-8
ADAM_BETAS = (0.9, 0.999)


class KerasAdam(torch.optim.Adam):
    """`torch.optim.Adam` with TensorFlow/Keras' epsilon semantics (module docstring).

    Args:
        params: the parameters (or parameter groups) to optimise.
        lr: learning rate (a scheduler may change it per step, as the official loop sets `optimizer.lr`).
        betas: (beta1, beta2).
        eps: Keras' epsilon, added to sqrt(v) before the bias correction.
    """

    def __init__(self, params: Iterable[Any], lr: float, betas: tuple[float, float] = ADAM_BETAS,
                 eps: float = ADAM_EPSILON):
        super().__init__(params, lr=lr, betas=betas, eps=eps)
        for group in self.param_groups:
            group["keras_eps"] = eps

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            t = self._next_step(group)
            group["eps"] = group["keras_eps"] / math.sqrt(1.0 - group["betas"][1] ** t)
        return super().step(closure)

    def _next_step(self, group: dict[str, Any]) -> int:
        """The 1-based step count the coming update of `group` uses (Adam keeps it per parameter)."""
        steps = [int(self.state[p]["step"]) for p in group["params"] if "step" in self.state.get(p, {})]
        return max(steps, default=0) + 1

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # a checkpoint of torch.optim.Adam: its eps was the Keras-style value
            group.setdefault("keras_eps", group["eps"])


def build_optimizer(params: Iterable[Any], learning_rate: float) -> KerasAdam:
    """The official optimizer: Adam, epsilon 1e-8 with Keras' semantics, at `learning_rate` (the peak rate)."""
    return KerasAdam(params, lr=learning_rate)
