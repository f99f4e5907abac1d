"""DeepMind multi_object_datasets (Kabra et al. 2019): the official feature specs, a reader, a writer, a converter.

Transcribes the readers in google-deepmind/multi_object_datasets (``multi_dsprites.py``, ``tetrominoes.py``
(= the older ``tetris.py``), ``objects_room.py``, ``clevr_with_masks.py``) without TensorFlow, on top of
:mod:`slotattn.data.tfrecord`.

Each official reader parses a record with ``tf.parse_single_example`` and ``FixedLenFeature(shape, dtype)``:

* ``tf.float32`` features are a ``float_list`` of exactly ``prod(shape)`` values, reshaped to ``shape``.
* ``tf.string`` features are a ``bytes_list`` of exactly ``prod(shape)`` strings, then
  ``tf.squeeze(tf.decode_raw(x, tf.uint8), axis=-1)``: ``decode_raw`` appends the string length as a last axis
  and the squeeze only succeeds if it is 1, so every string is exactly one byte and the result is a uint8
  array of ``shape`` (every pixel of every image and mask is its own one-byte string).
* ``multi_dsprites`` stores ``mask`` as ``[64, 64, entities, 1]`` and transposes it with ``[2, 0, 1, 3]`` into
  the ``[entities, 64, 64, 1]`` layout of the other datasets.

Features a record holds beyond the spec are ignored, as ``parse_single_example`` ignores them. The files are
GZIP-compressed TFRecords (``COMPRESSION_TYPE = 'GZIP'`` in every one of these readers).
"""

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from slotattn.data.batch import check_mask_partition
from slotattn.data.errors import DataError
from slotattn.data.store import Store, SupportsUpdate, write_store
from slotattn.data.tfrecord import (
    Feature,
    TFRecordWriter,
    bytes_feature_from_uint8,
    count_records,
    decode_example,
    detect_compression,
    encode_example,
    float_feature,
    read_records,
)

__all__ = [
    "CLEVR_WITH_MASKS_IMAGE_SIZE",
    "CLEVR_WITH_MASKS_MAX_NUM_ENTITIES",
    "DATASETS",
    "MULTI_DSPRITES_IMAGE_SIZE",
    "MULTI_DSPRITES_MAX_NUM_ENTITIES",
    "OBJECTS_ROOM_IMAGE_SIZE",
    "OBJECTS_ROOM_MAX_NUM_ENTITIES",
    "TETROMINOES_IMAGE_SIZE",
    "TETROMINOES_MAX_NUM_ENTITIES",
    "FeatureSpec",
    "MultiObjectSpec",
    "convert_multi_object",
    "multi_object_spec",
    "read_multi_object",
    "write_multi_object",
]

logger = logging.getLogger(__name__)

_OFFICIAL = "google-deepmind/multi_object_datasets"

# The official constants, by file. The values are the number of masks (background + objects) per scene.
MULTI_DSPRITES_IMAGE_SIZE = (64, 64)  # multi_dsprites.py IMAGE_SIZE
MULTI_DSPRITES_MAX_NUM_ENTITIES = {"binarized": 4, "colored_on_grayscale": 6, "colored_on_colored": 5}
TETROMINOES_IMAGE_SIZE = (35, 35)  # tetrominoes.py
TETROMINOES_MAX_NUM_ENTITIES = 4
OBJECTS_ROOM_IMAGE_SIZE = (64, 64)  # objects_room.py
OBJECTS_ROOM_MAX_NUM_ENTITIES = {"train": 7, "six_objects": 10, "empty_room": 4, "identical_color": 10}
CLEVR_WITH_MASKS_IMAGE_SIZE = (240, 320)  # clevr_with_masks.py
CLEVR_WITH_MASKS_MAX_NUM_ENTITIES = 11

DATASETS = ("multi_dsprites", "tetrominoes", "objects_room", "clevr_with_masks")
_VARIANTS: dict[str, dict[str, int] | None] = {
    "multi_dsprites": MULTI_DSPRITES_MAX_NUM_ENTITIES,
    "tetrominoes": None,
    "objects_room": OBJECTS_ROOM_MAX_NUM_ENTITIES,
    "clevr_with_masks": None,
}


@dataclass(frozen=True)
class FeatureSpec:
    """One ``tf.FixedLenFeature`` of an official reader.

    Attributes:
        shape: the ``FixedLenFeature`` shape, i.e. the layout in the file.
        dtype: the TensorFlow dtype in the file: ``"string"`` (decoded to uint8, one byte per string) or
            ``"float32"``.
        transpose: axes applied after decoding (``multi_dsprites`` masks: ``(2, 0, 1, 3)``), or None.
    """

    shape: tuple[int, ...]
    dtype: Literal["string", "float32"]
    transpose: tuple[int, ...] | None = None

    @property
    def size(self) -> int:
        """Number of values in the file: ``prod(shape)``."""
        return math.prod(self.shape)

    @property
    def decoded_shape(self) -> tuple[int, ...]:
        """Shape after the official ``_decode`` (the stored shape, transposed if ``transpose`` is set)."""
        return self.shape if self.transpose is None else tuple(self.shape[a] for a in self.transpose)

    @property
    def decoded_dtype(self) -> np.dtype:
        """uint8 for ``string`` features (``decode_raw(x, tf.uint8)``), float32 otherwise."""
        return np.dtype(np.uint8) if self.dtype == "string" else np.dtype(np.float32)

    def describe(self) -> str:
        """E.g. ``"3675 one-byte strings (bytes_list, shape [35, 35, 3])"``, for error messages."""
        if self.dtype == "string":
            return f"{self.size} one-byte strings (bytes_list, shape {list(self.shape)})"
        return f"{self.size} float32 values (float_list, shape {list(self.shape)})"


@dataclass(frozen=True)
class MultiObjectSpec:
    """The features of one official dataset (variant), in the order of the official ``features`` dict.

    Attributes:
        name: one of :data:`DATASETS`.
        variant: the ``dataset_variant`` of ``multi_dsprites`` / ``objects_room``, else None.
        max_num_entities: number of masks per scene (background included).
        features: feature name -> :class:`FeatureSpec`.
        source: the official reader this spec transcribes.
    """

    name: str
    variant: str | None
    max_num_entities: int
    features: dict[str, FeatureSpec] = field(repr=False)
    source: str

    def decoded_shapes(self) -> dict[str, tuple[int, ...]]:
        """Feature name -> per-example shape as the official reader returns it."""
        return {key: spec.decoded_shape for key, spec in self.features.items()}

    def decoded_dtypes(self) -> dict[str, np.dtype]:
        """Feature name -> dtype as the official reader returns it."""
        return {key: spec.decoded_dtype for key, spec in self.features.items()}


def multi_object_spec(name: str, variant: str | None = None) -> MultiObjectSpec:
    """The official feature spec of a multi_object_datasets file.

    Args:
        name: ``"multi_dsprites"``, ``"tetrominoes"``, ``"objects_room"`` or ``"clevr_with_masks"``.
        variant: required for ``multi_dsprites`` (``"binarized"``, ``"colored_on_grayscale"``,
            ``"colored_on_colored"``) and ``objects_room`` (``"train"``, ``"six_objects"``, ``"empty_room"``,
            ``"identical_color"``), as the official ``dataset_variant``; None for the others.

    Returns:
        The spec.

    Raises:
        ValueError: unknown ``name``, or a missing, unknown or unexpected ``variant``.
    """
    if name not in _VARIANTS:
        raise ValueError(f"unknown multi_object_datasets name {name!r}; expected one of {list(DATASETS)}")
    variants = _VARIANTS[name]
    if variants is None:
        if variant is not None:
            raise ValueError(f"{name} has no variants, got variant={variant!r}")
    elif variant not in variants:
        what = "needs a variant" if variant is None else f"has no variant {variant!r}"
        raise ValueError(f"{name} {what}; expected one of {list(variants)} (the official dataset_variant)")

    def string(*shape: int, transpose: tuple[int, ...] | None = None) -> FeatureSpec:
        return FeatureSpec(tuple(shape), "string", transpose)

    def floats(*shape: int) -> FeatureSpec:
        return FeatureSpec(tuple(shape), "float32")

    if name == "multi_dsprites":
        n = MULTI_DSPRITES_MAX_NUM_ENTITIES[variant]
        c = 1 if variant == "binarized" else 3  # is_grayscale = dataset_variant == 'binarized'
        h, w = MULTI_DSPRITES_IMAGE_SIZE
        features = {
            "image": string(h, w, c),
            "mask": string(h, w, n, 1, transpose=(2, 0, 1, 3)),  # stored [H, W, n, 1], returned [n, H, W, 1]
            "x": floats(n),
            "y": floats(n),
            "shape": floats(n),
            "color": floats(n, c),
            "visibility": floats(n),
            "orientation": floats(n),
            "scale": floats(n),
        }
    elif name == "tetrominoes":
        n = TETROMINOES_MAX_NUM_ENTITIES
        h, w = TETROMINOES_IMAGE_SIZE
        features = {
            "image": string(h, w, 3),
            "mask": string(n, h, w, 1),
            "x": floats(n),
            "y": floats(n),
            "shape": floats(n),
            "color": floats(n, 3),
            "visibility": floats(n),
        }
    elif name == "objects_room":
        n = OBJECTS_ROOM_MAX_NUM_ENTITIES[variant]
        h, w = OBJECTS_ROOM_IMAGE_SIZE
        features = {"image": string(h, w, 3), "mask": string(n, h, w, 1)}
    else:  # clevr_with_masks
        n = CLEVR_WITH_MASKS_MAX_NUM_ENTITIES
        h, w = CLEVR_WITH_MASKS_IMAGE_SIZE
        features = {
            "image": string(h, w, 3),
            "mask": string(n, h, w, 1),
            "x": floats(n),
            "y": floats(n),
            "z": floats(n),
            "pixel_coords": floats(n, 3),
            "rotation": floats(n),
            "size": string(n),  # categorical codes, one byte each (BYTE_FEATURES in clevr_with_masks.py)
            "material": string(n),
            "shape": string(n),
            "color": string(n),
            "visibility": floats(n),
        }
    return MultiObjectSpec(name, variant, n, features, f"{_OFFICIAL} {name}.py")


# ------------------------------------------------------------------------------------------------- reading


def _decode(features: dict[str, Feature], spec: MultiObjectSpec, where: str) -> dict[str, np.ndarray]:
    """The official ``_decode``: check each FixedLenFeature, then decode_raw / reshape / transpose."""
    out = {}
    for key, fspec in spec.features.items():
        feature = features.get(key)
        if feature is None:
            raise DataError(
                f"{where}: feature '{key}' is missing (expected {fspec.describe()}); "
                f"the record has {sorted(features)}"
            )
        expected_kind = "bytes_list" if fspec.dtype == "string" else "float_list"
        if feature.kind not in (expected_kind, None):  # None: an empty Feature, read as 0 values of any type
            raise DataError(f"{where}: feature '{key}': expected {fspec.describe()}, found a {feature.kind}")
        try:
            if feature.kind is None:
                values = np.zeros(0, dtype=fspec.decoded_dtype)
            elif fspec.dtype == "string":
                values = feature.to_uint8()
            else:
                values = feature.values()  # float32 [n], a fresh array
        except DataError as err:
            raise DataError(f"{where}: feature '{key}': {err} (expected {fspec.describe()})") from err
        if values.size != fspec.size:
            unit = "bytes" if fspec.dtype == "string" else "float32 values"
            raise DataError(
                f"{where}: feature '{key}': expected {fspec.size} {unit} ({fspec.describe()}), "
                f"found {values.size}"
            )
        values = values.reshape(fspec.shape)
        if fspec.transpose is not None:
            values = np.ascontiguousarray(values.transpose(fspec.transpose))
        out[key] = values
    return out


def read_multi_object(
    path: str | Path, name: str, variant: str | None = None, *, compression: str | None = "auto"
) -> Iterator[dict[str, np.ndarray]]:
    """Stream the examples of an official multi_object_datasets TFRecord file, decoded as the official reader does.

    Example::

        for ex in read_multi_object("multi_dsprites_colored_on_colored.tfrecords", "multi_dsprites",
                                    "colored_on_colored"):
            ex["image"]  # uint8 [64, 64, 3];  ex["mask"]: uint8 [5, 64, 64, 1]

    Args:
        path: the ``.tfrecords`` file (GZIP-compressed as distributed, or uncompressed).
        name: one of :data:`DATASETS`.
        variant: see :func:`multi_object_spec`.
        compression: ``"auto"`` (default), ``"gzip"``, ``"zlib"`` or ``"none"``.

    Returns:
        An iterator of dicts in the official key order with the official shapes and dtypes (see
        :meth:`MultiObjectSpec.decoded_shapes`); each array is new, C-contiguous and writable.

    Raises:
        ValueError: unknown ``name``/``variant``/``compression`` (at the call).
        DataError: missing file (at the call); while iterating, a damaged record (see
            :func:`slotattn.data.tfrecord.read_records`), a record that is not a tf.train.Example, or one whose
            feature is missing or of the wrong type or size; the message names the file, the record index and
            the feature, and says what was expected and what was found.
    """
    spec = multi_object_spec(name, variant)
    records = read_records(path, compression)
    return _examples(Path(path), records, spec)


def _examples(path: Path, records: Iterator[bytes], spec: MultiObjectSpec) -> Iterator[dict[str, np.ndarray]]:
    for index, record in enumerate(records):
        where = f"{path}: record {index}"
        try:
            features = decode_example(record)
        except DataError as err:
            raise DataError(f"{where}: not a valid tf.train.Example: {err}") from err
        yield _decode(features, spec, where)


# ------------------------------------------------------------------------------------------------- writing


def _check_array(value: Any, fspec: FeatureSpec, where: str, key: str, batched: bool) -> np.ndarray:
    arr = np.asarray(value)
    shape = arr.shape[1:] if batched else arr.shape
    if shape != fspec.decoded_shape:
        lead = "[N, " if batched else "["
        expected = lead + ", ".join(map(str, fspec.decoded_shape)) + "]"
        raise DataError(f"{where}: '{key}' expected shape {expected}, found {list(arr.shape)}")
    if fspec.dtype == "string":
        if arr.dtype != np.uint8:
            raise DataError(f"{where}: '{key}' expected dtype uint8, found {arr.dtype}")
    elif arr.dtype.kind not in "biuf":
        raise DataError(f"{where}: '{key}' expected float32 values, found dtype {arr.dtype}")
    return arr


def _batches(
    source: Mapping[str, np.ndarray] | Iterable[Mapping[str, np.ndarray]], spec: MultiObjectSpec
) -> Iterator[dict[str, np.ndarray]]:
    """Checked batches (leading examples axis) from one batch, or an iterable of examples and/or batches."""
    items: Iterable[Mapping[str, np.ndarray]] = [source] if isinstance(source, Mapping) else source
    first = next(iter(spec.features))
    for index, item in enumerate(items):
        where = f"write_multi_object: item {index}"
        if not isinstance(item, Mapping):
            raise DataError(f"{where}: expected a dict of arrays, found {type(item).__name__}")
        missing = [key for key in spec.features if key not in item]
        extra = [key for key in item if key not in spec.features]
        if missing or extra:
            raise DataError(
                f"{where}: expected exactly the features {list(spec.features)} of {spec.source}; "
                f"missing {missing}, unexpected {extra}"
            )
        # an example has the per-example rank, a batch one more axis
        batched = np.ndim(item[first]) == len(spec.features[first].decoded_shape) + 1
        arrays = {key: _check_array(item[key], fspec, where, key, batched) for key, fspec in spec.features.items()}
        if batched:
            sizes = {key: arr.shape[0] for key, arr in arrays.items()}
            if len(set(sizes.values())) != 1:
                raise DataError(f"{where}: features disagree on the number of examples: {sizes}")
            yield arrays
        else:
            yield {key: arr[None] for key, arr in arrays.items()}


def _encode(example: Mapping[str, np.ndarray], spec: MultiObjectSpec) -> bytes:
    """The inverse of the official ``_decode``: one record in the original format."""
    features = {}
    for key, fspec in spec.features.items():
        value = example[key]
        if fspec.transpose is not None:  # back to the stored layout
            value = value.transpose(np.argsort(fspec.transpose))
        if fspec.dtype == "string":
            features[key] = bytes_feature_from_uint8(value)
        else:
            features[key] = float_feature(value)
    return encode_example(features)


def write_multi_object(
    path: str | Path,
    name: str,
    examples_or_batched_arrays: Mapping[str, np.ndarray] | Iterable[Mapping[str, np.ndarray]],
    variant: str | None = None,
    *,
    compression: str | None = "gzip",
) -> int:
    """Write examples as a TFRecord file in the format of the original multi_object_datasets files.

    Each record is a ``tf.train.Example`` holding exactly the official features: ``string`` features as a
    ``bytes_list`` of one-byte strings in the stored layout (``multi_dsprites`` masks transposed back to
    ``[64, 64, n, 1]``), ``float32`` features as a packed ``float_list``. The official reader decodes the
    file into the arrays given here. Map entries are sorted by key (the order in the original files is not
    known; parsers do not depend on it). The file is replaced only once it is complete.

    Args:
        path: the ``.tfrecords`` file to write.
        name: one of :data:`DATASETS`.
        examples_or_batched_arrays: one dict of arrays with a leading examples axis (e.g. what
            ``generate_tetrominoes`` returns), or an iterable of such dicts and/or single examples, in the
            official decoded layout (:meth:`MultiObjectSpec.decoded_shapes`). ``string`` features must be uint8;
            float features are cast to float32.
        variant: see :func:`multi_object_spec`.
        compression: ``"gzip"`` (default, as the originals), ``"zlib"`` or ``"none"``.

    Returns:
        The number of examples written.

    Raises:
        ValueError: unknown ``name``/``variant``/``compression``.
        DataError: an item misses a feature, has an extra one, or one of the wrong shape or dtype (the message
            names the item and the key and gives expected and found).
    """
    spec = multi_object_spec(name, variant)
    with TFRecordWriter(path, compression) as writer:
        for batch in _batches(examples_or_batched_arrays, spec):
            for i in range(next(iter(batch.values())).shape[0]):
                writer.write(_encode({key: arr[i] for key, arr in batch.items()}, spec))
    logger.info("wrote %d %s examples to %s", writer.num_records, name, path)
    return writer.num_records


# ---------------------------------------------------------------------------------------------- converting


def _chunks(
    examples: Iterator[dict[str, np.ndarray]], spec: MultiObjectSpec, num: int, chunk: int, path: Path
) -> Iterator[dict[str, np.ndarray]]:
    """Stack examples into chunks of ``chunk``; reads one example past ``num`` so that a surplus is reported.

    Each chunk's masks must partition the pixels (:func:`~slotattn.data.batch.check_mask_partition`), as training
    checks every batch: a bad record then fails here, named by file and record, not mid-training.
    """
    shapes, dtypes = spec.decoded_shapes(), spec.decoded_dtypes()
    done = 0
    while True:
        size = max(min(chunk, num - done), 1)  # past `num`: a chunk of 1, which write_store rejects if filled
        arrays = {key: np.empty((size, *shapes[key]), dtype=dtypes[key]) for key in spec.features}
        n = 0
        for example in examples:
            for key, arr in arrays.items():
                arr[n] = example[key]
            n += 1
            if n == size:
                break
        if n == 0:
            return
        if "mask" in arrays:
            check_mask_partition(arrays["mask"][:n], f"{path}: feature 'mask'", first_index=done, item="record")
        done += n
        yield {key: arr[:n] for key, arr in arrays.items()}
        if n < size:
            return


def convert_multi_object(
    name: str,
    input_path: str | Path,
    out_dir: str | Path,
    variant: str | None = None,
    progress: Callable[[int], object] | SupportsUpdate | None = None,
    chunk: int = 1024,
    *,
    num: int | None = None,
    compression: str | None = "auto",
    overwrite: bool = False,
) -> Store:
    """Convert an official multi_object_datasets TFRecord file into a slotattn store (:mod:`slotattn.data.store`).

    The store holds the official features under their official names, dtypes and shapes (``image`` uint8
    ``[N, H, W, C]``, ``mask`` uint8 ``[N, n, H, W, 1]``, ...). Its ``meta.json`` records ``dataset`` (= ``name``),
    ``variant``, and ``source``: the input file (absolute path, size), its compression, the number of records
    and the official reader the decoding follows.

    Memory: one chunk of decoded examples at a time, e.g. 1024 Multi-dSprites examples are ~33 MB, but 1024
    CLEVR-with-masks examples ~1 GiB (pass a smaller ``chunk`` there).

    Args:
        name: one of :data:`DATASETS`.
        input_path: the ``.tfrecords`` file.
        out_dir: the store directory to create.
        variant: see :func:`multi_object_spec`.
        progress: called with the number of examples after each chunk (a callable or a ``tqdm`` bar).
        chunk: examples decoded per chunk written.
        num: number of records, if known; None counts them first (a pass over the file that checks the length
            CRCs; for a GZIP file it costs about as long as decompressing it).
        compression: ``"auto"`` (default), ``"gzip"``, ``"zlib"`` or ``"none"``.
        overwrite: replace an existing ``out_dir``.

    Returns:
        The written store, opened.

    Raises:
        ValueError: bad ``name``/``variant``/``compression``/``chunk``, or ``num`` disagrees with the file.
        DataError: the file is missing, empty, or damaged, a record does not match the spec (see
            :func:`read_multi_object`), or its masks do not partition the pixels (one entity at 255 per pixel;
            the message names the record and pixel).
        FileExistsError: ``out_dir`` exists and ``overwrite`` is false.
    """
    spec = multi_object_spec(name, variant)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"convert_multi_object: chunk must be a positive int, got {chunk!r}")
    input_path = Path(input_path)
    examples = read_multi_object(input_path, name, variant, compression=compression)  # checks the path
    mode = (compression or "none").lower()  # already validated by read_multi_object
    detected = detect_compression(input_path) if mode == "auto" else mode
    if num is None:
        num = count_records(input_path, detected)
    if num == 0:
        raise DataError(f"{input_path}: holds no records; nothing to convert")
    meta = {
        "dataset": name,
        "variant": variant,
        "source": {
            "path": str(input_path.resolve()),
            "size_bytes": input_path.stat().st_size,
            "format": "tfrecord",
            "compression": detected,
            "num_records": num,
            "official_reader": spec.source,
        },
    }
    return write_store(
        out_dir, _chunks(examples, spec, num, chunk, input_path), meta, num=num, overwrite=overwrite, progress=progress
    )
