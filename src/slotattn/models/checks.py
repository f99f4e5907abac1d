"""Input checks at the models' public entry points: what was expected and what was received, for rank, channels,
spatial size, dtype and device, before a conv deep inside the encoder fails with a message about its weights."""

import torch
from torch import Tensor

__all__ = ["RANGE_TOLERANCE", "check_image"]

RANGE_TOLERANCE = 0.01  # how far outside [-1, 1] an image may reach (rounding of resized or converted pixels)


def check_image(
    model_name: str,
    image: object,
    expected_channels: int,
    resolution: tuple[int, int],
    param: Tensor | None = None,
    check_range: bool = True,
) -> None:
    """Check a model's input image; say what was expected and what was received.

    Checks, in order: a tensor; 4 dims [B, C, H, W]; ``expected_channels`` channels at dim 1 (with a hint when the
    image is channel-last, the TF original's layout); H x W equal to ``resolution``; a floating dtype (the model
    takes [-1, 1], not uint8 pixels); values within [-1, 1] up to ``RANGE_TOLERANCE`` (pixels in [0, 255] would
    run and score near chance; images in [0, 1] lie inside the range and cannot be told apart, see the README);
    the device of ``param``; outside autocast, the dtype of ``param`` (PyTorch would otherwise fail inside the
    first conv, naming its weights rather than the image).

    Args:
        model_name: the model named in the message, e.g. ``type(self).__name__``.
        image: the argument as received.
        expected_channels: C (3 for RGB).
        resolution: (H, W) the model was built for.
        param: one of the model's parameters (``next(model.parameters(), None)``): its dtype and device are what
            the image must match; None skips those two checks.
        check_range: check the values (one min/max reduction, read on the host: on a GPU it waits for the image).
            Models skip it in training mode, whose steps must not wait: the engine's batches are [-1, 1] by
            construction (`slotattn.data.batch`).

    Raises:
        TypeError: ``image`` is not a tensor, is not floating point, or its dtype differs from ``param``'s
            outside autocast.
        ValueError: wrong rank, channels or spatial size, or ``image`` and ``param`` on different devices.
    """
    height, width = resolution
    expected = f"[B, {expected_channels}, {height}, {width}]"
    if not isinstance(image, Tensor):
        raise TypeError(f"{model_name}: image must be a torch.Tensor {expected} in [-1, 1], got {type(image).__name__}")
    shape = list(image.shape)
    if image.ndim != 4:
        hint = "; one image needs a batch axis: image[None]" if image.ndim == 3 else ""
        raise ValueError(
            f"{model_name}: image must be {expected} in [-1, 1], got {shape} ({image.ndim} dims, expected 4{hint})"
        )
    if shape[1] != expected_channels:
        hint = " (channel-last? use image.permute(0, 3, 1, 2))" if shape[3] == expected_channels else ""
        raise ValueError(
            f"{model_name}: image must be {expected} in [-1, 1], got {shape} "
            f"({shape[1]} channels at dim 1, expected {expected_channels}){hint}"
        )
    if (shape[2], shape[3]) != (height, width):
        raise ValueError(
            f"{model_name}: image must be {expected} in [-1, 1], got {shape} "
            f"(H x W {shape[2]}x{shape[3]}, expected the model's resolution {height}x{width})"
        )
    if not image.is_floating_point():
        raise TypeError(
            f"{model_name}: image must be a floating-point tensor in [-1, 1], got dtype {image.dtype} "
            "(uint8 pixels? slotattn.data.batch.to_model_batch converts them)"
        )
    if check_range and image.numel() and image.device.type != "meta":  # meta tensors have shapes, no values
        low, high = (float(v) for v in torch.aminmax(image.detach()))
        if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
            hint = " (pixels in [0, 255]? use image / 127.5 - 1)" if high > 2 else ""
            raise ValueError(f"{model_name}: image values must lie in [-1, 1], got [{low:.4g}, {high:.4g}]{hint}")
    if param is None:
        return
    if image.device != param.device:
        raise ValueError(
            f"{model_name}: image is on device {image.device}, the model's parameters on {param.device}; "
            f"move one: image.to('{param.device}') or model.to('{image.device}')"
        )
    if image.dtype != param.dtype and not _autocast_enabled(image.device.type):
        raise TypeError(
            f"{model_name}: image dtype {image.dtype} does not match the model's parameters ({param.dtype}); "
            f"cast one: image.to({param.dtype}) or model.to({image.dtype}), or run under torch.autocast"
        )


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type``; under it the convs cast image and weights themselves (a bfloat16
    image with float32 weights is fine there). Device types without autocast (``meta``) count as off."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False
