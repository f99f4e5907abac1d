"""Convolutions with TensorFlow's "SAME" padding, so layer geometry equals the official Keras models.

PyTorch's symmetric padding shifts strided layers by one pixel against TF, which pads (and crops) more on the
bottom/right. Stride-1 odd kernels are identical either way.
"""

import math

import torch.nn.functional as F
from torch import nn

from slotattn.shapes import Float, Tensor


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TF's SAME padding (before, after) along one axis: output size ceil(size / stride)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """`nn.Conv2d` with TF "SAME" padding (output = ceil(input / stride))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def forward(self, x: Float[Tensor, "B Cin H W"]) -> Float[Tensor, "B Cout h w"]:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        if (sh, sw) == (1, 1) and kh % 2 == 1 and kw % 2 == 1:
            return F.conv2d(x, self.weight, self.bias, padding=(kh // 2, kw // 2))
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        return super().forward(F.pad(x, (left, right, top, bottom)))


class ConvTranspose2dSame(nn.ConvTranspose2d):
    """`nn.ConvTranspose2d` with TF "SAME" padding: output = input * stride, cropped as TF crops.

    TF's SAME transposed conv is the gradient of a SAME conv: of the full (H - 1) * s + k outputs it drops
    `before` rows at the top and `after` at the bottom, with (before, after) = same_padding(H * s, k, s).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def forward(self, x: Float[Tensor, "B Cin h w"]) -> Float[Tensor, "B Cout H W"]:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        if (sh, sw) == (1, 1) and kh % 2 == 1 and kw % 2 == 1:
            return F.conv_transpose2d(x, self.weight, self.bias, padding=(kh // 2, kw // 2))
        height, width = x.shape[-2] * sh, x.shape[-1] * sw
        top, _ = same_padding(height, kh, sh)
        left, _ = same_padding(width, kw, sw)
        out = super().forward(x)  # (B, Cout, (h-1)*s+k, (w-1)*s+k)
        return out[..., top : top + height, left : left + width]
