"""What every slotattn model shares (paper Sec. 2.2-2.3): CNN encoder + position embedding -> set of features ->
LayerNorm + MLP -> a grouping module (Slot Attention or a baseline). Subclasses add a decoder or a head."""

import torch
from torch import nn

from slotattn.models.checks import check_image
from slotattn.nn import CNNEncoder, SoftPositionEmbed
from slotattn.nn.precision import full_precision
from slotattn.nn.slot_attention import LAYER_NORM_EPS
from slotattn.shapes import Float, Tensor


class SlotModel(nn.Module):
    """The encoder and grouping half of the object-discovery and set-prediction models, composed from parts.

    Args:
        resolution: (H, W) of the input image.
        encoder_cnn: the CNN on the image (`models.parts.build_encoder_cnn`).
        mlp: the feedforward net on each encoder position; its output width is the grouping module's Din.
        slot_attention: the grouping module: `SlotAttention` (paper) or a baseline (`models.baselines`), or any
            module with their call signature and `num_slots`, `slot_size`, `input_size` attributes. (The attribute
            keeps the official name whichever module it holds: state-dict keys stay the official ones.)
        use_encoder_position: add the soft position embedding after the encoder (built here: its size follows
            from the encoder).
    """

    def __init__(
        self,
        resolution: tuple[int, int],
        encoder_cnn: CNNEncoder,
        mlp: nn.Module,
        slot_attention: nn.Module,
        use_encoder_position: bool = True,
    ):
        super().__init__()
        self.resolution = tuple(resolution)
        self.encoder_cnn = encoder_cnn
        self.feature_size = encoder_cnn.output_resolution(self.resolution)
        width = encoder_cnn.out_channels
        self.encoder_pos = SoftPositionEmbed(width, self.feature_size) if use_encoder_position else nn.Identity()
        self.layer_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp = mlp
        self.slot_attention = slot_attention
        name = type(self).__name__
        mlp_in, mlp_out = mlp[0].in_features, mlp[-1].out_features
        if mlp_in != width:
            raise ValueError(f"{name}: the feedforward mlp takes {mlp_in} features, the encoder gives {width}")
        if getattr(slot_attention, "input_size", mlp_out) != mlp_out:
            raise ValueError(f"{name}: the grouping module takes inputs of size {slot_attention.input_size}, the "
                             f"feedforward mlp gives {mlp_out}")
        self.channels_last = False

    def use_channels_last(self, enabled: bool = True) -> "SlotModel":
        """Run the convolutions on channels-last (NHWC) images and weights (subclasses call this at the end of
        their constructor). A memory layout, not a change of the function: oneDNN and cuDNN run fastest in it
        (1.2-1.6x per conv on the development CPU, see benchmarks/README.md). `use_channels_last(False)` goes
        back to PyTorch's default NCHW. Parameters keep their layout through `load_state_dict`.
        """
        self.channels_last = enabled
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    def noise_shape(self, batch_size: int) -> tuple[int, int, int]:
        """[B, K, D] of the standard-normal slot noise a forward pass draws at the trained K (for `noise=`).

        The training loop draws it (one global draw, sliced per data-parallel rank) and passes it in, so that it
        never reaches into the grouping module. The Slot MLP baseline ignores its values but takes the shape.
        """
        return batch_size, self.slot_attention.num_slots, self.slot_attention.slot_size

    def noise_scale(self, step: int) -> float:
        """The factor on the slot noise at training step `step` (learned slot queries anneal it to 0; 1 else)."""
        scale = getattr(self.slot_attention, "noise_scale", None)
        return 1.0 if scale is None else scale(step)

    @property
    def num_slots(self) -> int:
        """K as trained (a forward pass may ask for another with `num_slots=`)."""
        return self.slot_attention.num_slots

    @property
    def num_iterations(self) -> int | None:
        """T as trained (None: the Slot MLP baseline does not iterate); `num_iterations=` changes it per call."""
        return getattr(self.slot_attention, "num_iterations", None)

    def check_image(self, image: Tensor) -> None:
        """Raise ValueError/TypeError naming expected vs received rank, channels, size, dtype and device."""
        check_image(type(self).__name__, image, 3, self.resolution, next(self.parameters(), None),
                    check_range=not self.training)  # training steps never wait for the device (engine)

    def encode(self, image: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B N Din"]:
        """CNN features + position embedding, flattened to a set and passed through LayerNorm + MLP."""
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        x = self.encoder_pos(self.encoder_cnn(image))  # (B, C, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B, h*w, C): the image as a set of features (a view if channels-last)
        return self.mlp(self.layer_norm(full_precision(x)))  # LayerNorm in float32 under mixed precision

    def group(
        self,
        image: Tensor,
        num_slots: int | None = None,
        num_iterations: int | None = None,
        slots_init: Tensor | None = None,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Check the image, encode it and group it: (slots [B, K, D], attn [B, K, N]).

        The keyword arguments go to `SlotAttention.forward` (or the baseline's forward, which takes the same).
        """
        self.check_image(image)
        return self.slot_attention(self.encode(image), num_slots=num_slots, num_iterations=num_iterations,
                                   slots_init=slots_init, generator=generator, noise=noise)
