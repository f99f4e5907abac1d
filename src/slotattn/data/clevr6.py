"""CLEVR6 for object discovery, with ground-truth masks, from DeepMind's ``clevr_with_masks`` TFRecord.

Follows IODINE's CLEVR pipeline (google-deepmind/deepmind-research ``iodine/modules/data.py``, class ``CLEVR``:
crop rows 29:221 and columns 64:256 of the 240x320 frame, resize to 128x128, bilinear for the image and
nearest-neighbour for the masks) and the protocol Slot Attention adopts from IODINE's paper: the first 70,000
scenes for training, the 320 that follow for evaluation, scenes with at most 6 objects. (IODINE's released code
has no such split; its ``clevr6`` configuration streams the whole file.) The image path is the official Slot
Attention preprocessing, reused from :mod:`slotattn.data.clevr`.
"""

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Int64, Real, UInt8

from slotattn.data.batch import check_mask_partition
from slotattn.data.clevr import (
    OBJECT_DISCOVERY_CROP,
    RESOLUTION,
    _check_crop,
    _to_uint8,
    preprocess_clevr_image,
)
from slotattn.data.errors import DataError
from slotattn.data.multi_object import (
    CLEVR_WITH_MASKS_MAX_NUM_ENTITIES,
    multi_object_spec,
    read_multi_object,
)
from slotattn.data.store import Store, SupportsUpdate, write_store
from slotattn.data.tfrecord import detect_compression

__all__ = [
    "CLEVR6_MAX_OBJECTS",
    "DATASET_NAME",
    "EVAL_SIZE",
    "TRAIN_SIZE",
    "clevr6_example",
    "convert_clevr6",
    "count_objects",
    "crop_resize_masks",
    "preprocess_clevr6",
]

logger = logging.getLogger(__name__)

DATASET_NAME = "clevr6"  # the store's dataset name = `data.name` of configs/clevr6.yaml
CLEVR6_MAX_OBJECTS = 6  # "CLEVR6": scenes with at most 6 objects (IODINE, Slot Attention Sec. 4.1)
TRAIN_SIZE = 70_000  # IODINE protocol, as Slot Attention uses it: the first 70K scenes train ...
EVAL_SIZE = 320  # ... and the 320 that follow are held out for evaluation

# The stored features, per example. `mask` keeps all 11 entity planes of the source (entity 0 = background).
FEATURES = ("image", "mask", "visibility", "num_objects", "scene_index")


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output index: the pixel that contains the output pixel's centre.

    Output pixel i covers [i, i + 1) * n_in / n_out of the source axis; its centre (i + 0.5) * n_in / n_out lies
    in source pixel floor((2i + 1) * n_in / (2 n_out)), computed exactly in integers.
    """
    i = np.arange(n_out, dtype=np.int64)
    return np.minimum((2 * i + 1) * n_in // (2 * n_out), n_in - 1)


def crop_resize_masks(
    mask: UInt8[np.ndarray, "B M H W 1"],
    crop: tuple[int, int, int, int] | None = OBJECT_DISCOVERY_CROP,
    resolution: tuple[int, int] = RESOLUTION,
) -> UInt8[np.ndarray, "B M h w 1"]:
    """Crop entity masks like the image, then resize them with nearest-neighbour sampling.

    Labels cannot be interpolated: a bilinear blend of two 0/255 planes is neither, and at a boundary it would
    split a pixel between entities. Nearest-neighbour copies one source pixel per output pixel, so the planes stay
    0/255 and still partition the pixels, and an entity keeps its id (0 = background).

    Convention: half-pixel centres. Output pixel (i, j) takes the source pixel that contains its centre, row
    ``top + floor((i + 0.5) * (bottom - top) / h)`` and likewise for columns. That is TF2's
    ``tf.image.resize(..., method="nearest")`` (``half_pixel_centers=True``), ``F.interpolate(mode="nearest-exact")``
    and PIL's ``Image.NEAREST``, and it puts each output pixel's label where :func:`preprocess_clevr_image`'s TF2
    half-pixel bilinear samples the image, so masks and image stay aligned. IODINE's TF1
    ``resize_images(NEAREST_NEIGHBOR)`` (``half_pixel_centers=False``, source ``floor(i * scale)``, like
    ``F.interpolate(mode="nearest")``) matches its TF1 bilinear image instead; on the 192 -> 128 resize it samples
    0.75 source pixels (half an output pixel) up and left of ours.

    Args:
        mask: uint8 entity masks, one [H, W, 1] plane per entity.
        crop: (top, bottom, left, right) box, as for :func:`preprocess_clevr_image`; None for the whole frame.
        resolution: (h, w) of the output.

    Returns:
        uint8 [B, M, h, w, 1], a new array; each value is copied from the input.

    Raises:
        ValueError: ``crop`` does not fit the frame, or ``resolution`` is not two positive ints.
    """
    height, width = mask.shape[2], mask.shape[3]
    top, bottom, left, right = _check_crop(crop or (0, height, 0, width), (height, width), "crop_resize_masks")
    if len(resolution) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in resolution):
        raise ValueError(f"crop_resize_masks: resolution must be (h, w) positive ints, got {resolution!r}")
    rows = top + _nearest_index(bottom - top, resolution[0])
    cols = left + _nearest_index(right - left, resolution[1])
    return np.take(np.take(mask, rows, axis=2), cols, axis=3)  # (B, M, h, w, 1)


def count_objects(visibility: Real[np.ndarray, "*batch M"]) -> Int64[np.ndarray, "*batch"]:
    """Objects per scene: visible entities, the background (entity 0) not counted.

    ``clevr_with_masks`` marks the background visible too, so this is ``visibility.sum(-1) - 1``. The count is
    the scene's, over the whole 320x240 frame: an object outside the crop still counts, as in IODINE's filter and
    in CLEVR's object lists.

    IODINE's released ``filter_by_num_objects`` is not followed to the letter: it compares ``sum(visibility)``,
    background included, with the limits, and its lower limit reads ``max_num_objects`` too, so with its CLEVR6
    configuration (``max_num_objects=6``) it keeps only scenes whose visibility sums to exactly 6. We keep what
    the IODINE and Slot Attention papers describe: at most 6 objects.

    Args:
        visibility: float [..., M], > 0 where the entity is present.

    Returns:
        int64 [...].
    """
    return np.asarray((visibility[..., 1:] > 0).sum(axis=-1), dtype=np.int64)


def preprocess_clevr6(
    arrays: Mapping[str, np.ndarray],
    *,
    crop: tuple[int, int, int, int] | None = OBJECT_DISCOVERY_CROP,
    resolution: tuple[int, int] = RESOLUTION,
) -> dict[str, np.ndarray]:
    """Turn a batch of ``clevr_with_masks`` examples into the CLEVR6 form that training reads.

    * ``image``: :func:`preprocess_clevr_image` (official order: to [-1, 1], crop, TF2 half-pixel bilinear resize,
      clip), stored as uint8 HWC by rounding ``127.5 * (x + 1)``, as :func:`slotattn.data.clevr.convert_clevr`
      does; ``to_model_batch`` maps it back within 1/255 of the float input.
    * ``mask``: :func:`crop_resize_masks` (same crop, nearest-neighbour), all entities kept, entity 0 =
      background.
    * ``visibility``: unchanged (the whole scene's); ``num_objects``: :func:`count_objects`.

    Args:
        arrays: ``image`` uint8 [B, H, W, 3], ``mask`` uint8 [B, M, H, W, 1] and ``visibility`` [B, M], as
            :func:`~slotattn.data.multi_object.read_multi_object` decodes them; other keys are ignored.
        crop: (top, bottom, left, right) box; :data:`~slotattn.data.clevr.OBJECT_DISCOVERY_CROP` by default.
        resolution: (h, w) of the output.

    Returns:
        ``image`` uint8 [B, h, w, 3], ``mask`` uint8 [B, M, h, w, 1], ``visibility`` float32 [B, M],
        ``num_objects`` int64 [B].

    Raises:
        ValueError: a key is missing, or has the wrong dtype or shape (the message names it), or ``crop`` does not
            fit the frame.
    """
    missing = [key for key in ("image", "mask", "visibility") if key not in arrays]
    if missing:
        raise ValueError(f"preprocess_clevr6: missing {missing} (keys: {sorted(arrays)})")
    image, mask = np.asarray(arrays["image"]), np.asarray(arrays["mask"])
    visibility = np.asarray(arrays["visibility"])
    if image.dtype != np.uint8 or image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(
            f"preprocess_clevr6: 'image' must be uint8 [B, H, W, 3], got {image.dtype} {list(image.shape)}"
        )
    b, h, w = image.shape[:3]
    if mask.dtype != np.uint8 or mask.ndim != 5 or (mask.shape[0], *mask.shape[2:]) != (b, h, w, 1):
        raise ValueError(
            f"preprocess_clevr6: 'mask' must be uint8 [B, M, H, W, 1] = [{b}, M, {h}, {w}, 1] to match 'image', "
            f"got {mask.dtype} {list(mask.shape)}"
        )
    if visibility.shape != mask.shape[:2] or visibility.dtype.kind not in "biuf":
        raise ValueError(
            f"preprocess_clevr6: 'visibility' must be numbers [B, M] = {list(mask.shape[:2])}, "
            f"got {visibility.dtype} {list(visibility.shape)}"
        )
    with torch.no_grad():
        images = _to_uint8(preprocess_clevr_image(image, crop, resolution))  # (B, h, w, 3)
    return {
        "image": images,
        "mask": crop_resize_masks(mask, crop, resolution),
        "visibility": visibility.astype(np.float32),
        "num_objects": count_objects(visibility),
    }


def clevr6_example(example: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """One ``clevr_with_masks`` example in CLEVR6 form: :func:`preprocess_clevr6` without the batch axis.

    Args:
        example: ``image`` uint8 [240, 320, 3], ``mask`` uint8 [11, 240, 320, 1], ``visibility`` [11] (one
            example of :func:`~slotattn.data.multi_object.read_multi_object`); other keys are ignored.

    Returns:
        ``image`` uint8 [128, 128, 3], ``mask`` uint8 [11, 128, 128, 1] (entity 0 = background), ``visibility``
        float32 [11], ``num_objects`` int.

    Raises:
        ValueError: as :func:`preprocess_clevr6`.
    """
    batch = preprocess_clevr6({key: np.asarray(example[key])[None] for key in ("image", "mask", "visibility")
                               if key in example})
    out: dict[str, Any] = {key: value[0] for key, value in batch.items()}
    out["num_objects"] = int(out["num_objects"])
    return out


# --- conversion ----------------------------------------------------------------------------------------------------


class _Spill:
    """The preprocessed chunks of one split, on disk until the split's size is known (write_store needs it first).

    Spilling keeps the conversion to one pass over the TFRecord: reading it (inflating ~3 MB per record) costs far
    more than writing and re-reading the ~229 KB a kept scene takes at 128x128.
    """

    def __init__(self, root: Path):
        root.mkdir()
        self.root, self.num, self.num_chunks = root, 0, 0

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        chunk = self.root / f"{self.num_chunks:06d}"
        chunk.mkdir()
        for key in FEATURES:
            np.save(chunk / f"{key}.npy", arrays[key], allow_pickle=False)
        self.num_chunks += 1
        self.num += len(arrays["image"])

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(self.num_chunks):
            chunk = self.root / f"{i:06d}"
            yield {key: np.load(chunk / f"{key}.npy", mmap_mode="r") for key in FEATURES}


def _report(progress: Callable[[int], object] | SupportsUpdate | None, n: int) -> None:
    if progress is None or n == 0:
        return
    if isinstance(progress, SupportsUpdate):
        progress.update(n)
    else:
        progress(n)


def _check_split_rule(max_objects: Any, filter_before_split: Any) -> None:
    limit = CLEVR_WITH_MASKS_MAX_NUM_ENTITIES - 1
    if isinstance(max_objects, bool) or not isinstance(max_objects, int) or not 1 <= max_objects <= limit:
        raise ValueError(f"convert_clevr6: max_objects must be an int in 1..{limit}, got {max_objects!r}")
    if not isinstance(filter_before_split, bool):
        raise TypeError(f"convert_clevr6: filter_before_split must be a bool, got {filter_before_split!r}")


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"convert_clevr6: {name} must be a positive int, got {value!r}")
    return int(value)


def convert_clevr6(
    input_path: str | Path,
    out_dir: str | Path,
    *,
    train_size: int = TRAIN_SIZE,
    eval_size: int = EVAL_SIZE,
    max_objects: int = CLEVR6_MAX_OBJECTS,
    filter_before_split: bool = False,
    progress: Callable[[int], object] | SupportsUpdate | None = None,
    chunk: int = 64,
    compression: str | None = "auto",
    overwrite: bool = False,
) -> tuple[Store, Store]:
    """Convert ``clevr_with_masks_train.tfrecords`` into CLEVR6 train and eval stores, in one streaming pass.

    Split protocol (IODINE's, which Slot Attention follows): the first ``train_size`` scenes train, the
    ``eval_size`` that follow evaluate, and only scenes with at most ``max_objects`` objects
    (:func:`count_objects`) are kept. ``filter_before_split`` says what "scenes" counts:

    * False (default): records. Train = the qualifying scenes among records ``[0, train_size)``, eval = those among
      ``[train_size, train_size + eval_size)``. Each split holds about half its range (CLEVR draws 3-10 objects
      uniformly): ~35K and ~160 scenes with the defaults.
    * True: qualifying scenes. Train = the first ``train_size`` of them in file order, eval = the next
      ``eval_size``; exactly that many.

    Why False by default: it is the only reading of "the first 70,000 scenes" that the published file can
    satisfy: it holds 100,000 scenes, and if their object counts are uniform on 3-10 like CLEVR's (the generator's
    defaults; not counted on the file here) only about 50,000 have <= 6 objects, so 70,000 can only count records;
    and it fixes the split boundaries by record index, so no scene moves between train and eval when
    ``max_objects`` changes (CLEVR6 and CLEVR10 share their split). The price is an eval split of ~160, not 320,
    scenes; pass ``filter_before_split=True`` (with a ``train_size`` the file can fill) for exactly 320.

    Output, two stores (:func:`~slotattn.data.store.write_store`) named ``"clevr6"``, for ``data.path`` and
    ``data.eval_path`` of ``configs/clevr6.yaml``::

        <out_dir>/train/   image uint8 [N, 128, 128, 3]       (preprocess_clevr6: crop, bilinear, rounded)
        <out_dir>/eval/    mask uint8 [N, 11, 128, 128, 1]    (crop, nearest; 0/255; entity 0 = background)
                           visibility float32 [N, 11]; num_objects int64 [N];
                           scene_index int64 [N]: the example's record index in the TFRecord

    Streaming: records are read one at a time and preprocessed ``chunk`` at a time; reading stops once both
    splits are complete. Each split is spilled to a hidden directory in ``out_dir`` until its size is known, so
    the conversion needs free disk for about twice its output (~229 KB per kept scene, ~8 GB for the default
    train split) while it runs; the spill is removed at the end, also on error.

    Args:
        input_path: the ``clevr_with_masks`` TFRecord file (GZIP as distributed, or uncompressed).
        out_dir: directory that receives ``train/`` and ``eval/``; created if missing.
        train_size: size of the training range (records or qualifying scenes, see above).
        eval_size: size of the evaluation range, which follows the training one.
        max_objects: keep scenes with at most this many objects (1..10; 6 = CLEVR6).
        filter_before_split: apply the object filter before splitting (see above).
        progress: called with the number of TFRecord records read since the last call (a callable, or a ``tqdm``
            bar); with the default split order the total is ``train_size + eval_size``.
        chunk: scenes decoded and preprocessed at a time (~1.1 MB decoded each).
        compression: ``"auto"`` (default), ``"gzip"``, ``"zlib"`` or ``"none"``.
        overwrite: replace existing ``train/`` and ``eval/`` stores.

    Returns:
        (train store, eval store), opened.

    Raises:
        ValueError: a bad argument.
        TypeError: ``filter_before_split`` is not a bool.
        FileExistsError: ``<out_dir>/train`` or ``<out_dir>/eval`` exists and ``overwrite`` is false.
        DataError: the file is missing or damaged, a record does not match the ``clevr_with_masks`` spec, the file
            ends before the splits are complete (the message says how many records or qualifying scenes it
            held), a split has no qualifying scene, or a kept record's masks do not partition the pixels (see
            :func:`~slotattn.data.batch.check_mask_partition`).
    """
    train_size, eval_size = _positive(train_size, "train_size"), _positive(eval_size, "eval_size")
    chunk = _positive(chunk, "chunk")
    _check_split_rule(max_objects, filter_before_split)
    input_path, out_dir = Path(input_path), Path(out_dir)
    split_dirs = {"train": out_dir / "train", "eval": out_dir / "eval"}
    for path in split_dirs.values():
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: already exists; pass overwrite=True to replace it")
    examples = read_multi_object(input_path, "clevr_with_masks", compression=compression)  # checks the path
    mode = (compression or "none").lower()
    detected = detect_compression(input_path) if mode == "auto" else mode
    protocol = {"train_size": train_size, "eval_size": eval_size, "max_objects": max_objects,
                "filter_before_split": filter_before_split}

    out_dir.mkdir(parents=True, exist_ok=True)
    spill_root = Path(tempfile.mkdtemp(prefix=".clevr6-spill-", dir=out_dir))
    try:
        spills = {split: _Spill(spill_root / split) for split in split_dirs}
        records = _split_into_spills(examples, input_path, spills, chunk=chunk, progress=progress, **protocol)
        meta = _conversion_meta(input_path, detected, protocol, records)
        stores = []
        for split, spill in spills.items():
            stores.append(write_store(split_dirs[split], spill, {"dataset": DATASET_NAME, "split": split, **meta},
                                      num=spill.num, overwrite=overwrite))
            logger.info("%s: %s split of %d scenes", split_dirs[split], split, spill.num)
    finally:
        examples.close()  # stops reading (and closes the file) when the splits were complete before its end
        shutil.rmtree(spill_root, ignore_errors=True)
    return stores[0], stores[1]


def _split_into_spills(
    examples: Iterator[dict[str, np.ndarray]],
    input_path: Path,
    spills: dict[str, "_Spill"],
    *,
    train_size: int,
    eval_size: int,
    max_objects: int,
    filter_before_split: bool,
    chunk: int,
    progress: Callable[[int], object] | SupportsUpdate | None,
) -> int:
    """Read records until both splits are complete, preprocess the kept scenes `chunk` at a time into `spills`.

    Returns the number of records read. The split rule is `convert_clevr6`'s; a file that ends before the splits
    are complete, or a split without a kept scene, is a DataError.
    """
    pending: dict[str, list[tuple[int, dict[str, np.ndarray]]]] = {split: [] for split in spills}
    records = qualifying = unreported = 0
    total = train_size + eval_size
    for index, example in enumerate(examples):
        records, unreported = records + 1, unreported + 1
        keep = int(count_objects(example["visibility"])) <= max_objects
        if filter_before_split:
            split = "train" if qualifying < train_size else "eval"
            qualifying += keep
            done = qualifying == total
        else:
            split = "train" if index < train_size else "eval"
            done = records == total
        if keep:
            # one record's masks at a time (~1 ms against ~30 ms to inflate and decode it); training checks
            # every batch too, but a bad record should fail the conversion, named by file and record
            check_mask_partition(example["mask"], f"{input_path}: record {index}: feature 'mask'")
            pending[split].append((index, example))
            if len(pending[split]) == chunk:
                _spill_pending(pending[split], spills[split])
        if unreported == chunk or done:
            _report(progress, unreported)
            unreported = 0
        if done:
            break
    else:
        _report(progress, unreported)
        if filter_before_split:
            found = f"{qualifying} scenes with <= {max_objects} objects in its {records} records"
            hint = "pass smaller sizes, or filter_before_split=False (sizes then count records)"
        else:
            found, hint = f"{records} records", "pass smaller sizes"
        raise DataError(
            f"{input_path}: holds only {found}, but train_size={train_size} + eval_size={eval_size} "
            f"needs {total}; {hint}"
        )
    for split, spill in spills.items():
        _spill_pending(pending[split], spill)
        if spill.num == 0:
            raise DataError(
                f"{input_path}: the {split} split (records read: {records}) holds no scene with <= {max_objects} "
                "objects; nothing to convert"
            )
    return records


def _spill_pending(items: list[tuple[int, dict[str, np.ndarray]]], spill: "_Spill") -> None:
    """Preprocess the (record index, example) pairs waiting in `items` as one chunk of `spill`, and empty `items`."""
    if items:
        batch = {key: np.stack([ex[key] for _, ex in items]) for key in ("image", "mask", "visibility")}
        arrays = preprocess_clevr6(batch)
        arrays["scene_index"] = np.asarray([index for index, _ in items], dtype=np.int64)
        spill.add(arrays)
        items.clear()


def _conversion_meta(input_path: Path, compression: str, protocol: dict[str, Any], records: int) -> dict[str, Any]:
    """The `protocol` and `source` entries of both stores' meta.json: how the splits were cut, and from what."""
    protocol = {
        **protocol,
        "records_read": records,
        "reference": "IODINE (deepmind-research iodine/modules/data.py) protocol, as used by Slot Attention",
    }
    source = {
        "path": str(input_path.resolve()),
        "size_bytes": input_path.stat().st_size,
        "format": "tfrecord",
        "compression": compression,
        "official_reader": multi_object_spec("clevr_with_masks").source,
        "crop": list(OBJECT_DISCOVERY_CROP),
        "resolution": list(RESOLUTION),
        "image": "uint8 HWC, round(127.5 * (x + 1)) of the official [-1, 1] input (crop, TF2 bilinear; "
        "error <= 1/255)",
        "mask": "crop, nearest neighbour with half-pixel centres (TF2 method='nearest'); entity 0 = background",
        "num_objects": "visible entities minus the background, whole frame",
    }
    return {"protocol": protocol, "source": source}
