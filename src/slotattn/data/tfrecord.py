"""TFRecord files and ``tf.train.Example`` records without TensorFlow: framing, masked CRC32C, GZIP/ZLIB, protobuf.

Follows TensorFlow's format description (``tensorflow/python/lib/io/python_io.py``, "TFRecords Format Details")
and the message definitions in ``tensorflow/core/example/example.proto`` and ``feature.proto``.

**Framing.** A TFRecord file is a sequence of records, each::

    uint64 length                      little-endian
    uint32 masked_crc32c(length)       of the 8 length bytes
    byte   data[length]
    uint32 masked_crc32c(data)

with ``masked_crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)`` and CRC32C the Castagnoli CRC
(RFC 3720). A whole file may be GZIP- or ZLIB-compressed (TensorFlow's ``compression_type``); DeepMind's
multi_object_datasets files are GZIP. Every length and data CRC is checked before a record is returned, so a
corrupted or truncated file raises :class:`DataError` naming the file and the record index, never yields
damaged bytes. One limit is the format's, not ours: an *uncompressed* file cut exactly at a record boundary is a
valid shorter file (a compressed one is not: its stream trailer is missing).

**CRC32C** comes from ``google-crc32c`` (Google's maintained C library with wheels for Linux, macOS and Windows;
about 2.5 GB/s on one core here). A pure-Python CRC would cost seconds per file: multi_object_datasets records
are 40-100 kB each and there are a million per file. Where no wheel exists, ``google-crc32c`` falls back to its
own pure-Python code and warns (``google_crc32c.implementation == "python"``), so no fallback lives here.

**Protobuf.** ``tf.train.Example`` is decoded and encoded by a small wire-format codec written here instead of
the ``protobuf`` package, for three reasons: (1) the schema is six tiny messages (Example, Features, the map
entry, Feature, BytesList/FloatList/Int64List), so the codec is short and its merge rules are easy to state;
(2) no TensorFlow ``.proto`` files or generated code are needed, and ``protobuf`` is not a dependency of
slotattn; (3) speed: multi_object_datasets store every pixel as a separate one-byte string (their readers'
``FixedLenFeature(shape, tf.string)`` + ``decode_raw`` + ``squeeze``), ~37,000 strings per Multi-dSprites image,
which ``protobuf`` would turn into as many Python ``bytes`` objects; here such a list is recognised with numpy
as the repeating 3-byte pattern ``0x0a 0x01 <byte>`` and sliced in one step (:meth:`Feature.to_uint8`).
The tests check the codec against ``protobuf``'s own serializer and parser (packed and unpacked).

The codec follows protobuf's parsing rules: packed and unpacked repeated scalars are both accepted, unknown
fields (and known fields with an unexpected wire type) are skipped, a repeated message field merges (for a
map, the last entry of a key wins), and a oneof keeps the last member seen. Encoding is deterministic: map
entries sorted by key, floats and int64s packed, i.e. what ``SerializeToString(deterministic=True)`` writes.
"""

import gzip
import io
import os
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from slotattn.data.errors import DataError
from slotattn.protowire import WireFormatError, crc32c, encode_varint, fields, masked_crc32c, varint

__all__ = [
    "COMPRESSIONS",
    "Feature",
    "TFRecordWriter",
    "bytes_feature",
    "bytes_feature_from_uint8",
    "count_records",
    "crc32c",
    "decode_example",
    "detect_compression",
    "encode_example",
    "float_feature",
    "int64_feature",
    "masked_crc32c",
    "read_records",
    "write_records",
]

COMPRESSIONS = ("none", "gzip", "zlib")  # TensorFlow's compression_type "", "GZIP", "ZLIB"
_HEADER = struct.Struct("<QI")  # length, masked CRC of the length
_FOOTER = struct.Struct("<I")  # masked CRC of the data
_READ_CHUNK = 64 << 20  # a record is read in pieces of at most this size, so a bad length cannot allocate 2**64
_LEVEL = 6  # TensorFlow's GZIP/ZLIB writers use zlib's Z_DEFAULT_COMPRESSION, which is level 6
_ZLIB_WBITS = 15  # TensorFlow's ZLIB: a zlib-wrapped deflate stream with a 32 KiB window

Kind = Literal["bytes_list", "float_list", "int64_list"]
_KIND_FIELD: dict[str, int] = {"bytes_list": 1, "float_list": 2, "int64_list": 3}  # Feature's oneof members
_FIELD_KIND: dict[int, Kind] = {1: "bytes_list", 2: "float_list", 3: "int64_list"}
# A BytesList value of one byte serializes as 0x0a (field 1, length-delimited), 0x01 (length), the byte; read
# little-endian, the first two bytes are the uint16 0x010a.
_ONE_BYTE_VALUE = np.dtype([("tag", "<u2"), ("value", "u1")])


# ---------------------------------------------------------------------------------------------- compression


def _normalize_compression(compression: str | None, allow_auto: bool) -> str:
    value = "none" if compression in (None, "") else str(compression).lower()
    choices = (("auto",) if allow_auto else ()) + COMPRESSIONS
    if value not in choices:
        raise ValueError(f"compression must be one of {list(choices)} (or None), got {compression!r}")
    return value


def _looks_like_zlib(head: bytes) -> bool:
    # RFC 1950: CM = 8 (deflate), CINFO <= 7, no preset dictionary, (CMF * 256 + FLG) divisible by 31
    return (
        len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and not head[1] & 0x20
        and ((head[0] << 8) | head[1]) % 31 == 0
    )


def detect_compression(path: str | Path) -> str:
    """Guess how a TFRecord file is compressed from its first 12 bytes.

    A file whose first 12 bytes are a valid uncompressed record header (the masked CRC of the length matches) is
    ``"none"`` even if it happens to start like a GZIP or ZLIB stream (a false match has probability 2**-32).
    Otherwise the GZIP magic ``1f 8b`` means ``"gzip"`` and an RFC 1950 header means ``"zlib"``; anything else
    is read as ``"none"`` (and then fails its first CRC check if it is not a TFRecord file).

    Args:
        path: the TFRecord file.

    Returns:
        One of :data:`COMPRESSIONS`.

    Raises:
        DataError: the file does not exist or cannot be read.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER.size)
    except FileNotFoundError:
        raise DataError(f"{path}: no such TFRecord file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from err
    if len(head) == _HEADER.size:
        length_crc = _HEADER.unpack(head)[1]
        if masked_crc32c(head[:8]) == length_crc:
            return "none"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if _looks_like_zlib(head):
        return "zlib"
    return "none"


class _InflateReader(io.RawIOBase):
    """A forward-only file object over a zlib-wrapped deflate stream (TensorFlow's ZLIB compression)."""

    def __init__(self, raw: io.IOBase) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(_ZLIB_WBITS)
        self._buffer = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        buffer = self._buffer
        while size < 0 or len(buffer) < size:
            if self._inflate.eof:
                if self._inflate.unused_data or self._raw.read(1):
                    raise zlib.error("data after the end of the ZLIB stream")
                break
            data = self._inflate.unconsumed_tail or self._raw.read(1 << 20)
            if not data:
                raise EOFError("ZLIB stream ended before its end-of-stream marker")
            want = 1 << 20 if size < 0 else max(size - len(buffer), 1 << 16)
            buffer += self._inflate.decompress(data, want)
        n = len(buffer) if size < 0 else min(size, len(buffer))
        out = bytes(buffer[:n])
        del buffer[:n]
        return out

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def _open_for_reading(path: Path, compression: str) -> io.IOBase:
    raw = open(path, "rb")  # closed by the caller's `with`
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zlib":
        return _InflateReader(raw)
    return raw


# ------------------------------------------------------------------------------------------------- reading


def _read_exact(f: io.IOBase, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream), read in bounded pieces."""
    if n <= _READ_CHUNK:
        return f.read(n)
    pieces = []
    while n > 0:
        piece = f.read(min(n, _READ_CHUNK))
        if not piece:
            break
        pieces.append(piece)
        n -= len(piece)
    return b"".join(pieces)


def _check_source(path: str | Path, compression: str | None) -> tuple[Path, str]:
    path = Path(path)
    compression = _normalize_compression(compression, allow_auto=True)
    if not path.is_file():
        what = "is a directory, not a TFRecord file" if path.is_dir() else "no such TFRecord file"
        raise DataError(f"{path}: {what}")
    if compression == "auto":
        compression = detect_compression(path)
    return path, compression


def _records(path: Path, compression: str, verify_data: bool) -> Iterator[tuple[int, bytes | None]]:
    """(offset, data) per record; data is None when ``verify_data`` is false (the data is skipped)."""
    index = 0
    offset = 0  # in the uncompressed stream
    where = f"{path}: record {index}"
    try:
        with _open_for_reading(path, compression) as f:
            while True:
                where = f"{path}: record {index} (offset {offset})"
                header = f.read(_HEADER.size)
                if not header:
                    return
                if len(header) < _HEADER.size:
                    raise DataError(f"{where}: truncated header ({len(header)} of {_HEADER.size} bytes)")
                length, stored = _HEADER.unpack(header)
                computed = masked_crc32c(header[:8])
                if stored != computed:
                    hint = "" if index else f"; is this a TFRecord file? (read with compression '{compression}')"
                    raise DataError(
                        f"{where}: length CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x}){hint}"
                    )
                if verify_data:
                    data: bytes | None = _read_exact(f, length)
                    got = len(data)
                else:  # count_records: skip the data without keeping it
                    data = None
                    got = _skip(f, length)
                footer = f.read(_FOOTER.size) if got == length else b""
                if got < length or len(footer) < _FOOTER.size:
                    raise DataError(
                        f"{where}: truncated: the header announces {length} data bytes + {_FOOTER.size} CRC bytes, "
                        f"the file ends after {got + len(footer)}"
                    )
                if data is not None:
                    (stored,) = _FOOTER.unpack(footer)
                    computed = masked_crc32c(data)
                    if stored != computed:
                        raise DataError(
                            f"{where}: data CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})"
                        )
                yield offset, data
                offset += _HEADER.size + length + _FOOTER.size
                index += 1
    except DataError:
        raise
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        if compression == "none":
            raise DataError(f"{where}: cannot read the file ({err})") from err
        raise DataError(f"{where}: the {compression.upper()} stream is corrupt or truncated ({err})") from err


def _skip(f: io.IOBase, n: int) -> int:
    """Read and drop up to ``n`` bytes; returns how many there were."""
    done = 0
    while done < n:
        piece = f.read(min(n - done, 1 << 20))
        if not piece:
            break
        done += len(piece)
    return done


def read_records(path: str | Path, compression: str | None = "auto") -> Iterator[bytes]:
    """Stream the records of a TFRecord file, each checked against its length and data CRCs.

    Args:
        path: the TFRecord file.
        compression: ``"auto"`` (see :func:`detect_compression`), ``"gzip"``, ``"zlib"`` or ``"none"``/``None``.

    Returns:
        An iterator over the records' data, in file order (the file is opened on the first ``next``).

    Raises:
        DataError: the file is missing; or, while iterating, a record is truncated, fails a CRC check, or the
            compressed stream is corrupt. The message names the file, the record index (from 0) and its offset
            in the uncompressed stream, e.g. ``"train.tfrecords: record 1312 (offset 5242880): data CRC
            mismatch (stored 0x1a2b3c4d, computed 0x99aa00ff)"``.
        ValueError: unknown ``compression``.
    """
    path, compression = _check_source(path, compression)
    return (data for _, data in _records(path, compression, verify_data=True))


def count_records(path: str | Path, compression: str | None = "auto") -> int:
    """Count the records of a TFRecord file, checking every length CRC but not reading the data into memory.

    The data CRCs are not checked (:func:`read_records` checks them). A compressed file is still decompressed
    in full, so counting costs about as much time as reading.

    Args:
        path: the TFRecord file.
        compression: as in :func:`read_records`.

    Returns:
        The number of records.

    Raises:
        DataError: as :func:`read_records`, except for data CRC mismatches.
        ValueError: unknown ``compression``.
    """
    path, compression = _check_source(path, compression)
    return sum(1 for _ in _records(path, compression, verify_data=False))


# ------------------------------------------------------------------------------------------------- writing


class _DeflateWriter(io.RawIOBase):
    """A write-only file object that ZLIB-compresses into ``raw`` (TensorFlow's ZLIB compression)."""

    def __init__(self, raw: io.IOBase) -> None:
        self._raw = raw
        self._deflate = zlib.compressobj(_LEVEL, zlib.DEFLATED, _ZLIB_WBITS)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self._raw.write(self._deflate.compress(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.write(self._deflate.flush())
            finally:
                self._raw.close()
                super().close()


class TFRecordWriter:
    """Write a TFRecord file record by record; the file appears at ``path`` only when the writer closes cleanly.

    Records go to a hidden temporary file beside ``path`` that is renamed onto ``path`` by :meth:`close` (or at
    the end of a ``with`` block); if the block raises, the temporary file is deleted and ``path`` is untouched.

    Example::

        with TFRecordWriter("train.tfrecords", compression="gzip") as writer:
            for example in examples:
                writer.write(encode_example(example))

    Args:
        path: the file to write; its parent directory must exist. An existing file is replaced.
        compression: ``"none"``/``None``, ``"gzip"`` (what multi_object_datasets ship) or ``"zlib"``. The
            GZIP header holds no file name and mtime 0, so equal records give byte-identical files.
    """

    def __init__(self, path: str | Path, compression: str | None = "none") -> None:
        self.path = Path(path)
        self.compression = _normalize_compression(compression, allow_auto=False)
        self.num_records = 0
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path}: parent directory {self.path.parent} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent)
        self._tmp = Path(tmp)
        raw = os.fdopen(fd, "wb")
        if self.compression == "gzip":
            self._file: io.IOBase = gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=_LEVEL, mtime=0
            )
            self._raw: io.IOBase | None = raw  # GzipFile does not close a fileobj it was given
        elif self.compression == "zlib":
            self._file = _DeflateWriter(raw)
            self._raw = None
        else:
            self._file = raw
            self._raw = None
        self._closed = False

    def write(self, record: bytes | bytearray | memoryview) -> None:
        """Append one record (its length, masked CRCs and data).

        Args:
            record: the record's bytes, e.g. from :func:`encode_example`.
        """
        if self._closed:
            raise ValueError(f"{self.path}: write to a closed TFRecordWriter")
        data = bytes(record)
        length = struct.pack("<Q", len(data))
        self._file.write(length + _FOOTER.pack(masked_crc32c(length)))
        self._file.write(data)
        self._file.write(_FOOTER.pack(masked_crc32c(data)))
        self.num_records += 1

    def close(self) -> None:
        """Finish the compressed stream and move the file onto ``path``."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
            if self._raw is not None:
                self._raw.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        """Stop writing and delete the temporary file; ``path`` is not touched."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
            if self._raw is not None:
                self._raw.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "TFRecordWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_records(
    path: str | Path, records: Iterable[bytes | bytearray | memoryview], compression: str | None = "none"
) -> int:
    """Write records to a TFRecord file (all or nothing: see :class:`TFRecordWriter`).

    Args:
        path: the file to write; an existing file is replaced.
        records: the records' bytes.
        compression: ``"none"``/``None``, ``"gzip"`` or ``"zlib"``.

    Returns:
        The number of records written.
    """
    with TFRecordWriter(path, compression) as writer:
        for record in records:
            writer.write(record)
    return writer.num_records


# --------------------------------------------------------------------------------- protobuf wire format


def _fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """`protowire.fields`, its wire-format errors raised as this module's DataError."""
    try:
        yield from fields(buf, pos, end)
    except WireFormatError as err:
        raise DataError(str(err)) from err


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """`protowire.varint`, its wire-format errors raised as this module's DataError."""
    try:
        return varint(buf, pos, end)
    except WireFormatError as err:
        raise DataError(str(err)) from err


@dataclass(frozen=True)
class Feature:
    """One ``tf.train.Feature``: which list it holds and that list's serialized message, decoded on demand.

    Build one with :func:`bytes_feature`, :func:`float_feature`, :func:`int64_feature` or
    :func:`bytes_feature_from_uint8`; :func:`decode_example` returns them.

    Attributes:
        kind: ``"bytes_list"``, ``"float_list"``, ``"int64_list"``, or None for a Feature with no list set
            (TensorFlow reads that as an empty list of any type).
        payload: the serialized ``BytesList``/``FloatList``/``Int64List`` message (empty when ``kind`` is None).
    """

    kind: Kind | None
    payload: bytes

    def __len__(self) -> int:
        return len(self.values())

    def values(self) -> list[bytes] | np.ndarray:
        """The list's values: ``list[bytes]``, float32 ``[n]`` or int64 ``[n]`` (an empty list if ``kind`` is None).

        Raises:
            DataError: the payload is not a valid list message.
        """
        if self.kind == "bytes_list":
            return self._bytes_values()
        if self.kind == "float_list":
            return self._float_values()
        if self.kind == "int64_list":
            return self._int64_values()
        return []

    def _bytes_values(self) -> list[bytes]:
        buf = self.payload
        return [buf[a:b] for number, wire, a, b in _fields(buf, 0, len(buf)) if number == 1 and wire == 2]

    def _float_values(self) -> np.ndarray:
        buf = self.payload
        chunks = []
        for number, wire, a, b in _fields(buf, 0, len(buf)):
            if number != 1 or wire not in (2, 5):
                continue
            if (b - a) % 4:
                raise DataError(f"FloatList: packed value of {b - a} bytes is not a whole number of float32s")
            chunks.append(buf[a:b])
        return np.frombuffer(b"".join(chunks), dtype="<f4").astype(np.float32)

    def _int64_values(self) -> np.ndarray:
        buf = self.payload
        out: list[int] = []
        for number, wire, a, b in _fields(buf, 0, len(buf)):
            if number != 1:
                continue
            if wire == 0:
                out.append(a)
            elif wire == 2:  # packed varints
                pos = a
                while pos < b:
                    value, pos = _varint(buf, pos, b)
                    out.append(value)
        # uint64 two's complement -> int64
        return np.array(out, dtype=np.uint64).view(np.int64) if out else np.zeros(0, dtype=np.int64)

    def to_uint8(self) -> np.ndarray:
        """A ``bytes_list`` of one-byte strings as a uint8 ``[n]`` array (the official ``decode_raw`` + ``squeeze``).

        Fast path: such a list serializes as ``n`` repeats of ``0x0a 0x01 <byte>``, recognised and sliced with
        numpy; any other payload is parsed value by value.

        Returns:
            A new, writable uint8 array with one element per value.

        Raises:
            DataError: ``kind`` is not ``"bytes_list"``, or a value is not exactly one byte long.
        """
        if self.kind != "bytes_list":
            raise DataError(f"expected a bytes_list of one-byte strings, found {self.kind or 'an empty Feature'}")
        if len(self.payload) % 3 == 0:
            triples = np.frombuffer(self.payload, dtype=_ONE_BYTE_VALUE)
            if (triples["tag"] == 0x010A).all():
                return triples["value"].copy()
        values = self._bytes_values()
        for i, value in enumerate(values):
            if len(value) != 1:
                raise DataError(f"expected every value to be 1 byte, found {len(value)} bytes at value {i}")
        return np.frombuffer(b"".join(values), dtype=np.uint8).copy()

    def serialize(self) -> bytes:
        """This Feature as a serialized ``tf.train.Feature`` message."""
        if self.kind is None:
            return b""
        return bytes([_KIND_FIELD[self.kind] << 3 | 2]) + encode_varint(len(self.payload)) + self.payload


def bytes_feature(values: Iterable[bytes | bytearray]) -> Feature:
    """A ``bytes_list`` Feature.

    Args:
        values: the byte strings, in order.

    Returns:
        The Feature.
    """
    parts = []
    for value in values:
        value = bytes(value)
        parts += [b"\x0a", encode_varint(len(value)), value]
    return Feature("bytes_list", b"".join(parts))


def bytes_feature_from_uint8(array: np.ndarray) -> Feature:
    """A ``bytes_list`` with a one-byte string per element of ``array``, as multi_object_datasets hold pixels.

    The inverse of :meth:`Feature.to_uint8` (after a reshape); elements are taken in C order.

    Args:
        array: uint8 values of any shape.

    Returns:
        The Feature.

    Raises:
        ValueError: ``array`` is not uint8.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"bytes_feature_from_uint8: expected a uint8 array, got {array.dtype}")
    triples = np.empty((array.size, 3), dtype=np.uint8)
    triples[:, 0] = 0x0A  # field 1, length-delimited
    triples[:, 1] = 0x01  # length 1
    triples[:, 2] = array.reshape(-1)
    return Feature("bytes_list", triples.tobytes())


def float_feature(values: np.ndarray | Iterable[float]) -> Feature:
    """A ``float_list`` Feature (packed float32, as TensorFlow writes it).

    Args:
        values: numbers of any shape, flattened in C order and cast to float32.

    Returns:
        The Feature.
    """
    data = np.asarray(values, dtype="<f4").reshape(-1).tobytes()
    return Feature("float_list", b"\x0a" + encode_varint(len(data)) + data if data else b"")


def int64_feature(values: np.ndarray | Iterable[int]) -> Feature:
    """An ``int64_list`` Feature (packed varints, as TensorFlow writes it).

    Args:
        values: integers of any shape in the int64 range, flattened in C order.

    Returns:
        The Feature.

    Raises:
        ValueError: a value is not an integer or is outside the int64 range.
    """
    array = np.asarray(values)
    if array.size and array.dtype.kind not in "biu":
        raise ValueError(f"int64_feature: expected integers, got dtype {array.dtype}")
    if array.dtype.kind == "u" and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise ValueError("int64_feature: values above the int64 range")
    data = b"".join(encode_varint(int(v)) for v in array.reshape(-1).tolist())
    return Feature("int64_list", b"\x0a" + encode_varint(len(data)) + data if data else b"")


def encode_example(features: Mapping[str, Feature]) -> bytes:
    """Serialize a ``tf.train.Example`` deterministically (map entries sorted by key).

    Args:
        features: feature name -> :class:`Feature`.

    Returns:
        The serialized Example.
    """
    entries = []
    for key in sorted(features):
        feature = features[key]
        if not isinstance(feature, Feature):
            raise TypeError(f"encode_example: '{key}' must be a Feature, got {type(feature).__name__}")
        name = key.encode("utf-8")
        value = feature.serialize()
        entry = b"\x0a" + encode_varint(len(name)) + name + b"\x12" + encode_varint(len(value)) + value
        entries += [b"\x0a", encode_varint(len(entry)), entry]
    body = b"".join(entries)
    return b"\x0a" + encode_varint(len(body)) + body if body else b""


def _decode_feature(buf: bytes) -> Feature:
    kind: Kind | None = None
    chunks: list[bytes] = []
    for number, wire, a, b in _fields(buf, 0, len(buf)):
        if wire != 2 or number not in _FIELD_KIND:
            continue
        if _FIELD_KIND[number] != kind:  # oneof: a different member replaces the one set so far
            kind, chunks = _FIELD_KIND[number], []
        chunks.append(buf[a:b])  # the same member again: the messages merge, i.e. their bytes concatenate
    return Feature(kind, b"".join(chunks))


def decode_example(data: bytes) -> dict[str, Feature]:
    """Parse a serialized ``tf.train.Example``.

    Args:
        data: the serialized message (one TFRecord record).

    Returns:
        Feature name -> :class:`Feature`, in the order keys first appear (a repeated key keeps its last value).

    Raises:
        DataError: ``data`` is not a valid Example; the message says what is wrong and at which byte.
    """
    data = bytes(data)
    # Example.features (field 1) may occur more than once: occurrences merge, and merging two Features messages
    # concatenates their map entries.
    entries: dict[str, list[bytes]] = {}
    for number, wire, a, b in _fields(data, 0, len(data)):
        if number != 1 or wire != 2:
            continue
        for fnumber, fwire, ea, eb in _fields(data, a, b):
            if fnumber != 1 or fwire != 2:
                continue
            key = b""
            value: list[bytes] = []
            for enumber, ewire, va, vb in _fields(data, ea, eb):
                if ewire != 2:
                    continue
                if enumber == 1:
                    key = data[va:vb]
                elif enumber == 2:
                    value.append(data[va:vb])
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"feature name at byte {ea} is not valid UTF-8 ({err})") from err
            entries[name] = value  # a later entry for a key replaces the earlier one (protobuf's map rule)
    return {name: _decode_feature(b"".join(value)) for name, value in entries.items()}
