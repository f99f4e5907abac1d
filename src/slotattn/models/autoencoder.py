"""The object-discovery autoencoder (paper Sec. 2.2, appendix tables; official `SlotAttentionAutoEncoder`)."""

import typing

import torch
from torch import nn

from slotattn.models.baselines import build_grouping
from slotattn.models.outputs import AutoEncoderOutput
from slotattn.nn import CNNEncoder, SlotMLP, SoftPositionEmbed, SpatialBroadcastDecoder
from slotattn.nn.slot_attention import LAYER_NORM_EPS
from slotattn.shapes import Float, Tensor


class SlotAttentionAutoEncoder(nn.Module):
    """CNN encoder + position embedding -> Slot Attention -> spatial broadcast decoder -> alpha compositing.

    Defaults are the paper's CLEVR6 model (128x128, 7 slots); see `configs/` for the other recipes.

    Args:
        resolution: (H, W) of the input image.
        num_slots: K.
        num_iterations: T.
        slot_size: D.
        mlp_hidden_size: hidden width of Slot Attention's residual MLP.
        epsilon: Slot Attention's epsilon.
        encoder_channels: channels of each encoder conv layer.
        encoder_kernel_size: kernel of the encoder convs.
        encoder_strides: stride of each encoder layer (default: all 1, as the paper's object discovery).
        hidden_size: width of the feedforward network applied to each encoder position (= Slot Attention's Din).
        decoder_broadcast_size: (h, w) each slot is tiled over.
        decoder_channels: channels of each hidden decoder layer.
        decoder_strides: stride of each hidden decoder layer.
        decoder_kernel_size: kernel of the hidden decoder layers.
        decoder_out_kernel_size: kernel of the last decoder layer.
        use_encoder_position: add the soft position embedding after the encoder (paper: yes).
        use_decoder_position: add the soft position embedding to the broadcast grid (paper: yes).
        grouping: the module between encoder and decoder, kept as `self.slot_attention` whichever it is:
            "slot_attention" (paper), or the baselines "slot_mlp" and "soft_kmeans" (`models.baselines`).
        attention_axis: Slot Attention's softmax axis, "slots" (paper) or "inputs" (ablation).
        use_gru: Slot Attention's GRU update (paper); False: slots = slots_prev + updates (ablation).
        use_mlp: Slot Attention's residual MLP (paper); False removes it (ablation).
    """

    def __init__(
        self,
        resolution: tuple[int, int] = (128, 128),
        num_slots: int = 7,
        num_iterations: int = 3,
        slot_size: int = 64,
        mlp_hidden_size: int = 128,
        epsilon: float = 1e-8,
        encoder_channels: tuple[int, ...] = (64, 64, 64, 64),
        encoder_kernel_size: int = 5,
        encoder_strides: tuple[int, ...] | None = None,
        hidden_size: int = 64,
        decoder_broadcast_size: tuple[int, int] = (8, 8),
        decoder_channels: tuple[int, ...] = (64, 64, 64, 64, 64),
        decoder_strides: tuple[int, ...] = (2, 2, 2, 2, 1),
        decoder_kernel_size: int = 5,
        decoder_out_kernel_size: int = 3,
        use_encoder_position: bool = True,
        use_decoder_position: bool = True,
        grouping: str = "slot_attention",
        attention_axis: str = "slots",
        use_gru: bool = True,
        use_mlp: bool = True,
    ):
        super().__init__()
        self.resolution = tuple(resolution)
        strides = tuple(encoder_strides) if encoder_strides is not None else (1,) * len(encoder_channels)
        self.encoder_cnn = CNNEncoder(3, tuple(encoder_channels), encoder_kernel_size, strides)
        feature_size = self.encoder_cnn.output_resolution(self.resolution)
        width = self.encoder_cnn.out_channels
        self.encoder_pos = SoftPositionEmbed(width, feature_size) if use_encoder_position else nn.Identity()
        self.layer_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp = SlotMLP(width, hidden_size, hidden_size)
        self.slot_attention = build_grouping(
            grouping,
            num_slots=num_slots,
            slot_size=slot_size,
            input_size=hidden_size,
            num_iterations=num_iterations,
            mlp_hidden_size=mlp_hidden_size,
            epsilon=epsilon,
            attention_axis=attention_axis,
            use_gru=use_gru,
            use_mlp=use_mlp,
        )
        self.decoder = SpatialBroadcastDecoder(
            slot_size,
            tuple(decoder_broadcast_size),
            tuple(decoder_channels),
            tuple(decoder_strides),
            kernel_size=decoder_kernel_size,
            out_kernel_size=decoder_out_kernel_size,
            out_channels=4,
            use_position_embedding=use_decoder_position,
        )
        if self.decoder.output_resolution() != self.resolution:
            raise ValueError(
                f"SlotAttentionAutoEncoder: the decoder produces {self.decoder.output_resolution()} images "
                f"(broadcast {tuple(decoder_broadcast_size)} x upsampling {self.decoder.upsampling}) "
                f"but the resolution is {self.resolution}"
            )

    def check_image(self, image: Tensor) -> None:
        """Raise a ValueError naming the expected and the received shape unless image is [B, 3, H, W]."""
        if image.ndim != 4 or image.shape[1] != 3 or tuple(image.shape[-2:]) != self.resolution:
            raise ValueError(
                f"SlotAttentionAutoEncoder: image must be [B, 3, {self.resolution[0]}, {self.resolution[1]}] "
                f"in [-1, 1], got {list(image.shape)}"
            )

    def encode(self, image: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B N Din"]:
        """CNN features + position embedding, flattened to a set and passed through LayerNorm + MLP."""
        x = self.encoder_pos(self.encoder_cnn(image))  # (B, C, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B, h*w, C): the image as a set of features
        return self.mlp(self.layer_norm(x))

    # The public entry point checks the image itself, so that a user gets the ValueError above rather than the
    # run-time annotation checker's TypeError under pytest; everything it calls stays annotation-checked.
    @typing.no_type_check
    def forward(
        self,
        image: Float[Tensor, "B 3 H W"],
        num_slots: int | None = None,
        num_iterations: int | None = None,
        slots_init: Float[Tensor, "B K D"] | None = None,
        generator: torch.Generator | None = None,
        noise: Float[Tensor, "B K D"] | None = None,
    ) -> AutoEncoderOutput:
        """Encode, group into slots, decode each slot, and composite with the alpha masks (softmax over slots).

        `num_slots`, `num_iterations`, `slots_init`, `generator` and `noise` are passed to `SlotAttention.forward`
        (or to the baseline's forward, which takes the same arguments).
        """
        self.check_image(image)
        inputs = self.encode(image)
        slots, attn = self.slot_attention(
            inputs, num_slots=num_slots, num_iterations=num_iterations, slots_init=slots_init, generator=generator,
            noise=noise,
        )
        decoded = self.decoder(slots)  # (B, K, 4, H, W)
        recons, mask_logits = decoded.split([3, 1], dim=2)
        masks = mask_logits.softmax(dim=1)  # alpha masks normalised over slots (Sec. 2.2)
        recon = (recons * masks).sum(dim=1)  # (B, 3, H, W)
        return AutoEncoderOutput(recon=recon, recons=recons, masks=masks, slots=slots, attn=attn)
