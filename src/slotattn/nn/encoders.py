"""CNN encoders of the paper's appendix (tables of the encoder architectures), as the official `encoder_cnn`."""

import math

from torch import nn

from slotattn.nn.conv import Conv2dSame
from slotattn.shapes import Float, Tensor


class CNNEncoder(nn.Sequential):
    """A stack of SAME-padded ReLU convolutions.

    Args:
        in_channels: image channels (3).
        channels: output channels of each layer, e.g. (64, 64, 64, 64) for CLEVR6.
        kernel_size: square kernel of every layer (5 in the paper).
        strides: stride of each layer, e.g. (1, 1, 1, 1) for object discovery, (1, 2, 2, 1) for set prediction.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], kernel_size: int, strides: tuple[int, ...]):
        if len(channels) != len(strides):
            raise ValueError(f"CNNEncoder: got {len(channels)} channel counts but {len(strides)} strides")
        layers: list[nn.Module] = []
        for out_channels, stride in zip(channels, strides):
            layers += [Conv2dSame(in_channels, out_channels, kernel_size, stride), nn.ReLU()]
            in_channels = out_channels
        super().__init__(*layers)
        self.out_channels = in_channels
        self.strides = tuple(strides)

    def output_resolution(self, resolution: tuple[int, int]) -> tuple[int, int]:
        """Feature-map size for an input of `resolution` (SAME padding: ceil(size / stride) per layer)."""
        height, width = resolution
        for stride in self.strides:
            height, width = math.ceil(height / stride), math.ceil(width / stride)
        return height, width

    def forward(self, image: Float[Tensor, "B C H W"]) -> Float[Tensor, "B Cout h w"]:
        return super().forward(image)
