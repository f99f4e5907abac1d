"""What the models return: frozen dataclasses of tensors with documented shapes."""

from dataclasses import dataclass

from slotattn.shapes import Float, Tensor


@dataclass(frozen=True)
class AutoEncoderOutput:
    """Output of `SlotAttentionAutoEncoder`.

    Attributes:
        recon: the reconstructed image, sum over slots of masks * recons, in the input's [-1, 1] range.
        recons: each slot's RGB.
        masks: each slot's alpha mask, softmaxed over slots (sums to 1 over K).
        slots: the slot vectors.
        attn: the grouping module's last attention map over the encoder's h*w inputs (Slot Attention: normalised over
            K; with `attention_axis="inputs"`, over N).
    """

    recon: Float[Tensor, "B 3 H W"]
    recons: Float[Tensor, "B K 3 H W"]
    masks: Float[Tensor, "B K 1 H W"]
    slots: Float[Tensor, "B K D"]
    attn: Float[Tensor, "B K N"]


@dataclass(frozen=True)
class SetPredictionOutput:
    """Output of `SlotAttentionSetPredictor`.

    Attributes:
        preds: one property vector per slot, each entry in (0, 1) (sigmoid); for CLEVR P = 19 laid out as
            coords (3), size (2), material (2), shape (3), colour (8), and last the confidence that the slot is an
            object, which average precision sorts by.
        slots: the slot vectors.
        attn: the grouping module's last attention map over the encoder's h*w inputs (Slot Attention: normalised over
            K; with `attention_axis="inputs"`, over N).
    """

    preds: Float[Tensor, "B K P"]
    slots: Float[Tensor, "B K D"]
    attn: Float[Tensor, "B K N"]
