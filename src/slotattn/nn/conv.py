"""Convolutions with TensorFlow's "SAME" padding, so layer geometry equals the official Keras models.

PyTorch's symmetric padding shifts strided layers by one pixel against TF, which pads (and crops) more on the
bottom/right. Stride-1 odd kernels are identical either way. Both start as Keras' layers do: kernel glorot_uniform
with Keras' fans (k*k*in, k*k*out), bias zero (`slotattn.nn.init`).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from slotattn.nn.init import glorot_uniform_
from slotattn.shapes import Float, Tensor


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TF's SAME padding (before, after) along one axis: output size ceil(size / stride)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """`nn.Conv2d` with TF "SAME" padding (output = ceil(input / stride))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def reset_parameters(self) -> None:
        _keras_conv_init_(self)

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

    def reset_parameters(self) -> None:
        _keras_conv_init_(self)

    def forward(self, x: Float[Tensor, "B Cin h w"]) -> Float[Tensor, "B Cout H W"]:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        if (sh, sw) == (1, 1) and kh % 2 == 1 and kw % 2 == 1:
            return F.conv_transpose2d(x, self.weight, self.bias, padding=(kh // 2, kw // 2))
        height, width = x.shape[-2] * sh, x.shape[-1] * sw
        top, left = self.crop_start(tuple(x.shape[-2:]))
        # PyTorch's `padding` drops `top` rows at both ends of the full output; `output_padding` then extends the
        # bottom so that the size is a multiple of the stride, and the slice drops what TF drops beyond `top`.
        # (Odd-sized outputs, e.g. the full (h-1)*s+k rows, run on a ~7x slower oneDNN path in bf16 with bias.)
        sizes = [(n - 1) * s - 2 * p + k for n, s, p, k in zip(x.shape[-2:], (sh, sw), (top, left), (kh, kw))]
        extend = [(-size) % s for size, s in zip(sizes, (sh, sw))]
        out = F.conv_transpose2d(x, self.weight, self.bias, stride=(sh, sw), padding=(top, left),
                                 output_padding=tuple(extend))
        return out[..., :height, :width]

    def mirrorable(self, in_size: tuple[int, int]) -> bool:
        """Whether `forward_mirrored` exists for this input size: TF crops at least as much at the end as at the
        start, by at most stride - 1 more (true for the paper's layers: k >= s, odd k at stride 1)."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        for size, k, s in ((in_size[0], kh, sh), (in_size[1], kw, sw)):
            before, after = same_padding(size * s, k, s)
            if (size - 1) * s + k < size * s or not 0 <= after - before < s:
                return False
        return True

    def forward_mirrored(self, x: Float[Tensor, "B Cin h w"]) -> Float[Tensor, "B Cout H W"]:
        """flip(forward(flip(x))) over both spatial axes, without flipping or cropping any activation.

        Mirroring swaps TF's crop (before, after) into (after, before): PyTorch's `padding` = after crops both
        ends, and `output_padding` = after - before gives back what TF keeps at the end. The output has exactly
        the right size, so no slice copy follows (nor the zero-filled gradient of one). Only the small kernel is
        flipped. A decoder made of such layers runs mirrored end to end and flips its image once.
        """
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        crops = [same_padding(n * s, k, s) for n, k, s in zip(x.shape[-2:], (kh, kw), (sh, sw))]
        return F.conv_transpose2d(x, self.weight.flip(-2, -1), self.bias, stride=(sh, sw),
                                  padding=tuple(after for _, after in crops),
                                  output_padding=tuple(after - before for before, after in crops))

    def crop_start(self, in_size: tuple[int, int]) -> tuple[int, int]:
        """(top, left) rows/columns TF drops from the full transposed-conv output for an input of `in_size`."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return same_padding(in_size[0] * sh, kh, sh)[0], same_padding(in_size[1] * sw, kw, sw)[0]

    def broadcast_kernel(self, in_size: tuple[int, int]) -> Float[Tensor, "Cin H W Cout"]:
        """This layer's response to a spatially constant input, one input channel at a time (bias excluded).

        For x[c, y, x] = s[c] everywhere on the `in_size` grid, `forward(x) - bias` equals
        einsum("c,chwo->ohw", s, broadcast_kernel(in_size)): output pixel (Y, X) sums the kernel taps that land on
        an input pixel, so the border pixels see partial sums. Computed from the weight with two 0/1 tap matrices
        (Y, i) and (X, j) -- differentiable, and cheap: Cin * Cout * H * W * k values, against the full layer's
        Cin * Cout * H * W * k^2 multiply-adds per broadcast image.
        """
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, left = self.crop_start(in_size)
        rows = _tap_matrix(in_size[0], sh, kh, top, self.weight)
        cols = _tap_matrix(in_size[1], sw, kw, left, self.weight)
        return torch.einsum("yi,coij,xj->cyxo", rows, self.weight, cols)


def _keras_conv_init_(conv: nn.Conv2d | nn.ConvTranspose2d) -> None:
    """Keras' Conv2D/Conv2DTranspose initialisation: kernel glorot_uniform over fans (k*k*in, k*k*out), bias 0.

    (Conv2DTranspose's Keras kernel is [kh, kw, out, in], so Keras' fan_in counts its outputs; the bound depends
    only on the sum of the fans, the same either way.)
    """
    receptive_field = conv.kernel_size[0] * conv.kernel_size[1]
    glorot_uniform_(conv.weight, conv.in_channels * receptive_field, conv.out_channels * receptive_field)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _tap_matrix(size: int, stride: int, kernel: int, start: int, like: Tensor) -> Float[Tensor, "H k"]:
    """taps[Y, i] = 1 when kernel tap i of some input pixel y in [0, size) lands on output pixel Y.

    A transposed convolution adds input pixel y times tap i to full-output pixel y * stride + i; output pixel Y of
    the cropped output is full pixel Y + start.
    """
    # Built on the weight's device: a CPU-built matrix would be copied to a GPU in every forward pass.
    rows = torch.arange(size * stride, device=like.device).unsqueeze(1)
    out = rows + start - torch.arange(kernel, device=like.device).unsqueeze(0)  # (Y, i): y * stride
    hit = (out % stride == 0) & (out >= 0) & (out < size * stride)
    return hit.to(dtype=like.dtype)
