"""Protocol-buffer wire format and CRC32C: the byte-level vocabulary of TFRecord files and TF checkpoints.

Used by `data.tfrecord` (tf.train.Example records) and `tf_import` (the checkpoint's index table and bundle
entries). A leaf module: it raises its own `WireFormatError`, which each reader re-raises with its context (file,
record, tensor) as its own error type.

Wire format (protobuf encoding spec): a message is a sequence of fields, each a varint key (field number << 3 |
wire type) then the value: a varint (type 0), 8 or 4 little-endian bytes (types 1 and 5), or a varint length and
that many bytes (type 2). Groups (types 3/4) are deprecated and skipped.
"""

from collections.abc import Iterator

import google_crc32c
import numpy as np

_U64 = (1 << 64) - 1
MASK_DELTA = 0xA282EAD8  # TensorFlow's CRC mask constant (core/lib/hash/crc32c.h)


class WireFormatError(ValueError):
    """Bytes that are not a valid protobuf message: a truncated varint, a field past the end, a bad wire type."""


def crc32c(data: bytes | bytearray | memoryview | np.ndarray, value: int = 0) -> int:
    """CRC32C (Castagnoli, RFC 3720) of ``data``, continuing from ``value`` (the CRC of the preceding bytes).

    Args:
        data: the bytes to checksum; an array is read as its raw bytes in C order.
        value: CRC of everything before ``data``; 0 to start.

    Returns:
        The unsigned 32-bit CRC; ``crc32c(b"123456789") == 0xE3069283``.
    """
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes()
    elif not isinstance(data, bytes):
        data = bytes(data)  # google_crc32c takes only read-only bytes
    return google_crc32c.extend(value, data) if value else google_crc32c.value(data)


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC32C: ``((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2**32.

    TensorFlow masks the CRC because a CRC of data that embeds CRCs is otherwise degenerate.

    Args:
        data: the bytes to checksum.

    Returns:
        The masked CRC as an unsigned 32-bit integer.
    """
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns (value mod 2**64, next position)."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireFormatError(f"truncated varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _U64, pos
        shift += 7
        if shift >= 70:
            raise WireFormatError(f"varint longer than 10 bytes ending at byte {pos}")


def encode_varint(value: int) -> bytes:
    """Encode an int (int64 two's complement for negatives) as a base-128 varint."""
    value &= _U64  # negative int64 -> two's complement, 10 bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def fields(buf: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Iterate over the fields of one message in ``buf[pos:end]``.

    Yields ``(field_number, wire_type, a, b)``: for a varint ``a`` is the value; for fixed64/fixed32 and
    length-delimited fields ``buf[a:b]`` holds the value's bytes. Groups (wire types 3/4, deprecated and absent
    from tf.train.Example) are skipped as unknown fields.
    """
    while pos < end:
        key = buf[pos]
        if key < 0x80:  # fast path: one-byte key (field numbers < 16)
            pos += 1
        else:
            key, pos = varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireFormatError(f"invalid field number 0 at byte {pos}")
        if wire == 0:
            value, pos = varint(buf, pos, end)
            yield number, wire, value, pos
        elif wire == 2:
            if pos < end and buf[pos] < 0x80:  # fast path: length < 128
                size, start = buf[pos], pos + 1
            else:
                size, start = varint(buf, pos, end)
            pos = start + size
            if pos > end:
                raise WireFormatError(
                    f"field {number}: length {size} at byte {start} runs past the end of its message")
            yield number, wire, start, pos
        elif wire in (1, 5):
            start, pos = pos, pos + (8 if wire == 1 else 4)
            if pos > end:
                raise WireFormatError(f"field {number}: truncated fixed-size value at byte {start}")
            yield number, wire, start, pos
        elif wire == 3:
            pos = skip_group(buf, pos, end, number)
        else:
            raise WireFormatError(f"field {number}: invalid wire type {wire} at byte {pos}")


def skip_group(buf: bytes, pos: int, end: int, number: int) -> int:
    while True:
        if pos >= end:
            raise WireFormatError(f"group {number}: no end-group tag")
        key, pos = varint(buf, pos, end)
        inner, wire = key >> 3, key & 7
        if wire == 4:
            if inner != number:
                raise WireFormatError(f"group {number}: mismatched end-group tag {inner}")
            return pos
        if wire == 0:
            pos = varint(buf, pos, end)[1]
        elif wire == 2:
            size, pos = varint(buf, pos, end)
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 3:
            pos = skip_group(buf, pos, end, inner)
        else:
            raise WireFormatError(f"group {number}: invalid wire type {wire}")
        if pos > end:
            raise WireFormatError(f"group {number}: runs past the end of its message")
