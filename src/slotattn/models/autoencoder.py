"""The object-discovery autoencoder (paper Sec. 2.2, appendix tables; official `SlotAttentionAutoEncoder`)."""

import typing

import torch
from torch import nn

from slotattn.config import ModelConfig
from slotattn.models import parts
from slotattn.models.base import SlotModel
from slotattn.models.outputs import AutoEncoderOutput
from slotattn.nn import CNNEncoder, SpatialBroadcastDecoder
from slotattn.nn.precision import full_precision
from slotattn.shapes import Float, Tensor


class SlotAttentionAutoEncoder(SlotModel):
    """CNN encoder + position embedding -> Slot Attention -> spatial broadcast decoder -> alpha compositing.

    Composed from parts (`models.parts`); `SlotAttentionAutoEncoder()` is the paper's CLEVR6 model (128x128,
    7 slots), `from_config(ModelConfig(...))` or `slotattn.build_model(cfg)` any other. A part left None is built
    from the paper's CLEVR6 config, so one part can be swapped alone, e.g. `SlotAttentionAutoEncoder(
    slot_attention=my_grouping)`.

    Args:
        resolution: (H, W) of the input image.
        encoder_cnn: the CNN on the image.
        mlp: the feedforward net on each encoder position (its output width is the grouping module's Din).
        slot_attention: the grouping module (Slot Attention, a baseline, or your own with the same interface).
        decoder: the spatial broadcast decoder (RGB + alpha logit per slot); must produce `resolution` images.
        use_encoder_position: add the soft position embedding after the encoder (paper: yes).
    """

    def __init__(
        self,
        resolution: tuple[int, int] = (128, 128),
        encoder_cnn: CNNEncoder | None = None,
        mlp: nn.Module | None = None,
        slot_attention: nn.Module | None = None,
        decoder: SpatialBroadcastDecoder | None = None,
        use_encoder_position: bool = True,
    ):
        paper = ModelConfig()  # CLEVR6 (appendix), for the parts not given
        super().__init__(
            resolution,
            encoder_cnn if encoder_cnn is not None else parts.build_encoder_cnn(paper),
            mlp if mlp is not None else parts.build_feedforward(paper),
            slot_attention if slot_attention is not None else parts.build_grouping(paper),
            use_encoder_position,
        )
        self.decoder = decoder if decoder is not None else parts.build_decoder(paper)
        if self.decoder.output_resolution() != self.resolution:
            raise ValueError(
                f"SlotAttentionAutoEncoder: the decoder produces {self.decoder.output_resolution()} images "
                f"(broadcast {self.decoder.broadcast_size} x upsampling {self.decoder.upsampling}) "
                f"but the resolution is {self.resolution}"
            )
        self.use_channels_last()

    @classmethod
    def from_config(cls, m: ModelConfig) -> "SlotAttentionAutoEncoder":
        """The model `m` describes, every part built from it (`models.parts`)."""
        return cls(m.resolution, parts.build_encoder_cnn(m), parts.build_feedforward(m), parts.build_grouping(m),
                   parts.build_decoder(m), use_encoder_position=m.use_encoder_position)

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
