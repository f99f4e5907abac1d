"""CLEVR v1.0 reader (data/clevr.py): TFDS class orders, TF2 bilinear resize, official crop/targets, clear errors."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from slotattn.data.batch import to_model_batch
from slotattn.data.clevr import (
    COLORS,
    FRAME_SIZE,
    MATERIALS,
    OBJECT_DISCOVERY_CROP,
    OFFICIAL_SPLITS,
    PROPERTIES,
    SHAPES,
    SIZES,
    TARGET_SLICES,
    ClevrV1,
    convert_clevr,
    describe_prediction,
    load_clevr_png,
    official_split,
    preprocess_clevr_image,
    resize_bilinear,
    scene_targets,
)
from slotattn.data.errors import DataError
from slotattn.data.store import open_store

# Files of the official CLEVR generator (properties.json, eight real renders), copied into the repository with their
# licence and source (tests/fixtures/clevr/README.md); missing files fail, never skip.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "clevr"
RENDERS = [FIXTURES / f"img{i}.png" for i in range(1, 9)]


# --- references --------------------------------------------------------------------------------------------------


def tf_resize_bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Line-by-line numpy transcription of TF's ResizeBilinear kernel with half_pixel_centers=True (float64).

    tensorflow/core/kernels/image/resize_bilinear_op.cc: compute_interpolation_weights with HalfPixelScaler
    ((i + 0.5) * scale - 0.5), lower = max(floor, 0), upper = min(ceil, in - 1), lerp = in - floor; then
    top = tl + (tr - tl) * x_lerp, bottom = bl + (br - bl) * x_lerp, out = top + (bottom - top) * y_lerp.
    """
    in_h, in_w = image.shape[:2]

    def weights(in_size, out_size):
        scale = in_size / out_size
        table = []
        for i in range(out_size):
            src = (i + 0.5) * scale - 0.5
            floor = math.floor(src)
            table.append((max(floor, 0), min(math.ceil(src), in_size - 1), src - floor))
        return table

    ys, xs = weights(in_h, out_h), weights(in_w, out_w)
    out = np.zeros((out_h, out_w, *image.shape[2:]), dtype=np.float64)
    for y, (y0, y1, y_lerp) in enumerate(ys):
        for x, (x0, x1, x_lerp) in enumerate(xs):
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * x_lerp
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * x_lerp
            out[y, x] = top + (bottom - top) * y_lerp
    return out


def official_preprocess(frame: np.ndarray, crop, out=(128, 128)) -> np.ndarray:
    """The official preprocess_clevr image path in numpy (float64): rescale, crop, TF resize, clip; HWC."""
    x = ((frame.astype(np.float64) / 255.0) - 0.5) * 2.0
    if crop is not None:
        x = x[crop[0] : crop[1], crop[2] : crop[3]]
    return np.clip(tf_resize_bilinear(x, *out), -1.0, 1.0)


def obj(coords=(0.0, 0.0, 0.35), size="small", material="rubber", shape="cube", color="gray"):
    """A CLEVR scene object with every key the v1.0 JSON has."""
    return {
        "3d_coords": list(coords),
        "size": size,
        "material": material,
        "shape": shape,
        "color": color,
        "rotation": 12.5,
        "pixel_coords": [10, 20, 11.2],
    }


def varied_objects(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        obj(
            coords=rng.uniform(-3, 3, 3).round(3).tolist(),
            size=SIZES[rng.integers(2)],
            material=MATERIALS[rng.integers(2)],
            shape=SHAPES[rng.integers(3)],
            color=COLORS[rng.integers(8)],
        )
        for _ in range(n)
    ]


def make_tree(root: Path, split: str, counts: list[int], frame=FRAME_SIZE, seed=0) -> list[np.ndarray]:
    """A CLEVR v1.0 tree: RGBA PNGs under images/<split>/, scenes/CLEVR_<split>_scenes.json; returns RGB frames."""
    images = root / "images" / split
    images.mkdir(parents=True)
    (root / "scenes").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    frames, scenes = [], []
    for i, n in enumerate(counts):
        name = f"CLEVR_{split}_{i:06d}.png"
        rgba = rng.integers(0, 256, (*frame, 4), dtype=np.uint8)
        rgba[..., 3] = 255
        Image.fromarray(rgba, "RGBA").save(images / name)
        frames.append(rgba[..., :3].copy())
        scenes.append({"split": split, "image_index": i, "image_filename": name, "objects": varied_objects(n, i)})
    (root / "scenes" / f"CLEVR_{split}_scenes.json").write_text(json.dumps({"info": {"split": split}, "scenes": scenes}))
    return frames


COUNTS = [3, 7, 6, 10, 4]  # object counts of the fake train split: CLEVR6 keeps scenes 0, 2, 4


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("clevr") / "CLEVR_v1.0"
    frames = make_tree(root, "train", COUNTS)
    return root, frames


@pytest.fixture
def fresh_tree(tmp_path):
    """A small tree of tiny frames that a test may break."""
    root = tmp_path / "CLEVR_v1.0"
    make_tree(root, "train", [3, 4, 5], frame=(6, 8))
    return root


def scenes_json(root: Path, split: str = "train") -> Path:
    return root / "scenes" / f"CLEVR_{split}_scenes.json"


def edit_scenes(root: Path, edit) -> None:
    path = scenes_json(root)
    data = json.loads(path.read_text())
    edit(data["scenes"])
    path.write_text(json.dumps(data))


# --- vocabulary ----------------------------------------------------------------------------------------------------


def test_class_orders_are_the_tfds_clevr_builder_orders():
    # tensorflow/datasets tensorflow_datasets/image/clevr.py, CLEVR._info: ClassLabel(names=[...])
    assert SIZES == ("small", "large")
    assert MATERIALS == ("rubber", "metal")
    assert SHAPES == ("cube", "sphere", "cylinder")
    assert COLORS == ("gray", "blue", "brown", "yellow", "red", "green", "purple", "cyan")
    # official preprocess_clevr concatenates coords, size, material, shape, color, then the real flag
    assert list(PROPERTIES) == ["size", "material", "shape", "color"]
    spans = [(s.start, s.stop) for s in TARGET_SLICES.values()]
    assert spans == [(0, 3), (3, 5), (5, 7), (7, 10), (10, 18), (18, 19)]


def test_generator_vocabulary_matches_but_its_colour_order_is_not_the_target_order():
    props = json.loads((FIXTURES / "properties.json").read_text())
    for ours, theirs in [(COLORS, "colors"), (SHAPES, "shapes"), (MATERIALS, "materials"), (SIZES, "sizes")]:
        assert sorted(ours) == sorted(props[theirs]), theirs
    # properties.json lists gray, red, blue, ...: one-hots must come from the TFDS order, not from this file
    assert list(props["colors"]) != list(COLORS)


# --- resize --------------------------------------------------------------------------------------------------------


def _column(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, -1, 1)


def test_resize_bilinear_hand_computed_cases():
    x = [0.0, 10.0, 20.0, 30.0, 40.0, 100.0]
    # 6 -> 4 (scale 1.5, like 192 -> 128): samples at 0.25, 1.75, 3.25, 4.75
    expected = [0.75 * 0 + 0.25 * 10, 0.25 * 10 + 0.75 * 20, 0.75 * 30 + 0.25 * 40, 0.25 * 40 + 0.75 * 100]
    got = resize_bilinear(_column(x), (4, 1)).flatten()
    torch.testing.assert_close(got, torch.tensor(expected), atol=1e-5, rtol=0)
    # 4 -> 2 (scale 2): samples at 0.5 and 2.5, the means of neighbouring pairs (no antialias: pixels 0..3 only)
    got = resize_bilinear(_column([0.0, 10.0, 20.0, 100.0]), (2, 1)).flatten()
    torch.testing.assert_close(got, torch.tensor([5.0, 60.0]), atol=1e-5, rtol=0)
    # 2 -> 4 (scale 0.5): samples at -0.25 (clamped to pixel 0), 0.25, 0.75, 1.25 (clamped to pixel 1)
    got = resize_bilinear(_column([0.0, 8.0]), (4, 1)).flatten()
    torch.testing.assert_close(got, torch.tensor([0.0, 2.0, 6.0, 8.0]), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [((192, 192), (128, 128)), ((320, 480), (128, 128)), ((240, 320), (128, 128)), ((5, 7), (3, 11)), ((4, 4), (9, 2))],
)
def test_resize_bilinear_matches_tf_half_pixel_transcription(in_size, out_size):
    image = np.random.default_rng(1).uniform(-1, 1, (*in_size, 3))
    expected = tf_resize_bilinear(image, *out_size)
    got = resize_bilinear(torch.from_numpy(image).permute(2, 0, 1)[None].float(), out_size)[0].permute(1, 2, 0)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=0)


# --- image preprocessing -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renders():
    return np.stack([load_clevr_png(p, frame_size=(240, 320)) for p in RENDERS])


def test_load_clevr_png_drops_alpha_of_real_renders(renders):
    rgba = np.asarray(Image.open(RENDERS[0]))
    assert rgba.shape == (240, 320, 4)  # the generator's renders are 320x240 RGBA, alpha all 255
    assert renders.shape == (8, 240, 320, 3) and renders.dtype == np.uint8
    np.testing.assert_array_equal(renders[0], rgba[..., :3])


@pytest.mark.parametrize("crop", [OBJECT_DISCOVERY_CROP, None], ids=["object_discovery", "set_prediction"])
def test_preprocess_real_renders_matches_the_official_pipeline(renders, crop):
    out = preprocess_clevr_image(renders, crop)
    assert out.shape == (8, 3, 128, 128) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0 and out.std() > 0.05
    for i in (0, 5):
        expected = official_preprocess(renders[i], crop)
        np.testing.assert_allclose(out[i].permute(1, 2, 0).numpy(), expected, atol=1e-5, rtol=0)


def test_single_frame_equals_its_row_of_the_batch(renders):
    one = preprocess_clevr_image(renders[3], OBJECT_DISCOVERY_CROP)
    assert one.shape == (1, 3, 128, 128)
    torch.testing.assert_close(one, preprocess_clevr_image(renders, OBJECT_DISCOVERY_CROP)[3:4], atol=0, rtol=0)
    torch.testing.assert_close(one, preprocess_clevr_image(torch.from_numpy(renders[3]), OBJECT_DISCOVERY_CROP))


def test_crop_is_rows_29_221_and_columns_64_256():
    frame = np.zeros((320, 480, 3), dtype=np.uint8)
    frame[29:221, 64:256] = 255  # white exactly inside the box, black outside
    out = preprocess_clevr_image(frame, OBJECT_DISCOVERY_CROP)
    torch.testing.assert_close(out, torch.ones(1, 3, 128, 128), atol=0, rtol=0)
    shifted = np.roll(frame, 1, axis=1)  # one column off: the resize now mixes in black
    assert preprocess_clevr_image(shifted, OBJECT_DISCOVERY_CROP).min() < 0.9


def test_value_range_maps_0_to_minus_one_and_255_to_one():
    frames = np.stack([np.zeros((240, 320, 3), np.uint8), np.full((240, 320, 3), 255, np.uint8)])
    out = preprocess_clevr_image(frames, None, (16, 24))
    assert out.shape == (2, 3, 16, 24)
    assert torch.all(out[0] == -1.0) and torch.all(out[1] == 1.0)
    mid = preprocess_clevr_image(np.full((4, 4, 3), 51, np.uint8), None, (2, 2))
    torch.testing.assert_close(mid, torch.full((1, 3, 2, 2), (51 / 255 - 0.5) * 2))


def test_crop_outside_the_frame_is_an_error():
    with pytest.raises(ValueError, match=r"rows 29:221, columns 64:256 do not fit a 100x320 \(HxW\) frame"):
        preprocess_clevr_image(np.zeros((100, 320, 3), np.uint8), OBJECT_DISCOVERY_CROP)


# --- targets ---------------------------------------------------------------------------------------------------------


def test_scene_targets_hand_made_rows():
    scene = {
        "objects": [
            obj((-3.0, 0.0, 3.0), "large", "metal", "cylinder", "cyan"),
            obj((1.5, -1.5, 0.35), "small", "rubber", "sphere", "brown"),
        ]
    }
    target = scene_targets(scene)
    assert target.shape == (10, 19) and target.dtype == np.float32
    #               x     y     z        small large rubber metal cube sph cyl   gray blue brown yel red grn pur cyan real
    row0 = [0.0, 0.5, 1.0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    row1 = [0.75, 0.25, 3.35 / 6, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    np.testing.assert_allclose(target[0], row0, atol=1e-6)
    np.testing.assert_allclose(target[1], row1, atol=1e-6)
    np.testing.assert_array_equal(target[2:], 0.0)  # zero padding, real flag 0
    assert scene_targets(scene, max_objects=2).shape == (2, 19)


@pytest.mark.parametrize(
    ("color", "column"),
    [("gray", 10), ("blue", 11), ("brown", 12), ("yellow", 13), ("red", 14), ("green", 15), ("purple", 16), ("cyan", 17)],
)
def test_colour_one_hot_column_is_the_tfds_index(color, column):
    row = scene_targets({"objects": [obj(color=color)]})[0]
    assert np.flatnonzero(row[10:18]).tolist() == [column - 10]


@pytest.mark.parametrize(
    ("key", "value", "column"),
    [("size", "small", 3), ("size", "large", 4), ("material", "rubber", 5), ("material", "metal", 6),
     ("shape", "cube", 7), ("shape", "sphere", 8), ("shape", "cylinder", 9)],
)
def test_size_material_shape_one_hot_columns(key, value, column):
    row = scene_targets({"objects": [obj(**{key: value})]})[0]
    block = TARGET_SLICES[key]
    assert np.flatnonzero(row[block]).tolist() == [column - block.start]


def test_describe_prediction_inverts_scene_targets():
    objects = varied_objects(10, seed=3)
    target = scene_targets({"objects": objects})
    for row, o in zip(target, objects, strict=True):
        for vec in (row, torch.from_numpy(row)):
            got = describe_prediction(vec)
            assert {k: got[k] for k in PROPERTIES} == {k: o[k] for k in PROPERTIES}
            np.testing.assert_allclose(got["3d_coords"], o["3d_coords"], atol=1e-5)
            assert got["real"] == 1.0
    soft = np.zeros(19, np.float32)
    soft[[3, 4]] = [0.2, 0.7]  # argmax decides: large
    soft[18] = 0.3
    assert describe_prediction(soft)["size"] == "large" and describe_prediction(soft)["real"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"color": "pink"}, r"scene, object 1: 'color' is 'pink', expected one of gray, blue, brown, yellow"),
        ({"shape": None}, r"object 1: 'shape' is None, expected one of cube, sphere, cylinder"),
        ({"3d_coords": [1.0, 2.0]}, r"object 1: '3d_coords' must be 3 finite numbers, found \[1.0, 2.0\]"),
        ({"3d_coords": [1.0, float("nan"), 0.0]}, r"object 1: '3d_coords' must be 3 finite numbers"),
        # found while fuzzing the readers: an int too large for a float raised OverflowError, and a value beyond
        # float32's range became an inf target
        ({"3d_coords": [10**400, 0, 0]}, r"object 1: '3d_coords' must be 3 finite numbers, found \[1000000"),
        ({"3d_coords": [0.0, 1e39, 0.0]}, r"'3d_coords' must be 3 finite numbers, found \[0.0, 1e\+39, 0.0\] \(checked"),
    ],
)
def test_scene_targets_rejects_bad_objects(edit, message):
    bad = {**obj(), **edit}
    with pytest.raises(DataError, match=message):
        scene_targets({"objects": [obj(), bad]})


def test_scene_targets_names_a_missing_property():
    no_size = obj()
    del no_size["size"]
    with pytest.raises(DataError, match=r"scene, object 1: 'size' is missing, expected one of small, large"):
        scene_targets({"objects": [obj(), no_size]})


def test_scene_targets_rejects_too_many_objects_and_no_object_list():
    with pytest.raises(DataError, match="11 objects, more than the 10 target rows"):
        scene_targets({"objects": [obj()] * 11})
    with pytest.raises(DataError, match="expected a dict with an 'objects' list, found NoneType"):
        scene_targets({"image_index": 0})


# --- the reader ------------------------------------------------------------------------------------------------------


def test_reader_reads_the_fake_tree_back(tree):
    root, frames = tree
    ds = ClevrV1(root, "train", task="set_prediction")
    assert len(ds) == len(COUNTS) and ds.scene_indices.tolist() == list(range(len(COUNTS)))
    scenes = json.loads(scenes_json(root).read_text())["scenes"]
    for i in (0, 3):
        ex = ds[i]
        assert ex["image"].shape == (320, 480, 3) and ex["image"].dtype == np.uint8
        np.testing.assert_array_equal(ex["image"], frames[i])  # alpha dropped, pixels untouched
        np.testing.assert_array_equal(ex["target"], scene_targets(scenes[i]))
        assert ex["num_objects"] == COUNTS[i] == int(ex["target"][:, -1].sum())
    assert ds.image_path(-1) == root / "images" / "train" / "CLEVR_train_000004.png"
    with pytest.raises(IndexError, match="example 5 out of range for 5 kept scenes"):
        ds[5]


def test_task_filters_keep_at_most_6_or_10_objects(tree):
    root, _ = tree
    assert ClevrV1(root, "train").scene_indices.tolist() == [0, 2, 4]  # object_discovery: CLEVR6
    assert ClevrV1(root, "train", task="set_prediction").scene_indices.tolist() == [0, 1, 2, 3, 4]
    assert ClevrV1(root, "train", max_objects=3).scene_indices.tolist() == [0]
    ds = ClevrV1(root, "train")
    assert ds.crop == OBJECT_DISCOVERY_CROP and ds.num_objects.tolist() == [3, 6, 4]
    assert ClevrV1(root, "train", task="set_prediction").crop is None


def test_skip_and_first_come_before_the_filter(tree):
    root, _ = tree
    # official build_clevr: ds.skip / ds.take, then ds.filter
    assert ClevrV1(root, "train", first=2).scene_indices.tolist() == [0]  # scenes 0, 1 -> 1 has 7 objects
    assert ClevrV1(root, "train", skip=2).scene_indices.tolist() == [2, 4]
    assert ClevrV1(root, "train", skip=1, first=2).scene_indices.tolist() == [2]
    assert len(ClevrV1(root, "train", skip=99)) == 0


def test_batch_is_the_official_preprocessing_of_the_frames(tree):
    root, frames = tree
    ds = ClevrV1(root, "train")
    batch = ds.batch([0, 2])
    assert batch["image"].shape == (2, 3, 128, 128) and batch["image"].dtype == torch.float32
    expected = official_preprocess(frames[4], OBJECT_DISCOVERY_CROP)  # kept example 2 = scene 4
    np.testing.assert_allclose(batch["image"][1].permute(1, 2, 0).numpy(), expected, atol=1e-5, rtol=0)
    assert batch["target"].shape == (2, 10, 19) and batch["num_objects"].tolist() == [3, 4]
    full = ClevrV1(root, "train", task="set_prediction").batch(np.array([1]))
    expected = official_preprocess(frames[1], None)
    np.testing.assert_allclose(full["image"][0].permute(1, 2, 0).numpy(), expected, atol=1e-5, rtol=0)


def test_official_splits_take_and_skip_512_of_train(tmp_path):
    root = tmp_path / "CLEVR_v1.0"
    make_tree(root, "train", [3] * 514, frame=(4, 6))
    make_tree(root, "val", [5, 8], frame=(4, 6))
    kwargs = {"task": "set_prediction", "frame_size": (4, 6)}
    train_eval = official_split(root, "train_eval", **kwargs)
    assert train_eval.scene_indices.tolist() == list(range(512))
    assert official_split(root, "train", **kwargs).scene_indices.tolist() == [512, 513]
    val = official_split(root, "validation", **kwargs)
    assert val.split == "val" and val.num_objects.tolist() == [5, 8]
    assert official_split(root, "validation", max_objects=6, **kwargs).num_objects.tolist() == [5]
    assert dict(OFFICIAL_SPLITS["validation"]) == {"split": "val"}
    with pytest.raises(ValueError, match="name must be one of train_eval, train, validation, got 'test'"):
        official_split(root, "test")


# --- reader errors ---------------------------------------------------------------------------------------------------


def test_missing_root_split_or_scenes_file_is_named(tmp_path, fresh_tree):
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'}: no such CLEVR v1.0 directory"):
        ClevrV1(tmp_path / "nope", "train")
    with pytest.raises(DataError, match=r"images/val: no such image directory \(split 'val'\)"):
        ClevrV1(fresh_tree, "val")
    (fresh_tree / "images" / "test").mkdir()
    with pytest.raises(DataError, match=r"CLEVR_test_scenes.json: no such scenes file \(split 'test'"):
        ClevrV1(fresh_tree, "test")


def test_unreadable_scenes_json_is_named(fresh_tree):
    scenes_json(fresh_tree).write_text('{"scenes": [')
    with pytest.raises(DataError, match=r"CLEVR_train_scenes.json: not readable JSON"):
        ClevrV1(fresh_tree, "train", task="set_prediction", frame_size=(6, 8))
    # found while fuzzing the readers: json.loads raises plain ValueError for an int of over 4300 digits and
    # RecursionError for deep nesting, neither of them a JSONDecodeError
    scenes_json(fresh_tree).write_text('{"scenes": [' + "1" * 5000 + "]}")
    with pytest.raises(DataError, match=r"CLEVR_train_scenes.json: not readable JSON \(ValueError: Exceeds the limit"):
        ClevrV1(fresh_tree, "train", task="set_prediction", frame_size=(6, 8))
    scenes_json(fresh_tree).write_text('{"scenes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DataError, match=r"CLEVR_train_scenes.json: not readable JSON \(RecursionError"):
        ClevrV1(fresh_tree, "train", task="set_prediction", frame_size=(6, 8))
    scenes_json(fresh_tree).write_text('{"images": []}')
    with pytest.raises(DataError, match=r"CLEVR_train_scenes.json: expected \{\"scenes\": \[...\]\}"):
        ClevrV1(fresh_tree, "train", task="set_prediction", frame_size=(6, 8))


def test_image_filename_too_long_for_the_file_system_is_a_data_error(fresh_tree):
    # found while fuzzing the readers: Path.is_file raised OSError (ENAMETOOLONG) instead of returning False
    data = json.loads(scenes_json(fresh_tree).read_text())
    data["scenes"][1]["image_filename"] = "x" * 300 + ".png"
    scenes_json(fresh_tree).write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"CLEVR_train_scenes.json: scene 1: 'image_filename' 'xxxx.*is not a usable file name"):
        ClevrV1(fresh_tree, "train", task="set_prediction", frame_size=(6, 8))


def test_scene_referencing_a_missing_image_names_scene_and_path(fresh_tree):
    missing = fresh_tree / "images" / "train" / "CLEVR_train_000001.png"
    missing.unlink()
    with pytest.raises(DataError, match=rf"CLEVR_train_scenes.json: scene 1 references {missing}, which does not"):
        ClevrV1(fresh_tree, "train", task="set_prediction", frame_size=(6, 8))


def test_unknown_property_value_names_scene_object_key_value_and_choices(fresh_tree):
    def edit(scenes):
        scenes[2]["objects"][4]["material"] = "glass"

    edit_scenes(fresh_tree, edit)
    with pytest.raises(
        DataError,
        match=r"CLEVR_train_scenes.json: scene 2, object 4: 'material' is 'glass', expected one of rubber, metal",
    ):
        ClevrV1(fresh_tree, "train", task="set_prediction", frame_size=(6, 8))


def test_undecodable_png_names_the_file(fresh_tree):
    ds = ClevrV1(fresh_tree, "train", task="set_prediction", frame_size=(6, 8))
    path = fresh_tree / "images" / "train" / "CLEVR_train_000001.png"
    path.write_bytes(path.read_bytes()[:40])  # truncated
    ds[0]  # the others still read
    with pytest.raises(DataError, match=rf"{path}: not a decodable image"):
        ds[1]
    path.write_bytes(b"")
    with pytest.raises(DataError, match=rf"{path}: not a decodable image"):
        ds.batch([1])


def test_wrong_image_size_names_the_file_expected_and_found(fresh_tree):
    path = fresh_tree / "images" / "train" / "CLEVR_train_000002.png"
    Image.fromarray(np.zeros((6, 9, 4), np.uint8), "RGBA").save(path)
    ds = ClevrV1(fresh_tree, "train", task="set_prediction", frame_size=(6, 8))
    with pytest.raises(DataError, match=rf"{path}: expected a 8x6 \(WxH\) frame, found 9x6"):
        ds[2]
    Image.fromarray(np.zeros((6, 8), np.uint8), "L").save(path)
    with pytest.raises(DataError, match=rf"{path}: expected an 8-bit RGB or RGBA image, found PIL mode 'L'"):
        ds[2]


def test_bad_arguments_are_value_errors(fresh_tree):
    with pytest.raises(ValueError, match="task must be one of object_discovery, set_prediction, got 'detect'"):
        ClevrV1(fresh_tree, "train", task="detect")
    with pytest.raises(ValueError, match=r"max_objects must be an int in 1..10, got 11"):
        ClevrV1(fresh_tree, "train", max_objects=11)
    with pytest.raises(ValueError, match="first must be None or a non-negative int, got -1"):
        ClevrV1(fresh_tree, "train", task="set_prediction", first=-1, frame_size=(6, 8))
    with pytest.raises(ValueError, match=r"crop rows 29:221, columns 64:256 do not fit a 6x8 \(HxW\) frame"):
        ClevrV1(fresh_tree, "train", frame_size=(6, 8))  # object_discovery's crop needs a full-size frame


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), keep=st.integers(0, 120))
def test_random_or_truncated_files_decode_or_raise_data_error(tmp_path, data, keep):
    png = tmp_path / "rnd.png"
    if not png.exists() or keep % 2:
        Image.fromarray(np.full((6, 8, 4), 200, np.uint8), "RGBA").save(tmp_path / "ok.png")
        png.write_bytes((tmp_path / "ok.png").read_bytes()[:keep] + data)
    try:
        image = load_clevr_png(png, frame_size=(6, 8))
    except DataError as err:
        assert str(png) in str(err)
    else:
        assert image.shape == (6, 8, 3) and image.dtype == np.uint8


# --- conversion to a store -------------------------------------------------------------------------------------------


def test_convert_writes_the_task_images_within_one_level_of_the_official_input(tree, tmp_path):
    root, _ = tree
    calls = []
    store = convert_clevr(root, "train", tmp_path / "clevr6", chunk_size=2, progress=calls.append)
    assert store.name == "clevr6" and len(store) == 3 and calls == [2, 1]
    assert store.arrays["image"].shape == (3, 128, 128, 3) and store.arrays["image"].dtype == np.uint8
    assert store.arrays["target"].shape == (3, 10, 19) and store.arrays["target"].dtype == np.float32
    assert store.arrays["num_objects"].tolist() == [3, 6, 4]
    assert store.arrays["image_index"].tolist() == [0, 2, 4]
    source = store.meta["source"]
    assert source["crop"] == [29, 221, 64, 256] and source["max_objects"] == 6 and source["task"] == "object_discovery"

    ds = ClevrV1(root, "train")
    official = ds.batch([0, 1, 2])
    np.testing.assert_array_equal(store.arrays["target"], official["target"].numpy())
    model_input = to_model_batch({"image": np.asarray(store.arrays["image"])})["image"]
    error = (model_input - official["image"]).abs().max().item()
    assert error <= 1 / 255 + 1e-6  # rounding to the nearest of 256 levels: at most half a step of 2/255
    assert error > 0  # the store is quantised, not the float input
    reopened = open_store(tmp_path / "clevr6")
    np.testing.assert_array_equal(reopened.arrays["image"], store.arrays["image"])


def test_convert_set_prediction_and_an_empty_selection(tree, tmp_path):
    root, _ = tree
    store = convert_clevr(root, "train", tmp_path / "clevr", task="set_prediction", skip=1, first=3)
    assert store.name == "clevr" and store.arrays["image_index"].tolist() == [1, 2, 3]
    assert store.meta["source"]["crop"] is None
    with pytest.raises(DataError, match=r"no scene with <= 6 objects \(skip=3, first=1\); nothing to convert"):
        convert_clevr(root, "train", tmp_path / "none", skip=3, first=1)
    assert not (tmp_path / "none").exists()
