"""The batch contract: masks_to_ids and to_model_batch (keys, dtypes, ranges, layout, 0 = background)."""

import warnings

import numpy as np
import pytest
import torch

from slotattn.data.batch import check_mask_partition, masks_to_ids, to_model_batch
from slotattn.data.errors import DataError
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


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((2, 4, 34, 35, 1), np.uint8), ((2, 4, 35, 36, 1), np.uint8), ((2, 4, 35, 35), np.uint8),
     ((2, 35, 35, 1), np.uint8), ((2, 0, 35, 35, 1), np.uint8), ((2, 4, 35, 35, 1), np.int64)],
)
def test_mask_of_the_wrong_rank_size_or_dtype_is_a_data_error_with_expected_and_found(shape, dtype):
    image = np.zeros((2, 35, 35, 3), np.uint8)
    with pytest.raises(DataError) as info:
        to_model_batch({"image": image, "mask": np.zeros(shape, dtype)})
    message = str(info.value)
    assert "to_model_batch: 'mask' must be uint8 [B, M, H, W, 1] = [2, M, 35, 35, 1]" in message  # expected
    assert f"got {np.dtype(dtype)} {list(shape)}" in message  # found
    assert "'image' [2, 35, 35, 3]" in message


def _tetrominoes(n=3, seed=4):
    return generate_tetrominoes(n, np.random.default_rng(seed))


def test_generated_masks_partition_the_pixels():
    for n, seed in ((8, 0), (8, 1)):
        check_mask_partition(_tetrominoes(n, seed)["mask"])  # no error: one entity at 255 per pixel


def test_pixel_claimed_by_no_entity_is_a_data_error_naming_example_and_pixel():
    out = _tetrominoes()
    out["mask"][1, :, 5, 7] = 0  # nobody claims example 1, pixel (5, 7)
    with pytest.raises(DataError) as info:
        to_model_batch(out)
    assert str(info.value) == (
        "to_model_batch: 'mask': example 1, pixel (row 5, col 7) is claimed by no entity [] with mask values []; "
        "expected exactly one of the 4 entities at 255 and the others at 0 (the masks partition the image, "
        "entity 0 = background); 1 of 3675 pixels are bad"
    )


def test_pixel_claimed_by_two_entities_is_a_data_error_naming_them():
    out = _tetrominoes()
    ids = masks_to_ids(out["mask"])
    other = (ids[2, 0, 3] + 1) % 4
    out["mask"][2, other, 0, 3] = 255  # example 2, pixel (0, 3) now in two masks
    out["mask"][2, :, 9, :] = 255  # and a whole row in all four
    with pytest.raises(DataError) as info:
        to_model_batch({k: torch.from_numpy(v) for k, v in out.items()})  # the collated-tensor path checks too
    message = str(info.value)
    claimed = sorted([int(ids[2, 0, 3]), int(other)])
    assert f"example 2, pixel (row 0, col 3) is claimed by 2 entities {claimed} with mask values [255, 255]" in message
    assert "expected exactly one of the 4 entities at 255" in message
    assert "36 of 3675 pixels are bad" in message  # 1 + the 35 pixels of row 9


@pytest.mark.parametrize("value", [1, 7, 128, 254])
def test_mask_value_outside_0_255_is_a_data_error_with_the_value(value):
    out = _tetrominoes()
    ids = masks_to_ids(out["mask"])
    out["mask"][0, ids[0, 4, 4], 4, 4] = value  # the one entity of pixel (4, 4) has a value other than 255
    with pytest.raises(DataError) as info:
        to_model_batch(out)
    message = str(info.value)
    assert f"example 0, pixel (row 4, col 4) is claimed by one entity [{ids[0, 4, 4]}] with mask values [{value}]" in (
        message)
    assert "at 255 and the others at 0" in message and "1 of 3675 pixels are bad" in message


def test_binary_0_1_masks_are_accepted_but_not_mixed_with_0_255():
    out = _tetrominoes()
    binary = {"image": out["image"], "mask": out["mask"] // 255}
    np.testing.assert_array_equal(to_model_batch(binary)["mask_ids"].numpy(), masks_to_ids(out["mask"]))
    mixed = binary["mask"].copy()
    mixed[0] *= 255  # example 0 in 0/255, the rest in 0/1
    with pytest.raises(DataError, match=r"example 1, pixel \(row 0, col 0\) .* mask values \[1\]; expected "
                                         r"exactly one of the 4 entities at 255"):
        to_model_batch({"image": out["image"], "mask": mixed})


def test_partition_check_names_the_caller_and_offsets_the_index():
    mask = _tetrominoes()["mask"]
    mask[2, :, 0, 0] = 255  # example 2, pixel (0, 0) in all four entities
    with pytest.raises(DataError, match=r"^f.tfrecords: feature 'mask': record 12, pixel \(row 0, col 0\)"):
        check_mask_partition(mask, "f.tfrecords: feature 'mask'", first_index=10, item="record")
    with pytest.raises(DataError, match=r"^one: pixel \(row 0, col 0\) is claimed by"):
        check_mask_partition(mask[2], "one")  # a single example: no example index
