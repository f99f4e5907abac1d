"""Mixed precision done carefully: which tensors autocast may lower and which stay in full precision.

Under `torch.autocast` (bfloat16 on CPU, bfloat16/float16 on CUDA) matmuls and convolutions run in the lower
precision, but on CPU autocast also leaves softmax and LayerNorm in bfloat16 when their input is bfloat16. The
models call `full_precision` before every normalisation (softmax over slots, LayerNorm, alpha compositing), so
those run in float32 whatever the autocast state, and `autocast_operand` to cast a tensor once when it feeds
several lower-precision products.
"""

import torch

from slotattn.shapes import Tensor

_LOW_PRECISION = (torch.bfloat16, torch.float16)


def full_precision(x: Tensor) -> Tensor:
    """`x` in float32 if it is bfloat16/float16; unchanged otherwise (float64 stays float64)."""
    return x.float() if x.dtype in _LOW_PRECISION else x


def autocast_operand(x: Tensor) -> Tensor:
    """`x` in the dtype autocast gives matmul operands on its device; unchanged when autocast is off there."""
    if torch.is_autocast_enabled(x.device.type) and x.is_floating_point():
        return x.to(torch.get_autocast_dtype(x.device.type))
    return x


def autocast_disabled(x: Tensor) -> torch.autocast:
    """A context in which autocast is off for `x`'s device: small float32 computations (the slot updates)."""
    return torch.autocast(x.device.type, enabled=False)
