"""The baselines of the paper's analysis (Sec. 4): Slot MLP and soft k-means, in place of Slot Attention.

Each grouping module has Slot Attention's call signature, `(inputs, num_slots, num_iterations, slots_init, generator,
noise) -> (slots [B, K, D], attn [B, K, N])`, and its `num_slots`, `slot_size`, `input_size` attributes, so the
models, the engine (which draws slot noise from `num_slots` x `slot_size`) and the tasks use them unchanged.
`slotattn.models.parts.build_grouping` picks one by name; the ablation switches themselves live in
`slotattn.nn.SlotAttention`.
"""

from typing import Literal, get_args

import torch
from torch import nn

from slotattn.nn.precision import autocast_disabled, full_precision
from slotattn.nn.init import glorot_uniform_like_keras_
from slotattn.nn.layers import Dense
from slotattn.nn.slot_attention import LAYER_NORM_EPS, InitialSlots
from slotattn.shapes import Float, Tensor

Grouping = Literal["slot_attention", "slot_mlp", "soft_kmeans"]
GROUPINGS: tuple[str, ...] = get_args(Grouping)
SIMILARITIES = ("dot", "distance")


class SlotMLPBaseline(nn.Module):
    """Slot MLP (paper Sec. 4): an MLP maps the mean-pooled encoder features to a fixed, ordered set of K slots.

    slots = reshape(MLP(mean_n inputs_n), [K, D]), with MLP = Dense(h, relu) -> Dense(h, relu) -> Dense(K * D).
    There is no attention and no iteration; the slots are a deterministic function of the pooled input, so they
    are invariant to the order of the inputs but not exchangeable: slot k is always output block k.

    The paper describes the baseline as an MLP from a learned embedding of the input (mean-pooled after the
    encoder) to a fixed number of slots; the hidden widths (two layers of 512) are our choice, not a number
    taken from the paper.

    Args:
        num_slots: K, fixed by the output layer: it cannot change at call time.
        slot_size: D.
        input_size: Din, width of the encoder features that are pooled.
        hidden_size: width of the two hidden layers.
    """

    def __init__(self, num_slots: int, slot_size: int = 64, input_size: int = 64, hidden_size: int = 512):
        super().__init__()
        for name, value in [("num_slots", num_slots), ("slot_size", slot_size), ("input_size", input_size),
                            ("hidden_size", hidden_size)]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SlotMLPBaseline: {name} must be a positive int, got {value!r}")
        self.num_slots = num_slots
        self.slot_size = slot_size
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.mlp = nn.Sequential(
            Dense(input_size, hidden_size), nn.ReLU(),
            Dense(hidden_size, hidden_size), nn.ReLU(),
            Dense(hidden_size, num_slots * slot_size),
        )

    def forward(
        self,
        inputs: Float[Tensor, "B N Din"],
        num_slots: int | None = None,
        num_iterations: int | None = None,
        slots_init: Float[Tensor, "B K D"] | None = None,
        generator: torch.Generator | None = None,
        noise: Float[Tensor, "B K D"] | None = None,
    ) -> tuple[Float[Tensor, "B K D"], Float[Tensor, "B K N"]]:
        """Pool, then map to K slots.

        Args:
            inputs: the set of N input features.
            num_slots: must be None or the constructor's K (the output layer fixes it).
            num_iterations: accepted for the common signature and ignored: there are no iterations.
            slots_init: not supported (the slots depend on the input only); must be None.
            generator: accepted and ignored: nothing is sampled.
            noise: accepted (the training engine always passes slot noise) and ignored apart from a shape check.

        Returns:
            slots [B, K, D], and a uniform attention 1 / K of shape [B, K, N]: no input is assigned to any slot,
            and the uniform map keeps the [B, K, N], sums-to-1-over-K contract of the other grouping modules.
        """
        if inputs.ndim != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"SlotMLPBaseline: inputs must be [B, N, {self.input_size}], got {list(inputs.shape)}")
        if num_slots is not None and num_slots != self.num_slots:
            raise ValueError(
                f"SlotMLPBaseline: the number of slots is fixed by the output layer: expected num_slots="
                f"{self.num_slots} (or None), got {num_slots}"
            )
        if slots_init is not None:
            raise ValueError("SlotMLPBaseline: slots_init is not supported: the slots are a function of the input only")
        batch_size, num_inputs, _ = inputs.shape
        if noise is not None and list(noise.shape) != [batch_size, self.num_slots, self.slot_size]:
            raise ValueError(
                f"SlotMLPBaseline: noise must be {[batch_size, self.num_slots, self.slot_size]}, "
                f"got {list(noise.shape)}"
            )
        pooled = inputs.mean(dim=1)  # (B, Din): the order of the inputs is lost here
        slots = self.mlp(pooled).view(batch_size, self.num_slots, self.slot_size)  # (B, K, D)
        attn = inputs.new_full((batch_size, self.num_slots, num_inputs), 1.0 / self.num_slots)
        return slots, attn


class SoftKMeans(InitialSlots, nn.Module):
    """Soft k-means over the encoder features: Slot Attention without learned projections, GRU or MLP.

    The slots are K cluster centres mu_k in the input space (so slot_size must equal input_size). Each of the
    T iterations is one E step and one M step:

        x_n     = LayerNorm(inputs_n)                       no learned scale or shift
        s_kn    = <x_n, mu_k> / sqrt(D)                     similarity="dot" (default; Slot Attention's Eq. 1
                                                            with identity q/k)
                = -||x_n - mu_k||^2 / sqrt(D)               similarity="distance" (textbook soft k-means)
        attn_kn = softmax over k of s_kn                    slots compete for each input, as in Eq. 1
        w_kn    = (attn_kn + eps) / sum_n' (attn_kn' + eps)  Algorithm 1's epsilon keeps an empty centre finite
        mu_k   <- sum_n w_kn x_n                            the weighted mean replaces the centre (no GRU/MLP)

    The centres start as Slot Attention's learned Gaussian, mu + sigma * N(0, 1); those two [1, 1, D] vectors are
    the module's only parameters, so the encoder must do all the learning.

    Args:
        num_slots: K (can be changed per call).
        slot_size: D; must equal input_size.
        input_size: Din.
        num_iterations: T (can be changed per call).
        epsilon: added to the attention before the weighted mean.
        similarity: "dot" or "distance" (see above); the temperature is sqrt(D) for both.
    """

    def __init__(
        self,
        num_slots: int,
        slot_size: int = 64,
        input_size: int = 64,
        num_iterations: int = 3,
        epsilon: float = 1e-8,
        similarity: str = "dot",
    ):
        super().__init__()
        for name, value in [("num_slots", num_slots), ("slot_size", slot_size), ("input_size", input_size),
                            ("num_iterations", num_iterations)]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SoftKMeans: {name} must be a positive int, got {value!r}")
        if slot_size != input_size:
            raise ValueError(
                f"SoftKMeans: the slots are centres in the input space, so slot_size must equal input_size "
                f"({input_size}), got slot_size={slot_size}"
            )
        if similarity not in SIMILARITIES:
            raise ValueError(f"SoftKMeans: similarity must be one of {SIMILARITIES}, got {similarity!r}")
        self.num_slots = num_slots
        self.slot_size = slot_size
        self.input_size = input_size
        self.num_iterations = num_iterations
        self.epsilon = epsilon
        self.similarity = similarity
        self.norm_inputs = nn.LayerNorm(input_size, eps=LAYER_NORM_EPS, elementwise_affine=False)
        self.slots_mu = nn.Parameter(glorot_uniform_like_keras_(torch.empty(1, 1, slot_size)))
        self.slots_log_sigma = nn.Parameter(glorot_uniform_like_keras_(torch.empty(1, 1, slot_size)))

    def forward(
        self,
        inputs: Float[Tensor, "B N Din"],
        num_slots: int | None = None,
        num_iterations: int | None = None,
        slots_init: Float[Tensor, "B K D"] | None = None,
        generator: torch.Generator | None = None,
        noise: Float[Tensor, "B K D"] | None = None,
    ) -> tuple[Float[Tensor, "B K D"], Float[Tensor, "B K N"]]:
        """Run T rounds of soft k-means; the arguments are those of `SlotAttention.forward`.

        Returns:
            the centres [B, K, D], and the last iteration's assignment [B, K, N] after the softmax over slots
            (sums to 1 over K; before the epsilon-renormalisation over N).
        """
        if inputs.ndim != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(f"SoftKMeans: inputs must be [B, N, {self.input_size}], got {list(inputs.shape)}")
        num_iterations = self.num_iterations if num_iterations is None else num_iterations
        if num_iterations < 1:
            raise ValueError(f"SoftKMeans: num_iterations must be >= 1, got {num_iterations}")
        slots = self.initial_slots(inputs.shape[0], num_slots, slots_init, generator, noise)
        x = self.norm_inputs(full_precision(inputs))
        attn = inputs.new_empty(0)
        with autocast_disabled(x):  # a baseline: the whole clustering in float32 under mixed precision
            for _ in range(num_iterations):
                logits = torch.einsum("bkd,bnd->bkn", slots, x)  # (B, K, N)
                if self.similarity == "distance":
                    # -||x - mu||^2 = 2<x, mu> - ||mu||^2 - ||x||^2, written out so no [B, K, N, D] tensor is built
                    logits = 2 * logits - slots.square().sum(-1, keepdim=True) - x.square().sum(-1)[:, None, :]
                attn = (logits * self.slot_size**-0.5).softmax(dim=1)  # E step: soft assignment, over slots
                weights = attn + self.epsilon
                weights = weights / weights.sum(dim=-1, keepdim=True)
                slots = torch.einsum("bkn,bnd->bkd", weights, x)  # M step: weighted mean of the inputs
        return slots, attn
