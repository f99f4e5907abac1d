"""The set-prediction model (paper Sec. 2.3 and 4.2, appendix; official `SlotAttentionClassifier` in `model.py`)."""

import typing

import torch
from torch import nn

from slotattn.config import ModelConfig
from slotattn.models import parts
from slotattn.models.base import SlotModel
from slotattn.nn.precision import full_precision
from slotattn.models.outputs import SetPredictionOutput
from slotattn.nn import CNNEncoder
from slotattn.shapes import Float, Tensor


# The paper's CLEVR set-prediction model (official `SlotAttentionClassifier`, set_prediction/train.py): 10 slots
# (CLEVR scenes hold up to 10 objects), strides (1, 2, 2, 1) so that Slot Attention sees a 32x32 feature map.
PAPER_SET_PREDICTION = ModelConfig(num_slots=10, encoder_strides=(1, 2, 2, 1))


class SlotAttentionSetPredictor(SlotModel):
    """Strided CNN encoder + position embedding -> Slot Attention -> the same MLP on every slot -> sigmoid.

    Composed from parts (`models.parts`); `SlotAttentionSetPredictor()` is the paper's CLEVR model
    (`PAPER_SET_PREDICTION`: 128x128 images, 10 slots, 19 outputs per slot), `from_config(ModelConfig(...))` or
    `slotattn.build_model(cfg)` any other. A part left None is built from the paper's config.

    Args:
        resolution: (H, W) of the input image.
        encoder_cnn: the (strided) CNN on the image.
        mlp: the feedforward net on each encoder position (its output width is the grouping module's Din).
        slot_attention: the grouping module (Slot Attention, a baseline, or your own with the same interface).
        mlp_classifier: the head applied to every slot; its last layer's outputs are the P properties (for CLEVR
            19, the last one the confidence that AP sorts by).
        use_encoder_position: add the soft position embedding after the encoder (paper: yes).
    """

    def __init__(
        self,
        resolution: tuple[int, int] = (128, 128),
        encoder_cnn: CNNEncoder | None = None,
        mlp: nn.Module | None = None,
        slot_attention: nn.Module | None = None,
        mlp_classifier: nn.Module | None = None,
        use_encoder_position: bool = True,
    ):
        paper = PAPER_SET_PREDICTION
        super().__init__(
            resolution,
            encoder_cnn if encoder_cnn is not None else parts.build_encoder_cnn(paper),
            mlp if mlp is not None else parts.build_feedforward(paper),
            slot_attention if slot_attention is not None else parts.build_grouping(paper),
            use_encoder_position,
        )
        self.mlp_classifier = mlp_classifier if mlp_classifier is not None else parts.build_head(paper)
        self.use_channels_last()

    @classmethod
    def from_config(cls, m: ModelConfig) -> "SlotAttentionSetPredictor":
        """The model `m` describes, every part built from it (`models.parts`)."""
        return cls(m.resolution, parts.build_encoder_cnn(m), parts.build_feedforward(m), parts.build_grouping(m),
                   parts.build_head(m), use_encoder_position=m.use_encoder_position)

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
    ) -> SetPredictionOutput:
        """Encode, group into slots, and predict one property vector per slot.

        `num_slots`, `num_iterations`, `slots_init`, `generator` and `noise` are passed to `SlotAttention.forward`
        (or to the baseline's forward, which takes the same arguments).
        """
        slots, attn = self.group(image, num_slots, num_iterations, slots_init, generator, noise)
        # The same MLP on every slot, so the output set permutes with the slots (Sec. 2.3).
        preds = full_precision(self.mlp_classifier(slots)).sigmoid()  # (B, K, P), float32 under autocast
        return SetPredictionOutput(preds=preds, slots=slots, attn=attn)
