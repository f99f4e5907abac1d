"""The switches and baselines of the paper's analysis (Sec. 4): each changes exactly what it claims.

Oracles: the library's plain Algorithm 1 (`slotattn.nn.algorithm1`, each switch an explicit branch), plain
transcriptions of soft k-means (with `torch.cdist` for the distance variant) and of the Slot MLP; parameter counts
from the layer shapes.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from slotattn import cli
from slotattn.training.checkpoint import latest_checkpoint, load_checkpoint
from slotattn.config import ModelConfig, Config, from_dict, load_config
from slotattn.models import build_model
from slotattn.models.baselines import SlotMLPBaseline, SoftKMeans
from slotattn.models.parts import build_grouping
from slotattn.nn import SlotAttention, algorithm1
from slotattn.training.runlog import read_metrics


def count(module):
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------ config


def test_defaults_are_the_paper_model():
    m = Config().model
    assert m.grouping == "slot_attention" and m.attention_axis == "slots"
    assert m.use_gru is True and m.use_mlp is True
    assert m.use_encoder_position is True and m.use_decoder_position is True
    for task in ("object_discovery", "set_prediction"):
        model = build_model(Config(task=task))
        sa = model.slot_attention
        assert type(sa) is SlotAttention and sa.attention_axis == "slots"
        assert sa.gru is not None and sa.mlp is not None and sa.norm_mlp is not None
        assert type(model.encoder_pos).__name__ == "SoftPositionEmbed"


def test_switches_reach_both_models_from_the_config():
    overrides = {"attention_axis": "inputs", "use_gru": False, "use_mlp": False, "use_encoder_position": False}
    for task in ("object_discovery", "set_prediction"):
        model = build_model(from_dict({"task": task, "model": overrides}))
        sa = model.slot_attention
        assert (sa.attention_axis, sa.gru, sa.mlp) == ("inputs", None, None)
        assert not any("encoder_pos" in n for n, _ in model.named_parameters())
        for grouping, cls in [("slot_mlp", SlotMLPBaseline), ("soft_kmeans", SoftKMeans)]:
            assert type(build_model(from_dict({"task": task, "model": {"grouping": grouping}})).slot_attention) is cls


@pytest.mark.parametrize(
    "model, message",
    [
        ({"grouping": "kmeans"},
         r"'model.grouping' must be one of \['slot_attention', 'slot_mlp', 'soft_kmeans'\], got 'kmeans'"),
        ({"attention_axis": "pixels"}, r"'model.attention_axis' must be one of \['slots', 'inputs'\], got 'pixels'"),
        ({"grouping": "slot_mlp", "use_gru": False}, r"'slot_mlp': the switches use_gru=False apply only to"),
        ({"grouping": "soft_kmeans", "attention_axis": "inputs"}, r"attention_axis='inputs' apply only to"),
        ({"grouping": "soft_kmeans", "slot_size": 32}, r"slot_size must equal input_size \(64\), got slot_size=32"),
    ],
)
def test_bad_switches_raise_clear_errors(model, message):
    with pytest.raises(ValueError, match=message):
        build_model(from_dict({"model": model}))


def test_config_choices_are_the_modules_choices():
    """The config's Literal types list exactly what the modules accept (config imports nothing from them)."""
    import typing

    from slotattn.config import ModelConfig
    from slotattn.models.baselines import GROUPINGS
    from slotattn.nn.init import INIT_SCHEMES
    from slotattn.nn.slot_attention import ATTENTION_AXES

    hints = typing.get_type_hints(ModelConfig)
    assert typing.get_args(hints["grouping"]) == GROUPINGS
    assert typing.get_args(hints["attention_axis"]) == ATTENTION_AXES
    assert typing.get_args(hints["init"]) == INIT_SCHEMES


# ------------------------------------------------------------------------- Slot Attention's switches


SWITCHES = [(axis, gru, mlp) for axis in ("slots", "inputs") for gru in (True, False) for mlp in (True, False)]


def make_sa(attention_axis="slots", use_gru=True, use_mlp=True, **kwargs):
    torch.manual_seed(1)
    return SlotAttention(num_slots=5, slot_size=16, input_size=12, num_iterations=3, mlp_hidden_size=32,
                         attention_axis=attention_axis, use_gru=use_gru, use_mlp=use_mlp, **kwargs)


@pytest.fixture
def inputs():
    return torch.randn(3, 20, 12, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("attention_axis, use_gru, use_mlp", SWITCHES)
def test_every_switch_combination_matches_algorithm_1(attention_axis, use_gru, use_mlp, inputs):
    sa = make_sa(attention_axis, use_gru, use_mlp)
    init = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(3))
    slots, attn = sa(inputs, slots_init=init)
    ref_slots, ref_attn = algorithm1(sa, inputs, init, 3)
    torch.testing.assert_close(slots, ref_slots, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn, ref_attn, atol=1e-6, rtol=1e-5)
    sa, inputs, init = sa.double(), inputs.double(), init.double()
    slots, attn = sa(inputs, slots_init=init)
    ref_slots, ref_attn = algorithm1(sa, inputs, init, 3)
    torch.testing.assert_close(slots, ref_slots, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(attn, ref_attn, atol=1e-12, rtol=1e-12)


def test_attention_over_inputs_sums_to_one_over_inputs(inputs):
    slots, attn = make_sa("inputs")(inputs)
    assert slots.shape == (3, 5, 16) and attn.shape == (3, 5, 20)
    torch.testing.assert_close(attn.sum(dim=2), torch.ones(3, 5))
    assert not torch.allclose(attn.sum(dim=1), torch.ones(3, 20), atol=1e-3)  # no longer normalised over slots


def test_attention_axis_changes_only_the_normalisation(inputs):
    """Same weights, one iteration: both maps come from the same logits L, so paper / ablated = a_k / c_n."""
    paper, ablated = make_sa("slots").double(), make_sa("inputs").double()
    ablated.load_state_dict(paper.state_dict())  # the switch adds and removes no parameters
    init = torch.randn(3, 5, 16, dtype=torch.float64)
    _, attn_k = paper(inputs.double(), slots_init=init, num_iterations=1)
    _, attn_n = ablated(inputs.double(), slots_init=init, num_iterations=1)
    log_ratio = attn_k.log() - attn_n.log()  # = log rowsum_k(exp L) - log colsum_n(exp L): additive in k and n
    centred = log_ratio - log_ratio.mean(1, keepdim=True) - log_ratio.mean(2, keepdim=True) \
        + log_ratio.mean((1, 2), keepdim=True)
    torch.testing.assert_close(centred, torch.zeros_like(centred), atol=1e-9, rtol=0)
    assert log_ratio.std() > 0.1  # ...and the two maps do differ


@pytest.mark.parametrize("use_gru, use_mlp", [(False, True), (True, False), (False, False)])
def test_update_switches_change_only_the_update(use_gru, use_mlp, inputs):
    """Same remaining weights, one iteration: identical attention, different slots; removed keys are exactly
    the GRU's and/or the MLP's."""
    paper, ablated = make_sa(), make_sa(use_gru=use_gru, use_mlp=use_mlp)
    result = ablated.load_state_dict(paper.state_dict(), strict=False)
    removed = {key.split(".")[0] for key in result.unexpected_keys}
    assert result.missing_keys == []
    assert removed == ({"gru"} if not use_gru else set()) | ({"mlp", "norm_mlp"} if not use_mlp else set())
    init = torch.randn(3, 5, 16)
    slots_p, attn_p = paper(inputs, slots_init=init, num_iterations=1)
    slots_a, attn_a = ablated(inputs, slots_init=init, num_iterations=1)
    torch.testing.assert_close(attn_a, attn_p)
    assert not torch.allclose(slots_a, slots_p, atol=1e-3)


def test_without_gru_and_mlp_one_iteration_adds_the_weighted_mean_of_values(inputs):
    """The documented ablated update, slots = slots_prev + sum_n w_kn v_n, with w the eps-renormalised attention."""
    sa = make_sa(use_gru=False, use_mlp=False)
    init = torch.randn(3, 5, 16)
    slots, attn = sa(inputs, slots_init=init, num_iterations=1)
    v = sa.project_v(sa.norm_inputs(inputs))  # (B, N, D)
    weights = (attn + sa.epsilon) / (attn + sa.epsilon).sum(-1, keepdim=True)
    expected = init + torch.stack([torch.stack([(weights[b, k, :, None] * v[b]).sum(0) for k in range(5)])
                                   for b in range(3)])
    torch.testing.assert_close(slots, expected, atol=1e-6, rtol=1e-5)


def test_switched_off_parts_have_no_parameters():
    d, h = 16, 32
    gru = 3 * (d * d + d * d) + 2 * 3 * d  # kernel, recurrent kernel, two biases
    mlp = (d * h + h) + (h * d + d) + 2 * d  # two dense layers + the LayerNorm in front
    full = count(make_sa())
    assert count(make_sa(use_gru=False)) == full - gru
    assert count(make_sa(use_mlp=False)) == full - mlp
    assert count(make_sa(use_gru=False, use_mlp=False)) == full - gru - mlp
    assert count(make_sa("inputs")) == full
    no_gru, no_mlp = make_sa(use_gru=False), make_sa(use_mlp=False)
    assert no_gru.gru is None and not any(n.startswith("gru.") for n, _ in no_gru.named_parameters())
    assert no_mlp.mlp is None and no_mlp.norm_mlp is None
    assert not any(n.startswith(("mlp.", "norm_mlp.")) for n, _ in no_mlp.named_parameters())
    # The paper's CLEVR6 autoencoder (890,308 parameters) without its 64-wide GRU.
    model = build_model(from_dict({"model": {"use_gru": False}}))
    assert count(model) == 890_308 - (3 * 2 * 64 * 64 + 6 * 64)


# ---------------------------------------------------------------------------------------- baselines


def reference_soft_kmeans(inputs, centres, num_iterations, epsilon, similarity):
    x = F.layer_norm(inputs, (inputs.shape[-1],), eps=1e-3)
    temperature = math.sqrt(x.shape[-1])
    attn = None
    for _ in range(num_iterations):
        if similarity == "dot":
            logits = centres @ x.transpose(1, 2) / temperature
        else:
            logits = -torch.cdist(centres, x) ** 2 / temperature
        attn = logits.softmax(dim=1)
        weights = attn + epsilon
        weights = weights / weights.sum(dim=-1, keepdim=True)
        centres = weights @ x
    return centres, attn


@pytest.mark.parametrize("similarity", ["dot", "distance"])
def test_soft_kmeans_matches_the_documented_formulation(similarity):
    torch.manual_seed(0)
    km = SoftKMeans(num_slots=4, slot_size=6, input_size=6, num_iterations=3, similarity=similarity).double()
    inputs = torch.randn(2, 30, 6, dtype=torch.float64) * 3 + 1
    init = torch.randn(2, 4, 6, dtype=torch.float64) * 2
    slots, attn = km(inputs, slots_init=init)
    ref_slots, ref_attn = reference_soft_kmeans(inputs, init, 3, km.epsilon, similarity)
    torch.testing.assert_close(slots, ref_slots, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(attn, ref_attn, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(2, 30, dtype=torch.float64))


def test_soft_kmeans_has_no_projections_gru_or_mlp():
    km = SoftKMeans(num_slots=4, slot_size=8, input_size=8)
    assert {n for n, _ in km.named_parameters()} == {"slots_mu", "slots_log_sigma"}
    slots, attn = km(torch.randn(2, 10, 8), num_slots=9, num_iterations=5)  # K and T change at call time
    assert slots.shape == (2, 9, 8) and attn.shape == (2, 9, 10)


def make_slot_mlp():
    torch.manual_seed(0)
    return SlotMLPBaseline(num_slots=4, slot_size=6, input_size=5, hidden_size=16)


def test_slot_mlp_maps_the_mean_pooled_input_to_ordered_slots():
    mlp = make_slot_mlp()
    inputs = torch.randn(3, 11, 5)
    slots, attn = mlp(inputs)
    lin = [m for m in mlp.mlp if isinstance(m, torch.nn.Linear)]
    pooled = inputs.mean(dim=1)
    hidden = torch.relu(torch.relu(pooled @ lin[0].weight.T + lin[0].bias) @ lin[1].weight.T + lin[1].bias)
    expected = (hidden @ lin[2].weight.T + lin[2].bias).view(3, 4, 6)
    torch.testing.assert_close(slots, expected)
    torch.testing.assert_close(attn, torch.full((3, 4, 11), 0.25))  # documented: uniform, sums to 1 over K
    assert lin[2].out_features == 4 * 6


def test_slot_mlp_ignores_noise_and_refuses_a_new_slot_count_or_initial_slots():
    mlp = make_slot_mlp()
    inputs = torch.randn(2, 7, 5)
    plain, _ = mlp(inputs)
    noisy, _ = mlp(inputs, noise=torch.randn(2, 4, 6), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(noisy, plain)  # deterministic: nothing is sampled
    same, _ = mlp(inputs, num_slots=4, num_iterations=7)
    torch.testing.assert_close(same, plain)
    with pytest.raises(ValueError, match=r"number of slots is fixed by the output layer: expected num_slots=4 "
                                         r"\(or None\), got 6"):
        mlp(inputs, num_slots=6)
    with pytest.raises(ValueError, match="slots_init is not supported"):
        mlp(inputs, slots_init=torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match=r"noise must be \[2, 4, 6\], got \[2, 4, 7\]"):
        mlp(inputs, noise=torch.randn(2, 4, 7))


# ------------------------------------------------------------------------------------------ invariances


VARIANTS = {
    "paper": lambda: make_sa(),
    "attention_over_inputs": lambda: make_sa("inputs"),
    "no_gru": lambda: make_sa(use_gru=False),
    "no_mlp": lambda: make_sa(use_mlp=False),
    "no_gru_no_mlp": lambda: make_sa(use_gru=False, use_mlp=False),
    "soft_kmeans_dot": lambda: SoftKMeans(num_slots=5, slot_size=12, input_size=12),
    "soft_kmeans_distance": lambda: SoftKMeans(num_slots=5, slot_size=12, input_size=12, similarity="distance"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_slots_invariant_to_input_order_and_equivariant_to_slot_order(variant, inputs):
    module = VARIANTS[variant]()
    init = torch.randn(3, 5, module.slot_size, generator=torch.Generator().manual_seed(3))
    perm_n = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    perm_k = torch.tensor([3, 0, 4, 1, 2])
    slots, attn = module(inputs, slots_init=init)
    slots_n, attn_n = module(inputs[:, perm_n], slots_init=init)
    torch.testing.assert_close(slots_n, slots, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn_n, attn[:, :, perm_n], atol=1e-6, rtol=1e-5)
    slots_k, attn_k = module(inputs, slots_init=init[:, perm_k])
    torch.testing.assert_close(slots_k, slots[:, perm_k], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn_k, attn[:, perm_k], atol=1e-6, rtol=1e-5)


def test_slot_mlp_is_invariant_to_input_order(inputs):
    mlp = SlotMLPBaseline(num_slots=5, slot_size=16, input_size=12, hidden_size=32)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mlp(inputs[:, perm])[0], mlp(inputs)[0], atol=1e-6, rtol=1e-5)


def tiny_model(task, **model):
    """A small model of `task` on 16x16 images with 4 slots of 8 dims."""
    base = {"resolution": [16, 16], "num_slots": 4, "slot_size": 8, "hidden_size": 8, "mlp_hidden_size": 16,
            "encoder_channels": [6, 6]}
    if task == "object_discovery":
        base |= {"decoder_broadcast_size": [16, 16], "decoder_channels": [6], "decoder_strides": [1]}
    else:
        base |= {"encoder_strides": [1, 2], "head_hidden_size": 8}
    torch.manual_seed(0)
    return build_model(from_dict({"task": task, "model": base | model}))


def permute_encoder_positions(model, perm):
    """Forward hook that shuffles the h*w positions of the CNN's feature map, the grid the embedding marks."""

    def hook(module, args, out):
        return out.flatten(2)[:, :, perm].view_as(out)

    return model.encoder_cnn.register_forward_hook(hook)


@pytest.mark.parametrize("use_encoder_position", [False, True])
@pytest.mark.parametrize("task", ["object_discovery", "set_prediction"])
def test_without_encoder_position_the_model_sees_a_set_of_features(task, use_encoder_position):
    """Shuffling the encoder's feature grid changes nothing without the position embedding (the slots, and so
    every output, are those of a set; the attention moves with the features); with it, the slots change."""
    model = tiny_model(task, use_encoder_position=use_encoder_position)
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    init = torch.randn(2, 4, 8)
    num_inputs = model.encode(image).shape[1]
    perm = torch.randperm(num_inputs, generator=torch.Generator().manual_seed(0))
    out = model(image, slots_init=init)
    handle = permute_encoder_positions(model, perm)
    try:
        shuffled = model(image, slots_init=init)
    finally:
        handle.remove()
    if use_encoder_position:
        assert not torch.allclose(shuffled.slots, out.slots, atol=1e-3)
    else:
        torch.testing.assert_close(shuffled.slots, out.slots, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(shuffled.attn, out.attn[:, :, perm], atol=1e-6, rtol=1e-5)
        main = "recon" if task == "object_discovery" else "preds"
        torch.testing.assert_close(getattr(shuffled, main), getattr(out, main), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_decoder_position", [False, True])
def test_without_decoder_position_a_slot_decodes_to_the_same_value_everywhere_inside(use_decoder_position):
    """The decoder sees one vector tiled over the grid; without the embedding every pixel whose receptive field
    (5x5 then 3x3: radius 3) avoids the zero padding gets the same output, so no slot can place an object."""
    model = tiny_model("object_discovery", use_decoder_position=use_decoder_position)
    decoded = model.decoder(torch.randn(2, 4, 8))  # (B, K, 4, H, W)
    inside = decoded[..., 3:13, 3:13]
    spread = (inside - inside[..., :1, :1]).abs().amax()
    if use_decoder_position:
        assert spread > 1e-3
    else:
        assert spread < 1e-5


# ------------------------------------------------------------------------------- baselines in the models


@pytest.mark.parametrize("grouping", ["slot_mlp", "soft_kmeans"])
@pytest.mark.parametrize("task", ["object_discovery", "set_prediction"])
def test_baselines_build_run_and_train_every_parameter(task, grouping):
    model = tiny_model(task, grouping=grouping)
    sa = model.slot_attention
    assert (sa.num_slots, sa.slot_size, sa.input_size) == (4, 8, 8)
    image = torch.rand(2, 3, 16, 16) * 2 - 1
    noise = torch.randn(2, sa.num_slots, sa.slot_size)  # what the training engine passes
    out = model(image, noise=noise)
    num_inputs = 16 * 16 if task == "object_discovery" else 8 * 8
    assert out.slots.shape == (2, 4, 8) and out.attn.shape == (2, 4, num_inputs)
    torch.testing.assert_close(out.attn.sum(dim=1), torch.ones(2, num_inputs))
    if task == "object_discovery":
        assert out.recon.shape == (2, 3, 16, 16)
        loss = F.mse_loss(out.recon, image)
    else:
        assert out.preds.shape == (2, 4, 19)
        loss = out.preds.square().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


@pytest.mark.parametrize(
    "overrides, absent",
    [
        (["model.grouping=slot_mlp"], "slot_attention.slots_mu"),
        (["model.grouping=soft_kmeans"], "slot_attention.project_q.weight"),
        (["model.attention_axis=inputs", "model.use_gru=false", "model.use_mlp=false"], "slot_attention.gru.weight_ih"),
    ],
    ids=["slot_mlp", "soft_kmeans", "ablated_slot_attention"],
)
def test_variant_trains_on_the_debug_recipe_and_evaluates_from_its_checkpoint(overrides, absent, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--config", "debug", "--run-dir", str(run_dir), "--no-progress"]
    assert cli.main(argv + [x for o in overrides for x in ("--set", o)]) == 0
    losses = [r["loss"] for r in read_metrics(run_dir) if r["split"] == "train"]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    state = load_checkpoint(latest_checkpoint(run_dir))
    expected = load_config("debug", overrides).model
    assert state["config"]["model"]["grouping"] == expected.grouping
    assert absent not in state["model"]
    assert cli.main(["eval", "--checkpoint", str(run_dir), "--no-progress"]) == 0  # the model is rebuilt from it


def test_build_grouping_defaults_are_slot_attention():
    sa = build_grouping(ModelConfig(num_slots=3, slot_size=8, hidden_size=8, num_iterations=2, mlp_hidden_size=16))
    assert type(sa) is SlotAttention and (sa.attention_axis, sa.use_gru, sa.use_mlp) == ("slots", True, True)
