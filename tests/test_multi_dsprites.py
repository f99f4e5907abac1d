"""Multi-dSprites generator: official layout per variant, determinism, scene invariants, geometry vs an oracle."""

import colorsys

import numpy as np
import pytest
from matplotlib.path import Path

from slotattn.data.generators.multi_dsprites import (
    MIN_VISIBLE_PIXELS,
    SCALES,
    SPRITE_SIZE,
    VARIANTS,
    _hsv_to_rgb,
    generate_multi_dsprites,
)

# google-deepmind/multi_object_datasets multi_dsprites.py: IMAGE_SIZE = [64, 64],
# MAX_NUM_ENTITIES_DICT = {'binarized': 4, 'colored_on_grayscale': 6, 'colored_on_colored': 5},
# num_channels = 1 if dataset_variant == 'binarized' else 3; 'image' [64, 64, C] and 'mask' [M, 64, 64, 1] decoded
# to uint8, every other feature tf.float32: x, y, shape, visibility, orientation, scale [M], color [M, C].
OFFICIAL_M_C = {"binarized": (4, 1), "colored_on_grayscale": (6, 3), "colored_on_colored": (5, 3)}


def official_spec(variant):
    m, c = OFFICIAL_M_C[variant]
    return {
        "image": (np.uint8, (64, 64, c)),
        "mask": (np.uint8, (m, 64, 64, 1)),
        "x": (np.float32, (m,)),
        "y": (np.float32, (m,)),
        "shape": (np.float32, (m,)),
        "color": (np.float32, (m, c)),
        "visibility": (np.float32, (m,)),
        "orientation": (np.float32, (m,)),
        "scale": (np.float32, (m,)),
    }


# multi_object_datasets README: binarized "2-3 white sprites", colored_on_grayscale "2-5 ... sprites",
# colored_on_colored "1-4 sprites"
README_COUNTS = {"binarized": (2, 3), "colored_on_grayscale": (2, 5), "colored_on_colored": (1, 4)}

ALL_VARIANTS = pytest.mark.parametrize("variant", sorted(OFFICIAL_M_C))


@pytest.fixture(scope="module")
def scenes():
    return {v: generate_multi_dsprites(1500, np.random.default_rng(2024), v) for v in OFFICIAL_M_C}


def _ids(scene):
    """Entity id per pixel [N, H, W] from the 0/255 masks (argmax; partition checked separately)."""
    return scene["mask"][..., 0].argmax(axis=1)


def test_variants_table_is_the_official_one():
    assert set(VARIANTS) == set(OFFICIAL_M_C)
    for name, spec in VARIANTS.items():
        assert (spec.max_num_entities, spec.num_channels) == OFFICIAL_M_C[name]
        assert (spec.min_objects, spec.max_objects) == README_COUNTS[name]


@ALL_VARIANTS
def test_keys_dtypes_and_shapes_are_the_official_readers(variant):
    out = generate_multi_dsprites(5, np.random.default_rng(0), variant)
    spec = official_spec(variant)
    assert set(out) == set(spec)
    for key, (dtype, shape) in spec.items():
        assert out[key].dtype == dtype, key
        assert out[key].shape == (5, *shape), key


def test_default_variant_is_slot_attentions():
    out = generate_multi_dsprites(2, np.random.default_rng(0))
    assert out["mask"].shape[1] == 6 and out["image"].shape[-1] == 3


@ALL_VARIANTS
def test_same_seed_gives_identical_scenes(variant):
    a = generate_multi_dsprites(40, np.random.default_rng(7), variant)
    b = generate_multi_dsprites(40, np.random.default_rng(7), variant)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@ALL_VARIANTS
def test_different_seeds_give_different_scenes(variant):
    a = generate_multi_dsprites(20, np.random.default_rng(0), variant)
    b = generate_multi_dsprites(20, np.random.default_rng(1), variant)
    assert (a["image"] != b["image"]).any(axis=(1, 2, 3)).sum() >= 19


def test_global_numpy_rng_is_untouched():
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    generate_multi_dsprites(10, np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@ALL_VARIANTS
def test_masks_partition_the_pixels(scenes, variant):
    mask = scenes[variant]["mask"]
    assert set(np.unique(mask)) == {0, 255}  # binary 0/255, as in the original files
    np.testing.assert_array_equal((mask[..., 0] > 0).sum(axis=1), 1)  # each pixel in exactly one entity


@ALL_VARIANTS
def test_object_count_is_in_the_readme_range_and_every_count_occurs(scenes, variant):
    lo, hi = README_COUNTS[variant]
    vis = scenes[variant]["visibility"]
    assert set(np.unique(vis)) <= {0.0, 1.0}
    np.testing.assert_array_equal(vis[:, 0], 1.0)  # background
    counts = vis[:, 1:].sum(axis=1).astype(int)
    assert set(np.unique(counts)) == set(range(lo, hi + 1))
    # objects fill slots 1..n, empty slots follow
    np.testing.assert_array_equal(vis[:, 1:], (np.arange(hi) < counts[:, None]).astype(np.float32))
    freq = np.bincount(counts, minlength=hi + 1)[lo:]
    expected = len(counts) / (hi - lo + 1)  # uniform; binomial sd < 22 here
    assert np.all(np.abs(freq - expected) < 6 * np.sqrt(expected)), freq


@ALL_VARIANTS
def test_visibility_matches_nonempty_masks(scenes, variant):
    scene = scenes[variant]
    pixels = (scene["mask"][..., 0] > 0).sum(axis=(2, 3))  # (N, M)
    np.testing.assert_array_equal(pixels > 0, scene["visibility"] > 0)
    present = scene["visibility"][:, 1:] > 0
    assert (pixels[:, 1:][present] >= MIN_VISIBLE_PIXELS).all()  # no listed sprite is (nearly) hidden
    empty = ~np.concatenate([np.ones_like(present[:, :1]), present], axis=1)
    for key in ("x", "y", "shape", "scale", "orientation", "visibility"):
        assert (scene[key][empty] == 0).all(), key
    assert (scene["color"][empty] == 0).all()


@ALL_VARIANTS
def test_masks_agree_with_image_and_color(scenes, variant):
    scene = scenes[variant]
    image, ids, color = scene["image"], _ids(scene), scene["color"]
    assert ((color >= 0) & (color <= 1)).all()
    np.testing.assert_allclose(255 * color, np.rint(255 * color), atol=1e-3)  # color is exactly pixel value / 255
    n = np.arange(len(image))[:, None, None]
    expected = np.rint(255 * color).astype(np.uint8)[n, ids]  # (N, H, W, C): each pixel its entity's colour
    np.testing.assert_array_equal(image, expected)


def test_binarized_is_white_sprites_on_black(scenes):
    scene = scenes["binarized"]
    assert set(np.unique(scene["image"])) == {0, 255}
    background = _ids(scene) == 0
    assert (scene["image"][..., 0][background] == 0).all()
    assert (scene["image"][..., 0][~background] == 255).all()
    np.testing.assert_array_equal(scene["color"][..., 0], scene["visibility"] * (np.arange(4) > 0))


def test_colored_on_grayscale_background_is_gray_and_sprites_are_not(scenes):
    scene = scenes["colored_on_grayscale"]
    image, ids = scene["image"].astype(int), _ids(scene)
    bg = image[ids == 0]  # (P, 3)
    assert (bg[:, 0] == bg[:, 1]).all() and (bg[:, 1] == bg[:, 2]).all()
    assert bg[:, 0].min() < 30 and bg[:, 0].max() > 225  # grey level spans the range
    rgb = scene["color"][:, 1:][scene["visibility"][:, 1:] > 0]  # (S, 3) sprite colours
    value, chroma = rgb.max(axis=1), np.ptp(rgb, axis=1)
    tol = 1 / 255  # colours are quantised to uint8
    assert (value >= 0.5 - tol).all()  # HSV value >= 0.5
    assert (chroma / value >= 0.5 - 2 * tol).all()  # HSV saturation >= 0.5: never grey
    assert np.ptp(np.array([colorsys.rgb_to_hsv(*c)[0] for c in rgb[:500]])) > 0.9  # hues all round the circle


def test_colored_on_colored_background_is_colored(scenes):
    scene = scenes["colored_on_colored"]
    bg = scene["color"][:, 0]  # (N, 3)
    assert (np.ptp(bg, axis=1) > 0.2).mean() > 0.5  # most backgrounds are far from grey
    np.testing.assert_array_equal(scene["image"][:, 0, 0], np.rint(255 * bg).astype(np.uint8)[:, :])


@ALL_VARIANTS
def test_features_take_the_documented_values(scenes, variant):
    scene = scenes[variant]
    present = scene["visibility"][:, 1:] > 0
    shape, scale = scene["shape"][:, 1:][present], scene["scale"][:, 1:][present]
    assert set(np.unique(shape)) == {1.0, 2.0, 3.0}  # square, ellipse, heart
    np.testing.assert_allclose(np.unique(scale), np.linspace(0.5, 1.0, 6), rtol=1e-6)
    np.testing.assert_allclose(SCALES, np.linspace(0.5, 1.0, 6))
    for key, high in (("x", 1.0), ("y", 1.0), ("orientation", 2 * np.pi)):
        values = scene[key][:, 1:][present]
        assert values.min() >= 0 and values.max() <= high, key
        assert values.min() < 0.02 * high and values.max() > 0.98 * high, key  # the whole range is used
    for key in ("x", "y", "shape", "scale", "orientation"):
        assert (scene[key][:, 0] == 0).all(), key  # background carries no sprite features


# --- geometry: a plain per-pixel rasteriser written from the documented conventions ----------------------------


def _heart_path(size):
    """The dsprites-dataset issue #2 heart, width `size`, centred on its bounding box, upright (y down)."""
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    hx = 16 * np.sin(t) ** 3
    hy = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    hx, hy = hx - (hx.min() + hx.max()) / 2, hy - (hy.min() + hy.max()) / 2
    return Path(np.stack([hx, hy], axis=1) * size / 32.0)


def _oracle_ids(scene, n):
    """Paint scene n sprite by sprite, in slot order, testing each pixel centre in float64."""
    rows, cols = np.mgrid[0:64, 0:64] + 0.5
    ids = np.zeros((64, 64), dtype=int)
    for k in range(1, scene["mask"].shape[1]):
        if scene["visibility"][n, k] == 0:
            continue
        cx, cy = 16 + 32 * float(scene["x"][n, k]), 16 + 32 * float(scene["y"][n, k])
        theta, size = float(scene["orientation"][n, k]), SPRITE_SIZE * float(scene["scale"][n, k])
        # sprite frame: undo a clockwise (y-down) rotation by theta
        u = (np.cos(theta) * (cols - cx) + np.sin(theta) * (rows - cy)) / size
        v = (np.cos(theta) * (rows - cy) - np.sin(theta) * (cols - cx)) / size
        code = int(scene["shape"][n, k])
        if code == 1:
            inside = (np.abs(u) <= 0.5) & (np.abs(v) <= 0.5)
        elif code == 2:
            inside = (u / 0.5) ** 2 + (v / 0.25) ** 2 <= 1
        else:
            inside = _heart_path(1.0).contains_points(np.stack([u.ravel(), v.ravel()], 1)).reshape(64, 64)
        ids[inside] = k
    return ids


def test_scenes_match_a_per_pixel_oracle(scenes):
    scene = scenes["colored_on_grayscale"]
    ids = _ids(scene)
    wrong = [int((ids[n] != _oracle_ids(scene, n)).sum()) for n in range(60)]
    # the generator works in float32 and follows the heart's outline through 4096 vertices, so a pixel centre
    # within ~1e-5 px of an outline could flip; none does with this seed
    assert max(wrong) <= 1 and sum(wrong) <= 3, wrong


def test_topmost_sprite_has_its_full_area_and_sits_at_its_position(scenes):
    scene = scenes["colored_on_colored"]
    masks = scene["mask"][..., 0] > 0
    top = scene["visibility"][:, 1:].sum(axis=1).astype(int)  # last painted slot, never occluded
    area_per_unit = {1: 1.0, 2: np.pi / 8, 3: 0.5522}  # square, ellipse 1 x 1/2, heart (shoelace on the curve)
    for n in range(300):
        k = top[n]
        code, size = int(scene["shape"][n, k]), SPRITE_SIZE * float(scene["scale"][n, k])
        rr, cc = np.nonzero(masks[n, k])
        area = area_per_unit[code] * size**2
        assert abs(rr.size - area) <= 2.0 * size + 4, (n, code, rr.size, area)  # ~ perimeter-sized raster error
        if code in (1, 2):  # point-symmetric: the pixel centroid is the sprite centre
            assert abs(cc.mean() + 0.5 - (16 + 32 * scene["x"][n, k])) < 0.6
            assert abs(rr.mean() + 0.5 - (16 + 32 * scene["y"][n, k])) < 0.6
        cx, cy = 16 + 32 * scene["x"][n, k], 16 + 32 * scene["y"][n, k]
        assert np.hypot(cc + 0.5 - cx, rr + 0.5 - cy).max() <= size * np.sqrt(0.5) + 1e-3  # inside the circle


def test_rasterising_window_holds_any_sprite_and_stays_on_the_canvas():
    from slotattn.data.generators import multi_dsprites as md

    assert md._WINDOW_RADIUS - 0.5 >= SPRITE_SIZE * np.sqrt(0.5)  # the largest sprite's circumscribed circle
    assert md._CENTRE_LOW - md._WINDOW_RADIUS >= 0  # x = 0
    assert md._CENTRE_LOW + md._CENTRE_SPAN + md._WINDOW_RADIUS <= md.IMAGE_SIZE - 1  # x -> 1: floor(cx) <= 47


def test_hsv_to_rgb_matches_colorsys():
    hsv = np.random.default_rng(3).uniform(size=(500, 3))
    ours = _hsv_to_rgb(hsv[:, 0], hsv[:, 1], hsv[:, 2])
    expected = np.array([colorsys.hsv_to_rgb(*c) for c in hsv])
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_single_scene_and_invalid_arguments():
    assert generate_multi_dsprites(1, np.random.default_rng(0))["image"].shape == (1, 64, 64, 3)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="num must be a positive integer"):
            generate_multi_dsprites(bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="variant must be one of"):
        generate_multi_dsprites(2, np.random.default_rng(0), "colored")
    with pytest.raises(TypeError):  # TypeError from the function, or jaxtyping's TypeCheckError under the hook
        generate_multi_dsprites(3, None)


def test_max_objects_draws_scenes_with_more_sprites_and_one_mask_per_entity():
    data = generate_multi_dsprites(64, np.random.default_rng(0), max_objects=9)
    assert data["mask"].shape == (64, 10, 64, 64, 1) and data["visibility"].shape == (64, 10)
    counts = data["visibility"].sum(axis=1) - 1  # sprites, background excluded
    assert counts.min() >= 2 and counts.max() == 9 and counts.max() > 5
    assert ((data["mask"] == 255).sum(axis=1) == 1).all()  # still exactly one entity per pixel
    with pytest.raises(ValueError, match=r"max_objects must be an int >= 2"):
        generate_multi_dsprites(4, np.random.default_rng(0), max_objects=1)


def test_max_objects_is_refused_for_a_generator_that_cannot_change_it():
    from slotattn.data.build import generator_for
    from slotattn.data.errors import DataError

    assert generator_for("tetrominoes", None, 3) is generator_for("tetrominoes")  # its own number: fine
    with pytest.raises(DataError, match=r"data.max_objects=5: the 'tetrominoes' generator draws 3 objects at most"):
        generator_for("tetrominoes", None, 5)
    with pytest.raises(DataError, match=r"multi_dsprites \(up to 10\)"):
        generator_for("multi_dsprites", None, 11)
