"""SlotAttention's fast path against the plain Algorithm 1 (`slotattn.nn.algorithm1`), and its invariances."""

import math

import pytest
import torch

from slotattn import SlotAttention
from slotattn.nn import algorithm1


@pytest.fixture
def sa():
    torch.manual_seed(1)
    return SlotAttention(num_slots=5, slot_size=16, input_size=12, num_iterations=3, mlp_hidden_size=32)


@pytest.fixture
def inputs():
    return torch.randn(3, 20, 12, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def slots_init():
    return torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(3))


def test_matches_plain_algorithm_1(sa, inputs, slots_init):
    slots, attn = sa(inputs, slots_init=slots_init)
    ref_slots, ref_attn = algorithm1(sa, inputs, slots_init, 3)
    torch.testing.assert_close(slots, ref_slots, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn, ref_attn, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("num_slots, num_iterations", [(5, 3), (1, 1), (9, 7)])
def test_fast_path_equals_algorithm_1_in_float64(sa, inputs, num_slots, num_iterations):
    """The fast path reassociates the k/v projections and the epsilon term; in float64 only rounding is left."""
    sa = sa.double()
    inputs = inputs.double()
    init = torch.randn(3, num_slots, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    slots, attn = sa(inputs, slots_init=init, num_iterations=num_iterations)
    ref_slots, ref_attn = algorithm1(sa, inputs, init, num_iterations)
    torch.testing.assert_close(slots, ref_slots, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(attn, ref_attn, atol=1e-12, rtol=1e-12)


def test_gru_is_keras_gru_with_reset_after(sa):
    """The slot update's GRUCell is Keras' GRUCell(reset_after=True), the official layer: its equations written out."""
    x, h = torch.randn(4, 16), torch.randn(4, 16)
    gru = sa.gru
    i_r, i_z, i_n = (x @ gru.weight_ih.T + gru.bias_ih).chunk(3, -1)
    h_r, h_z, h_n = (h @ gru.weight_hh.T + gru.bias_hh).chunk(3, -1)  # reset_after: r gates the recurrent product
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    expected = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
    torch.testing.assert_close(gru(x, h), expected, atol=1e-6, rtol=1e-5)


def test_algorithm_1_follows_the_official_layout():
    """One iteration, written as the official TF code: attention [B, N, K] softmaxed over its last axis."""
    torch.manual_seed(0)
    sa = SlotAttention(num_slots=3, slot_size=8, input_size=6, num_iterations=1, mlp_hidden_size=8).double()
    inputs, init = torch.randn(2, 10, 6, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    x = sa.norm_inputs(inputs)
    k, v = sa.project_k(x), sa.project_v(x)
    q = sa.project_q(sa.norm_slots(init)) * 8**-0.5
    attn = torch.softmax(torch.einsum("bnd,bkd->bnk", k, q), dim=-1)  # [B, N, K]
    weights = (attn + sa.epsilon) / (attn + sa.epsilon).sum(dim=-2, keepdim=True)
    updates = torch.einsum("bnk,bnd->bkd", weights, v)
    slots = sa.gru(updates.flatten(0, 1), init.flatten(0, 1)).view_as(init)
    slots = slots + sa.mlp(sa.norm_mlp(slots))
    ref_slots, ref_attn = algorithm1(sa, inputs, init, 1)
    torch.testing.assert_close(ref_slots, slots, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(ref_attn, attn.transpose(1, 2), atol=1e-12, rtol=1e-12)


def test_output_shapes_and_attention_sums_to_one_over_slots(sa, inputs):
    slots, attn = sa(inputs)
    assert slots.shape == (3, 5, 16) and attn.shape == (3, 5, 20)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(3, 20))
    assert not torch.allclose(attn.sum(dim=2), torch.ones(3, 5))  # not normalised over inputs


def test_projections_have_no_bias_and_defaults_are_the_paper(sa):
    assert sa.project_q.bias is None and sa.project_k.bias is None and sa.project_v.bias is None
    default = SlotAttention(num_slots=7)
    assert (default.slot_size, default.input_size, default.num_iterations) == (64, 64, 3)
    assert (default.mlp_hidden_size, default.epsilon) == (128, 1e-8)
    assert default.slots_mu.shape == (1, 1, 64) and default.slots_log_sigma.shape == (1, 1, 64)
    bound = (6 / (1 + 64)) ** 0.5  # Keras glorot_uniform on a [1, 1, 64] weight
    assert default.slots_mu.abs().max() <= bound and default.slots_mu.abs().max() > 0.8 * bound


def test_slots_invariant_to_input_permutation(sa, inputs, slots_init):
    perm = torch.randperm(inputs.shape[1], generator=torch.Generator().manual_seed(0))
    slots, attn = sa(inputs, slots_init=slots_init)
    slots_p, attn_p = sa(inputs[:, perm], slots_init=slots_init)
    torch.testing.assert_close(slots_p, slots, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn_p, attn[:, :, perm], atol=1e-6, rtol=1e-5)


def test_slots_equivariant_to_slot_order(sa, inputs, slots_init):
    perm = torch.randperm(slots_init.shape[1], generator=torch.Generator().manual_seed(0))
    slots, attn = sa(inputs, slots_init=slots_init)
    slots_p, attn_p = sa(inputs, slots_init=slots_init[:, perm])
    torch.testing.assert_close(slots_p, slots[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn_p, attn[:, perm], atol=1e-6, rtol=1e-5)


def test_num_slots_and_iterations_can_change_at_call_time(sa, inputs):
    slots, attn = sa(inputs, num_slots=9, num_iterations=7)
    assert slots.shape == (3, 9, 16) and attn.shape == (3, 9, 20)
    init = torch.randn(3, 2, 16)
    one, _ = sa(inputs, slots_init=init, num_iterations=1)
    ref, _ = algorithm1(sa, inputs, init, 1)
    torch.testing.assert_close(one, ref, atol=1e-5, rtol=1e-5)
    five, _ = sa(inputs, slots_init=init, num_iterations=5)
    assert not torch.allclose(one, five)


def test_batched_equals_one_at_a_time(sa, inputs, slots_init):
    slots, attn = sa(inputs, slots_init=slots_init)
    for b in range(inputs.shape[0]):
        s, a = sa(inputs[b : b + 1], slots_init=slots_init[b : b + 1])
        torch.testing.assert_close(s, slots[b : b + 1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a, attn[b : b + 1], atol=1e-6, rtol=1e-5)


def test_generator_makes_sampling_reproducible_and_noise_is_fresh(sa, inputs):
    a, _ = sa(inputs, generator=torch.Generator().manual_seed(5))
    b, _ = sa(inputs, generator=torch.Generator().manual_seed(5))
    c, _ = sa(inputs)
    d, _ = sa(inputs)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(c, d)


def test_initial_slots_follow_the_learned_gaussian():
    sa = SlotAttention(num_slots=4, slot_size=8, input_size=8)
    with torch.no_grad():
        sa.slots_mu.fill_(2.0)
        sa.slots_log_sigma.fill_(torch.log(torch.tensor(0.5)).item())
    samples = sa.sample_slots(20000, 4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.mean(dim=(0, 1)), torch.full((8,), 2.0), atol=0.01, rtol=0)
    torch.testing.assert_close(samples.std(dim=(0, 1)), torch.full((8,), 0.5), atol=0.01, rtol=0)


def test_gradients_reach_mu_and_log_sigma(sa, inputs):
    slots, _ = sa(inputs)
    slots.square().sum().backward()
    for name in ["slots_mu", "slots_log_sigma", "project_q.weight", "project_k.weight", "gru.weight_ih"]:
        grad = sa.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_empty_slot_gets_finite_update_equal_to_mean_of_values():
    """A slot that wins no input: epsilon makes its weights uniform, so its update is the mean of v."""
    torch.manual_seed(0)
    sa = SlotAttention(num_slots=2, slot_size=4, input_size=4, num_iterations=1).double()
    inputs = torch.randn(1, 6, 4, dtype=torch.float64)
    with torch.no_grad():
        # Normalised inputs ~ c + small variations, so every key points along k_c = W_k c.
        sa.norm_inputs.weight.fill_(0.01)
        sa.norm_inputs.bias.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
        sa.norm_slots.weight.fill_(1.0)
        sa.norm_slots.bias.zero_()
        sa.project_q.weight.copy_(torch.eye(4) * 1e4)
        direction = sa.project_k(sa.norm_inputs.bias)
    # Slot 0 queries +direction, slot 1 -direction: slot 1 loses every input by a margin beyond float64's range.
    init = torch.stack([direction, -direction])[None]
    captured = {}
    sa.gru.register_forward_hook(lambda mod, args, out: captured.setdefault("updates", args[0]))
    _, attn = sa(inputs, slots_init=init)
    v = sa.project_v(sa.norm_inputs(inputs))
    assert attn[0, 1].max() == 0.0  # slot 1 is empty
    assert torch.isfinite(captured["updates"]).all()
    torch.testing.assert_close(captured["updates"][1], v[0].mean(dim=0))
    assert not torch.allclose(v[0].mean(dim=0), v[0, 0])  # the mean is not just any value


def test_gradcheck_float64():
    sa = SlotAttention(num_slots=3, slot_size=4, input_size=4, num_iterations=2, mlp_hidden_size=8).double()
    inputs = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    init = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, s: sa(x, slots_init=s)[0], (inputs, init))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(inputs=torch.randn(2, 5, 7)), r"inputs must be \[B, N, 12\], got \[2, 5, 7\]"),
        (dict(inputs=torch.randn(2, 5, 12), slots_init=torch.randn(2, 5, 3)), r"slots_init must be \[2, 5, 16\]"),
        (dict(inputs=torch.randn(2, 5, 12), num_iterations=0), "num_iterations must be >= 1"),
    ],
)
def test_bad_shapes_raise_clear_errors(sa, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sa(**kwargs)


def test_given_noise_equals_the_internal_draw_and_slices_match(sa, inputs):
    torch.manual_seed(11)
    drawn, _ = sa(inputs)
    torch.manual_seed(11)
    noise = torch.randn(3, 5, 16)
    given, _ = sa(inputs, noise=noise)
    torch.testing.assert_close(given, drawn)
    part, _ = sa(inputs[1:], noise=noise[1:])  # a data-parallel rank's slice of the global draw
    torch.testing.assert_close(part, drawn[1:], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="slots_init or noise, not both"):
        sa(inputs, noise=noise, slots_init=noise)


def test_implicit_diff_keeps_the_forward_and_differentiates_only_the_last_iteration(sa, inputs, slots_init):
    """Implicit differentiation (Chang et al. 2022, first order): same slots and attention; the gradient is that of
    one iteration started from the detached (T-1)-iterate, so the learned initialisation gets none."""
    implicit = SlotAttention(num_slots=5, slot_size=16, input_size=12, num_iterations=3, mlp_hidden_size=32,
                             implicit_diff=True)
    implicit.load_state_dict(sa.state_dict())
    inputs = inputs.clone().requires_grad_(True)
    slots, attn = implicit(inputs, slots_init=slots_init)
    ref_slots, ref_attn = sa(inputs, slots_init=slots_init)
    torch.testing.assert_close(slots, ref_slots, atol=0, rtol=0)
    torch.testing.assert_close(attn, ref_attn, atol=0, rtol=0)

    (grad_implicit,) = torch.autograd.grad(slots.square().sum(), inputs)
    (grad_unrolled,) = torch.autograd.grad(ref_slots.square().sum(), inputs)
    with torch.no_grad():
        before_last, _ = sa(inputs, slots_init=slots_init, num_iterations=2)
    one_step, _ = sa(inputs, slots_init=before_last, num_iterations=1)
    (grad_one_step,) = torch.autograd.grad(one_step.square().sum(), inputs)
    torch.testing.assert_close(grad_implicit, grad_one_step, atol=1e-6, rtol=1e-5)
    assert (grad_implicit - grad_unrolled).abs().max() > 1e-4  # the unrolled loop's gradient is a different one

    implicit.zero_grad()
    implicit(inputs.detach())[0].square().sum().backward()
    assert implicit.slots_mu.grad is None and implicit.slots_log_sigma.grad is None
    assert implicit.project_q.weight.grad.abs().sum() > 0 and implicit.gru.weight_ih.grad.abs().sum() > 0


# -- learned slot queries (model.slot_init=learned_queries; BO-QSA, Jia et al., ICLR 2023) -----------------------


def learned(num_slots=5, **kwargs):
    return SlotAttention(num_slots=num_slots, slot_size=16, input_size=8, num_iterations=3, mlp_hidden_size=32,
                         slot_init="learned_queries", **kwargs)


def test_learned_queries_have_one_vector_per_slot_and_no_gaussian():
    sa = learned()
    names = {n for n, _ in sa.named_parameters()}
    assert "slots_init" in names and not {"slots_mu", "slots_log_sigma"} & names
    assert sa.slots_init.shape == (1, 5, 16)
    bound = (6 / (5 + 16)) ** 0.5  # Xavier-uniform over [K, D], as BO-QSA's nn.Embedding
    assert 0.8 * bound < sa.slots_init.abs().max() <= bound
    slots, attn = sa(torch.randn(3, 10, 8))
    assert slots.shape == (3, 5, 16) and attn.shape == (3, 5, 10)


def test_without_noise_learned_queries_are_deterministic_and_start_from_the_queries():
    sa = learned()
    x = torch.randn(2, 10, 8)
    assert torch.equal(sa(x)[0], sa(x, generator=torch.Generator().manual_seed(1))[0])
    start = sa.initial_slots(2)
    assert torch.equal(start, sa.slots_init.expand(2, -1, -1))
    noise = torch.randn(2, 5, 16)
    torch.testing.assert_close(sa.initial_slots(2, noise=noise), sa.slots_init + noise * sa.slots_init.detach())


def test_the_query_noise_anneals_from_one_to_zero_by_a_cosine():
    from slotattn.nn.slot_attention import query_noise_scale

    assert query_noise_scale(0, 100) == 1.0 and query_noise_scale(100, 100) == 0.0
    assert query_noise_scale(50, 100) == pytest.approx(0.5) and query_noise_scale(10**6, 100) == 0.0
    assert query_noise_scale(25, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert query_noise_scale(0, 0) == 0.0  # no annealing: no noise
    sa = learned(query_noise_steps=100)
    assert sa.noise_scale(0) == 1.0 and sa.noise_scale(100) == 0.0
    assert SlotAttention(num_slots=2, slot_size=16, input_size=8).noise_scale(10**6) == 1.0  # Gaussian: always 1


def test_the_gradient_reaches_the_queries_straight_through_the_truncated_iterations():
    sa = learned()
    x = torch.randn(2, 10, 8, requires_grad=True)
    slots, _ = sa(x, noise=torch.randn(2, 5, 16))
    slots.square().sum().backward()
    assert sa.slots_init.grad is not None and sa.slots_init.grad.abs().sum() > 0
    # BO-QSA's bi-level truncation: the queries get the last iteration's gradient as if it started from them,
    # i.e. d loss / d queries equals d loss / d (the last iteration's input slots).
    sa.zero_grad()
    with torch.no_grad():
        before_last, _ = sa(x.detach(), num_iterations=2)
    probe = before_last.clone().requires_grad_(True)
    out, _ = sa(x.detach(), num_iterations=1, slots_init=probe)
    out.square().sum().backward()
    sa.zero_grad()
    slots, _ = sa(x.detach())
    slots.square().sum().backward()
    torch.testing.assert_close(sa.slots_init.grad[0], probe.grad.sum(0), rtol=1e-4, atol=1e-6)


def test_forward_values_are_those_of_the_plain_loop_from_the_queries():
    sa = learned()
    x = torch.randn(2, 10, 8)
    slots, attn = sa(x)
    ref_slots, ref_attn = algorithm1(sa, x, sa.slots_init.expand(2, -1, -1), 3)
    torch.testing.assert_close(slots, ref_slots, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(attn, ref_attn, rtol=1e-4, atol=1e-5)


def test_a_learned_query_model_runs_with_fewer_slots_and_refuses_more():
    sa = learned()
    x = torch.randn(2, 10, 8)
    assert sa(x, num_slots=3)[0].shape == (2, 3, 16)
    with pytest.raises(ValueError, match="has 5 learned slot queries .* at most 5 slots, got num_slots=6"):
        sa(x, num_slots=6)
