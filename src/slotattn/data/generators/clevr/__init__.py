"""CLEVR-like scene generator: CLEVR's sampling rules, a vectorised numpy ray caster, CLEVR v1.0 files and masks.

The original CLEVR renders (Blender/Cycles, facebookresearch/clevr-dataset-gen) cannot be made here, so this
package samples scenes with the rules of the official ``image_generation/render_images.py`` and renders them
with an analytic ray caster (:mod:`.geometry`, :mod:`.scene`, :mod:`.render`; docs/clevr_renderer.md lists
what differs from the real renders). Entry points:

* :func:`sample_scene` + :func:`render_scene`: one scene object, one (image, id map) pair.
* :func:`generate_clevr`: scenes as ``{"image", "mask", "scene"}`` records (scene = the official JSON record).
* :func:`generate_clevr_batch`: arrays in the layout of DeepMind's ``clevr_with_masks`` (multi_object_datasets
  ``clevr_with_masks.py``), for streaming training data.
* :func:`write_clevr_dataset`: the CLEVR v1.0 directory layout plus ``masks/``, parallel and deterministic.

Randomness: every scene is drawn from its own ``numpy.random.Generator``; :func:`write_clevr_dataset` derives it
from ``(seed, index)`` so the output does not depend on the number of workers.
"""

import json
import multiprocessing
from collections.abc import Callable, Iterator
from datetime import date as _date
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import UInt8
from PIL import Image

from slotattn.data.generators.clevr.render import DEFAULT_SHADING, Shading, visible_pixel_counts
from slotattn.data.generators.clevr.render import render as _render  # keeps `clevr.render` the module
from slotattn.data.generators.clevr.scene import (
    COLOR_NAMES,
    MATERIAL_NAMES,
    MIN_PIXELS_PER_OBJECT,
    SHAPE_NAMES,
    SIZE_NAMES,
    Scene,
    min_pixels_for,
    sample_layout,
    scene_struct,
)

__all__ = [
    "MAX_NUM_ENTITIES",
    "Scene",
    "Shading",
    "generate_clevr",
    "generate_clevr_batch",
    "render_scene",
    "sample_scene",
    "scene_rng",
    "write_clevr_dataset",
]

MAX_NUM_ENTITIES = 11  # clevr_with_masks.py: background + up to 10 objects
_LICENSE = "Creative Commons Attribution (CC-BY 4.0)"  # render_images.py --license default


def _check_size(where: str, width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 8:
            raise ValueError(f"{where}: {name} must be an integer >= 8, got {value!r}")


def _check_args(where: str, min_objects: int, max_objects: int, width: int, height: int) -> None:
    for name, value in (("min_objects", min_objects), ("max_objects", max_objects)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
    if not 1 <= min_objects <= max_objects <= MAX_NUM_ENTITIES - 1:
        raise ValueError(
            f"{where}: need 1 <= min_objects <= max_objects <= {MAX_NUM_ENTITIES - 1}, "
            f"got min_objects={min_objects}, max_objects={max_objects}"
        )
    _check_size(where, width, height)


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of a dataset with ``seed``: ``numpy.random.default_rng([seed, index])``.

    Args:
        seed: dataset seed (non-negative).
        index: image index (non-negative).

    Returns:
        A fresh generator, independent of every other (seed, index) pair.
    """
    return np.random.default_rng([int(seed), int(index)])


def sample_scene(
    rng: np.random.Generator,
    *,
    min_objects: int = 3,
    max_objects: int = 10,
    width: int = 320,
    height: int = 240,
    min_pixels_per_object: int = MIN_PIXELS_PER_OBJECT,
) -> Scene:
    """Sample one scene with CLEVR's rules (render_images.py ``render_scene`` + ``add_random_objects``).

    The number of objects is uniform in [min_objects, max_objects]; camera and lamps are jittered; objects are
    placed with CLEVR's minimum distance and cardinal margins, and the whole set is re-placed until every object
    has at least ``min_pixels_for(width, height, min_pixels_per_object)`` pixels in the exact id map.

    Args:
        rng: the only source of randomness; advanced by the call.
        min_objects: fewest objects (official default 3).
        max_objects: most objects (official default 10, at most 10).
        width: width of the image the visibility check (and later render) uses.
        height: height of that image.
        min_pixels_per_object: visible-pixel threshold at 320x240, scaled by image area (official 200).

    Returns:
        The scene, with ``visible_pixels`` filled in.

    Raises:
        ValueError: an argument is out of range.
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
    """
    _check_args("sample_scene", min_objects, max_objects, width, height)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"sample_scene: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    num_objects = int(rng.integers(min_objects, max_objects + 1))
    threshold = min_pixels_for(width, height, min_pixels_per_object)
    return sample_layout(rng, num_objects, lambda s: visible_pixel_counts(s, width, height), threshold)


def render_scene(
    scene: Scene,
    width: int = 320,
    height: int = 240,
    *,
    antialias: bool = True,
    shading: Shading = DEFAULT_SHADING,
) -> tuple[UInt8[np.ndarray, "H W 3"], UInt8[np.ndarray, "H W"]]:
    """Render a scene: the anti-aliased image and the exact instance id map.

    Args:
        scene: a scene from :func:`sample_scene`.
        width: image width in pixels (320 = clevr_with_masks and the generator default; 480 = CLEVR v1.0).
        height: image height in pixels (240, or 320 for CLEVR v1.0).
        antialias: supersample edge pixels (masks never are).
        shading: constants of the shading model.

    Returns:
        (image uint8 [H, W, 3], ids uint8 [H, W]): id 0 = background (ground), id k + 1 = ``scene`` object k.

    Raises:
        ValueError: ``width`` or ``height`` is below 8.
    """
    _check_size("render_scene", width, height)
    return _render(scene, int(width), int(height), antialias=antialias, shading=shading)


def _one(seed_or_rng: Any, index: int, split: str, min_objects: int, max_objects: int, width: int, height: int):
    rng = seed_or_rng if isinstance(seed_or_rng, np.random.Generator) else scene_rng(seed_or_rng, index)
    scene = sample_scene(rng, min_objects=min_objects, max_objects=max_objects, width=width, height=height)
    image, ids = _render(scene, width, height)
    return image, ids, scene_struct(scene, split, index, width, height)


def generate_clevr(
    num: int,
    rng: np.random.Generator,
    *,
    min_objects: int = 3,
    max_objects: int = 10,
    width: int = 320,
    height: int = 240,
    split: str = "new",
    start_index: int = 0,
) -> list[dict[str, Any]]:
    """Sample and render ``num`` scenes.

    Scene i uses its own generator, spawned from ``rng`` (``rng.spawn(num)``), so the result is a deterministic
    function of the state of ``rng``.

    Args:
        num: number of scenes, at least 1.
        rng: the only source of randomness; advanced by the call.
        min_objects: fewest objects per scene.
        max_objects: most objects per scene (at most 10).
        width: image width.
        height: image height.
        split: split name written into the scene records (render_images.py ``--split``, default "new").
        start_index: ``image_index`` of the first scene.

    Returns:
        One dict per scene: ``image`` uint8 [H, W, 3]; ``mask`` uint8 [H, W] instance ids (0 = background,
        k + 1 = ``scene["objects"][k]``); ``scene`` the CLEVR JSON record (official fields plus
        ``visible_pixels`` per object).

    Raises:
        ValueError: an argument is out of range.
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"generate_clevr: num must be a positive integer, got {num!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"generate_clevr: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    _check_args("generate_clevr", min_objects, max_objects, width, height)
    out = []
    for i, child in enumerate(rng.spawn(int(num))):
        image, ids, record = _one(child, start_index + i, split, min_objects, max_objects, width, height)
        out.append({"image": image, "mask": ids, "scene": record})
    return out


def generate_clevr_batch(
    num: int,
    rng: np.random.Generator,
    width: int = 320,
    height: int = 240,
    *,
    min_objects: int = 3,
    max_objects: int = 10,
) -> dict[str, np.ndarray]:
    """Sample ``num`` scenes as arrays in the layout of DeepMind's ``clevr_with_masks`` (leading ``num`` axis).

    Feature table of multi_object_datasets ``clevr_with_masks.py`` (``MAX_NUM_ENTITIES = 11``, entity 0 the
    background, objects 1..n in scene order, unused entities all zero):

    ========================  ===================  =============================================================
    key                       dtype, shape         meaning here
    ========================  ===================  =============================================================
    ``image``                 uint8 [H, W, 3]      the render
    ``mask``                  uint8 [11, H, W, 1]  255 where the entity is (exact, one entity per pixel), else 0
    ``x``, ``y``, ``z``       float32 [11]         ``3d_coords`` of the object (0 for background/unused)
    ``pixel_coords``          float32 [11, 3]      CLEVR ``pixel_coords`` (column, row, depth)
    ``rotation``              float32 [11]         CLEVR ``rotation`` (degrees)
    ``size``                  uint8 [11]           1 + index into ("large", "small"); 0 = no object
    ``material``              uint8 [11]           1 + index into ("rubber", "metal"); 0 = no object
    ``shape``                 uint8 [11]           1 + index into ("cube", "sphere", "cylinder"); 0 = no object
    ``color``                 uint8 [11]           1 + index into properties.json's colour order; 0 = no object
    ``visibility``            float32 [11]         1 for the background and each object, 0 for unused entities
    ========================  ===================  =============================================================

    The integer codes of the categorical features (1 + position in the generator's properties.json) are our
    choice: the published reader stores them as bytes without a table, and no source we could read gives one.

    Args:
        num: number of scenes, at least 1.
        rng: the only source of randomness; advanced by the call.
        width: image width (clevr_with_masks: 320).
        height: image height (clevr_with_masks: 240).
        min_objects: fewest objects per scene.
        max_objects: most objects per scene (at most 10).

    Returns:
        The arrays above, each with a leading ``num`` axis.

    Raises:
        ValueError: an argument is out of range.
        TypeError: ``rng`` is not a ``numpy.random.Generator``.
    """
    records = generate_clevr(num, rng, min_objects=min_objects, max_objects=max_objects, width=width, height=height)
    m = MAX_NUM_ENTITIES
    out: dict[str, np.ndarray] = {
        "image": np.stack([r["image"] for r in records]),
        "mask": np.zeros((num, m, height, width, 1), np.uint8),
        "pixel_coords": np.zeros((num, m, 3), np.float32),
    }
    for key in ("x", "y", "z", "rotation", "visibility"):
        out[key] = np.zeros((num, m), np.float32)
    for key in ("size", "material", "shape", "color"):
        out[key] = np.zeros((num, m), np.uint8)
    vocab = {"size": SIZE_NAMES, "material": MATERIAL_NAMES, "shape": SHAPE_NAMES, "color": COLOR_NAMES}
    entity = np.arange(m, dtype=np.uint8)[:, None, None]
    for b, rec in enumerate(records):
        out["mask"][b, ..., 0] = (rec["mask"][None] == entity) * np.uint8(255)
        objects = rec["scene"]["objects"]
        out["visibility"][b, : len(objects) + 1] = 1.0
        for k, obj in enumerate(objects, start=1):
            out["x"][b, k], out["y"][b, k], out["z"][b, k] = obj["3d_coords"]
            out["pixel_coords"][b, k] = obj["pixel_coords"]
            out["rotation"][b, k] = obj["rotation"]
            for key, names in vocab.items():
                out[key][b, k] = names.index(obj[key]) + 1
    return out


def _render_to_files(job: tuple[int, int, str, int, int, int, int, str]) -> dict[str, Any]:
    """Worker: render scene ``index`` of dataset ``seed`` and write its image and mask PNGs; return its record."""
    seed, index, split, min_objects, max_objects, width, height, root = job
    image, ids, record = _one(seed, index, split, min_objects, max_objects, width, height)
    out = Path(root)
    Image.fromarray(image).save(out / "images" / split / record["image_filename"])
    Image.fromarray(ids).save(out / "masks" / split / record["image_filename"])
    return record


def _report(progress: Callable[[int], object] | Any | None, n: int) -> None:
    if progress is None:
        return
    update = getattr(progress, "update", None)
    if callable(update):
        update(n)
    else:
        progress(n)


def _clear_split(root: Path, split: str, overwrite: bool) -> None:
    """Remove what `write_clevr_dataset` wrote for `split` under `root` (its scenes JSON, images and masks), or
    raise FileExistsError when there is any and not `overwrite`; other splits and files stay."""
    written = [root / "scenes" / f"CLEVR_{split}_scenes.json",
               *(f for sub in ("images", "masks") for f in sorted((root / sub / split).glob(f"CLEVR_{split}_*.png")))]
    written = [f for f in written if f.exists()]
    if written and not overwrite:
        raise FileExistsError(f"{root} already holds the CLEVR split '{split}' ({len(written):,} files); pass "
                              "--overwrite to replace it, or choose another --out or --split")
    for f in written:
        f.unlink()


def write_clevr_dataset(
    out_dir: str | Path,
    num: int,
    seed: int,
    min_objects: int = 3,
    max_objects: int = 10,
    width: int = 320,
    height: int = 240,
    workers: int = 1,
    progress: Callable[[int], object] | Any | None = None,
    *,
    split: str = "train",
    start_index: int = 0,
    date: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Generate ``num`` scenes and write them in the CLEVR v1.0 layout, plus instance masks.

    Files (``NNNNNN`` = image index, 6 digits as render_images.py)::

        out_dir/images/<split>/CLEVR_<split>_NNNNNN.png   RGB render
        out_dir/masks/<split>/CLEVR_<split>_NNNNNN.png    uint8 ("L") id map: 0 = background, k + 1 = object k
        out_dir/scenes/CLEVR_<split>_scenes.json          {"info": {...}, "scenes": [record, ...]}

    Each record has the official fields (split, image_index, image_filename, objects with shape, size,
    material, 3d_coords, rotation, pixel_coords, color; directions; relationships) and, per object,
    ``visible_pixels`` (its pixel count in the mask). Scene i is drawn from :func:`scene_rng` ``(seed, i)``, so
    the files do not depend on ``workers``.

    Args:
        out_dir: dataset root (created if missing; may hold other splits).
        num: number of images, at least 1.
        seed: dataset seed (non-negative integer).
        min_objects: fewest objects per scene.
        max_objects: most objects per scene (at most 10).
        width: image width (320 = generator default; 480 = CLEVR v1.0).
        height: image height (240; 320 = CLEVR v1.0).
        workers: processes rendering in parallel (1 = in this process).
        progress: called with the number of newly finished images: a callable, or a ``tqdm``-like object with
            ``update(n)``.
        split: split name (directory, filenames and records).
        start_index: index of the first image (render_images.py ``--start_idx``).
        date: the ``info.date`` string; None = today as MM/DD/YYYY, as render_images.py.
        overwrite: replace an existing ``split``: its scenes JSON and its ``CLEVR_<split>_*.png`` images and masks
            are removed first (nothing else), so no stale image of a larger earlier split stays behind.

    Returns:
        The path of the scenes JSON file.

    Raises:
        ValueError: an argument is out of range.
        FileExistsError: ``out_dir`` already holds ``split`` and ``overwrite`` is false.
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"write_clevr_dataset: num must be a positive integer, got {num!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"write_clevr_dataset: seed must be a non-negative integer, got {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"write_clevr_dataset: workers must be a positive integer, got {workers!r}")
    if not split or any(c in split for c in "/\\"):
        raise ValueError(f"write_clevr_dataset: split must be a non-empty name without path separators, got {split!r}")
    _check_args("write_clevr_dataset", min_objects, max_objects, width, height)
    root = Path(out_dir)
    _clear_split(root, split, overwrite)
    for sub in ("images", "masks"):
        (root / sub / split).mkdir(parents=True, exist_ok=True)
    (root / "scenes").mkdir(parents=True, exist_ok=True)
    jobs = [
        (int(seed), start_index + i, split, int(min_objects), int(max_objects), int(width), int(height), str(root))
        for i in range(int(num))
    ]
    records: list[dict[str, Any]] = []
    if workers == 1:
        results: Iterator[dict[str, Any]] = map(_render_to_files, jobs)
        for rec in results:
            records.append(rec)
            _report(progress, 1)
    else:
        # spawn, not fork: the parent may hold torch/OpenMP threads; imap keeps the index order
        with multiprocessing.get_context("spawn").Pool(int(workers)) as pool:
            for rec in pool.imap(_render_to_files, jobs, chunksize=max(1, min(16, int(num) // (4 * workers)))):
                records.append(rec)
                _report(progress, 1)
    info = {
        "date": date if date is not None else _date.today().strftime("%m/%d/%Y"),
        "version": "1.0",
        "split": split,
        "license": _LICENSE,
    }
    path = root / "scenes" / f"CLEVR_{split}_scenes.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"info": info, "scenes": records}))
    tmp.replace(path)
    return path
