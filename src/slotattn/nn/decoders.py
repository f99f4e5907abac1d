"""Spatial broadcast decoder (Watters et al. 2019) as used by the paper (Sec. 2.2, appendix; official `decoder_cnn`)."""

from torch import nn

from slotattn.nn.conv import ConvTranspose2dSame
from slotattn.nn.position import SoftPositionEmbed
from slotattn.shapes import Float, Tensor


class SpatialBroadcastDecoder(nn.Module):
    """Decodes each slot on its own: tile it over a grid, add a position embedding, run (transposed) convolutions.

    The CLEVR6 layout broadcasts to 8x8 and upsamples with four stride-2 layers; the Multi-dSprites and
    Tetrominoes layout broadcasts at full resolution and uses stride-1 layers only.

    Args:
        slot_size: D, channels of the broadcast grid.
        broadcast_size: (h, w) of the grid each slot is tiled over.
        channels: output channels of each hidden ReLU layer.
        strides: stride of each hidden layer (same length as `channels`).
        kernel_size: kernel of the hidden layers (5 in the paper).
        out_kernel_size: kernel of the final linear layer (3 in the paper).
        out_channels: channels of the output (RGB + 1 alpha logit = 4).
    """

    def __init__(
        self,
        slot_size: int,
        broadcast_size: tuple[int, int],
        channels: tuple[int, ...],
        strides: tuple[int, ...],
        kernel_size: int = 5,
        out_kernel_size: int = 3,
        out_channels: int = 4,
        use_position_embedding: bool = True,
    ):
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(f"SpatialBroadcastDecoder: got {len(channels)} channel counts but {len(strides)} strides")
        self.broadcast_size = tuple(broadcast_size)
        self.position = SoftPositionEmbed(slot_size, self.broadcast_size) if use_position_embedding else nn.Identity()
        layers: list[nn.Module] = []
        in_channels = slot_size
        for hidden, stride in zip(channels, strides):
            layers += [ConvTranspose2dSame(in_channels, hidden, kernel_size, stride), nn.ReLU()]
            in_channels = hidden
        layers.append(ConvTranspose2dSame(in_channels, out_channels, out_kernel_size, 1))
        self.cnn = nn.Sequential(*layers)
        self.upsampling = 1
        for stride in strides:
            self.upsampling *= stride
        # Run mirrored (see forward) when a strided layer after the first (a matrix product, see first_layer)
        # would crop, and every layer after the first can run mirrored.
        first_stride = strides[0] if strides else 1
        size = (self.broadcast_size[0] * first_stride, self.broadcast_size[1] * first_stride)
        self.mirrored = any(stride > 1 for stride in strides[1:])
        for layer in layers[2::2]:
            self.mirrored &= layer.mirrorable(size)
            size = (size[0] * layer.stride[0], size[1] * layer.stride[1])

    def output_resolution(self) -> tuple[int, int]:
        return self.broadcast_size[0] * self.upsampling, self.broadcast_size[1] * self.upsampling

    def forward(self, slots: Float[Tensor, "B K D"]) -> Float[Tensor, "B K Cout H W"]:
        batch_size, num_slots, slot_size = slots.shape
        if self.mirrored:
            # The whole stack runs on the mirrored image (both spatial axes flipped), where TF's SAME crops of the
            # strided layers are PyTorch's own padding (`ConvTranspose2dSame.forward_mirrored`): the same
            # function, without a crop copy per layer; one flip of the small Cout-channel output at the end.
            x = self.first_layer(slots.reshape(batch_size * num_slots, slot_size), mirrored=True)
            for layer in self.cnn[1:]:
                x = layer.forward_mirrored(x) if isinstance(layer, ConvTranspose2dSame) else layer(x)
            x = x.flip(-2, -1)
        else:
            x = self.first_layer(slots.reshape(batch_size * num_slots, slot_size))  # (B*K, C1, h', w')
            x = self.cnn[1:](x)  # (B*K, Cout, H, W)
        return x.unflatten(0, (batch_size, num_slots))

    def first_layer(self, slots: Float[Tensor, "N D"], mirrored: bool = False) -> Float[Tensor, "N C1 h w"]:
        """The first transposed conv on broadcast slot + position embedding, computed without broadcasting.

        The layer is linear and its input is the slot, constant over the grid, plus an embedding shared by all
        slots, so conv(slot + pos) = conv(slot) + conv(pos), where conv(slot) is one matrix product with the
        layer's response to constant inputs (`ConvTranspose2dSame.broadcast_kernel`) and conv(pos) runs once per
        call instead of once per slot. Same function as `self.cnn[0](self.position(broadcast))` up to float
        rounding, for k^2 times fewer multiply-adds (the layer is 40 % of the Tetrominoes model's FLOPs).
        The result is channels-last in memory, the layout the following convolutions run fastest in.
        """
        layer = self.cnn[0]
        kernel = layer.broadcast_kernel(self.broadcast_size)  # (D, H, W, C1)
        if isinstance(self.position, SoftPositionEmbed):
            shared = layer(self.position.embedding().unsqueeze(0))  # (1, C1, H, W), bias included
        else:
            shared = layer.bias.view(1, -1, 1, 1)
        if mirrored:  # both small: flipping them flips the output
            kernel, shared = kernel.flip(1, 2), shared.flip(-2, -1)
        out = (slots @ kernel.flatten(1)).unflatten(1, kernel.shape[1:])  # (N, H, W, C1)
        return out.permute(0, 3, 1, 2) + shared
