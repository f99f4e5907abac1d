"""What `SlotAttentionSetPredictor` returns (paper Sec. 2.3): a frozen dataclass of tensors with documented shapes."""

from dataclasses import dataclass

from slotattn.shapes import Float, Tensor


@dataclass(frozen=True)
class SetPredictionOutput:
    """Output of `SlotAttentionSetPredictor`.

    Attributes:
        preds: one property vector per slot, each entry in (0, 1) (sigmoid); for CLEVR P = 19 laid out as
            coords (3), size (2), material (2), shape (3), colour (8), and last the confidence that the slot is an
            object, which average precision sorts by.
        slots: the slot vectors.
        attn: Slot Attention's last attention map over the encoder's h*w inputs, normalised over K.
    """

    preds: Float[Tensor, "B K P"]
    slots: Float[Tensor, "B K D"]
    attn: Float[Tensor, "B K N"]
