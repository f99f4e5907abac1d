"""Soft position embedding (paper Sec. 2.2 and appendix), following the official `build_grid`/`SoftPositionEmbed`."""

import torch
from torch import nn

from slotattn.nn.layers import Dense
from slotattn.shapes import Float, Tensor


def build_grid(height: int, width: int) -> Float[Tensor, "4 h w"]:
    """The 4-channel grid [y, x, 1-y, 1-x] with each coordinate in [0, 1].

    The official code builds it channel-last with `np.meshgrid(..., indexing="ij")` over (rows, cols), so the
    first channel varies along rows; the channel order matters only for weights ported from the TF models.
    """
    rows = torch.linspace(0.0, 1.0, height)
    cols = torch.linspace(0.0, 1.0, width)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=0)  # (2, h, w)
    return torch.cat([grid, 1.0 - grid], dim=0)  # (4, h, w)


class SoftPositionEmbed(nn.Module):
    """Adds a learned linear projection of the coordinate grid to a channel-first feature map.

    Args:
        hidden_size: channels of the feature map.
        resolution: (h, w) of the feature map.
    """

    def __init__(self, hidden_size: int, resolution: tuple[int, int]):
        super().__init__()
        self.resolution = tuple(resolution)
        self.dense = Dense(4, hidden_size)  # Keras Dense: glorot_uniform kernel, zero bias
        self.register_buffer("grid", build_grid(*resolution), persistent=False)

    def embedding(self) -> Float[Tensor, "C h w"]:
        """The learned embedding that `forward` adds."""
        return self.dense(self.grid.permute(1, 2, 0)).permute(2, 0, 1)

    def forward(self, inputs: Float[Tensor, "B C h w"]) -> Float[Tensor, "B C h w"]:
        if tuple(inputs.shape[-2:]) != self.resolution:
            raise ValueError(
                f"SoftPositionEmbed: expected a feature map of size {self.resolution}, got {tuple(inputs.shape[-2:])}"
            )
        return inputs + self.embedding()
