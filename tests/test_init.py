"""The official initialisation (Keras defaults of google-research `slot_attention/model.py`), layer by layer.

Every parameter of every model variant is classified by the layer that owns it and checked against the exact
distribution Keras draws: glorot_uniform kernels (Kolmogorov-Smirnov against U(-b, b) with Keras' fans), zero
biases, LayerNorm (1, 0), an orthogonal GRU recurrent kernel in Keras' [D, 3D] layout. A parameter the walk does not
know fails the test, so no layer can stay on PyTorch's default unnoticed. The same checks reject `model.init=torch`.
"""

import math

import pytest
import torch
from scipy import stats
from torch import nn

from slotattn.config import load_config
from slotattn.models import build_model
from slotattn.nn import SlotAttention
from slotattn.nn.init import glorot_bound, keras_gru_to_torch

KS_P_MIN = 1e-3  # seeded draws: a fixed p-value per tensor, so the threshold only has to reject other bounds

VARIANTS = {
    "clevr6": ("clevr6", []),
    "tetrominoes": ("tetrominoes", []),
    "multi_dsprites": ("multi_dsprites", []),
    "set_prediction": ("set_prediction_clevr", []),
    "slot_mlp": ("tetrominoes", ["model.grouping=slot_mlp"]),
    "soft_kmeans": ("tetrominoes", ["model.grouping=soft_kmeans", "model.hidden_size=64"]),
    "no_gru_no_mlp": ("tetrominoes", ["model.use_gru=false", "model.use_mlp=false"]),
    "no_positions": ("tetrominoes", ["model.use_encoder_position=false", "model.use_decoder_position=false"]),
    "softmax_over_inputs": ("tetrominoes", ["model.attention_axis=inputs"]),
}


def torch_to_keras_gru(weight: torch.Tensor) -> torch.Tensor:
    """A PyTorch GRU weight [3D, in] (gates r, z, n) in Keras' layout [in, 3D] (gates z, r, h)."""
    return keras_gru_to_torch(weight.T)  # swapping the first two gate blocks is its own inverse


def uniform_ks_pvalue(values: torch.Tensor, bound: float) -> float:
    return stats.kstest(values.detach().flatten().double().numpy(), stats.uniform(loc=-bound, scale=2 * bound).cdf).pvalue


def check_official(model: nn.Module) -> list[str]:
    """Every parameter against Keras' initialiser; returns the problems (empty: all official)."""
    problems, checked = [], set()

    def uniform(name, values, bound):
        checked.add(name)
        values = values.detach()
        if values.abs().max() > bound:
            problems.append(f"{name}: |w| up to {float(values.abs().max()):.4f} > Keras bound {bound:.4f}")
        elif (p := uniform_ks_pvalue(values, bound)) < KS_P_MIN:
            problems.append(f"{name}: not U(+-{bound:.4f}) (KS p = {p:.2e})")

    def constant(name, values, value):
        checked.add(name)
        values = values.detach()
        if not torch.equal(values, torch.full_like(values, value)):
            problems.append(f"{name}: expected all {value}, got values in [{float(values.min()):.3g}, "
                            f"{float(values.max()):.3g}]")

    for owner_name, owner in model.named_modules():
        prefix = f"{owner_name}." if owner_name else ""
        params = dict(owner.named_parameters(recurse=False))
        if isinstance(owner, nn.Linear):
            uniform(prefix + "weight", owner.weight, glorot_bound(owner.in_features, owner.out_features))
        elif isinstance(owner, (nn.Conv2d, nn.ConvTranspose2d)):
            field = math.prod(owner.kernel_size)
            uniform(prefix + "weight", owner.weight,
                    glorot_bound(owner.in_channels * field, owner.out_channels * field))
        elif isinstance(owner, nn.GRUCell):
            size = owner.hidden_size
            uniform(prefix + "weight_ih", torch_to_keras_gru(owner.weight_ih),
                    glorot_bound(owner.input_size, 3 * size))
            checked.add(prefix + "weight_hh")
            recurrent = torch_to_keras_gru(owner.weight_hh.detach())  # [D, 3D]: Keras' orthogonal has orthonormal rows
            gram = recurrent @ recurrent.T
            if not torch.allclose(gram, torch.eye(size), atol=1e-5):
                problems.append(f"{prefix}weight_hh: Keras-layout recurrent kernel is not orthogonal "
                                f"(max |R R^T - I| = {float((gram - torch.eye(size)).abs().max()):.3g})")
            constant(prefix + "bias_ih", owner.bias_ih, 0.0)
            constant(prefix + "bias_hh", owner.bias_hh, 0.0)
        elif isinstance(owner, nn.LayerNorm) and owner.elementwise_affine:
            constant(prefix + "weight", owner.weight, 1.0)
            constant(prefix + "bias", owner.bias, 0.0)
        if isinstance(owner, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and owner.bias is not None:
            constant(prefix + "bias", owner.bias, 0.0)
        for name in ("slots_mu", "slots_log_sigma"):  # the slot Gaussian: glorot_uniform over [1, 1, D]
            if name in params:
                uniform(prefix + name, params[name], glorot_bound(1, params[name].shape[-1]))
    missing = sorted(set(dict(model.named_parameters())) - checked)
    problems += [f"{name}: no rule for this parameter (left on some other initialisation?)" for name in missing]
    return problems


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_parameter_starts_as_the_official_keras_model(variant):
    recipe, overrides = VARIANTS[variant]
    model = build_model(load_config(recipe, overrides))
    assert check_official(model) == []


@pytest.mark.parametrize("variant", ["clevr6", "set_prediction"])
def test_torch_init_is_rejected_by_the_same_checks(variant):
    """The checks can fail: PyTorch's defaults (bound 1/sqrt(fan_in), random biases) are told apart."""
    recipe, overrides = VARIANTS[variant]
    model = build_model(load_config(recipe, [*overrides, "model.init=torch"]))
    problems = check_official(model)
    for name in ("slot_attention.project_q.weight", "slot_attention.gru.bias_ih", "slot_attention.gru.weight_hh",
                 "encoder_cnn.0.bias", "encoder_pos.dense.weight"):
        assert any(p.startswith(name + ":") for p in problems), (name, problems)
    # ... and nothing is reported for what both schemes share.
    assert not any(p.startswith(("slot_attention.slots_mu", "slot_attention.slots_log_sigma", "layer_norm."))
                   for p in problems)


def test_query_key_value_bound_is_keras_not_torch():
    """The first attention logits' scale: q/k/v from U(+-sqrt(6 / 128)) = +-0.217, not PyTorch's +-1/8."""
    sa = SlotAttention(num_slots=4, slot_size=64, input_size=64)
    for layer in (sa.project_q, sa.project_k, sa.project_v):
        assert 0.2 < float(layer.weight.detach().abs().max()) <= math.sqrt(6 / 128)


def test_gru_init_maps_keras_gates_as_the_tf_importer_does():
    """Drawing in Keras' layout and mapping with the importer's gate order: the r and z blocks of PyTorch's
    weight_hh are Keras' r and z columns, so the whole [D, 3D] Keras matrix (not each block) is orthogonal."""
    sa = SlotAttention(num_slots=4, slot_size=8, input_size=8)
    hh = sa.gru.weight_hh  # [3D, D], gates r | z | n
    blocks = hh.detach().chunk(3, dim=0)
    keras = torch.cat([blocks[1], blocks[0], blocks[2]], dim=0).T  # [D, 3D], gates z | r | h
    torch.testing.assert_close(keras @ keras.T, torch.eye(8), atol=1e-5, rtol=0)
    # Not orthogonal per block (as torch.nn.init.orthogonal_ on each gate would be).
    assert not torch.allclose(blocks[0] @ blocks[0].T, torch.eye(8), atol=1e-2)


def test_torch_scheme_keeps_the_slot_gaussian_and_draws_pytorch_defaults():
    torch.manual_seed(3)
    official = build_model(load_config("tetrominoes"))
    torch.manual_seed(3)
    reference = build_model(load_config("tetrominoes", ["model.init=torch"]))
    for name in ("slot_attention.slots_mu", "slot_attention.slots_log_sigma"):
        torch.testing.assert_close(dict(official.named_parameters())[name], dict(reference.named_parameters())[name])
    q = reference.slot_attention.project_q.weight.detach()
    assert float(q.abs().max()) <= 1 / 8 and uniform_ks_pvalue(q, 1 / 8) > KS_P_MIN  # kaiming_uniform(a=sqrt 5)
    assert float(reference.encoder_cnn[0].bias.detach().abs().max()) > 0  # random biases
