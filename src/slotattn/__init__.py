"""slotattn: paper-exact Slot Attention (Locatello et al., NeurIPS 2020) in PyTorch.

Models and training recipe are the paper's, except that training defaults to bfloat16 autocast where the device
runs it natively (`train.precision=auto`); the paper trained in float32 (`train.precision=fp32`).

    >>> import torch
    >>> from slotattn import SlotAttention
    >>> sa = SlotAttention(num_slots=7, slot_size=64, input_size=64)
    >>> slots, attn = sa(torch.randn(2, 100, 64))
    >>> slots.shape, attn.shape
    (torch.Size([2, 7, 64]), torch.Size([2, 7, 100]))
"""

from slotattn.config import Config, ConfigError, load_config
from slotattn.models import (
    AutoEncoderOutput,
    SetPredictionOutput,
    SlotAttentionAutoEncoder,
    SlotAttentionSetPredictor,
    build_model,
)
from slotattn.nn import SlotAttention
from slotattn.pretrained import from_pretrained

__version__ = "0.1.0"

__all__ = [
    "AutoEncoderOutput",
    "Config",
    "ConfigError",
    "SetPredictionOutput",
    "SlotAttention",
    "SlotAttentionAutoEncoder",
    "SlotAttentionSetPredictor",
    "build_model",
    "from_pretrained",
    "load_config",
]
