"""The benchmarks' reference: a plain PyTorch port of the official TF2 object-discovery model.

Follows google-research/google-research `slot_attention/model.py` (`SlotAttention`, `SoftPositionEmbed`,
`SlotAttentionAutoEncoder`) line by line, the way a user would translate it: channel-last tensors as in TF, with a
`permute` around every convolution; PyTorch's own padding (`padding="same"` for the stride-1 convs, `padding` +
`output_padding` for the transposed ones) rather than TF's SAME arithmetic; `nn.GRUCell`; a Python loop over the
iterations; nothing fused. It is deliberately not optimised: `benchmarks/run.py` measures slotattn against it.

The official class hard-codes the CLEVR6 layout (64-channel encoder, 8x8 broadcast, four stride-2 transposed convs);
the constructor takes the layout as arguments so that the same port covers the Tetrominoes (35x35) and
Multi-dSprites (64x64) models of the paper's appendix, whose decoders broadcast at full resolution. Stride-1 layers
are identical to TF's SAME; the stride-2 transposed convs crop one pixel differently from TF (PyTorch's
`output_padding` adds the extra row at the bottom/right), which changes no cost.
"""

import torch
from torch import nn


class SlotAttention(nn.Module):
    """The official `SlotAttention` layer: attention [B, N, K] softmaxed over its last (slot) axis, as in TF.

    Args:
        num_iterations: T.
        num_slots: K.
        slot_size: D.
        mlp_hidden_size: hidden width of the residual MLP.
        epsilon: added to the attention before the weighted mean.
        input_size: width of the inputs (Keras infers it; the official model feeds 64-d features).
    """

    def __init__(self, num_iterations: int, num_slots: int, slot_size: int, mlp_hidden_size: int,
                 epsilon: float = 1e-8, input_size: int = 64):
        super().__init__()
        self.num_iterations = num_iterations
        self.num_slots = num_slots
        self.slot_size = slot_size
        self.mlp_hidden_size = mlp_hidden_size
        self.epsilon = epsilon

        # Keras' LayerNormalization has epsilon 1e-3.
        self.norm_inputs = nn.LayerNorm(input_size, eps=1e-3)
        self.norm_slots = nn.LayerNorm(slot_size, eps=1e-3)
        self.norm_mlp = nn.LayerNorm(slot_size, eps=1e-3)

        # Parameters for Gaussian init (shared by all slots); Keras uses glorot_uniform.
        self.slots_mu = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, slot_size)))
        self.slots_log_sigma = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, slot_size)))

        # Linear maps for the attention module.
        self.project_q = nn.Linear(slot_size, slot_size, bias=False)
        self.project_k = nn.Linear(input_size, slot_size, bias=False)
        self.project_v = nn.Linear(input_size, slot_size, bias=False)

        # Slot update functions.
        self.gru = nn.GRUCell(slot_size, slot_size)
        self.mlp = nn.Sequential(nn.Linear(slot_size, mlp_hidden_size), nn.ReLU(),
                                 nn.Linear(mlp_hidden_size, slot_size))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # `inputs` has shape [batch_size, num_inputs, inputs_size].
        inputs = self.norm_inputs(inputs)  # Apply layer norm to the input.
        k = self.project_k(inputs)  # Shape: [batch_size, num_inputs, slot_size].
        v = self.project_v(inputs)  # Shape: [batch_size, num_inputs, slot_size].

        # Initialize the slots. Shape: [batch_size, num_slots, slot_size].
        slots = self.slots_mu + torch.exp(self.slots_log_sigma) * torch.randn(
            inputs.shape[0], self.num_slots, self.slot_size, device=inputs.device, dtype=inputs.dtype)

        # Multiple rounds of attention.
        for _ in range(self.num_iterations):
            slots_prev = slots
            slots = self.norm_slots(slots)

            # Attention.
            q = self.project_q(slots)  # Shape: [batch_size, num_slots, slot_size].
            q = q * self.slot_size**-0.5  # Normalization.
            attn_logits = torch.einsum("bnd,bkd->bnk", k, q)
            attn = torch.softmax(attn_logits, dim=-1)
            # `attn` has shape: [batch_size, num_inputs, num_slots].

            # Weighted mean.
            attn = attn + self.epsilon
            attn = attn / torch.sum(attn, dim=-2, keepdim=True)
            updates = torch.einsum("bnk,bnd->bkd", attn, v)
            # `updates` has shape: [batch_size, num_slots, slot_size].

            # Slot update.
            slots = self.gru(updates.reshape(-1, self.slot_size), slots_prev.reshape(-1, self.slot_size))
            slots = slots.reshape(-1, self.num_slots, self.slot_size)
            slots = slots + self.mlp(self.norm_mlp(slots))

        return slots


def build_grid(resolution: tuple[int, int]) -> torch.Tensor:
    """The official grid: [1, h, w, 4] channel-last, channels (y, x, 1-y, 1-x)."""
    ranges = [torch.linspace(0.0, 1.0, res) for res in resolution]
    grid = torch.stack(torch.meshgrid(*ranges, indexing="ij"), dim=-1)
    grid = grid.reshape(resolution[0], resolution[1], -1).unsqueeze(0)
    return torch.cat([grid, 1.0 - grid], dim=-1)


class SoftPositionEmbed(nn.Module):
    """Adds soft positional embedding with learnable projection (channel-last inputs, as in TF)."""

    def __init__(self, hidden_size: int, resolution: tuple[int, int]):
        super().__init__()
        self.dense = nn.Linear(4, hidden_size)
        self.register_buffer("grid", build_grid(resolution), persistent=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs + self.dense(self.grid)


def spatial_broadcast(slots: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Broadcast slot features to a 2D grid and collapse slot dimension."""
    # `slots` has shape: [batch_size, num_slots, slot_size].
    slots = slots.reshape(-1, slots.shape[-1])[:, None, None, :]
    grid = slots.repeat(1, resolution[0], resolution[1], 1)
    # `grid` has shape: [batch_size*num_slots, height, width, slot_size].
    return grid


def spatial_flatten(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[1] * x.shape[2], x.shape[-1])


def unstack_and_split(x: torch.Tensor, batch_size: int, num_channels: int = 3):
    """Unstack batch dimension and split into channels and alpha mask."""
    unstacked = x.reshape(batch_size, -1, *x.shape[1:])
    channels, masks = torch.split(unstacked, [num_channels, 1], dim=-1)
    return channels, masks


class SlotAttentionAutoEncoder(nn.Module):
    """The official `SlotAttentionAutoEncoder`, with the layer layout as arguments (defaults: CLEVR6).

    Args:
        resolution: (H, W) of the input image.
        num_slots: K.
        num_iterations: T.
        slot_size: D.
        mlp_hidden_size: Slot Attention's MLP width.
        hidden_size: width of the feedforward net on the encoder's features (64 in the official model).
        encoder_channels: channels of each stride-1 encoder conv.
        encoder_kernel_size: kernel of the encoder convs.
        decoder_initial_size: (h, w) each slot is broadcast to.
        decoder_channels: channels of each hidden transposed conv.
        decoder_strides: stride of each hidden transposed conv.
        decoder_kernel_size: kernel of the hidden transposed convs.
        decoder_out_kernel_size: kernel of the last (4-channel, linear) transposed conv.
        slot_attention: the grouping module (default: the official one above); `benchmarks/peers.py` swaps it.
    """

    def __init__(
        self,
        resolution: tuple[int, int] = (128, 128),
        num_slots: int = 7,
        num_iterations: int = 3,
        slot_size: int = 64,
        mlp_hidden_size: int = 128,
        hidden_size: int = 64,
        encoder_channels: tuple[int, ...] = (64, 64, 64, 64),
        encoder_kernel_size: int = 5,
        decoder_initial_size: tuple[int, int] = (8, 8),
        decoder_channels: tuple[int, ...] = (64, 64, 64, 64, 64),
        decoder_strides: tuple[int, ...] = (2, 2, 2, 2, 1),
        decoder_kernel_size: int = 5,
        decoder_out_kernel_size: int = 3,
        slot_attention: nn.Module | None = None,
    ):
        super().__init__()
        self.resolution = tuple(resolution)
        self.num_slots = num_slots
        self.num_iterations = num_iterations

        layers = []
        in_channels = 3
        for channels in encoder_channels:
            layers += [nn.Conv2d(in_channels, channels, encoder_kernel_size, padding="same"), nn.ReLU()]
            in_channels = channels
        self.encoder_cnn = nn.Sequential(*layers)

        self.decoder_initial_size = tuple(decoder_initial_size)
        layers = []
        in_channels = slot_size
        for channels, stride in zip(decoder_channels, decoder_strides):
            # PyTorch's way to get TF's "output = input * stride": pad k // 2, add stride - 1 at the end.
            layers += [nn.ConvTranspose2d(in_channels, channels, decoder_kernel_size, stride=stride,
                                          padding=decoder_kernel_size // 2, output_padding=stride - 1), nn.ReLU()]
            in_channels = channels
        layers.append(nn.ConvTranspose2d(in_channels, 4, decoder_out_kernel_size,
                                         padding=decoder_out_kernel_size // 2))
        self.decoder_cnn = nn.Sequential(*layers)

        self.encoder_pos = SoftPositionEmbed(encoder_channels[-1], self.resolution)
        self.decoder_pos = SoftPositionEmbed(slot_size, self.decoder_initial_size)

        self.layer_norm = nn.LayerNorm(encoder_channels[-1], eps=1e-3)
        self.mlp = nn.Sequential(nn.Linear(encoder_channels[-1], hidden_size), nn.ReLU(),
                                 nn.Linear(hidden_size, hidden_size))

        self.slot_attention = slot_attention if slot_attention is not None else SlotAttention(
            num_iterations=num_iterations, num_slots=num_slots, slot_size=slot_size,
            mlp_hidden_size=mlp_hidden_size, input_size=hidden_size)

    def forward(self, image: torch.Tensor):
        # `image` has shape: [batch_size, num_channels, height, width] (PyTorch's layout for the convs).
        batch_size = image.shape[0]

        # Convolutional encoder with position embedding.
        x = self.encoder_cnn(image)  # CNN Backbone.
        x = x.permute(0, 2, 3, 1)  # To channel-last, as the TF code.
        x = self.encoder_pos(x)  # Position embedding.
        x = spatial_flatten(x)  # Flatten spatial dimensions (treat image as set).
        x = self.mlp(self.layer_norm(x))  # Feedforward network on set.
        # `x` has shape: [batch_size, height*width, input_size].

        # Slot Attention module.
        slots = self.slot_attention(x)
        # `slots` has shape: [batch_size, num_slots, slot_size].

        # Spatial broadcast decoder.
        x = spatial_broadcast(slots, self.decoder_initial_size)
        # `x` has shape: [batch_size*num_slots, height_init, width_init, slot_size].
        x = self.decoder_pos(x)
        x = self.decoder_cnn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        # `x` has shape: [batch_size*num_slots, height, width, num_channels+1].

        # Undo combination of slot and batch dimension; split alpha masks.
        recons, masks = unstack_and_split(x, batch_size=batch_size)
        # `recons` has shape: [batch_size, num_slots, height, width, num_channels].
        # `masks` has shape: [batch_size, num_slots, height, width, 1].

        # Normalize alpha masks over slots.
        masks = torch.softmax(masks, dim=1)
        recon_combined = torch.sum(recons * masks, dim=1)  # Recombine image.
        # `recon_combined` has shape: [batch_size, height, width, num_channels].

        return recon_combined, recons, masks, slots
