"""The object-discovery autoencoder: compositing, shapes, parameter count, batched == single, TF geometry."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from slotattn import SlotAttentionAutoEncoder
from slotattn.config import ModelConfig, load_config
from slotattn.models import build_model
from slotattn.nn import Conv2dSame, ConvTranspose2dSame, SpatialBroadcastDecoder
from param_counts import conv_params, dense_params, slot_attention_params  # tests/param_counts.py

CONFIGS = Path(__file__).resolve().parents[1] / "configs"



def test_clevr6_parameter_count_equals_the_official_architecture():
    """Count derived from the layer shapes of the official `SlotAttentionAutoEncoder` (model.py)."""
    d, h = 64, 128
    encoder = conv_params(3, 64, 5) + 3 * conv_params(64, 64, 5)
    encoder_pos = dense_params(4, 64)
    layer_norm = 2 * 64
    feedforward = dense_params(64, 64) + dense_params(64, 64)
    slot_attention = slot_attention_params(d, h)
    decoder_pos = dense_params(4, 64)
    decoder = 5 * conv_params(64, 64, 5) + conv_params(64, 4, 3)
    expected = encoder + encoder_pos + layer_norm + feedforward + slot_attention + decoder_pos + decoder
    model = SlotAttentionAutoEncoder()
    assert sum(p.numel() for p in model.parameters()) == expected == 890_308


@pytest.fixture(scope="module")
def tetro_model():
    torch.manual_seed(0)
    return build_model(load_config(CONFIGS / "tetrominoes.yaml"))


def test_masks_sum_to_one_and_recon_is_the_mixture(tetro_model):
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    out = tetro_model(image)
    assert out.recon.shape == (2, 3, 35, 35)
    assert out.recons.shape == (2, 4, 3, 35, 35) and out.masks.shape == (2, 4, 1, 35, 35)
    assert out.slots.shape == (2, 4, 64) and out.attn.shape == (2, 4, 35 * 35)
    torch.testing.assert_close(out.masks.sum(dim=1), torch.ones(2, 1, 35, 35))
    torch.testing.assert_close(out.recon, (out.masks * out.recons).sum(dim=1))
    torch.testing.assert_close(out.attn.sum(dim=1), torch.ones(2, 35 * 35))


def test_clevr6_layout_shapes():
    model = SlotAttentionAutoEncoder.from_config(ModelConfig(num_slots=3))
    out = model(torch.zeros(1, 3, 128, 128))
    assert out.recons.shape == (1, 3, 3, 128, 128) and out.attn.shape == (1, 3, 128 * 128)


def test_batched_equals_one_at_a_time(tetro_model):
    image = torch.rand(3, 3, 35, 35) * 2 - 1
    init = torch.randn(3, 4, 64)
    out = tetro_model(image, slots_init=init)
    for b in range(3):
        single = tetro_model(image[b : b + 1], slots_init=init[b : b + 1])
        torch.testing.assert_close(single.recon, out.recon[b : b + 1], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(single.masks, out.masks[b : b + 1], atol=1e-5, rtol=1e-4)


def test_num_slots_can_change_at_test_time(tetro_model):
    out = tetro_model(torch.zeros(2, 3, 35, 35), num_slots=7, num_iterations=5)
    assert out.masks.shape == (2, 7, 1, 35, 35)
    torch.testing.assert_close(out.masks.sum(dim=1), torch.ones(2, 1, 35, 35))


def test_gradients_reach_every_parameter(tetro_model):
    tetro_model.zero_grad()
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    F.mse_loss(tetro_model(image).recon, image).backward()
    missing = [n for n, p in tetro_model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (2, 1, 35, 35), (3, 35, 35)])
def test_wrong_image_shape_raises_with_expected_and_received(tetro_model, shape):
    with pytest.raises(ValueError, match=r"image must be \[B, 3, 35, 35\] in \[-1, 1\], got \[" + ", ".join(map(str, shape))):
        tetro_model(torch.zeros(shape))


def test_parts_compose_a_model_and_one_part_can_be_swapped():
    """A model is its parts: build_model hands them over, and a part left out is the paper's CLEVR6 one."""
    from slotattn.models import parts
    from slotattn.nn import SlotAttention

    grouping = SlotAttention(num_slots=5, slot_size=64, input_size=64, num_iterations=2)
    model = SlotAttentionAutoEncoder(slot_attention=grouping)
    assert model.slot_attention is grouping and model(torch.zeros(1, 3, 128, 128)).masks.shape[1] == 5
    m = load_config("tetrominoes").model
    composed = SlotAttentionAutoEncoder(m.resolution, parts.build_encoder_cnn(m), parts.build_feedforward(m),
                                        parts.build_grouping(m), parts.build_decoder(m))
    assert [(n, p.shape) for n, p in composed.named_parameters()] == \
        [(n, p.shape) for n, p in build_model(load_config("tetrominoes")).named_parameters()]
    with pytest.raises(ValueError, match="the grouping module takes inputs of size 32, the feedforward mlp gives 64"):
        SlotAttentionAutoEncoder(slot_attention=SlotAttention(num_slots=3, slot_size=64, input_size=32))


def test_decoder_that_cannot_reach_the_resolution_is_rejected():
    with pytest.raises(ValueError, match=r"decoder produces \(128, 128\) images .* resolution is \(64, 64\)"):
        SlotAttentionAutoEncoder(resolution=(64, 64))  # the CLEVR6 decoder's 128x128 cannot reach 64x64


def test_position_embedding_switches_remove_the_embeddings():
    model = SlotAttentionAutoEncoder.from_config(ModelConfig(
        resolution=(16, 16), decoder_broadcast_size=(16, 16), decoder_channels=(8,), decoder_strides=(1,),
        use_encoder_position=False, use_decoder_position=False))
    names = [n for n, _ in model.named_parameters()]
    assert not any("encoder_pos" in n or "decoder.position" in n for n in names)
    assert model(torch.zeros(1, 3, 16, 16)).recon.shape == (1, 3, 16, 16)


def test_strided_conv_uses_tensorflow_same_alignment():
    """TF SAME pads (1, 2) for k=5, s=2 on even sizes: output (0, 0) is centred on input (1, 1)."""
    conv = Conv2dSame(1, 1, 5, stride=2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 2, 2] = 1.0  # centre tap: output = input at the window centre
        conv.bias.zero_()
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 1, 1] = 1.0
    out = conv(x)
    assert out.shape == (1, 1, 4, 4) and out[0, 0, 0, 0] == 1.0 and out.sum() == 1.0
    x_odd = torch.zeros(1, 1, 7, 7)
    assert conv(x_odd).shape == (1, 1, 4, 4)


@pytest.mark.parametrize("stride, kernel", [(2, 5), (1, 5), (1, 3), (2, 4), (3, 5), (3, 2), (2, 1), (1, 4)])
def test_transposed_conv_is_the_adjoint_of_the_same_conv(stride, kernel):
    """TF's SAME conv2d_transpose is the gradient of SAME conv2d: <conv(x), y> == <x, conv_t(y)>."""
    torch.manual_seed(0)
    conv = Conv2dSame(3, 5, kernel, stride)
    convt = ConvTranspose2dSame(5, 3, kernel, stride)
    with torch.no_grad():
        convt.weight.copy_(conv.weight)  # [out=5, in=3, k, k] is the transposed conv's [in, out, k, k]
        conv.bias.zero_()
        convt.bias.zero_()
    size = 8 if stride != 3 else 9
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    y = torch.randn(2, 5, size // stride, size // stride, dtype=torch.float64)
    conv, convt = conv.double(), convt.double()
    assert convt(y).shape == x.shape
    torch.testing.assert_close((conv(x) * y).sum(), (x * convt(y)).sum())


@pytest.mark.parametrize("broadcast, channels, strides, kernel", [
    ((35, 35), (32, 32, 32), (1, 1, 1), 5),  # Tetrominoes / Multi-dSprites layout
    ((8, 8), (64, 64, 64, 64, 64), (2, 2, 2, 2, 1), 5),  # CLEVR6 layout
    ((5, 7), (6, 4), (3, 2), 4),  # odd strides, even kernel, non-square grid
    ((3, 3), (4,), (1,), 7),  # kernel larger than the grid: every output pixel is a border pixel
    ((4, 4), (5, 5), (1, 3), 2),  # kernel smaller than the stride: cannot run mirrored, crops instead
])
@pytest.mark.parametrize("position", [True, False])
def test_decoder_first_layer_equals_the_convolution_of_the_broadcast_slots(broadcast, channels, strides, kernel,
                                                                           position):
    """The decoder's matrix-product first layer against the definition: tile each slot over the grid, add the
    position embedding, run the transposed conv (float64, so only rounding separates them), and the same for
    the gradients of every parameter and of the slots."""
    torch.manual_seed(0)
    decoder = SpatialBroadcastDecoder(6, broadcast, channels, strides, kernel_size=kernel,
                                      use_position_embedding=position).double()
    slots = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)

    def definition(s):
        grid = s.reshape(6, 6, 1, 1).expand(-1, -1, *broadcast)
        return decoder.cnn(decoder.position(grid)).unflatten(0, (2, 3))

    assert decoder.mirrored == (any(s > 1 for s in strides[1:]) and kernel >= max(strides[1:]))
    fast, slow = decoder(slots), definition(slots)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    weights = torch.randn_like(slow)
    grads_fast = torch.autograd.grad((fast * weights).sum(), [slots, *decoder.parameters()])
    grads_slow = torch.autograd.grad((slow * weights).sum(), [slots, *decoder.parameters()])
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stride, kernel, size", [(2, 5, 8), (2, 4, 7), (3, 5, 5), (1, 5, 6), (1, 3, 5)])
def test_mirrored_transposed_conv_is_the_mirror_image_of_the_tf_same_one(stride, kernel, size):
    torch.manual_seed(0)
    convt = ConvTranspose2dSame(3, 4, kernel, stride).double()
    x = torch.randn(2, 3, size, size + 1, dtype=torch.float64)
    assert convt.mirrorable(x.shape[-2:])
    expected = convt(x.flip(-2, -1)).flip(-2, -1)
    torch.testing.assert_close(convt.forward_mirrored(x), expected, rtol=1e-12, atol=1e-12)


def test_channels_last_is_a_layout_not_a_function(tetro_model):
    model = build_model(load_config(CONFIGS / "tetrominoes.yaml"))
    assert model.channels_last and model.encoder_cnn[0].weight.is_contiguous(memory_format=torch.channels_last)
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    noise = torch.randn(2, 4, 64)
    with torch.no_grad():
        fast = model(image, noise=noise)
        model.use_channels_last(False)
        assert model.encoder_cnn[0].weight.is_contiguous()
        plain = model(image, noise=noise)
    torch.testing.assert_close(fast.recon, plain.recon, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fast.masks, plain.masks, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_keeps_normalisations_in_float32_and_stays_close_to_float32(tetro_model):
    """Mixed precision: convolutions and the big products in bfloat16, everything that normalises in float32."""
    image = torch.rand(2, 3, 35, 35) * 2 - 1
    noise = torch.randn(2, 4, 64)
    with torch.no_grad():
        full = tetro_model(image, noise=noise)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = tetro_model(image, noise=noise)
    for name in ("recon", "recons", "masks", "slots", "attn"):
        assert getattr(mixed, name).dtype == torch.float32, name
    torch.testing.assert_close(mixed.masks.sum(dim=1), torch.ones_like(mixed.masks[:, 0]), rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed.attn.sum(dim=1), torch.ones_like(mixed.attn[:, 0]), rtol=0, atol=1e-6)
    # bfloat16 keeps 8 mantissa bits: ~0.4 % per rounding, a few percent through the whole model
    assert (mixed.recon - full.recon).abs().max() < 0.05
    assert (mixed.slots - full.slots).abs().max() / full.slots.abs().max() < 0.05
