"""models/checks.py: each wrong input image gets a message with what was expected and what was received."""

import pytest
import torch

from slotattn.models.checks import check_image

PARAM = torch.zeros(2, dtype=torch.float32)  # stands in for a model parameter: float32 on the CPU


def _image(*shape, dtype=torch.float32, device="cpu"):
    return torch.zeros(shape, dtype=dtype, device=device)


def test_a_good_image_passes():
    check_image("M", _image(2, 3, 8, 6), 3, (8, 6), PARAM)
    check_image("M", _image(1, 1, 4, 4, dtype=torch.float64), 1, (4, 4))  # no parameter: dtype and device unchecked
    check_image("M", _image(1, 3, 4, 4, device="meta"), 3, (4, 4), torch.zeros(1, device="meta"))


def test_not_a_tensor_is_a_type_error():
    with pytest.raises(TypeError) as info:
        check_image("SlotAttentionAutoEncoder", [[0.0]], 3, (8, 6), PARAM)
    assert str(info.value) == (
        "SlotAttentionAutoEncoder: image must be a torch.Tensor [B, 3, 8, 6] in [-1, 1], got list"
    )


@pytest.mark.parametrize(
    ("shape", "detail"),
    [
        ((3, 8, 6), "(3 dims, expected 4; one image needs a batch axis: image[None])"),
        ((1, 1, 3, 8, 6), "(5 dims, expected 4)"),
        ((2, 1, 8, 6), "(1 channels at dim 1, expected 3)"),
        ((2, 8, 6, 3), "(8 channels at dim 1, expected 3) (channel-last? use image.permute(0, 3, 1, 2))"),
        ((2, 3, 6, 8), "(H x W 6x8, expected the model's resolution 8x6)"),
        ((2, 3, 8, 7), "(H x W 8x7, expected the model's resolution 8x6)"),
    ],
)
def test_rank_channels_and_size_errors_give_expected_and_received(shape, detail):
    with pytest.raises(ValueError) as info:
        check_image("SlotAttentionSetPredictor", _image(*shape), 3, (8, 6), PARAM)
    assert str(info.value) == (
        f"SlotAttentionSetPredictor: image must be [B, 3, 8, 6] in [-1, 1], got {list(shape)} {detail}"
    )


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_image_is_a_type_error(dtype):
    with pytest.raises(TypeError) as info:
        check_image("M", _image(2, 3, 8, 6, dtype=dtype), 3, (8, 6), PARAM)
    assert str(info.value) == (
        f"M: image must be a floating-point tensor in [-1, 1], got dtype {dtype} "
        "(uint8 pixels? slotattn.data.batch.to_model_batch converts them)"
    )


def test_dtype_other_than_the_parameters_is_a_type_error_outside_autocast():
    image = _image(2, 3, 8, 6, dtype=torch.float64)
    with pytest.raises(TypeError) as info:
        check_image("M", image, 3, (8, 6), PARAM)
    assert str(info.value) == (
        "M: image dtype torch.float64 does not match the model's parameters (torch.float32); "
        "cast one: image.to(torch.float32) or model.to(torch.float64), or run under torch.autocast"
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts inside the convs: allowed
        check_image("M", image.bfloat16(), 3, (8, 6), PARAM)


def test_device_mismatch_names_both_devices():
    meta_param = torch.nn.Parameter(torch.zeros(2, device="meta"))
    with pytest.raises(ValueError) as info:
        check_image("SlotAttentionAutoEncoder", _image(2, 3, 8, 6), 3, (8, 6), meta_param)
    assert str(info.value) == (
        "SlotAttentionAutoEncoder: image is on device cpu, the model's parameters on meta; "
        "move one: image.to('meta') or model.to('cpu')"
    )
    with pytest.raises(ValueError, match="image is on device meta, the model's parameters on cpu"):
        check_image("M", _image(2, 3, 8, 6, device="meta"), 3, (8, 6), PARAM)


def test_device_is_checked_before_dtype():
    with pytest.raises(ValueError, match="image is on device cpu"):
        check_image("M", _image(2, 3, 8, 6, dtype=torch.float64), 3, (8, 6), torch.zeros(1, device="meta"))


@pytest.mark.gpu
def test_cpu_image_for_a_cuda_model():
    with pytest.raises(ValueError, match=r"image is on device cpu, the model's parameters on cuda:0"):
        check_image("M", _image(2, 3, 8, 6), 3, (8, 6), torch.zeros(1, device="cuda"))


def test_the_call_the_models_make_catches_a_cpu_image_for_a_meta_model():
    from slotattn.models.set_predictor import SlotAttentionSetPredictor

    with torch.device("meta"):  # parameters on `meta`: no memory, no compute, a device other than the image's
        model = SlotAttentionSetPredictor()
    image = torch.zeros(2, 3, 128, 128)
    with pytest.raises(ValueError, match=r"^SlotAttentionSetPredictor: image is on device cpu, the model's parameters"
                                         r" on meta; move one"):
        check_image(type(model).__name__, image, 3, model.resolution, next(model.parameters(), None))
