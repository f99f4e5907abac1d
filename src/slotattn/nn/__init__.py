"""Building blocks, each usable on its own."""

import warnings

from slotattn.nn.conv import Conv2dSame, ConvTranspose2dSame
from slotattn.nn.decoders import SpatialBroadcastDecoder
from slotattn.nn.encoders import CNNEncoder
from slotattn.nn.position import SoftPositionEmbed, build_grid
from slotattn.nn.layers import MLP, Dense, GRUCell
from slotattn.nn.slot_attention import SlotAttention

__all__ = [
    "CNNEncoder",
    "Conv2dSame",
    "ConvTranspose2dSame",
    "Dense",
    "GRUCell",
    "MLP",
    "SlotAttention",
    "SoftPositionEmbed",
    "SpatialBroadcastDecoder",
    "build_grid",
]


def __getattr__(name: str):
    if name == "SlotMLP":  # renamed: a generic MLP, easily confused with the Slot MLP baseline
        warnings.warn("slotattn.nn.SlotMLP is now slotattn.nn.MLP (the Slot MLP baseline is "
                      "slotattn.models.baselines.SlotMLPBaseline); the old name will be removed", DeprecationWarning,
                      stacklevel=2)
        return MLP
    raise AttributeError(f"module 'slotattn.nn' has no attribute {name!r}")
