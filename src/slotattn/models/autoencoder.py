"""The object-discovery autoencoder (paper Sec. 2.2, appendix tables; official `SlotAttentionAutoEncoder`)."""

import typing

import torch

from slotattn.models.base import SlotModel
from slotattn.models.baselines import Grouping
from slotattn.nn.slot_attention import AttentionAxis
from slotattn.models.outputs import AutoEncoderOutput
from slotattn.nn import SpatialBroadcastDecoder
from slotattn.nn.precision import full_precision
from slotattn.shapes import Float, Tensor


class SlotAttentionAutoEncoder(SlotModel):
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
        grouping: Grouping = "slot_attention",
        attention_axis: AttentionAxis = "slots",
        use_gru: bool = True,
        use_mlp: bool = True,
    ):
        super().__init__(
            resolution,
            encoder_channels,
            encoder_kernel_size,
            tuple(encoder_strides) if encoder_strides is not None else (1,) * len(encoder_channels),
            hidden_size,
            use_encoder_position,
            grouping,
            num_slots=num_slots,
            slot_size=slot_size,
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
        self.use_channels_last()

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
        slots, attn = self.group(image, num_slots, num_iterations, slots_init, generator, noise)
        decoded = self.decoder(slots)  # (B, K, 4, H, W)
        recons, mask_logits = full_precision(decoded).split([3, 1], dim=2)  # compositing in float32 (autocast)
        masks = mask_logits.softmax(dim=1)  # alpha masks normalised over slots (Sec. 2.2)
        recon = (recons * masks).sum(dim=1)  # (B, 3, H, W)
        return AutoEncoderOutput(recon=recon, recons=recons, masks=masks, slots=slots, attn=attn)
