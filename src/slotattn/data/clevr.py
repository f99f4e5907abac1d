"""CLEVR v1.0 (images + scenes JSON) read and preprocessed exactly as the official Slot Attention pipeline does it.

Follows google-research `slot_attention/data.py` (`preprocess_clevr`, `build_clevr`), which reads TFDS
`clevr:3.1.0` (tensorflow/datasets `tensorflow_datasets/image/clevr.py`); no TensorFlow is needed here.

On disk (``CLEVR_v1.0.zip`` unpacked)::

    <root>/images/<split>/CLEVR_<split>_000000.png ...    480x320 RGBA renders (alpha is dropped, as TFDS does)
    <root>/scenes/CLEVR_<split>_scenes.json                {"scenes": [{"image_filename", "objects": [...]}, ...]}

``<split>`` is ``train``, ``val`` or ``test`` (the test split has no scenes file). TFDS calls ``val``
"validation"; :data:`OFFICIAL_SPLITS` maps the names the official code uses onto these directories.
"""

import json
import logging
import math
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float, Float32, UInt8
from PIL import Image
from torch import Tensor

from slotattn.clevr_layout import (  # the 19-number layout, re-exported here for readers of this module
    COLORS,
    MATERIALS,
    PROPERTIES,
    SHAPES,
    SIZES,
    TARGET_SIZE,
    TARGET_SLICES,
    describe_prediction,
)
from slotattn.data.errors import DataError
from slotattn.data.store import Store, SupportsUpdate, write_store

__all__ = [
    "COLORS",
    "FRAME_SIZE",
    "MATERIALS",
    "MAX_OBJECTS",
    "OBJECT_DISCOVERY_CROP",
    "OFFICIAL_SPLITS",
    "PROPERTIES",
    "RESOLUTION",
    "SHAPES",
    "SIZES",
    "TARGET_SIZE",
    "TARGET_SLICES",
    "TASKS",
    "ClevrTask",
    "ClevrV1",
    "convert_clevr",
    "describe_prediction",
    "load_clevr_png",
    "official_split",
    "preprocess_clevr_image",
    "resize_bilinear",
    "scene_targets",
]

logger = logging.getLogger(__name__)

MAX_OBJECTS = 10  # CLEVR scenes hold 3-10 objects; targets are zero-padded to 10 rows (official max_n_objects)

FRAME_SIZE = (320, 480)  # (H, W) of a CLEVR v1.0 render
RESOLUTION = (128, 128)  # (H, W) the official code resizes to, for both tasks

# Official object-discovery crop, rows 29:221 and columns 64:256 (192x192), as (top, bottom, left, right).
# The official code applies it to TFDS clevr:3.1.0, i.e. to 480x320 (W x H) CLEVR v1.0 frames, where it is NOT
# centred: it covers rows 29..220 of 320 (box centre 125, frame centre 160) and columns 64..255 of 480 (box
# centre 160, frame centre 240), an upper-left 40% x 60% window that cuts off the right 224 columns. The
# same numbers are the centre crop of 320x240 frames (clevr_with_masks from multi_object_datasets, and the
# CLEVR generator's default size): columns 64..255 are centred exactly and rows 29..220 sit 5 px below centre.
# We reproduce the official code (the box on 480x320 frames); pass another `crop` to change it.
OBJECT_DISCOVERY_CROP = (29, 221, 64, 256)


@dataclass(frozen=True)
class ClevrTask:
    """How the official code prepares CLEVR for one task.

    Attributes:
        crop: (top, bottom, left, right) box cut from the frame before resizing, or None for the whole frame.
        max_objects: scenes with more objects are dropped (the official `filter_fn`).
        dataset: the store's dataset name (`data.name` of the config that trains on it).
    """

    crop: tuple[int, int, int, int] | None
    max_objects: int
    dataset: str


TASKS: Mapping[str, ClevrTask] = MappingProxyType(
    {
        # object_discovery/train.py: max_n_objects=6 ("CLEVR6"), apply_crop=True, get_properties=False
        "object_discovery": ClevrTask(crop=OBJECT_DISCOVERY_CROP, max_objects=6, dataset="clevr6"),
        # set_prediction/train.py + eval.py: the whole frame, max_n_objects=10 (keeps every CLEVR scene)
        "set_prediction": ClevrTask(crop=None, max_objects=10, dataset="clevr"),
    }
)

# The official `build_clevr` splits, as ClevrV1 arguments: "train_eval" = the first 512 scenes of TFDS train
# (`ds.take(512)`, AP monitoring), "train" = the rest (`ds.skip(512)`, used by BOTH tasks), "validation" = the
# CLEVR val directory (set-prediction evaluation). take/skip come before the object-count filter, as there.
OFFICIAL_SPLITS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "train_eval": MappingProxyType({"split": "train", "first": 512}),
        "train": MappingProxyType({"split": "train", "skip": 512}),
        "validation": MappingProxyType({"split": "val"}),
    }
)

_CONVERT_HINT = "unpack CLEVR_v1.0.zip (https://dl.fbaipublicfiles.com/clevr/CLEVR_v1.0.zip) and pass its CLEVR_v1.0/"


# --- images ------------------------------------------------------------------------------------------------------


def resize_bilinear(images: Float[Tensor, "B C H W"], size: tuple[int, int]) -> Float[Tensor, "B C h w"]:
    """Resize like TF2's ``tf.image.resize(images, size, method="bilinear", antialias=False)``.

    TF2 runs ``ResizeBilinear`` with ``half_pixel_centers=True``: output pixel i samples the input at
    ``(i + 0.5) * in / out - 0.5``, clamped to the first/last pixel at the borders, with no low-pass filter when
    shrinking. ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)`` with an explicit ``size``
    uses the same source coordinate (scale = in / out) and the same border clamping, so the two agree up to
    float32 rounding; ``tests/test_clevr.py`` checks this against hand-computed cases (6 -> 4, 4 -> 2, 2 -> 4)
    and a line-by-line numpy transcription of TF's kernel, for shrinking, enlarging and non-square sizes.

    Args:
        images: float images, channel-first.
        size: (h, w) of the output.

    Returns:
        The resized images, same dtype.

    Raises:
        ValueError: ``size`` is not two positive ints.
    """
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"resize_bilinear: size must be (h, w) positive ints, got {size!r}")
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=False)


def _check_crop(crop: Sequence[int], frame: tuple[int, int], where: str) -> tuple[int, int, int, int]:
    if len(crop) != 4 or not all(isinstance(c, int) and not isinstance(c, bool) for c in crop):
        raise ValueError(f"{where}: crop must be (top, bottom, left, right) ints, got {crop!r}")
    top, bottom, left, right = crop
    height, width = frame
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ValueError(
            f"{where}: crop rows {top}:{bottom}, columns {left}:{right} do not fit a {height}x{width} (HxW) frame"
        )
    return top, bottom, left, right


def preprocess_clevr_image(
    image: UInt8[np.ndarray, "*batch H W 3"] | UInt8[Tensor, "*batch H W 3"],
    crop: tuple[int, int, int, int] | None = None,
    resolution: tuple[int, int] = RESOLUTION,
) -> Float32[Tensor, "B 3 h w"]:
    """The official ``preprocess_clevr`` image path, channel-first.

    In the official order: to float, ``((x / 255) - 0.5) * 2`` to [-1, 1], crop, bilinear resize (TF2 half-pixel,
    no antialias; see :func:`resize_bilinear`), clip to [-1, 1].

    Args:
        image: uint8 RGB frame(s), [H, W, 3] or [B, H, W, 3] (drop an alpha channel first; :func:`load_clevr_png`
            does).
        crop: (top, bottom, left, right) box, rows top:bottom and columns left:right, or None for the whole frame;
            :data:`OBJECT_DISCOVERY_CROP` for object discovery.
        resolution: (h, w) of the output.

    Returns:
        float32 [B, 3, h, w] in [-1, 1] (B = 1 for a single frame), on the input's device.

    Raises:
        ValueError: ``image`` is not uint8 [..., H, W, 3] with one or no batch axis, or ``crop`` does not fit it.
    """
    x = image
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.array(x) if not x.flags.writeable else x)
    if x.dtype != torch.uint8 or x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(
            f"preprocess_clevr_image: image must be uint8 [H, W, 3] or [B, H, W, 3], got {x.dtype} {list(x.shape)}"
        )
    if x.ndim == 3:
        x = x[None]
    x = x.permute(0, 3, 1, 2).to(torch.float32)  # (B, 3, H, W)
    x = ((x / 255.0) - 0.5) * 2.0  # official order: rescale to [-1, 1] before cropping and resizing
    if crop is not None:
        top, bottom, left, right = _check_crop(crop, (x.shape[2], x.shape[3]), "preprocess_clevr_image")
        x = x[:, :, top:bottom, left:right]  # (B, 3, bottom-top, right-left)
    x = resize_bilinear(x, resolution)  # (B, 3, h, w)
    return x.clamp_(-1.0, 1.0)  # official tf.clip_by_value; a no-op up to rounding for bilinear


def load_clevr_png(
    path: str | Path, frame_size: tuple[int, int] | None = FRAME_SIZE
) -> UInt8[np.ndarray, "H W 3"]:
    """Decode one CLEVR render to uint8 RGB, dropping the alpha channel (TFDS decodes with ``channels=3``).

    Args:
        path: the PNG file.
        frame_size: expected (H, W), or None to accept any size.

    Returns:
        uint8 [H, W, 3].

    Raises:
        DataError: the file is missing, does not decode, is not RGB/RGBA, or has the wrong size (the message
            names the file).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode, array = im.mode, np.asarray(im)
    except FileNotFoundError as err:
        raise DataError(f"{path}: no such image file") from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:  # PIL's decode failures
        raise DataError(f"{path}: not a decodable image ({type(err).__name__}: {err})") from err
    if mode not in ("RGB", "RGBA") or array.dtype != np.uint8:
        raise DataError(f"{path}: expected an 8-bit RGB or RGBA image, found PIL mode {mode!r}")
    if frame_size is not None and array.shape[:2] != tuple(frame_size):
        raise DataError(
            f"{path}: expected a {frame_size[1]}x{frame_size[0]} (WxH) frame, found {array.shape[1]}x{array.shape[0]}"
        )
    return np.ascontiguousarray(array[..., :3])


# --- targets -----------------------------------------------------------------------------------------------------


def _encode_object(obj: Any, where: str) -> np.ndarray:
    """One scene object as its first 18 target numbers (float32), with the real flag set."""
    if not isinstance(obj, Mapping):
        raise DataError(f"{where}: expected an object dict, found {type(obj).__name__}")
    row = np.zeros(TARGET_SIZE, dtype=np.float32)
    coords = obj.get("3d_coords")
    ok = isinstance(coords, (list, tuple)) and len(coords) == 3
    ok = ok and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coords)
    if ok:
        # float32, as the TFDS feature: a JSON int too large for a float (float() would raise OverflowError) or a
        # value beyond float32's range (inf after the cast) is as bad as NaN
        with np.errstate(over="ignore"):
            values = np.array([float(c) if abs(c) < 1e300 else math.inf for c in coords], dtype=np.float32)
        ok = bool(np.isfinite(values).all())
    if not ok:
        raise DataError(
            f"{where}: '3d_coords' must be 3 finite numbers, found {repr(coords)[:200]} (checked as float32)"
        )
    # float32 arithmetic, as TF does on the float32 TFDS feature: (c + 3) / 6 maps [-3, 3] to [0, 1]
    row[TARGET_SLICES["3d_coords"]] = (values + np.float32(3.0)) / np.float32(6.0)
    for key, names in PROPERTIES.items():
        value = obj.get(key)
        if value not in names:
            found = "missing" if key not in obj else repr(value)
            raise DataError(f"{where}: '{key}' is {found}, expected one of {', '.join(names)}")
        row[TARGET_SLICES[key].start + names.index(value)] = 1.0
    row[TARGET_SLICES["real"]] = 1.0
    return row


def _object_rows(scene: Any, where: str) -> np.ndarray:
    """float32 [n, 19]: one target row per object of ``scene``, every property checked."""
    objects = scene.get("objects") if isinstance(scene, Mapping) else None
    if not isinstance(objects, list):
        raise DataError(f"{where}: expected a dict with an 'objects' list, found {type(objects).__name__}")
    rows = np.zeros((len(objects), TARGET_SIZE), dtype=np.float32)
    for i, obj in enumerate(objects):
        rows[i] = _encode_object(obj, f"{where}, object {i}")
    return rows


def _pad(rows: np.ndarray, max_objects: int) -> np.ndarray:
    target = np.zeros((max_objects, TARGET_SIZE), dtype=np.float32)  # official tf.pad with zeros
    target[: len(rows)] = rows
    return target


def scene_targets(
    scene: Mapping[str, Any], max_objects: int = MAX_OBJECTS, *, where: str = "scene"
) -> Float32[np.ndarray, "M 19"]:
    """The official set-prediction target of one scene: one 19-d row per object, zero-padded.

    Row layout (:data:`TARGET_SLICES`): (x, y, z) as ``(c + 3) / 6``; one-hot size, material, shape and colour in
    the TFDS class orders (:data:`SIZES`, :data:`MATERIALS`, :data:`SHAPES`, :data:`COLORS`); 1 for a real object.
    Rows follow the JSON object order; rows past the last object are all zeros.

    Args:
        scene: a CLEVR scene dict (``{"objects": [{"3d_coords", "size", "material", "shape", "color"}, ...]}``).
        max_objects: number of rows M.
        where: prefix for error messages, e.g. ``"CLEVR_val_scenes.json: scene 12"``.

    Returns:
        float32 [max_objects, 19].

    Raises:
        DataError: the scene has no object list, more than ``max_objects`` objects, or an object with a missing
            or unknown property (the message names the object index, key, value and the allowed values).
    """
    rows = _object_rows(scene, where)
    if len(rows) > max_objects:
        raise DataError(f"{where}: {len(rows)} objects, more than the {max_objects} target rows")
    return _pad(rows, max_objects)


# --- the dataset ---------------------------------------------------------------------------------------------------


def _count(value: int | None, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"ClevrV1: {name} must be None or a non-negative int, got {value!r}")
    return value


class ClevrV1:
    """One split of CLEVR v1.0 with the official task filter; images are decoded on access.

    The scenes file is parsed and checked when the dataset is built (every property value, every image file
    present), so bad data fails here rather than mid-training. Order: the JSON's scene order (= image index, the
    order TFDS pairs with the sorted image files), then ``skip``, then ``first``, then the object-count filter,
    as the official ``ds.skip``/``ds.take`` come before ``ds.filter``.

    Note on "first 512": the official code takes them in TFDS's record order, not in image-index order: TFDS's
    writer sorts a split's examples by a salted hash of their key (md5 of split name + file name in TFDS 4.x,
    tensorflow_datasets/core/hashing.py) and its reader interleaves record shards. That order depends on the
    TFDS version and shard layout, so it is not reproduced: ``first=512`` here takes CLEVR_train_000000..000511,
    an equally random 512-scene subset (CLEVR scenes are sampled i.i.d.), disjoint from ``skip=512`` as there.

    Example::

        ds = ClevrV1("CLEVR_v1.0", "train", task="object_discovery")   # CLEVR6: scenes with <= 6 objects
        ex = ds[0]                         # {"image": uint8 [320, 480, 3], "target": [10, 19], "num_objects": 4}
        batch = ds.batch([0, 1, 2])        # {"image": float32 [3, 3, 128, 128] in [-1, 1], "target", ...}

    Args:
        root: the unpacked ``CLEVR_v1.0/`` directory.
        split: directory name under ``images/``: ``train``, ``val`` (TFDS "validation") or ``test``.
        task: ``object_discovery`` (crop, <= 6 objects) or ``set_prediction`` (whole frame, <= 10); see
            :data:`TASKS`.
        max_objects: keep scenes with at most this many objects (1..10); None = the task's value.
        first: keep at most this many scenes (after ``skip``, before the filter); None = all.
        skip: drop this many scenes from the start first; None = 0.
        resolution: (h, w) of :meth:`batch` images.
        frame_size: expected (H, W) of every frame.

    Attributes:
        scene_indices: int64 [N], each kept example's position in the scenes JSON (= its image index).
        filenames: the kept examples' PNG names.
        targets: float32 [N, 10, 19], :func:`scene_targets` of each kept scene.
        num_objects: int64 [N].

    Raises:
        ValueError: bad arguments.
        DataError: a missing directory or scenes file, unreadable JSON, a scene that references a missing image,
            or an unknown property value (messages name the file, scene index, object, key and value).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        task: str = "object_discovery",
        max_objects: int | None = None,
        first: int | None = None,
        skip: int | None = None,
        *,
        resolution: tuple[int, int] = RESOLUTION,
        frame_size: tuple[int, int] = FRAME_SIZE,
    ):
        if task not in TASKS:
            raise ValueError(f"ClevrV1: task must be one of {', '.join(TASKS)}, got {task!r}")
        if not isinstance(split, str) or not split or "/" in split or "\\" in split or split in (".", ".."):
            raise ValueError(f"ClevrV1: split must be a directory name such as 'train' or 'val', got {split!r}")
        limit = TASKS[task].max_objects if max_objects is None else max_objects
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_OBJECTS:
            raise ValueError(f"ClevrV1: max_objects must be an int in 1..{MAX_OBJECTS}, got {max_objects!r}")
        _check_crop(TASKS[task].crop or (0, frame_size[0], 0, frame_size[1]), frame_size, "ClevrV1")
        self.root, self.split, self.task = Path(root), split, task
        self.max_objects, self.first, self.skip = limit, _count(first, "first"), _count(skip, "skip")
        self.crop, self.resolution, self.frame_size = TASKS[task].crop, tuple(resolution), tuple(frame_size)

        self.images_dir = self.root / "images" / split
        self.scenes_file = self.root / "scenes" / f"CLEVR_{split}_scenes.json"
        if not self.root.is_dir():
            raise DataError(f"{self.root}: no such CLEVR v1.0 directory; {_CONVERT_HINT}")
        if not self.images_dir.is_dir():
            raise DataError(f"{self.images_dir}: no such image directory (split {split!r}); {_CONVERT_HINT}")
        if not self.scenes_file.is_file():
            raise DataError(
                f"{self.scenes_file}: no such scenes file (split {split!r}; CLEVR's test split has none); "
                f"{_CONVERT_HINT}"
            )
        scenes = self._read_scenes()
        start = self.skip or 0
        stop = len(scenes) if self.first is None else min(len(scenes), start + self.first)
        indices, names, targets, counts = [], [], [], []
        for i in range(start, stop):
            where = f"{self.scenes_file}: scene {i}"
            rows = _object_rows(scenes[i], where)  # checks every scene in range, kept or not
            num = len(rows)
            if num > limit:
                continue  # official filter_fn: more than max_n_objects
            name = self._image_name(scenes[i], i, where)
            try:
                exists = (self.images_dir / name).is_file()
            except OSError as err:  # e.g. ENAMETOOLONG, which is_file does not swallow (found by fuzzing)
                raise DataError(
                    f"{where}: 'image_filename' {name[:100]!r}... is not a usable file name ({err.strerror})"
                ) from err
            if not exists:
                raise DataError(f"{where} references {self.images_dir / name}, which does not exist")
            indices.append(i)
            names.append(name)
            targets.append(_pad(rows, MAX_OBJECTS))
            counts.append(num)
        self.scene_indices = np.asarray(indices, dtype=np.int64)
        self.filenames = names
        self.targets = (
            np.stack(targets) if targets else np.zeros((0, MAX_OBJECTS, TARGET_SIZE), np.float32)
        )
        self.num_objects = np.asarray(counts, dtype=np.int64)
        logger.info(
            "%s: kept %d of %d scenes (task %s, <= %d objects)",
            self.scenes_file, len(names), max(0, stop - start), task, limit,
        )

    def _read_scenes(self) -> list[Any]:
        try:
            data = json.loads(self.scenes_file.read_bytes())
        # ValueError covers JSONDecodeError, UnicodeDecodeError and an integer of over 4300 digits (Python's
        # int_max_str_digits); RecursionError, arrays or objects nested thousands deep
        except (OSError, ValueError, RecursionError) as err:
            raise DataError(f"{self.scenes_file}: not readable JSON ({type(err).__name__}: {str(err)[:200]})") from err
        scenes = data.get("scenes") if isinstance(data, dict) else None
        if not isinstance(scenes, list):
            raise DataError(f"{self.scenes_file}: expected {{\"scenes\": [...]}}, found no 'scenes' list")
        return scenes

    def _image_name(self, scene: Mapping[str, Any], i: int, where: str) -> str:
        name = scene.get("image_filename", f"CLEVR_{self.split}_{i:06d}.png")
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            raise DataError(f"{where}: 'image_filename' must be a file name, found {name!r}")
        return name

    @property
    def dataset_name(self) -> str:
        """The store name of this task (:attr:`ClevrTask.dataset`)."""
        return TASKS[self.task].dataset

    def __len__(self) -> int:
        return len(self.filenames)

    def image_path(self, idx: int | np.integer) -> Path:
        """The PNG file of example ``idx``."""
        return self.images_dir / self.filenames[self._index(idx)]

    def _index(self, idx: int | np.integer) -> int:
        n = len(self)
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)) or not -n <= idx < n:
            raise IndexError(f"{self.scenes_file}: example {idx!r} out of range for {n} kept scenes")
        return int(idx) % n

    def __getitem__(self, idx: int | np.integer) -> dict[str, Any]:
        """Example ``idx`` as stored: ``image`` uint8 [H, W, 3] (raw frame, alpha dropped), ``target`` float32
        [10, 19], ``num_objects`` int.

        Raises:
            IndexError: ``idx`` is out of range.
            DataError: the PNG does not decode or has the wrong size (names the file).
        """
        i = self._index(idx)
        return {
            "image": load_clevr_png(self.images_dir / self.filenames[i], self.frame_size),
            "target": self.targets[i].copy(),
            "num_objects": int(self.num_objects[i]),
        }

    def batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, Tensor]:
        """Examples ``indices`` preprocessed for the model, as the official pipeline feeds them.

        Returns:
            ``image`` float32 [B, 3, h, w] in [-1, 1] (task crop + resize), ``target`` float32 [B, 10, 19],
            ``num_objects`` int64 [B].
        """
        if len(indices) == 0:
            raise ValueError("ClevrV1.batch: indices is empty")
        rows = [self._index(i) for i in indices]
        frames = np.stack([self[i]["image"] for i in rows])
        return {
            "image": preprocess_clevr_image(frames, self.crop, self.resolution),
            "target": torch.from_numpy(self.targets[rows]),
            "num_objects": torch.from_numpy(self.num_objects[rows]),
        }


def official_split(root: str | Path, name: str, task: str = "object_discovery", **kwargs: Any) -> ClevrV1:
    """One of the official code's splits: ``train_eval``, ``train`` or ``validation`` (see :data:`OFFICIAL_SPLITS`).

    Args:
        root: the unpacked ``CLEVR_v1.0/`` directory.
        name: the official split name.
        task: as in :class:`ClevrV1`.
        **kwargs: further :class:`ClevrV1` arguments (``max_objects``, ``resolution``, ``frame_size``).

    Raises:
        ValueError: unknown ``name``.
    """
    if name not in OFFICIAL_SPLITS:
        raise ValueError(f"official_split: name must be one of {', '.join(OFFICIAL_SPLITS)}, got {name!r}")
    return ClevrV1(root, task=task, **OFFICIAL_SPLITS[name], **kwargs)


# --- conversion to a store -----------------------------------------------------------------------------------------


def _to_uint8(images: Float[Tensor, "B 3 h w"]) -> UInt8[np.ndarray, "B h w 3"]:
    """[-1, 1] -> nearest of the 256 levels that ``to_model_batch`` maps back with x / 127.5 - 1."""
    levels = ((images + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return levels.permute(0, 2, 3, 1).contiguous().numpy()  # (B, h, w, 3)


def convert_clevr(
    root: str | Path,
    split: str,
    out_dir: str | Path,
    task: str = "object_discovery",
    *,
    max_objects: int | None = None,
    first: int | None = None,
    skip: int | None = None,
    resolution: tuple[int, int] = RESOLUTION,
    frame_size: tuple[int, int] = FRAME_SIZE,
    chunk_size: int = 256,
    overwrite: bool = False,
    progress: Callable[[int], object] | SupportsUpdate | None = None,
) -> Store:
    """Preprocess one CLEVR v1.0 split for a task and write it as a store (:func:`~slotattn.data.store.write_store`).

    What is stored: the task's model input, cropped and resized at ``resolution`` exactly as
    :func:`preprocess_clevr_image`, then rounded to uint8 HWC (``round(127.5 * (x + 1))``), not the raw frames.
    That keeps the store at the training resolution that ``open_checked_store`` expects and about 9x smaller
    than 480x320 frames (49 KB per example; ~3.4 GB for train). Consequence for the value range:
    ``to_model_batch`` maps a stored value v to ``v / 127.5 - 1``, which differs from the official float input
    by at most 1/255 (half a quantisation step); 0 and 255 still map to -1 and 1 exactly. Use :class:`ClevrV1`
    directly for the unrounded input.

    Features: ``image`` uint8 [N, h, w, 3]; ``target`` float32 [N, 10, 19]; ``num_objects`` int64 [N];
    ``image_index`` int64 [N] (position in the scenes JSON, = the NNNNNN of the file name). The official
    splits are ``convert_clevr(root, out_dir=..., task=..., **OFFICIAL_SPLITS["train"])`` and so on.

    Args:
        root: the unpacked ``CLEVR_v1.0/`` directory.
        split: directory name under ``images/`` (``train``, ``val``).
        out_dir: the store directory to write.
        task: ``object_discovery`` (store name ``clevr6``) or ``set_prediction`` (store name ``clevr``).
        max_objects: as in :class:`ClevrV1`.
        first: as in :class:`ClevrV1`.
        skip: as in :class:`ClevrV1`.
        resolution: (h, w) of the stored images.
        frame_size: (H, W) of the PNG frames (CLEVR v1.0: 320 x 480; a generated set may be smaller).
        chunk_size: frames decoded and resized at a time.
        overwrite: replace an existing ``out_dir``.
        progress: called with the number of examples after each chunk (a callable or a ``tqdm`` bar).

    Returns:
        The written store, opened.

    Raises:
        DataError: as :class:`ClevrV1` and :func:`load_clevr_png`, or no scene passes the filter.
        FileExistsError: ``out_dir`` exists and ``overwrite`` is false.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"convert_clevr: chunk_size must be a positive int, got {chunk_size!r}")
    ds = ClevrV1(root, split, task, max_objects, first, skip, resolution=resolution, frame_size=frame_size)
    if len(ds) == 0:
        raise DataError(
            f"{ds.scenes_file}: no scene with <= {ds.max_objects} objects (skip={skip}, first={first}); "
            "nothing to convert"
        )

    def chunks() -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(ds), chunk_size):
            rows = list(range(start, min(start + chunk_size, len(ds))))
            batch = ds.batch(rows)
            yield {
                "image": _to_uint8(batch["image"]),
                "target": batch["target"].numpy(),
                "num_objects": batch["num_objects"].numpy(),
                "image_index": ds.scene_indices[rows],
            }

    meta = {
        "dataset": ds.dataset_name,
        "source": {
            "name": "CLEVR_v1.0",
            "root": str(ds.root),
            "split": split,
            "task": task,
            "skip": skip,
            "first": first,
            "max_objects": ds.max_objects,
            "crop": list(ds.crop) if ds.crop is not None else None,
            "resolution": list(ds.resolution),
            "image": "uint8 HWC, round(127.5 * (x + 1)) of the official [-1, 1] input (error <= 1/255)",
            "reference": "google-research slot_attention/data.py preprocess_clevr on TFDS clevr:3.1.0",
        },
    }
    return write_store(out_dir, chunks(), meta, num=len(ds), overwrite=overwrite, progress=progress)
