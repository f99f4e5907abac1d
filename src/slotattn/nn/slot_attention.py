"""The Slot Attention module (paper Sec. 2.1, Eq. 1-2, Algorithm 1), following the official `model.py`.

Layout is channel-last like the paper's sets: inputs [B, N, Din], slots [B, K, D]. The official code keeps
attention as [B, N, K] and softmaxes its last axis; we keep [B, K, N] and softmax dim 1 -- the same slot axis.
The ablation switches of the paper's analysis (Sec. 4) are constructor arguments: `attention_axis`, `use_gru`,
`use_mlp`; their defaults are the paper's module.
"""

import math
from typing import Literal, get_args

import torch
from torch import nn

from slotattn.nn.init import glorot_uniform_like_keras_
from slotattn.nn.layers import MLP, Dense, GRUCell
from slotattn.nn.precision import autocast_disabled, autocast_operand, full_precision
from slotattn.shapes import Float, Tensor

# Keras' LayerNormalization default, used by the official code (PyTorch's default is 1e-5).
LAYER_NORM_EPS = 1e-3


# Which axis the attention softmax normalises: "slots" (Eq. 1, the paper) or "inputs" (the Sec. 4 ablation).
AttentionAxis = Literal["slots", "inputs"]
ATTENTION_AXES: tuple[str, ...] = get_args(AttentionAxis)

# Where the first iteration's slots come from: "gaussian" (Sec. 2.1, the paper: one learned Gaussian shared by all
# slots) or "learned_queries" (BO-QSA, Jia et al., ICLR 2023: one learned vector per slot, see SlotAttention).
SlotInit = Literal["gaussian", "learned_queries"]
SLOT_INITS: tuple[str, ...] = get_args(SlotInit)


def query_noise_scale(step: int, anneal_steps: int) -> float:
    """BO-QSA's noise scale sigma on the learned queries at training step `step`: cosine from 1 down to 0 over
    `anneal_steps` steps, 0 after (`cosine_anneal` in YuLiu-LY/BO-QSA methods/method_mixture_dec.py)."""
    if anneal_steps <= 0 or step >= anneal_steps:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * max(step, 0) / anneal_steps))


class InitialSlots:
    """Where the first iteration's slots come from, shared by every grouping module that iterates: the learned
    Gaussian (Sec. 2.1), or learned slot queries (`SlotAttention`'s `slot_init="learned_queries"`).

    A mixin: the class using it registers its parameters itself (`slots_mu` and `slots_log_sigma`, [1, 1, D]; or
    `slots_init`, [1, K, D]) and sets `num_slots` and `slot_size`; this class only adds the sampling and the checks
    on the per-call arguments.
    """

    def sample_slots(
        self,
        batch_size: int,
        num_slots: int,
        generator: torch.Generator | None = None,
        noise: Float[Tensor, "B K D"] | None = None,
    ) -> Float[Tensor, "B K D"]:
        """Initial slots mu + sigma * noise, noise ~ N(0, 1) drawn fresh per call unless given; with learned
        queries q: q + noise * stopgrad(q), and q itself without noise (no draw: deterministic)."""
        if getattr(self, "slot_init", "gaussian") == "learned_queries":
            return self._query_slots(batch_size, num_slots, noise)
        mu = self.slots_mu
        if noise is None:
            noise = torch.randn(
                (batch_size, num_slots, self.slot_size), generator=generator, device=mu.device, dtype=mu.dtype
            )
        return mu + self.slots_log_sigma.exp() * noise

    def _query_slots(self, batch_size: int, num_slots: int, noise: Tensor | None) -> Tensor:
        trained = self.slots_init.shape[1]
        if num_slots > trained:
            raise ValueError(f"{type(self).__name__}: this model has {trained} learned slot queries "
                             f"(slot_init='learned_queries'), so it can run with at most {trained} slots, "
                             f"got num_slots={num_slots}")
        queries = self.slots_init[:, :num_slots].expand(batch_size, -1, -1)  # (B, K, D)
        return queries if noise is None else queries + noise * queries.detach()

    def initial_slots(
        self,
        batch_size: int,
        num_slots: int | None = None,
        slots_init: Float[Tensor, "B K D"] | None = None,
        generator: torch.Generator | None = None,
        noise: Float[Tensor, "B K D"] | None = None,
    ) -> Float[Tensor, "B K D"]:
        """The slots the first iteration starts from: `slots_init`, mu + sigma * `noise`, or a fresh draw."""
        name = type(self).__name__
        if slots_init is not None and noise is not None:
            raise ValueError(f"{name}: pass slots_init or noise, not both")
        if noise is not None:
            expected = [batch_size, num_slots or noise.shape[1], self.slot_size]
            if list(noise.shape) != expected:
                raise ValueError(f"{name}: noise must be {expected}, got {list(noise.shape)}")
            return self.sample_slots(batch_size, noise.shape[1], noise=noise)
        if slots_init is None:
            num_slots = self.num_slots if num_slots is None else num_slots
            if num_slots < 1:
                raise ValueError(f"{name}: num_slots must be >= 1, got {num_slots}")
            return self.sample_slots(batch_size, num_slots, generator)
        expected = [batch_size, num_slots or slots_init.shape[1], self.slot_size]
        if list(slots_init.shape) != expected:
            raise ValueError(f"{name}: slots_init must be {expected}, got {list(slots_init.shape)}")
        return slots_init


class SlotAttention(InitialSlots, nn.Module):
    """Slot Attention: K slots compete for N inputs over T rounds of attention.

    Args:
        num_slots: K, number of slots (can be changed per call).
        slot_size: D, width of the slots and of the q/k/v projections.
        input_size: Din, width of the inputs.
        num_iterations: T, rounds of attention (can be changed per call).
        mlp_hidden_size: hidden width of the residual MLP.
        epsilon: added to the attention before the weighted mean (Algorithm 1).
        attention_axis: "slots" normalises the attention over the K slots (Eq. 1, the paper); "inputs" over the N
            inputs, the ablation of Sec. 4, where slots no longer compete for an input.
        use_gru: update the slots with a GRU (paper). False: the ungated residual update
            slots = slots_prev + updates, and the GRU's parameters do not exist.
        use_mlp: add the residual MLP after the update (paper). False: no MLP, and its LayerNorm and weights do
            not exist.
        implicit_diff: implicit differentiation (Chang et al., NeurIPS 2022, "Object Representations as Fixed
            Points"), first-order: the first T-1 iterations run without autograd and the last one starts from
            their detached slots, so the gradient skips the unrolled loop. The forward values are unchanged;
            the learned slot initialisation (mu, sigma) then gets no gradient. Off by default (the paper).
        slot_init: "gaussian" (the paper): slots ~ N(mu, diag(sigma^2)) with one learned mu and sigma shared by all
            slots, so any K can be drawn. "learned_queries" (BO-QSA, Jia et al., ICLR 2023, "Improving
            Object-centric Learning with Query Optimization"; `SlotAttentionEncoder` in YuLiu-LY/BO-QSA
            models/slot_attn.py): one learned vector q_k per slot ([1, K, D] `slots_init`); in training the
            initial slots are q + z * sigma * stopgrad(q), z ~ N(0, 1), with sigma annealed from 1 to 0 by the
            caller (`query_noise_scale`; the engine scales the noise it passes), and without noise (evaluation,
            inference) they are q itself. The last iteration starts from the detached slots plus a straight-through
            term, slots.detach() + q - q.detach() (BO-QSA's "bi-level" truncation), so the queries get the
            gradient of the last iteration as if it started from them. K can be lowered at test time (the first K
            queries), not raised.
        query_noise_steps: with learned queries, the training steps over which the noise scale sigma anneals from
            1 to 0 (`noise_scale`; BO-QSA's `sigma_steps`, 30,000 in its configs).

    `algorithm1(module, inputs, slots, num_iterations)` below is the same forward written as the paper's
    Algorithm 1; `forward` reassociates its projections for speed and is tested equal to it.
    """

    def __init__(
        self,
        num_slots: int,
        slot_size: int = 64,
        input_size: int = 64,
        num_iterations: int = 3,
        mlp_hidden_size: int = 128,
        epsilon: float = 1e-8,
        attention_axis: AttentionAxis = "slots",
        use_gru: bool = True,
        use_mlp: bool = True,
        implicit_diff: bool = False,
        slot_init: SlotInit = "gaussian",
        query_noise_steps: int = 30_000,
    ):
        super().__init__()
        if slot_init not in SLOT_INITS:
            raise ValueError(f"SlotAttention: slot_init must be one of {SLOT_INITS}, got {slot_init!r}")
        if attention_axis not in ATTENTION_AXES:
            raise ValueError(f"SlotAttention: attention_axis must be one of {ATTENTION_AXES}, got {attention_axis!r}")
        for name, value in [("num_slots", num_slots), ("slot_size", slot_size), ("input_size", input_size),
                            ("num_iterations", num_iterations), ("mlp_hidden_size", mlp_hidden_size)]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SlotAttention: {name} must be a positive int, got {value!r}")
        self.num_slots = num_slots
        self.slot_size = slot_size
        self.input_size = input_size
        self.num_iterations = num_iterations
        self.mlp_hidden_size = mlp_hidden_size
        self.epsilon = epsilon
        self.attention_axis = attention_axis
        self.use_gru = use_gru
        self.use_mlp = use_mlp
        self.implicit_diff = implicit_diff
        self.slot_init = slot_init
        self.query_noise_steps = query_noise_steps

        self.norm_inputs = nn.LayerNorm(input_size, eps=LAYER_NORM_EPS)
        self.norm_slots = nn.LayerNorm(slot_size, eps=LAYER_NORM_EPS)
        self.norm_mlp = nn.LayerNorm(slot_size, eps=LAYER_NORM_EPS) if use_mlp else None

        if slot_init == "gaussian":
            # Gaussian slot initialisation shared by all slots: slots ~ N(mu, diag(sigma^2)) (Sec. 2.1).
            self.slots_mu = nn.Parameter(glorot_uniform_like_keras_(torch.empty(1, 1, slot_size)))
            self.slots_log_sigma = nn.Parameter(glorot_uniform_like_keras_(torch.empty(1, 1, slot_size)))
        else:
            # One query per slot, Xavier-uniform over [K, D] as BO-QSA's nn.Embedding (fans K and D).
            self.slots_init = nn.Parameter(glorot_uniform_like_keras_(torch.empty(num_slots, slot_size))[None])

        # q/k/v projections WITHOUT bias, as the paper and official code.
        self.project_q = Dense(slot_size, slot_size, bias=False)
        self.project_k = Dense(input_size, slot_size, bias=False)
        self.project_v = Dense(input_size, slot_size, bias=False)

        # Slot update: GRU (PyTorch's GRUCell equals Keras' GRUCell with reset_after=True), then residual MLP.
        # Every layer starts as the official Keras layer does (`slotattn.nn.init`).
        # Switched-off parts are None, not unused modules, so that their parameters do not exist.
        self.gru = GRUCell(slot_size, slot_size) if use_gru else None
        self.mlp = MLP(slot_size, mlp_hidden_size, slot_size) if use_mlp else None

    def forward(
        self,
        inputs: Float[Tensor, "B N Din"],
        num_slots: int | None = None,
        num_iterations: int | None = None,
        slots_init: Float[Tensor, "B K D"] | None = None,
        generator: torch.Generator | None = None,
        noise: Float[Tensor, "B K D"] | None = None,
    ) -> tuple[Float[Tensor, "B K D"], Float[Tensor, "B K N"]]:
        """Run T rounds of Slot Attention.

        Args:
            inputs: the set of N input features.
            num_slots: K for this call (default: the constructor's); must agree with `slots_init` if both given.
            num_iterations: T for this call (default: the constructor's).
            slots_init: initial slots; when None they are sampled from the learned Gaussian.
            generator: torch.Generator for the slot noise (None: the global RNG).
            noise: the standard-normal noise of the Gaussian initialisation itself (K taken from it); lets a
                caller control sampling exactly, e.g. data-parallel ranks taking slices of one global draw.

        Returns:
            slots [B, K, D], and the last iteration's attention [B, K, N] after the softmax over slots
            (sums to 1 over K; before the epsilon-renormalisation over N). With attention_axis="inputs" the
            softmax runs over the inputs instead, so the returned attention sums to 1 over N.
        """
        if inputs.ndim != 3 or inputs.shape[-1] != self.input_size:
            raise ValueError(
                f"SlotAttention: inputs must be [B, N, {self.input_size}], got {list(inputs.shape)}"
            )
        batch_size = inputs.shape[0]
        num_iterations = self.num_iterations if num_iterations is None else num_iterations
        if num_iterations < 1:
            raise ValueError(f"SlotAttention: num_iterations must be >= 1, got {num_iterations}")
        slots = self.initial_slots(batch_size, num_slots, slots_init, generator, noise)
        softmax_dim = 1 if self.attention_axis == "slots" else 2

        # Mixed precision (autocast): only the two products over the N inputs run in the lower precision; the
        # LayerNorms, the softmax, the weighted mean's normalisation and the K-sized slot update stay float32.
        inputs = self.norm_inputs(full_precision(inputs))  # (B, N, Din)
        # Keys and values are linear in the inputs, so q.k_n = (q W_k).x_n and sum_n w_n v_n = (sum_n w_n x_n) W_v^T:
        # the K queries are projected into input space and the weighted mean of the inputs is projected to a
        # value, instead of projecting all N inputs to keys and values. The same function up to float rounding,
        # without the two N x Din x D projections and their [B, N, D] tensors (N = 4096 for CLEVR6, K = 7).
        input_sum = inputs.sum(dim=1, keepdim=True)  # (B, 1, Din), for the epsilon term of the weighted mean
        num_inputs = inputs.shape[1]
        inputs_t = autocast_operand(inputs).transpose(1, 2)  # (B, Din, N); cast once, not in every iteration

        attn = inputs.new_empty(0)
        first = slots
        truncated = self.implicit_diff or self.slot_init == "learned_queries"
        for iteration in range(num_iterations):
            last = iteration == num_iterations - 1
            if truncated and last:
                slots = slots.detach()  # the gradient flows through this last iteration only
                if self.slot_init == "learned_queries":
                    slots = slots + first - first.detach()  # BO-QSA: straight through to the queries
            with torch.set_grad_enabled(torch.is_grad_enabled() and (last or not truncated)):
                slots, attn = self._iterate(slots, inputs_t, input_sum, num_inputs, softmax_dim)
        return slots, attn

    def noise_scale(self, step: int) -> float:
        """The factor on the standard-normal slot noise at training step `step`: 1 for the Gaussian (its sigma is
        learned), `query_noise_scale` for learned queries. The training loop scales the noise it passes by it."""
        if self.slot_init == "gaussian":
            return 1.0
        return query_noise_scale(step, self.query_noise_steps)

    def _iterate(
        self,
        slots: Float[Tensor, "B K D"],
        inputs_t: Float[Tensor, "B Din N"],
        input_sum: Float[Tensor, "B 1 Din"],
        num_inputs: int,
        softmax_dim: int,
    ) -> tuple[Float[Tensor, "B K D"], Float[Tensor, "B K N"]]:
        """One round of Algorithm 1 on the normalised, transposed inputs: attention, weighted mean, update."""
        slots_prev = slots
        with autocast_disabled(slots):
            q = self.project_q(self.norm_slots(slots)) * self.slot_size**-0.5  # (B, K, D), Eq. 1 scaling
            q_inputs = q @ self.project_k.weight  # (B, K, Din): q k_n^T = (q W_k) x_n^T
        logits = autocast_operand(q_inputs) @ inputs_t  # (B, K, N)
        # Eq. 1: normalise over SLOTS (dim 1), so slots compete for each input; the ablation normalises over
        # the inputs (dim 2) instead, and each slot attends on its own.
        attn = full_precision(logits).softmax(dim=softmax_dim)
        # Eq. 2 / Algorithm 1: weights = (attn + eps) / sum_n (attn + eps), expanded so that no [B, K, N]
        # temporaries are needed: (attn x + eps sum_n x) / (sum_n attn + N eps). The epsilon keeps an empty
        # slot's update finite (the mean of all values).
        weighted = full_precision(autocast_operand(attn) @ inputs_t.transpose(1, 2))  # (B, K, Din)
        with autocast_disabled(slots):
            pooled = (weighted + self.epsilon * input_sum) / (attn.sum(dim=-1, keepdim=True)
                                                              + num_inputs * self.epsilon)
            updates = self.project_v(pooled)  # (B, K, D)
            if self.gru is not None:
                slots = self.gru(updates.flatten(0, 1), slots_prev.flatten(0, 1)).view_as(slots_prev)
            else:
                slots = slots_prev + updates  # ablation: ungated residual update in place of the GRU
            if self.mlp is not None:
                slots = slots + self.mlp(self.norm_mlp(slots))  # residual MLP
        return slots, attn


def algorithm1(
    module: SlotAttention,
    inputs: Float[Tensor, "B N Din"],
    slots: Float[Tensor, "B K D"],
    num_iterations: int,
) -> tuple[Float[Tensor, "B K D"], Float[Tensor, "B K N"]]:
    """The paper's Algorithm 1 as written, with `module`'s parameters: the plain path to read and test against.

    `SlotAttention.forward` computes the same function faster: it projects the queries into input space and the
    weighted mean of the inputs to a value instead of projecting all N inputs to keys and values, and it adds the
    epsilon without [B, K, N] temporaries (see `_iterate`). The ablation switches of `module` apply here too.

    Returns:
        The slots after `num_iterations` rounds from `slots`, and the last attention (as `forward` returns it).
    """
    inputs = module.norm_inputs(inputs)
    k, v = module.project_k(inputs), module.project_v(inputs)  # (B, N, D)
    softmax_dim = 1 if module.attention_axis == "slots" else 2
    for _ in range(num_iterations):
        slots_prev = slots
        q = module.project_q(module.norm_slots(slots))  # (B, K, D)
        logits = torch.einsum("bkd,bnd->bkn", q, k) * module.slot_size**-0.5  # (B, K, N), Eq. 1
        attn = logits.softmax(dim=softmax_dim)  # Eq. 1: normalise over slots, so slots compete for each input
        weights = attn + module.epsilon  # epsilon before the weighted mean keeps an empty slot's update finite
        weights = weights / weights.sum(dim=-1, keepdim=True)  # weighted mean over the inputs
        updates = torch.einsum("bkn,bnd->bkd", weights, v)  # (B, K, D), Eq. 2
        if module.gru is not None:
            slots = module.gru(updates.flatten(0, 1), slots_prev.flatten(0, 1)).view_as(slots_prev)
        else:
            slots = slots_prev + updates  # ablation: ungated residual update
        if module.mlp is not None:
            slots = slots + module.mlp(module.norm_mlp(slots))  # residual MLP
    return slots, attn
