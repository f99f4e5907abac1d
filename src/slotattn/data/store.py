"""The one on-disk dataset format: a directory with one ``.npy`` per feature and a ``meta.json``.

Generators and converters write it with :func:`write_store`; training reads it with :func:`open_store`, which
memory-maps every array (``np.load(mmap_mode="r")``), so a store larger than RAM costs nothing to open.

Layout of ``<out_dir>/``::

    meta.json     {"format": "slotattn-store", "format_version": 1, "dataset": "tetrominoes",
                   "num_examples": 60000,
                   "features": {"image": {"dtype": "uint8", "shape": [35, 35, 3]}, ...},   # per example
                   "generator": {"name": "...", "seed": 0, "args": {...}}}                   # caller's keys
    image.npy     [num_examples, 35, 35, 3] uint8
    mask.npy      [num_examples, 4, 35, 35, 1] uint8   ... one file per feature, leading axis = examples

A store is written into a hidden sibling directory ``.<name>.tmp-*`` that holds an ``.incomplete`` marker
until every array and ``meta.json`` are on disk, then renamed onto ``out_dir``; a crashed or running write is
therefore never opened as a dataset.
"""

import json
import logging
import re
import shutil
import tempfile
import tokenize
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from slotattn.data.errors import DataError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INCOMPLETE_MARKER",
    "META_FILE",
    "Store",
    "open_store",
    "write_store",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "slotattn-store"
FORMAT_VERSION = 1
META_FILE = "meta.json"
INCOMPLETE_MARKER = ".incomplete"
_RESERVED_META_KEYS = ("format", "format_version", "num_examples", "features")
_FEATURE_NAME = re.compile(r"[A-Za-z0-9_]+")
_MAKE_ONE = "make one with `slotattn generate` (or `slotattn convert` for the original files)"


@runtime_checkable
class SupportsUpdate(Protocol):
    """A progress bar such as ``tqdm``: ``update(n)`` advances it by ``n`` examples."""

    def update(self, n: int) -> object: ...


@dataclass(frozen=True)
class Store:
    """An opened store: read-only memory-mapped arrays plus their ``meta.json``.

    Attributes:
        path: the store directory.
        meta: the parsed ``meta.json``.
        arrays: feature name -> read-only ``np.memmap`` with a leading examples axis.
    """

    path: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        """The dataset name recorded by the writer (``meta["dataset"]``)."""
        return self.meta["dataset"]

    def __len__(self) -> int:
        return int(self.meta["num_examples"])

    def __getitem__(self, idx: int) -> dict[str, np.ndarray]:
        """One example: feature name -> array without the examples axis (a memmap view; copy to keep it).

        Raises:
            IndexError: ``idx`` is outside ``[-len, len)``.
        """
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"{self.path}: example {idx} out of range for a store of {n} examples")
        return {key: arr[idx] for key, arr in self.arrays.items()}


def _check_chunk(
    chunk: Mapping[str, np.ndarray], index: int, reference: dict[str, tuple[tuple[int, ...], np.dtype]] | None
) -> tuple[dict[str, np.ndarray], int]:
    """Validate one chunk against the first; returns its arrays and its number of examples."""
    where = f"write_store: chunk {index}"
    if not isinstance(chunk, Mapping) or not chunk:
        raise ValueError(f"{where}: expected a non-empty dict of arrays, got {type(chunk).__name__}")
    arrays = {}
    for key, value in chunk.items():
        if not isinstance(key, str) or not _FEATURE_NAME.fullmatch(key):
            raise ValueError(f"{where}: feature names must match [A-Za-z0-9_]+ (they become file names), got {key!r}")
        arr = np.asarray(value)
        if arr.dtype.hasobject or arr.dtype.kind not in "biuf":
            raise ValueError(f"{where}: '{key}' must be a bool, integer or float array, got dtype {arr.dtype}")
        if arr.ndim == 0:
            raise ValueError(f"{where}: '{key}' needs a leading examples axis, got a scalar")
        arrays[key] = arr
    lengths = {key: arr.shape[0] for key, arr in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{where}: features disagree on the number of examples: {lengths}")
    if reference is not None:
        if set(arrays) != set(reference):
            raise ValueError(f"{where}: expected features {sorted(reference)}, found {sorted(arrays)}")
        for key, arr in arrays.items():
            shape, dtype = reference[key]
            if arr.shape[1:] != shape or arr.dtype != dtype:
                raise ValueError(
                    f"{where}: '{key}' expected per-example shape {list(shape)} {dtype} (from chunk 0), "
                    f"found {list(arr.shape[1:])} {arr.dtype}"
                )
    return arrays, next(iter(lengths.values()))


def _report(progress: Callable[[int], object] | SupportsUpdate | None, n: int) -> None:
    if progress is None:
        return
    if isinstance(progress, SupportsUpdate):
        progress.update(n)
    else:
        progress(n)


def write_store(
    out_dir: str | Path,
    source: Mapping[str, np.ndarray] | Iterable[Mapping[str, np.ndarray]],
    meta: Mapping[str, Any],
    *,
    num: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], object] | SupportsUpdate | None = None,
) -> Store:
    """Write a dataset store, all at once or chunk by chunk, and replace ``out_dir`` only when it is complete.

    Example, streaming a generator to disk in chunks of 1000 (the CLI passes a ``tqdm`` bar)::

        chunks = (generate_tetrominoes(min(1000, n - i), rng) for i in range(0, n, 1000))
        write_store("data/tetrominoes", chunks, {"dataset": "tetrominoes", "generator": {...}}, num=n)

    Args:
        out_dir: the store directory to create; its parent is created if missing.
        source: one dict of arrays with a leading examples axis, or an iterable of such dicts (chunks) that
            agree on keys, per-example shapes and dtypes.
        meta: JSON-serialisable description written into ``meta.json``: needs ``"dataset"`` (str); by
            convention also ``"generator": {"name", "seed", "args"}`` or ``"source"`` for converted data. The
            keys ``format``, ``format_version``, ``num_examples`` and ``features`` are filled in here.
        num: total number of examples; required when ``source`` is an iterable of chunks (the arrays are
            pre-allocated on disk), checked against the data in both cases.
        overwrite: replace an existing ``out_dir``; otherwise an existing path is an error.
        progress: called with the number of examples after each chunk: a callable, or an object with
            ``update(n)`` such as ``tqdm``. Library code never prints; the caller owns the bar.

    Returns:
        The written store, opened with :func:`open_store`.

    Raises:
        FileExistsError: ``out_dir`` exists and ``overwrite`` is false.
        ValueError: bad ``meta``, ``num``, or chunks (message says which chunk, key, expected and found).
    """
    out_dir = Path(out_dir)
    _check_meta(meta)
    if isinstance(source, Mapping):
        chunks: Iterable[Mapping[str, np.ndarray]] = [source]
        if num is None:
            num = _check_chunk(source, 0, None)[1]
    else:
        chunks = source
    if num is None or isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(
            f"write_store: num must be a positive int (required for an iterable of chunks), got {num!r}"
        )
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists; pass overwrite=True to replace it")
    if out_dir.exists() and not _replaceable(out_dir):
        raise FileExistsError(f"{out_dir}: exists and is not a slotattn dataset (no {META_FILE} of format "
                              f"'{FORMAT_NAME}'); overwrite replaces only datasets, so remove or rename it yourself")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        (tmp / INCOMPLETE_MARKER).write_text("write_store has not finished; this is not a dataset\n")
        features = _write_arrays(tmp, chunks, num, progress)
        meta_out = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            **dict(meta),
            "num_examples": num,
            "features": {key: {"dtype": dtype.name, "shape": list(shape)} for key, (shape, dtype) in features.items()},
        }
        (tmp / META_FILE).write_text(json.dumps(meta_out, indent=2) + "\n")
        (tmp / INCOMPLETE_MARKER).unlink()
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %d examples of %s to %s", num, meta["dataset"], out_dir)
    return open_store(out_dir)


def _replaceable(path: Path) -> bool:
    """Whether `overwrite` may replace `path`: an empty directory, or a dataset `write_store` wrote."""
    if path.is_dir() and not any(path.iterdir()):
        return True
    try:
        return json.loads((path / META_FILE).read_text()).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def _check_meta(meta: Any) -> None:
    """`write_store`'s meta: a JSON-serialisable mapping with a dataset name and none of the keys it fills in."""
    if not isinstance(meta, Mapping) or not isinstance(meta.get("dataset"), str) or not meta["dataset"]:
        raise ValueError(f"write_store: meta must contain a non-empty 'dataset' name, got {meta!r}")
    reserved = [key for key in _RESERVED_META_KEYS if key in meta]
    if reserved:
        raise ValueError(f"write_store: meta keys {reserved} are filled in by write_store; remove them")
    try:
        json.dumps(dict(meta), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"write_store: meta must be JSON-serialisable: {err}") from err


def _write_arrays(
    directory: Path,
    chunks: Iterable[Mapping[str, np.ndarray]],
    num: int,
    progress: Callable[[int], object] | SupportsUpdate | None,
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Check each chunk and copy it into one `KEY.npy` per feature in `directory`, pre-allocated for `num` examples.

    Returns each feature's per-example (shape, dtype). The files are flushed and closed on return.
    """
    files: dict[str, np.memmap] = {}
    reference: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
    written = 0
    for index, chunk in enumerate(chunks):
        arrays, n = _check_chunk(chunk, index, reference)
        if written + n > num:
            raise ValueError(f"write_store: chunk {index} brings the total to {written + n} examples, num={num}")
        if reference is None:
            _check_mask_layout(arrays, f"write_store: chunk {index}")  # before anything lands on disk
            reference = {key: (arr.shape[1:], arr.dtype) for key, arr in arrays.items()}
            for key, (shape, dtype) in reference.items():
                files[key] = np.lib.format.open_memmap(
                    directory / f"{key}.npy", mode="w+", dtype=dtype, shape=(num, *shape)
                )
        for key, arr in arrays.items():
            files[key][written : written + n] = arr
        written += n
        _report(progress, n)
    if written != num:
        raise ValueError(f"write_store: expected num={num} examples, the source gave {written}")
    for mm in files.values():
        mm.flush()
    files.clear()  # close the memmaps before the directory is renamed
    return reference


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished store `tmp` to `out_dir`, replacing an old store there."""
    if out_dir.exists():  # overwrite: move the old store aside first, so a crash leaves one of the two intact
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        out_dir.rename(old)
        tmp.rename(out_dir)
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    else:
        tmp.rename(out_dir)


def open_store(path: str | Path) -> Store:
    """Open a store written by :func:`write_store`, memory-mapping every feature read-only.

    Every array is checked against ``meta.json`` (shape ``[num_examples, *shape]`` and dtype) before it is
    returned, so a truncated or swapped file fails here rather than mid-training.

    Args:
        path: the store directory.

    Returns:
        The opened :class:`Store`.

    Raises:
        DataError: ``path`` is missing, not a directory, an unfinished write, has no or a bad ``meta.json``,
            holds no examples, a feature file is missing, unreadable or disagrees with ``meta.json``, or
            ``mask`` is not uint8 [N, M, H, W, 1] with the H, W of ``image``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such dataset directory; {_MAKE_ONE}")
    if not path.is_dir():
        raise DataError(f"{path}: expected a dataset directory (meta.json + one .npy per feature), found a file")
    if (path / INCOMPLETE_MARKER).exists():
        raise DataError(
            f"{path}: an unfinished write_store (found {INCOMPLETE_MARKER}); delete it and write the dataset again"
        )
    meta_path = path / META_FILE
    if not meta_path.is_file():
        what = "the directory is empty" if not any(path.iterdir()) else "not a slotattn dataset"
        raise DataError(f"{path}: no {META_FILE} ({what}); {_MAKE_ONE}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{meta_path}: not readable JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DataError(f"{meta_path}: expected format {FORMAT_NAME!r}, found {found!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{meta_path}: expected format_version {FORMAT_VERSION}, found {meta.get('format_version')!r}"
        )
    num = meta.get("num_examples")
    if isinstance(num, bool) or not isinstance(num, int) or num < 0:
        raise DataError(f"{meta_path}: 'num_examples' must be a non-negative integer, found {num!r}")
    features = meta.get("features")
    if num == 0 or not isinstance(features, dict) or not features:
        raise DataError(f"{meta_path}: empty dataset (num_examples={num}, features={features!r}); {_MAKE_ONE}")

    arrays = {}
    for key, spec in features.items():
        if not _FEATURE_NAME.fullmatch(key):  # the name becomes a file name: no separators, no ".."
            raise DataError(f"{meta_path}: feature names must match [A-Za-z0-9_]+, found {key!r}")
        file = path / f"{key}.npy"
        try:
            shape = (num, *(int(d) for d in spec["shape"]))
            dtype = np.dtype(spec["dtype"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{meta_path}: feature '{key}' needs 'dtype' and 'shape', found {spec!r}") from err
        if not file.is_file():
            raise DataError(f"{file}: missing; {meta_path} lists feature '{key}'")
        try:
            arr = np.load(file, mmap_mode="r", allow_pickle=False)
        # A damaged header reaches numpy's header parser, which lets tokenize.TokenError, SyntaxError and TypeError
        # out as well as ValueError (found by tests/test_fuzz_readers.py).
        except (OSError, ValueError, EOFError, SyntaxError, TypeError, tokenize.TokenError) as err:
            raise DataError(f"{file}: not a readable .npy file ({type(err).__name__}: {err})") from err
        if arr.shape != shape or arr.dtype != dtype:
            raise DataError(
                f"{file}: expected shape {list(shape)} {dtype} (from {META_FILE}), "
                f"found {list(arr.shape)} {arr.dtype}"
            )
        arrays[key] = arr
    _check_mask_layout(arrays, str(meta_path))
    return Store(path=path, meta=meta, arrays=arrays)


def _check_mask_layout(arrays: Mapping[str, np.ndarray], where: str) -> None:
    """``mask`` must be uint8 [N, M, H, W, 1] with the H, W of ``image`` (the batch contract, slotattn.data.batch).

    Only shapes and dtypes, from the headers: checking that the masks partition the pixels would read the whole
    array (gigabytes for CLEVR6), so training does that per batch (``to_model_batch``) and the converters per record.
    """
    if "mask" not in arrays:
        return
    mask = arrays["mask"]
    image_hw = tuple(arrays["image"].shape[1:3]) if "image" in arrays and arrays["image"].ndim >= 3 else None
    ok = mask.dtype == np.uint8 and mask.ndim == 5 and mask.shape[1] >= 1 and mask.shape[-1] == 1
    ok = ok and (image_hw is None or tuple(mask.shape[2:4]) == image_hw)
    if not ok:
        h, w = image_hw if image_hw is not None else ("H", "W")
        raise DataError(
            f"{where}: feature 'mask' must be uint8 [num_examples, M, {h}, {w}, 1] (one plane per entity, "
            f"the H, W of 'image'), found {list(mask.shape)} {mask.dtype}"
        )
