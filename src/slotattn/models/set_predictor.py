"""The set-prediction model (paper Sec. 2.3 and 4.2, appendix; official `SlotAttentionClassifier` in `model.py`)."""

import typing

import torch

from slotattn.models.base import SlotModel
from slotattn.models.baselines import Grouping
from slotattn.nn.slot_attention import AttentionAxis
from slotattn.nn.precision import full_precision
from slotattn.models.outputs import SetPredictionOutput
from slotattn.nn import MLP
from slotattn.shapes import Float, Tensor


class SlotAttentionSetPredictor(SlotModel):
    """Strided CNN encoder + position embedding -> Slot Attention -> the same MLP on every slot -> sigmoid.

    Defaults are the paper's CLEVR model: 128x128 images, strides (1, 2, 2, 1) so that Slot Attention sees a
    32x32 feature map, 10 slots (CLEVR scenes have at most 10 objects), 19 outputs per slot.

    Args:
        resolution: (H, W) of the input image.
        num_slots: K.
        num_iterations: T.
        slot_size: D.
        mlp_hidden_size: hidden width of Slot Attention's residual MLP.
        epsilon: Slot Attention's epsilon.
        encoder_channels: channels of each encoder conv layer.
        encoder_strides: stride of each encoder conv layer (TF "SAME" padding: each divides the size, rounding up).
        encoder_kernel_size: kernel of the encoder convs.
        hidden_size: width of the feedforward network applied to each encoder position (= Slot Attention's Din).
        head_hidden_size: hidden width of the per-slot prediction MLP.
        num_outputs: P, properties predicted per slot (19 for CLEVR; the last one is the confidence).
        use_encoder_position: add the soft position embedding after the encoder (paper: yes).
        grouping: the module between encoder and head, kept as `self.slot_attention` whichever it is:
            "slot_attention" (paper), or the baselines "slot_mlp" and "soft_kmeans" (`models.baselines`).
        attention_axis: Slot Attention's softmax axis, "slots" (paper) or "inputs" (ablation).
        use_gru: Slot Attention's GRU update (paper); False: slots = slots_prev + updates (ablation).
        use_mlp: Slot Attention's residual MLP (paper); False removes it (ablation).
    """

    def __init__(
        self,
        resolution: tuple[int, int] = (128, 128),
        num_slots: int = 10,
        num_iterations: int = 3,
        slot_size: int = 64,
        mlp_hidden_size: int = 128,
        epsilon: float = 1e-8,
        encoder_channels: tuple[int, ...] = (64, 64, 64, 64),
        encoder_strides: tuple[int, ...] = (1, 2, 2, 1),  # 128x128 -> 32x32: 4x fewer inputs than discovery
        encoder_kernel_size: int = 5,
        hidden_size: int = 64,
        head_hidden_size: int = 64,
        num_outputs: int = 19,
        use_encoder_position: bool = True,
        grouping: Grouping = "slot_attention",
        attention_axis: AttentionAxis = "slots",
        use_gru: bool = True,
        use_mlp: bool = True,
    ):
        if num_outputs < 1:
            raise ValueError(f"SlotAttentionSetPredictor: num_outputs must be >= 1, got {num_outputs}")
        super().__init__(
            resolution,
            encoder_channels,
            encoder_kernel_size,
            encoder_strides,
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
        self.mlp_classifier = MLP(slot_size, head_hidden_size, num_outputs)
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
    ) -> SetPredictionOutput:
        """Encode, group into slots, and predict one property vector per slot.

        `num_slots`, `num_iterations`, `slots_init`, `generator` and `noise` are passed to `SlotAttention.forward`
        (or to the baseline's forward, which takes the same arguments).
        """
        slots, attn = self.group(image, num_slots, num_iterations, slots_init, generator, noise)
        # The same MLP on every slot, so the output set permutes with the slots (Sec. 2.3).
        preds = full_precision(self.mlp_classifier(slots)).sigmoid()  # (B, K, P), float32 under autocast
        return SetPredictionOutput(preds=preds, slots=slots, attn=attn)
