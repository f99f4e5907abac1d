"""The batch contract: masks_to_ids and to_model_batch (keys, dtypes, ranges, layout, 0 = background)."""

import warnings

import numpy as np
import pytest
import torch

from slotattn.data.batch import masks_to_ids, to_model_batch
from slotattn.data.generators.tetrominoes import generate_tetrominoes


def _hand_made_masks():
    """[M=3, H=2, W=3, 1]: entity 1 on the top-left pixel, entity 2 on the bottom row, the rest background."""
    mask = np.zeros((3, 2, 3, 1), dtype=np.uint8)
    mask[1, 0, 0] = 255
    mask[2, 1, :] = 255
    mask[0] = 255 - mask[1] - mask[2]
    return mask


def test_masks_to_ids_on_a_hand_made_example():
    ids = masks_to_ids(_hand_made_masks())
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [[1, 0, 0], [2, 2, 2]])


def test_masks_to_ids_pixel_in_no_mask_is_background():
    mask = _hand_made_masks()
    mask[0] = 0  # no entity claims the background pixels any more
    np.testing.assert_array_equal(masks_to_ids(mask), [[1, 0, 0], [2, 2, 2]])


def test_masks_to_ids_matches_generated_masks_and_any_leading_axes():
    out = generate_tetrominoes(6, np.random.default_rng(0))
    ids = masks_to_ids(out["mask"])
    assert ids.shape == (6, 35, 35)
    for k in range(4):
        np.testing.assert_array_equal(ids == k, out["mask"][:, k, :, :, 0] == 255)
    np.testing.assert_array_equal(masks_to_ids(out["mask"][2]), ids[2])  # unbatched
    np.testing.assert_array_equal(masks_to_ids(out["mask"].reshape(2, 3, 4, 35, 35, 1)), ids.reshape(2, 3, 35, 35))


@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, 2, 3, 1), np.float32), np.zeros((3, 2, 3), np.uint8), np.zeros((3, 2, 3, 2), np.uint8)],
)
def test_masks_to_ids_rejects_wrong_dtype_or_layout(bad):
    with pytest.raises((ValueError, TypeError)):  # ValueError, or jaxtyping's TypeCheckError under the hook
        masks_to_ids(bad)


def test_to_model_batch_layout_range_and_dtypes():
    out = generate_tetrominoes(4, np.random.default_rng(0))
    out["image"][0, 0, 0] = [0, 128, 255]  # pin known values
    batch = to_model_batch(out)
    assert set(batch) == {"image", "mask_ids"}
    image = batch["image"]
    assert image.dtype == torch.float32 and image.shape == (4, 3, 35, 35) and image.is_contiguous()
    assert image.min() >= -1.0 and image.max() <= 1.0
    torch.testing.assert_close(image[0, :, 0, 0], torch.tensor([-1.0, 128 / 127.5 - 1.0, 1.0]), atol=1e-6, rtol=0)
    expected = torch.from_numpy(out["image"]).permute(0, 3, 1, 2).double() / 255.0 * 2.0 - 1.0  # official formula
    torch.testing.assert_close(image.double(), expected, atol=1e-6, rtol=0)
    assert batch["mask_ids"].dtype == torch.int64 and batch["mask_ids"].shape == (4, 35, 35)
    np.testing.assert_array_equal(batch["mask_ids"].numpy(), masks_to_ids(out["mask"]))


def test_to_model_batch_accepts_collated_tensors_and_read_only_arrays():
    out = generate_tetrominoes(3, np.random.default_rng(1))
    from_numpy = to_model_batch(out)
    from_tensors = to_model_batch({k: torch.from_numpy(v) for k, v in out.items()})
    read_only = {k: v.copy() for k, v in out.items()}
    for v in read_only.values():
        v.flags.writeable = False  # like a memmap opened with mmap_mode="r"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on non-writable numpy arrays; we must copy instead
        from_read_only = to_model_batch(read_only)
    for key in from_numpy:
        torch.testing.assert_close(from_tensors[key], from_numpy[key], atol=0, rtol=0)
        torch.testing.assert_close(from_read_only[key], from_numpy[key], atol=0, rtol=0)


def test_to_model_batch_leaves_its_input_alone():
    out = generate_tetrominoes(2, np.random.default_rng(2))
    before = out["image"].copy()
    to_model_batch(out)
    np.testing.assert_array_equal(out["image"], before)


def test_to_model_batch_without_mask_has_no_mask_ids():
    out = generate_tetrominoes(2, np.random.default_rng(3))
    assert set(to_model_batch({"image": out["image"]})) == {"image"}


@pytest.mark.parametrize(
    ("sample", "match"),
    [
        ({"mask": np.zeros((2, 4, 35, 35, 1), np.uint8)}, "no 'image' key"),
        ({"image": np.zeros((2, 35, 35, 3), np.float32)}, "'image' must be uint8"),
        ({"image": np.zeros((35, 35, 3), np.uint8)}, "'image' must be uint8"),
        ({"image": np.zeros((2, 3, 35, 35), np.uint8)}, "'image' must be uint8"),
        ({"image": np.zeros((2, 35, 35, 3), np.uint8), "mask": np.zeros((2, 4, 34, 35, 1), np.uint8)}, "'mask'"),
        ({"image": np.zeros((2, 35, 35, 3), np.uint8), "mask": np.zeros((3, 4, 35, 35, 1), np.uint8)}, "'mask'"),
        ({"image": np.zeros((2, 35, 35, 3), np.uint8), "mask": np.zeros((2, 4, 35, 35), np.uint8)}, "'mask'"),
    ],
)
def test_to_model_batch_rejects_bad_samples_naming_the_key(sample, match):
    with pytest.raises(ValueError, match=match):
        to_model_batch(sample)
