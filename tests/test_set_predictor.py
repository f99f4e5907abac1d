"""Set prediction model (paper Sec. 2.3/4.2): `slotattn.models.set_predictor.SlotAttentionSetPredictor`.

The parameter count is derived from the layer shapes of the official `SlotAttentionClassifier` (model.py).
"""

import dataclasses

import pytest
import torch

from slotattn.config import ModelConfig
from slotattn.losses import hungarian_huber_loss
from slotattn.models.outputs import SetPredictionOutput
from slotattn.models.set_predictor import SlotAttentionSetPredictor
from param_counts import conv_params, dense_params, slot_attention_params  # tests/param_counts.py


def test_parameter_count_equals_the_official_classifier():
    """Count derived from the layer shapes of the official `SlotAttentionClassifier` (model.py)."""
    d, h = 64, 128
    encoder = conv_params(3, 64, 5) + 3 * conv_params(64, 64, 5)  # strides change no shapes of the kernels
    encoder_pos = dense_params(4, 64)
    layer_norm = 2 * 64
    feedforward = dense_params(64, 64) + dense_params(64, 64)
    slot_attention = slot_attention_params(d, h)
    classifier = dense_params(64, 64) + dense_params(64, 19)
    expected = encoder + encoder_pos + layer_norm + feedforward + slot_attention + classifier
    model = SlotAttentionSetPredictor()
    assert sum(p.numel() for p in model.parameters()) == expected == 380_755


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SlotAttentionSetPredictor()


def test_strided_encoder_gives_32x32_features(model):
    image = torch.rand(2, 3, 128, 128) * 2 - 1
    sizes, x = [], image
    for layer in model.encoder_cnn:  # official: Conv5x5 s1, s2, s2, s1 (ReLU between), all SAME
        x = layer(x)
        if isinstance(layer, torch.nn.Conv2d):
            sizes.append(tuple(x.shape[1:]))
    assert sizes == [(64, 128, 128), (64, 64, 64), (64, 32, 32), (64, 32, 32)]
    assert model.encoder_pos.resolution == (32, 32)
    assert model.encode(image).shape == (2, 32 * 32, 64)


def test_outputs_have_documented_shapes_and_range(model):
    out = model(torch.rand(2, 3, 128, 128) * 2 - 1)
    assert isinstance(out, SetPredictionOutput)
    assert out.preds.shape == (2, 10, 19) and out.slots.shape == (2, 10, 64) and out.attn.shape == (2, 10, 1024)
    assert ((out.preds > 0) & (out.preds < 1)).all()
    torch.testing.assert_close(out.attn.sum(dim=1), torch.ones(2, 1024))
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.preds = out.preds  # type: ignore[misc]


def test_preds_permute_with_slots_init(model):
    image = torch.rand(1, 3, 128, 128) * 2 - 1
    init = torch.randn(1, 10, 64)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    out = model(image, slots_init=init)
    out_p = model(image, slots_init=init[:, perm])
    torch.testing.assert_close(out_p.preds, out.preds[:, perm], atol=1e-5, rtol=1e-4)


def test_num_slots_and_iterations_pass_through(model):
    out = model(torch.zeros(1, 3, 128, 128), num_slots=4, num_iterations=5, generator=torch.Generator().manual_seed(1))
    assert out.preds.shape == (1, 4, 19) and out.attn.shape == (1, 4, 1024)


def test_non_default_resolution_and_outputs():
    model = SlotAttentionSetPredictor.from_config(ModelConfig(resolution=(64, 48), num_slots=3, num_outputs=7,
                                                              encoder_strides=(1, 2, 2, 1)))
    assert model.feature_size == (16, 12)
    out = model(torch.zeros(2, 3, 64, 48))
    assert out.preds.shape == (2, 3, 7) and out.attn.shape == (2, 3, 16 * 12)


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (2, 1, 128, 128), (3, 128, 128)])
def test_wrong_image_shape_raises_with_expected_and_received(model, shape):
    match = r"image must be \[B, 3, 128, 128\] in \[-1, 1\], got \[" + ", ".join(map(str, shape))
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape))


def test_gradients_reach_every_parameter_through_the_matched_loss():
    torch.manual_seed(0)
    model = SlotAttentionSetPredictor.from_config(ModelConfig(resolution=(32, 32), num_slots=4,
                                                              encoder_strides=(1, 2, 2, 1)))
    target = torch.zeros(2, 4, 19)
    target[:, :2] = torch.rand(2, 2, 19)
    target[:, :2, 18] = 1.0
    hungarian_huber_loss(model(torch.rand(2, 3, 32, 32) * 2 - 1).preds, target).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []
