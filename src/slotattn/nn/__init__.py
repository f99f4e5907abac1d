"""Building blocks, each usable on its own."""

from slotattn.nn.conv import Conv2dSame, ConvTranspose2dSame
from slotattn.nn.decoders import SpatialBroadcastDecoder
from slotattn.nn.encoders import CNNEncoder
from slotattn.nn.position import SoftPositionEmbed, build_grid
from slotattn.nn.layers import MLP, Dense, GRUCell
from slotattn.nn.slot_attention import SlotAttention, algorithm1

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
    "algorithm1",
    "build_grid",
]

