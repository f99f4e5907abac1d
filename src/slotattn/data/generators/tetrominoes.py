"""Tetrominoes generator: scenes with the specification of DeepMind's multi_object_datasets ``tetrominoes``.

The original TFRecords (Kabra et al. 2019, introduced as "Tetris" in IODINE, Greff et al. 2019) cannot be
downloaded here, so this module samples scenes of the same format, feature for feature.

What this follows, and from where:

* Feature names, dtypes and shapes: the official reader google-deepmind/multi_object_datasets ``tetrominoes.py``
  (``IMAGE_SIZE = [35, 35]``, ``MAX_NUM_ENTITIES = 4``): ``image`` uint8 [35, 35, 3], ``mask`` uint8
  [4, 35, 35, 1], ``x``, ``y``, ``shape``, ``visibility`` float32 [4], ``color`` float32 [4, 3]. Entity 0 is the
  background, entities 1-3 the objects (README: "the first true group contains all background pixels").
* Three tetrominoes per 35x35 image, six colours (red, green, blue, yellow, magenta, cyan): the
  multi_object_datasets README.
* Mask values are 0/255: third-party loaders of the original files threshold them with ``mask == 255``.
* ``color`` is a binary RGB triple (red = (1, 0, 0), cyan = (0, 1, 1), ...): third-party loaders map it to an
  integer with ``r*4 + g*2 + b`` or a ``{"1-0-0": 0, "0-1-0": 1, ...}`` table. The background's row is (0, 0, 0).
* ``shape`` codes objects from 1 (loaders use ``shape - 1`` as the object's class), 0 for the background.
* **19 shapes, not 17.** The README and IODINE say "17 unique shapes/orientations", but issue #10 of
  multi_object_datasets ("wrong number of tetrominoes shapes") reports 19 in the data, which is the number of
  fixed tetrominoes (7 pieces with their distinct 90-degree rotations: I 2, O 1, T 4, S 2, Z 2, J 4, L 4), and a
  third-party loader lists the shape values 0..19 (background + 19). No source says which two of the 19 would
  be left out, so :data:`TETROMINO_SHAPES` holds all 19.

What could not be verified (no access to the files or the generator): the block size (5 px here, so the
largest piece spans 20 of 35 px), the code-to-shape mapping (ours is the order of :data:`TETROMINO_SHAPES`),
whether positions are pixel- or block-aligned (pixel-aligned here), what ``x``/``y`` measure (here the column
and row of the piece's bounding-box top-left corner; a third-party loader lists the values 0..29, which matches
``x ~ U{0, 35 - width - 1}`` for the 5-px-wide vertical I), whether pieces may touch (allowed here; they never
overlap), whether two pieces may share a colour (allowed: colours are drawn independently), any shading inside
blocks (flat colours here), and ``visibility`` of the background entity (1 here).

Speed (one CPU core of an AMD EPYC dev container, numpy 2.4, sustained over ~20k images): about 20,000
images/s in batches of 64 and 50,000 images/s in chunks of 4096, i.e. a 64-image training batch in ~3 ms,
far above what a training step consumes.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "BLOCK_SIZE",
    "COLORS",
    "COLOR_NAMES",
    "IMAGE_SIZE",
    "MAX_NUM_ENTITIES",
    "NUM_OBJECTS",
    "TETROMINO_SHAPES",
    "generate_tetrominoes",
]

IMAGE_SIZE = 35  # official IMAGE_SIZE = [35, 35]
MAX_NUM_ENTITIES = 4  # official: background + 3 objects
NUM_OBJECTS = 3  # README: "each 35x35 image contains three tetrominoes"
BLOCK_SIZE = 5  # pixels per tetromino block (not verified against the original files)

# The 19 fixed tetrominoes as (row, col) block offsets, top-left aligned. shape code = index + 1 (0 = background).
TETROMINO_SHAPES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 0), (0, 1), (0, 2), (0, 3)),  # I horizontal
    ((0, 0), (1, 0), (2, 0), (3, 0)),  # I vertical
    ((0, 0), (0, 1), (1, 0), (1, 1)),  # O
    ((0, 0), (0, 1), (0, 2), (1, 1)),  # T pointing down
    ((0, 1), (1, 0), (1, 1), (2, 1)),  # T pointing left
    ((0, 1), (1, 0), (1, 1), (1, 2)),  # T pointing up
    ((0, 0), (1, 0), (1, 1), (2, 0)),  # T pointing right
    ((0, 1), (0, 2), (1, 0), (1, 1)),  # S horizontal
    ((0, 0), (1, 0), (1, 1), (2, 1)),  # S vertical
    ((0, 0), (0, 1), (1, 1), (1, 2)),  # Z horizontal
    ((0, 1), (1, 0), (1, 1), (2, 0)),  # Z vertical
    ((0, 0), (1, 0), (1, 1), (1, 2)),  # J
    ((0, 0), (0, 1), (1, 0), (2, 0)),  # J rotated 90 degrees clockwise
    ((0, 0), (0, 1), (0, 2), (1, 2)),  # J rotated 180 degrees
    ((0, 1), (1, 1), (2, 0), (2, 1)),  # J rotated 270 degrees
    ((0, 2), (1, 0), (1, 1), (1, 2)),  # L
    ((0, 0), (1, 0), (2, 0), (2, 1)),  # L rotated 90 degrees clockwise
    ((0, 0), (0, 1), (0, 2), (1, 0)),  # L rotated 180 degrees
    ((0, 0), (0, 1), (1, 1), (2, 1)),  # L rotated 270 degrees
)

# README order; stored in ``color`` as binary RGB, rendered as 255 * colour.
COLOR_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (255, 0, 255),
    (0, 255, 255),
)

_SHAPE_FIT_ROUNDS = 100  # rejection rounds that move only the position before the shape is redrawn too
_MAX_ROUNDS = 10_000  # a scene that still has no free spot is a bug, not bad luck


def _shape_windows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-shape pixel windows, and bounding-box heights and widths [S] in pixels.

    ``windows[s, 35 - y, 35 - x]`` is the [35, 35] bool mask of shape ``s`` with its top-left corner at column
    ``x``, row ``y``: a read-only strided view into one padded template per shape, so rasterising a batch is a
    single gather instead of per-pixel index arithmetic.
    """
    num_shapes = len(TETROMINO_SHAPES)
    padded = np.zeros((num_shapes, 2 * IMAGE_SIZE, 2 * IMAGE_SIZE), dtype=bool)
    heights = np.zeros(num_shapes, dtype=np.int64)
    widths = np.zeros(num_shapes, dtype=np.int64)
    for s, blocks in enumerate(TETROMINO_SHAPES):
        for r, c in blocks:
            r0, c0 = IMAGE_SIZE + r * BLOCK_SIZE, IMAGE_SIZE + c * BLOCK_SIZE
            padded[s, r0 : r0 + BLOCK_SIZE, c0 : c0 + BLOCK_SIZE] = True
        heights[s] = (max(r for r, _ in blocks) + 1) * BLOCK_SIZE
        widths[s] = (max(c for _, c in blocks) + 1) * BLOCK_SIZE
    windows = sliding_window_view(padded, (IMAGE_SIZE, IMAGE_SIZE), axis=(1, 2))  # (S, 36, 36, H, W)
    return windows, heights, widths


def generate_tetrominoes(num: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sample ``num`` Tetrominoes scenes in the official multi_object_datasets layout.

    Each scene has three non-overlapping tetrominoes on a black background. A piece's shape (one of the 19 in
    :data:`TETROMINO_SHAPES`) and colour (one of :data:`COLORS`) are uniform and independent. Its top-left
    corner is uniform over the columns ``0 .. 35 - width - 1`` and rows ``0 .. 35 - height - 1``; a piece that
    would overlap an earlier one of its scene is moved again (rejection sampling, vectorised over the scenes
    still rejected). The output is a deterministic function of the state of ``rng``.

    Args:
        num: number of scenes, at least 1.
        rng: the only source of randomness; advanced by the call.

    Returns:
        Arrays with a leading ``num`` axis, keyed as the official reader. Entity 0 is the background:
        ``image`` uint8 [num, 35, 35, 3], black background, each piece drawn in its flat colour;
        ``mask`` uint8 [num, 4, 35, 35, 1], 255 where the entity is, else 0, one entity per pixel;
        ``x``, ``y`` float32 [num, 4]: column and row (pixels) of each piece's bounding-box top-left corner, 0 for
        the background; ``shape`` float32 [num, 4]: 1 + index into :data:`TETROMINO_SHAPES`, 0 for the
        background; ``color`` float32 [num, 4, 3]: binary RGB (red = (1, 0, 0)), zeros for the background;
        ``visibility`` float32 [num, 4]: all ones (every entity is present and unoccluded).

    Raises:
        ValueError: ``num`` is not a positive integer.
        TypeError: ``rng`` is not a ``numpy.random.Generator`` (the global RNG is never used).
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"generate_tetrominoes: num must be a positive integer, got {num!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"generate_tetrominoes: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    num = int(num)
    windows, heights, widths = _shape_windows()

    shape_idx = np.zeros((num, NUM_OBJECTS), dtype=np.int64)
    color_idx = rng.integers(0, len(COLORS), size=(num, NUM_OBJECTS))
    xs = np.zeros((num, NUM_OBJECTS), dtype=np.int64)
    ys = np.zeros((num, NUM_OBJECTS), dtype=np.int64)
    ids = np.zeros((num, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)  # entity per pixel, 0 = background

    for k in range(1, NUM_OBJECTS + 1):
        todo = np.arange(num)  # scenes whose piece k is not placed yet
        shape_k = rng.integers(0, len(TETROMINO_SHAPES), size=num)
        for round_ in range(_MAX_ROUNDS):
            if round_ >= _SHAPE_FIT_ROUNDS:  # practically never: redraw the shape as well, so no scene gets stuck
                shape_k[todo] = rng.integers(0, len(TETROMINO_SHAPES), size=todo.size)
            s = shape_k[todo]
            # numpy's exclusive upper bound: x in 0 .. 35 - width - 1 (see the module docstring)
            x = rng.integers(0, IMAGE_SIZE - widths[s])
            y = rng.integers(0, IMAGE_SIZE - heights[s])
            m = windows[s, IMAGE_SIZE - y, IMAGE_SIZE - x]  # (n, H, W) bool
            ok = ~(m & (ids[todo] != 0)).any(axis=(1, 2))  # no pixel shared with an earlier piece
            done = todo[ok]
            shape_idx[done, k - 1], xs[done, k - 1], ys[done, k - 1] = s[ok], x[ok], y[ok]
            ids[done] += m[ok].view(np.uint8) * np.uint8(k)  # free pixels are 0, so += writes k exactly
            todo = todo[~ok]
            if todo.size == 0:
                break
        else:  # pragma: no cover - unreachable with three pieces in 35x35
            raise RuntimeError(f"generate_tetrominoes: no free spot for piece {k} after {_MAX_ROUNDS} rounds")

    # per-scene palette: row 0 black background, rows 1-3 the pieces' colours; image = palette[ids]
    palette = np.zeros((num, MAX_NUM_ENTITIES, 3), dtype=np.uint8)
    palette[:, 1:] = np.asarray(COLORS, dtype=np.uint8)[color_idx]
    flat_ids = ids.astype(np.intp) + (MAX_NUM_ENTITIES * np.arange(num))[:, None, None]  # (num, H, W)
    image = np.take(palette.reshape(-1, 3), flat_ids, axis=0)  # (num, H, W, 3)

    mask = (ids[:, None] == np.arange(MAX_NUM_ENTITIES, dtype=np.uint8)[None, :, None, None]).view(np.uint8)
    mask *= np.uint8(255)  # 0/255 as in the original files
    zero = np.zeros((num, 1), dtype=np.float32)
    colors01 = np.asarray(COLORS, dtype=np.float32) / 255.0  # (6, 3) binary RGB
    return {
        "image": image,
        "mask": mask[..., None],  # (num, 4, H, W, 1)
        "x": np.concatenate([zero, xs.astype(np.float32)], axis=1),
        "y": np.concatenate([zero, ys.astype(np.float32)], axis=1),
        "shape": np.concatenate([zero, (shape_idx + 1).astype(np.float32)], axis=1),
        "color": np.concatenate([np.zeros((num, 1, 3), np.float32), colors01[color_idx]], axis=1),
        "visibility": np.ones((num, MAX_NUM_ENTITIES), dtype=np.float32),
    }
