"""Tetrominoes generator: official layout, determinism, scene invariants, shape/colour coverage."""

import itertools

import numpy as np
import pytest

from slotattn.data.generators.tetrominoes import (
    BLOCK_SIZE,
    COLORS,
    TETROMINO_SHAPES,
    generate_tetrominoes,
)

# google-deepmind/multi_object_datasets tetrominoes.py: IMAGE_SIZE = [35, 35], MAX_NUM_ENTITIES = 4
OFFICIAL_SPEC = {
    "image": (np.uint8, (35, 35, 3)),
    "mask": (np.uint8, (4, 35, 35, 1)),
    "x": (np.float32, (4,)),
    "y": (np.float32, (4,)),
    "shape": (np.float32, (4,)),
    "color": (np.float32, (4, 3)),
    "visibility": (np.float32, (4,)),
}


@pytest.fixture(scope="module")
def scenes():
    return generate_tetrominoes(3000, np.random.default_rng(1234))


def _normalise(cells):
    rows, cols = zip(*cells)
    return frozenset((r - min(rows), c - min(cols)) for r, c in cells)


def _all_fixed_tetrominoes():
    """Oracle: every connected 4-cell set in a 4x4 grid, up to translation (brute force over 1820 subsets)."""
    found = set()
    for cells in itertools.combinations(itertools.product(range(4), range(4)), 4):
        cells = set(cells)
        seen, todo = set(), [next(iter(cells))]
        while todo:
            r, c = todo.pop()
            if (r, c) in seen:
                continue
            seen.add((r, c))
            todo += [n for n in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if n in cells]
        if seen == cells:
            found.add(_normalise(cells))
    return found


def test_shapes_are_the_19_fixed_tetrominoes():
    shapes = [_normalise(s) for s in TETROMINO_SHAPES]
    assert all(len(s) == 4 for s in TETROMINO_SHAPES)
    assert len(set(shapes)) == len(shapes) == 19
    assert set(shapes) == _all_fixed_tetrominoes()
    assert all(frozenset(s) == _normalise(s) for s in TETROMINO_SHAPES)  # stored top-left aligned


def test_colors_are_the_six_readme_colors():
    # README: red, green, blue, yellow, magenta, cyan
    expected = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)]
    assert list(COLORS) == expected


def test_keys_dtypes_and_shapes_are_the_official_readers():
    out = generate_tetrominoes(5, np.random.default_rng(0))
    assert set(out) == set(OFFICIAL_SPEC)
    for key, (dtype, shape) in OFFICIAL_SPEC.items():
        assert out[key].dtype == dtype, key
        assert out[key].shape == (5, *shape), key


def test_same_seed_gives_identical_scenes():
    a = generate_tetrominoes(50, np.random.default_rng(7))
    b = generate_tetrominoes(50, np.random.default_rng(7))
    for key in OFFICIAL_SPEC:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_different_seeds_give_different_scenes():
    a = generate_tetrominoes(20, np.random.default_rng(0))
    b = generate_tetrominoes(20, np.random.default_rng(1))
    assert not np.array_equal(a["image"], b["image"])
    assert (a["image"] != b["image"]).any(axis=(1, 2, 3)).sum() >= 19  # nearly every scene differs


def test_global_numpy_rng_is_untouched():
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    generate_tetrominoes(10, np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_three_visible_objects_plus_background(scenes):
    np.testing.assert_array_equal(scenes["visibility"], 1.0)
    assert set(np.unique(scenes["mask"])) == {0, 255}  # binary 0/255, as in the original files
    pixels = (scenes["mask"][..., 0] > 0).sum(axis=(2, 3))  # (N, 4)
    np.testing.assert_array_equal(pixels[:, 1:], 4 * BLOCK_SIZE**2)  # each object: 4 full blocks
    assert (pixels[:, 0] == 35 * 35 - 3 * 4 * BLOCK_SIZE**2).all()  # the rest is background
    # background entity carries no object features
    np.testing.assert_array_equal(scenes["shape"][:, 0], 0)
    np.testing.assert_array_equal(scenes["color"][:, 0], 0)
    np.testing.assert_array_equal(scenes["x"][:, 0], 0)
    np.testing.assert_array_equal(scenes["y"][:, 0], 0)


def test_every_pixel_belongs_to_exactly_one_entity(scenes):
    # also rules out overlaps: two objects on one pixel would count 2
    np.testing.assert_array_equal((scenes["mask"][..., 0] > 0).sum(axis=1), 1)


def test_masks_agree_with_image_and_color(scenes):
    image, mask, color = scenes["image"], scenes["mask"][..., 0] > 0, scenes["color"]
    assert set(np.unique(color)) == {0.0, 1.0}  # binary RGB
    for k in range(1, 4):
        expected = (255 * color[:, k]).astype(np.uint8)[:, None, None, :]  # (N, 1, 1, 3)
        in_k = mask[:, k][..., None]  # (N, H, W, 1)
        assert (np.where(in_k, image == expected, True)).all(), f"object {k}: pixel colour != its colour"
    assert (image[mask[:, 0]] == 0).all()  # background pixels are black
    non_black = image.any(axis=-1)
    np.testing.assert_array_equal(non_black, ~mask[:, 0])  # every coloured pixel is in an object mask


def test_each_object_is_its_shape_scaled_by_the_block_size_at_x_y(scenes):
    for n in range(300):
        for k in range(1, 4):
            code, x, y = int(scenes["shape"][n, k]), int(scenes["x"][n, k]), int(scenes["y"][n, k])
            assert 1 <= code <= len(TETROMINO_SHAPES)
            blocks = np.zeros((4, 4), dtype=np.uint8)
            for r, c in TETROMINO_SHAPES[code - 1]:
                blocks[r, c] = 1
            pixels = np.kron(blocks, np.ones((BLOCK_SIZE, BLOCK_SIZE), dtype=np.uint8)).astype(bool)
            expected = np.zeros((35 + 20, 35 + 20), dtype=bool)
            expected[y : y + 20, x : x + 20] = pixels
            assert not expected[35:].any() and not expected[:, 35:].any(), "piece leaves the image"
            np.testing.assert_array_equal(scenes["mask"][n, k, :, :, 0] > 0, expected[:35, :35])


def test_all_shapes_and_colors_appear(scenes):
    assert set(np.unique(scenes["shape"][:, 1:])) == set(range(1, len(TETROMINO_SHAPES) + 1))
    rgb = {tuple(c) for c in (255 * scenes["color"][:, 1:].reshape(-1, 3)).astype(int).tolist()}
    assert rgb == set(COLORS)


def test_shape_and_color_frequencies_are_uniform(scenes):
    shape_counts = np.bincount(scenes["shape"][:, 1:].astype(int).ravel(), minlength=20)[1:]
    expected = 3 * 3000 / 19  # ~474, binomial sd ~21
    assert np.all(np.abs(shape_counts - expected) < 6 * np.sqrt(expected)), shape_counts


def test_positions_cover_the_documented_range(scenes):
    x, y = scenes["x"][:, 1:], scenes["y"][:, 1:]
    assert x.min() == 0 and y.min() == 0
    assert x.max() == 29 and y.max() == 29  # the 5-px-wide vertical I: x in 0 .. 35 - 5 - 1
    assert (x == np.round(x)).all() and (y == np.round(y)).all()


def test_single_scene_and_invalid_arguments():
    assert generate_tetrominoes(1, np.random.default_rng(0))["image"].shape == (1, 35, 35, 3)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="num must be a positive integer"):
            generate_tetrominoes(bad, np.random.default_rng(0))
    with pytest.raises(TypeError):  # TypeError from the function, or jaxtyping's TypeCheckError under the hook
        generate_tetrominoes(3, None)
