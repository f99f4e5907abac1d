"""CLEVR6 from clevr_with_masks: the split protocol under both filter orders, image and mask preprocessing, stores."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slotattn.config import load_config
from slotattn.data.batch import to_model_batch
from slotattn.data.build import open_checked_store
from slotattn.data.clevr import OBJECT_DISCOVERY_CROP, preprocess_clevr_image
from slotattn.data.clevr6 import (
    clevr6_example,
    convert_clevr6,
    count_objects,
    crop_resize_masks,
    preprocess_clevr6,
)
from slotattn.data.errors import DataError
from slotattn.data.multi_object import multi_object_spec, read_multi_object, write_multi_object

H, W, M = 240, 320, 11
TOP, BOTTOM, LEFT, RIGHT = OBJECT_DISCOVERY_CROP
# Objects per scene of the synthetic file, in record order: 3..10 objects, about half with <= 6 as in CLEVR.
COUNTS = [3, 7, 6, 10, 4, 8, 5, 9, 6, 3, 7, 10, 4, 5, 8, 6, 9, 3, 7, 4, 10, 5, 8, 6]


def _scenes(counts, rng):
    """clevr_with_masks arrays of scenes with `counts[i]` rectangles each, painted in order on a background.

    The image is the background colour plus each rectangle's colour where it is visible, with a little noise, and
    the masks are exactly the visible parts (0/255), so the two agree. Rectangles may fall partly or wholly
    outside the crop; later ones cover earlier ones.
    """
    spec = multi_object_spec("clevr_with_masks")
    n = len(counts)
    out = {key: np.zeros((n, *f.decoded_shape), dtype=f.decoded_dtype) for key, f in spec.features.items()}
    for i, count in enumerate(counts):
        ids = np.zeros((H, W), dtype=np.uint8)
        for obj in range(1, count + 1):
            h, w = rng.integers(8, 60, size=2)
            top, left = rng.integers(0, H - h), rng.integers(0, W - w)
            ids[top : top + h, left : left + w] = obj
            out["x"][i, obj], out["y"][i, obj] = left, top
        palette = rng.integers(0, 256, size=(M, 3), dtype=np.uint8)
        noise = rng.integers(-3, 4, size=(H, W, 3))
        out["image"][i] = np.clip(palette[ids].astype(int) + noise, 0, 255).astype(np.uint8)
        out["mask"][i, ..., 0] = (ids[None] == np.arange(M)[:, None, None]) * np.uint8(255)
        out["visibility"][i, : count + 1] = 1.0  # background + the objects, as in the original files
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    arrays = _scenes(COUNTS, np.random.default_rng(0))
    path = tmp_path_factory.mktemp("clevr_with_masks") / "clevr_with_masks_train.tfrecords"
    write_multi_object(path, "clevr_with_masks", arrays)
    return path, arrays


@pytest.fixture(scope="module")
def converted(source, tmp_path_factory):
    """Both filter orders on the same file: train_size=8, eval_size=4."""
    path, _ = source
    out = {}
    for before in (False, True):
        reads = []
        stores = convert_clevr6(path, tmp_path_factory.mktemp(f"clevr6-{before}"), train_size=8, eval_size=4,
                                filter_before_split=before, progress=reads.append, chunk=4)
        out[before] = (*stores, reads)
    return out


def test_split_then_filter_keeps_qualifying_scenes_of_fixed_record_ranges(converted):
    train, eval_, reads = converted[False]
    counts = np.asarray(COUNTS)
    expected_train = [i for i in range(8) if counts[i] <= 6]
    expected_eval = [i for i in range(8, 12) if counts[i] <= 6]
    assert train.arrays["scene_index"].tolist() == expected_train == [0, 2, 4, 6]
    assert eval_.arrays["scene_index"].tolist() == expected_eval == [8, 9]
    assert sum(reads) == 12  # reading stops at the end of the eval range


def test_filter_then_split_takes_exact_sizes_of_qualifying_scenes(converted):
    train, eval_, reads = converted[True]
    qualifying = [i for i, c in enumerate(COUNTS) if c <= 6]
    assert train.arrays["scene_index"].tolist() == qualifying[:8]
    assert eval_.arrays["scene_index"].tolist() == qualifying[8:12] == [15, 17, 19, 21]
    assert (len(train), len(eval_)) == (8, 4)
    assert sum(reads) == 22  # up to the last scene of the eval split


@pytest.mark.parametrize("before", [False, True])
def test_every_kept_scene_has_at_most_six_objects_and_counts_match(converted, before):
    for store in converted[before][:2]:
        index = store.arrays["scene_index"]
        num = store.arrays["num_objects"]
        assert num.tolist() == [COUNTS[i] for i in index]
        assert (num <= 6).all() and (num >= 3).all()
        assert (count_objects(store.arrays["visibility"]) == num).all()


def test_count_objects_excludes_the_background():
    visibility = np.zeros((3, M), dtype=np.float32)
    visibility[0, :4] = 1  # background + 3 objects
    visibility[1, 0] = 1  # background only
    visibility[2, 1:8] = 1  # 7 objects, background flag absent
    assert count_objects(visibility).tolist() == [3, 0, 7]


def test_max_objects_changes_the_filter(source, tmp_path):
    path, _ = source
    train, eval_ = convert_clevr6(path, tmp_path, train_size=10, eval_size=6, max_objects=4)
    assert train.arrays["scene_index"].tolist() == [i for i in range(10) if COUNTS[i] <= 4]
    assert eval_.arrays["scene_index"].tolist() == [i for i in range(10, 16) if COUNTS[i] <= 4]


def test_images_equal_the_official_preprocessing_within_one_level(converted, source):
    _, arrays = source
    for store in converted[True][:2]:
        index = np.asarray(store.arrays["scene_index"])
        official = preprocess_clevr_image(arrays["image"][index], crop=OBJECT_DISCOVERY_CROP)  # [-1, 1]
        stored = to_model_batch({"image": np.asarray(store.arrays["image"])})["image"]
        assert stored.shape == official.shape == (len(index), 3, 128, 128)
        torch.testing.assert_close(stored, official, atol=1 / 255 + 1e-6, rtol=0)


def _source_ids(arrays, index):
    return np.argmax(arrays["mask"][index, ..., 0], axis=1)  # (N, H, W)


def test_masks_are_a_nearest_resize_of_the_cropped_masks(converted, source):
    _, arrays = source
    for store in converted[False][:2]:
        index = np.asarray(store.arrays["scene_index"])
        ids = np.argmax(np.asarray(store.arrays["mask"])[..., 0], axis=1)  # (N, 128, 128)
        src = _source_ids(arrays, index)
        # Each output pixel takes the id of the source pixel that contains its centre (half-pixel centres).
        for i in range(128):
            for j in range(0, 128, 7):
                y = TOP + int(np.floor((i + 0.5) * (BOTTOM - TOP) / 128))
                x = LEFT + int(np.floor((j + 0.5) * (RIGHT - LEFT) / 128))
                assert (ids[:, i, j] == src[:, y, x]).all(), (i, j)
        # The same, as torch's nearest-exact on the whole cropped id maps.
        cropped = torch.from_numpy(src[:, TOP:BOTTOM, LEFT:RIGHT]).float()[:, None]
        expected = F.interpolate(cropped, size=(128, 128), mode="nearest-exact")[:, 0].long().numpy()
        np.testing.assert_array_equal(ids, expected)


def test_mask_planes_are_the_resampled_source_planes(source):
    _, arrays = source
    out = crop_resize_masks(arrays["mask"][:3])
    assert out.shape == (3, M, 128, 128, 1) and out.dtype == np.uint8
    rows = TOP + np.floor((np.arange(128) + 0.5) * 1.5).astype(int)
    cols = LEFT + np.floor((np.arange(128) + 0.5) * 1.5).astype(int)
    np.testing.assert_array_equal(out, arrays["mask"][:3][:, :, rows][:, :, :, cols])


@pytest.mark.parametrize("before", [False, True])
def test_masks_partition_the_pixels_and_keep_the_background_first(converted, before, source):
    _, arrays = source
    for store in converted[before][:2]:
        mask = np.asarray(store.arrays["mask"])[..., 0]  # (N, 11, 128, 128)
        assert set(np.unique(mask).tolist()) <= {0, 255}
        assert ((mask == 255).sum(axis=1) == 1).all()  # exactly one entity per pixel
        # entity 0 is the background: where the source frame is background, the stored pixel is too
        index = np.asarray(store.arrays["scene_index"])
        ids = mask.argmax(axis=1)
        src = _source_ids(arrays, index)
        rows = TOP + np.floor((np.arange(128) + 0.5) * 1.5).astype(int)
        cols = LEFT + np.floor((np.arange(128) + 0.5) * 1.5).astype(int)
        np.testing.assert_array_equal(ids == 0, src[:, rows][:, :, cols] == 0)
        assert (ids == 0).any() and (ids > 0).any()


def test_stores_fit_the_clevr6_recipe(converted, tmp_path):
    train, eval_, _ = converted[False]
    cfg = load_config("clevr6")
    for store in (train, eval_):
        assert store.name == "clevr6" == cfg.data.name
        features = store.meta["features"]
        assert features["image"] == {"dtype": "uint8", "shape": [128, 128, 3]}
        assert features["mask"] == {"dtype": "uint8", "shape": [11, 128, 128, 1]}
        assert features["visibility"] == {"dtype": "float32", "shape": [11]}
        open_checked_store(str(store.path), cfg)  # name and model.resolution agree
    assert train.meta["split"] == "train" and eval_.meta["split"] == "eval"
    assert train.meta["protocol"]["filter_before_split"] is False
    batch = to_model_batch({key: np.asarray(train.arrays[key][:2]) for key in ("image", "mask")})
    assert batch["mask_ids"].shape == (2, 128, 128)


def test_single_example_equals_the_batched_path(source):
    _, arrays = source
    batch = preprocess_clevr6({key: arrays[key][:2] for key in arrays})
    for i in range(2):
        example = clevr6_example({key: arrays[key][i] for key in arrays})
        assert example["num_objects"] == COUNTS[i]
        for key in ("image", "mask", "visibility"):
            np.testing.assert_array_equal(example[key], batch[key][i])


def test_reader_output_converts_directly(source):
    path, _ = source
    example = clevr6_example(next(read_multi_object(path, "clevr_with_masks")))
    assert example["image"].shape == (128, 128, 3) and example["mask"].shape == (11, 128, 128, 1)


def test_too_short_a_file_is_an_error_that_says_what_it_held(source, tmp_path):
    path, _ = source
    with pytest.raises(DataError, match="holds only 24 records"):
        convert_clevr6(path, tmp_path / "a", train_size=20, eval_size=5)
    qualifying = sum(c <= 6 for c in COUNTS)
    with pytest.raises(DataError, match=f"holds only {qualifying} scenes with <= 6 objects"):
        convert_clevr6(path, tmp_path / "b", train_size=10, eval_size=qualifying - 9, filter_before_split=True)
    assert not any((tmp_path / "b").iterdir())  # the spill is cleaned up


def test_a_split_without_qualifying_scenes_is_an_error(source, tmp_path):
    path, _ = source
    # records 3 (10 objects) only in the eval range [3, 4)
    with pytest.raises(DataError, match="eval split .* holds no scene"):
        convert_clevr6(path, tmp_path, train_size=3, eval_size=1)


def test_bad_arguments_and_existing_output(source, tmp_path):
    path, _ = source
    with pytest.raises(ValueError, match="max_objects"):
        convert_clevr6(path, tmp_path, max_objects=11)
    with pytest.raises(ValueError, match="train_size"):
        convert_clevr6(path, tmp_path, train_size=0)
    (tmp_path / "train").mkdir()
    with pytest.raises(FileExistsError, match="train"):
        convert_clevr6(path, tmp_path, train_size=4, eval_size=2)
    with pytest.raises(ValueError, match="'mask' must be uint8"):
        preprocess_clevr6({"image": np.zeros((1, H, W, 3), np.uint8), "mask": np.zeros((1, M, H, W), np.uint8),
                           "visibility": np.zeros((1, M))})


def test_a_kept_record_whose_masks_do_not_partition_is_named(tmp_path):
    arrays = _scenes([3, 4, 5], np.random.default_rng(1))
    arrays["mask"][2, :, 100, 200] = 0  # record 2: pixel (100, 200) in no entity (inside the crop or not)
    path = tmp_path / "bad.tfrecords"
    write_multi_object(path, "clevr_with_masks", arrays, compression="none")
    with pytest.raises(DataError) as info:
        convert_clevr6(path, tmp_path / "out", train_size=2, eval_size=1)
    assert str(info.value).startswith(
        f"{path}: record 2: feature 'mask': pixel (row 100, col 200) is claimed by no entity [] with mask values []; "
        "expected exactly one of the 11 entities at 255"
    )
