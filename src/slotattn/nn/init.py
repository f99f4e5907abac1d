"""The official model's initialisation: Keras' defaults, as google-research `slot_attention/model.py` gets them.

The official layers are built without initialiser arguments, so every layer takes Keras' defaults:
`Dense`, `Conv2D`, `Conv2DTranspose` kernels `glorot_uniform` (Keras' fans, below), biases zero; `LayerNormalization`
gamma 1, beta 0; `GRUCell` kernel `glorot_uniform` over its [in, 3D] kernel, recurrent kernel `orthogonal` over its
[D, 3D] recurrent kernel, biases zero; the slot Gaussian's [1, 1, D] `slots_mu`/`slots_log_sigma` `glorot_uniform`.
slotattn's layers (`Dense`, `GRUCell`, `Conv2dSame`, `ConvTranspose2dSame`, the slot parameters) draw exactly these
distributions when they are built. `reset_torch_defaults_` re-draws a model with PyTorch's own defaults instead
(`model.init=torch`), for comparison.
"""

import math
from typing import Literal

import torch
from torch import nn

from slotattn.shapes import Tensor

InitScheme = Literal["official", "torch"]
INIT_SCHEMES: tuple[str, ...] = ("official", "torch")

# Keras concatenates a GRU's gate blocks as (update z, reset r, candidate h), PyTorch as (reset r, update z, new n).
KERAS_TO_TORCH_GATES = (1, 0, 2)


def keras_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras' (fan_in, fan_out) of a kernel in *Keras'* layout (`initializers._compute_fans`).

    [in, out] for Dense; [kh, kw, in, out] for Conv2D and [kh, kw, out, in] for Conv2DTranspose (receptive field
    times the last two axes); [1, 1, D] for the slot parameters: fan_in 1, fan_out D.
    """
    if len(shape) < 2:
        raise ValueError(f"keras_fans: a kernel has at least 2 axes, got shape {list(shape)}")
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def glorot_bound(fan_in: int, fan_out: int) -> float:
    """The half-width of Keras' `glorot_uniform`: sqrt(6 / (fan_in + fan_out))."""
    return math.sqrt(6.0 / (fan_in + fan_out))


def glorot_uniform_(param: Tensor, fan_in: int, fan_out: int) -> Tensor:
    """Fill `param` in place from U(-b, b), b = `glorot_bound(fan_in, fan_out)`; fans as Keras counts them."""
    bound = glorot_bound(fan_in, fan_out)
    with torch.no_grad():
        return param.uniform_(-bound, bound)


def glorot_uniform_like_keras_(param: Tensor) -> Tensor:
    """Keras' `glorot_uniform` for a weight stored in Keras' own layout (e.g. the [1, 1, D] slot parameters)."""
    return glorot_uniform_(param, *keras_fans(tuple(param.shape)))


def keras_gru_to_torch(weight: Tensor, axis: int = -1) -> Tensor:
    """Reorder a Keras GRU weight's gate blocks along `axis` from (z, r, h) to PyTorch's (r, z, n)."""
    blocks = weight.chunk(3, dim=axis)
    return torch.cat([blocks[i] for i in KERAS_TO_TORCH_GATES], dim=axis)


def keras_gru_init_(cell: nn.GRUCell) -> nn.GRUCell:
    """Keras' `GRUCell` initialisation, drawn in Keras' layout and mapped to PyTorch's (as `tf_import` maps weights).

    kernel [in, 3D] ~ glorot_uniform (fans in, 3D); recurrent_kernel [D, 3D] ~ orthogonal (orthonormal rows:
    Keras, like `torch.nn.init.orthogonal_`, draws the QR factor of a Gaussian matrix, sign-corrected by diag(R));
    both biases zero. PyTorch keeps the transposes, gate blocks (r, z, n).
    """
    size, in_size = cell.hidden_size, cell.input_size
    with torch.no_grad():
        kernel = glorot_uniform_(torch.empty(in_size, 3 * size), in_size, 3 * size)
        recurrent = nn.init.orthogonal_(torch.empty(size, 3 * size))
        cell.weight_ih.copy_(keras_gru_to_torch(kernel).T)
        cell.weight_hh.copy_(keras_gru_to_torch(recurrent).T)
        if cell.bias:
            cell.bias_ih.zero_()
            cell.bias_hh.zero_()
    return cell


# The PyTorch classes whose own `reset_parameters` is PyTorch's default initialisation.
_TORCH_DEFAULT_RESETS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.RNNCellBase,
                                                      nn.LayerNorm)


def reset_torch_defaults_(module: nn.Module) -> nn.Module:
    """Re-draw every layer of `module` with PyTorch's default initialisation (the `model.init=torch` scheme).

    Linear and conv kernels `kaiming_uniform(a=sqrt(5))` (bound 1/sqrt(fan_in)) and biases U(+-1/sqrt(fan_in)),
    GRU weights and biases U(+-1/sqrt(D)), LayerNorm (1, 0). The slot Gaussian's `slots_mu`/`slots_log_sigma`
    keep their Keras initialisation in both schemes: PyTorch has no default for them.
    """
    for layer in module.modules():
        for base in _TORCH_DEFAULT_RESETS:
            if isinstance(layer, base):
                base.reset_parameters(layer)
                break
    return module
