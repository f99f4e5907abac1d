"""PyTorch layers that start as the official Keras layers do (`slotattn.nn.init`): Dense, GRUCell, a two-layer MLP.

Subclasses of `nn.Linear` / `nn.GRUCell` that only override `reset_parameters`, so parameter names, state dicts
and the computation are PyTorch's.
"""

from torch import nn

from slotattn.nn.init import glorot_uniform_, keras_gru_init_


class Dense(nn.Linear):
    """`nn.Linear` initialised as Keras' `Dense`: kernel glorot_uniform (fans in, out), bias zero."""

    def reset_parameters(self) -> None:
        glorot_uniform_(self.weight, self.in_features, self.out_features)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class GRUCell(nn.GRUCell):
    """`nn.GRUCell` (= Keras' `GRUCell(reset_after=True)`) initialised as Keras' (`init.keras_gru_init_`)."""

    def reset_parameters(self) -> None:
        keras_gru_init_(self)


class MLP(nn.Sequential):
    """Two-layer ReLU MLP, Dense(hidden, relu) -> Dense(out), as the official `mlp`/`feedforward`/`mlp_classifier`."""

    def __init__(self, in_size: int, hidden_size: int, out_size: int):
        super().__init__(Dense(in_size, hidden_size), nn.ReLU(), Dense(hidden_size, out_size))

