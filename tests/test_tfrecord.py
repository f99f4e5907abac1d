"""TFRecord framing, masked CRC32C, GZIP/ZLIB and the tf.train.Example codec, against published bytes and oracles."""

import gzip
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slotattn.data.errors import DataError
from slotattn.data.tfrecord import (
    Feature,
    TFRecordWriter,
    bytes_feature,
    bytes_feature_from_uint8,
    count_records,
    crc32c,
    decode_example,
    detect_compression,
    encode_example,
    float_feature,
    int64_feature,
    masked_crc32c,
    read_records,
    write_records,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# TensorFlow's tutorial (tensorflow/docs site/en/tutorials/load_data/tfrecord.ipynb): the printed output of
# `serialize_example(False, 4, b'goat', 0.9876)`, i.e. tf.train.Example.SerializeToString() of
# {feature0: int64 [0], feature1: int64 [4], feature2: bytes [b"goat"], feature3: float [0.9876]}.
TUTORIAL_EXAMPLE = (
    b"\nR\n\x11\n\x08feature0\x12\x05\x1a\x03\n\x01\x00\n\x11\n\x08feature1\x12\x05\x1a\x03\n\x01\x04"
    b"\n\x14\n\x08feature2\x12\x08\n\x06\n\x04goat\n\x14\n\x08feature3\x12\x08\x12\x06\n\x04[\xd3|?"
)


def _frame(data: bytes, length_crc: int | None = None, data_crc: int | None = None) -> bytes:
    """One TFRecord record framed by hand from the format description (not with the module's writer)."""

    def mask(crc):
        return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

    length = struct.pack("<Q", len(data))
    length_crc = mask(crc32c(length)) if length_crc is None else length_crc
    data_crc = mask(crc32c(data)) if data_crc is None else data_crc
    return length + struct.pack("<I", length_crc) + data + struct.pack("<I", data_crc)


# --- CRC32C ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0x00000000),
        (b"123456789", 0xE3069283),  # the CRC catalogue's check value for CRC-32C
        (bytes(32), 0x8A9136AA),  # RFC 3720 section B.4 (as in tensorflow/core/lib/hash/crc32c_test.cc)
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
        (  # RFC 3720 B.4: an iSCSI read command PDU
            bytes.fromhex("01c00000000000000000000000000000140000000000040000000014000000182800000000000000"
                          "0200000000000000"),
            0xD9963A56,
        ),
    ],
)
def test_crc32c_known_vectors(data, expected):
    assert crc32c(data) == expected
    assert crc32c(bytearray(data)) == expected and crc32c(memoryview(data)) == expected


def test_crc32c_extends_over_pieces():
    assert crc32c(b"world", crc32c(b"hello ")) == crc32c(b"hello world")
    assert crc32c(np.frombuffer(b"123456789", dtype=np.uint8)) == 0xE3069283


def test_masked_crc_matches_the_tensorflow_formula():
    crc = crc32c(b"foo")
    assert masked_crc32c(b"foo") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32
    assert masked_crc32c(b"") == 0xA282EAD8  # crc 0: only the delta
    # an independent TFRecord implementation's test vector (a pure-Python "tfrecord_slow" package)
    assert masked_crc32c(b"1234567890asdfghjkl") == 4134599430


# --- framing: round trips and an independent implementation ------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip", "zlib"])
@SETTINGS
@given(records=st.lists(st.binary(max_size=300), max_size=8))
def test_records_round_trip(tmp_path, compression, records):
    path = tmp_path / f"r.{compression}"
    assert write_records(path, records, compression) == len(records)
    assert list(read_records(path)) == records  # auto-detected
    assert list(read_records(path, compression)) == records
    assert count_records(path) == len(records)


def test_reader_accepts_hand_framed_records(tmp_path):
    records = [b"", b"a", b"tf.train.Example" * 100]
    (tmp_path / "f").write_bytes(b"".join(_frame(r) for r in records))
    assert list(read_records(tmp_path / "f")) == records


def test_writer_output_equals_hand_framing(tmp_path):
    records = [b"", b"abc", bytes(range(256))]
    write_records(tmp_path / "f", records)
    assert (tmp_path / "f").read_bytes() == b"".join(_frame(r) for r in records)


def test_framing_agrees_with_tensorboards_implementation(tmp_path):
    """TensorBoard ships its own pure-Python TFRecord writer/reader and CRC32C table (event files are TFRecords)."""
    from tensorboard.compat.tensorflow_stub.errors import OutOfRangeError
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_mask
    from tensorboard.summary.writer.record_writer import RecordWriter

    records = [b"", b"x", bytes(range(256)) * 40]
    for r in records:
        assert masked_crc32c(r) == tb_mask(r)
    with open(tmp_path / "tb", "wb") as f:
        writer = RecordWriter(f)
        for r in records:
            writer.write(r)
    assert list(read_records(tmp_path / "tb")) == records
    write_records(tmp_path / "ours", records)
    reader = PyRecordReader_New(str(tmp_path / "ours"))
    got = []
    while True:
        try:
            reader.GetNext()
        except OutOfRangeError:  # the end of the file
            break
        got.append(reader.record())
    assert got == records


def test_empty_file_has_no_records(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert list(read_records(tmp_path / "empty")) == []
    write_records(tmp_path / "empty.gz", [], "gzip")
    assert list(read_records(tmp_path / "empty.gz")) == [] and count_records(tmp_path / "empty.gz") == 0


# --- compression detection ---------------------------------------------------------------------------------------


def test_detects_gzip_zlib_and_none(tmp_path):
    for compression, magic in [("gzip", b"\x1f\x8b"), ("zlib", b"\x78"), ("none", None)]:
        write_records(tmp_path / compression, [b"abc"] * 3, compression)
        head = (tmp_path / compression).read_bytes()
        assert magic is None or head.startswith(magic)
        assert detect_compression(tmp_path / compression) == compression


def test_gzip_output_is_standard_gzip_and_deterministic(tmp_path):
    records = [b"abc", b"def" * 50]
    write_records(tmp_path / "a", records, "gzip")
    write_records(tmp_path / "b", records, "gzip")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert gzip.decompress((tmp_path / "a").read_bytes()) == b"".join(_frame(r) for r in records)
    write_records(tmp_path / "z", records, "zlib")
    assert zlib.decompress((tmp_path / "z").read_bytes()) == b"".join(_frame(r) for r in records)


def test_uncompressed_file_that_starts_like_gzip_is_read_uncompressed(tmp_path):
    # a record whose length is 0x8b1f starts with the GZIP magic; its valid header CRC says it is uncompressed
    data = bytes(0x8B1F)
    (tmp_path / "f").write_bytes(_frame(data))
    assert (tmp_path / "f").read_bytes()[:2] == b"\x1f\x8b"
    assert detect_compression(tmp_path / "f") == "none"
    assert list(read_records(tmp_path / "f")) == [data]


def test_explicit_compression_overrides_detection(tmp_path):
    write_records(tmp_path / "g", [b"abc"], "gzip")
    with pytest.raises(DataError, match=r"record 0 .*length CRC mismatch.*is this a TFRecord file"):
        list(read_records(tmp_path / "g", compression="none"))
    write_records(tmp_path / "n", [b"abc"], "none")
    with pytest.raises(DataError, match=r"/n: record 0 .*GZIP stream is corrupt"):
        list(read_records(tmp_path / "n", compression="gzip"))
    with pytest.raises(ValueError, match="compression must be one of"):
        read_records(tmp_path / "n", compression="bz2")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such TFRecord file"):
        read_records(tmp_path / "nope.tfrecords")  # at the call, not at the first next()
    with pytest.raises(DataError, match="is a directory"):
        read_records(tmp_path)


# --- corruption and truncation -----------------------------------------------------------------------------------

RECORDS = [b"first record", b"second" * 20, b"third"]


def _offset(index):
    return sum(16 + len(r) for r in RECORDS[:index])


def test_flipped_data_byte_names_the_record(tmp_path):
    raw = bytearray(b"".join(_frame(r) for r in RECORDS))
    raw[_offset(1) + 12 + 5] ^= 0x01
    (tmp_path / "train.tfrecords").write_bytes(bytes(raw))
    reader = read_records(tmp_path / "train.tfrecords")
    assert next(reader) == RECORDS[0]  # records before the damage are fine
    with pytest.raises(DataError, match=r"train\.tfrecords: record 1 \(offset 28\): data CRC mismatch "
                                        r"\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)"):
        next(reader)


def test_flipped_length_byte_names_the_record(tmp_path):
    raw = bytearray(b"".join(_frame(r) for r in RECORDS))
    raw[_offset(2)] ^= 0x40
    (tmp_path / "f").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"record 2 .*length CRC mismatch \(stored 0x[0-9a-f]{8}, computed"):
        list(read_records(tmp_path / "f"))


@pytest.mark.parametrize("which", ["length_crc", "data_crc"])
def test_flipped_crc_byte_is_detected(tmp_path, which):
    raw = bytearray(b"".join(_frame(r) for r in RECORDS))
    raw[_offset(1) + (8 if which == "length_crc" else 12 + len(RECORDS[1]))] ^= 0x80
    (tmp_path / "f").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="record 1 .*CRC mismatch"):
        list(read_records(tmp_path / "f"))


def test_every_truncation_of_an_uncompressed_file_is_caught(tmp_path):
    raw = b"".join(_frame(r) for r in RECORDS)
    boundaries = {_offset(i): i for i in range(len(RECORDS) + 1)}
    path = tmp_path / "f"
    for cut in range(len(raw)):
        path.write_bytes(raw[:cut])
        if cut in boundaries:  # a record boundary: a valid, shorter file (the format cannot tell)
            assert list(read_records(path)) == RECORDS[: boundaries[cut]]
        else:
            index = max(i for off, i in boundaries.items() if off <= cut)
            with pytest.raises(DataError, match=rf"record {index} .*truncated"):
                list(read_records(path))


@pytest.mark.parametrize("compression", ["gzip", "zlib"])
def test_truncated_compressed_file_is_caught(tmp_path, compression):
    write_records(tmp_path / "f", RECORDS, compression)
    raw = (tmp_path / "f").read_bytes()
    for cut in (len(raw) - 1, len(raw) - 6, len(raw) // 2, 11):
        (tmp_path / "cut").write_bytes(raw[:cut])
        with pytest.raises(DataError, match=r"cut: record \d"):
            list(read_records(tmp_path / "cut", compression))


def test_corruption_inside_a_gzip_file_names_the_record(tmp_path):
    raw = bytearray(b"".join(_frame(r) for r in RECORDS))
    raw[_offset(2) + 12] ^= 0xFF
    (tmp_path / "f.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"f\.gz: record 2 .*data CRC mismatch"):
        list(read_records(tmp_path / "f.gz"))


def test_huge_length_with_valid_crc_is_truncation_not_an_allocation(tmp_path):
    length = struct.pack("<Q", 2**62)
    (tmp_path / "f").write_bytes(length + struct.pack("<I", masked_crc32c(length)) + b"abc")
    with pytest.raises(DataError, match=r"record 0 .*truncated: the header announces 4611686018427387904"):
        list(read_records(tmp_path / "f"))


def test_count_records_checks_length_crcs(tmp_path):
    raw = bytearray(b"".join(_frame(r) for r in RECORDS))
    (tmp_path / "ok").write_bytes(bytes(raw))
    assert count_records(tmp_path / "ok") == 3
    raw[_offset(1) + 2] ^= 1
    (tmp_path / "bad").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="record 1 .*length CRC mismatch"):
        count_records(tmp_path / "bad")


@SETTINGS
@given(raw=st.binary(max_size=200), compression=st.sampled_from(["auto", "none", "gzip", "zlib"]))
def test_random_bytes_either_parse_or_raise_data_error(tmp_path, raw, compression):
    (tmp_path / "junk").write_bytes(raw)
    try:
        records = list(read_records(tmp_path / "junk", compression))
    except DataError:
        return
    assert raw == b"" or records  # only an empty file parses to nothing (a random valid frame: chance 2**-64)


@settings(SETTINGS, max_examples=30)
@given(position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_bit_is_detected_or_harmless(tmp_path, position, bit):
    for compression in ("none", "gzip"):
        write_records(tmp_path / "f", RECORDS, compression)
        raw = bytearray((tmp_path / "f").read_bytes())
        raw[position % len(raw)] ^= 1 << bit
        (tmp_path / "f").write_bytes(bytes(raw))
        try:
            got = list(read_records(tmp_path / "f", compression))
        except DataError:
            continue
        assert compression == "gzip" and got == RECORDS  # e.g. a flip in the GZIP header's unused fields


# --- the writer --------------------------------------------------------------------------------------------------


def test_writer_leaves_nothing_when_the_block_raises(tmp_path):
    write_records(tmp_path / "f", [b"old"])
    with pytest.raises(RuntimeError), TFRecordWriter(tmp_path / "f", "gzip") as writer:
        writer.write(b"new")
        raise RuntimeError("boom")
    assert list(read_records(tmp_path / "f")) == [b"old"]  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # no temporary file left


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="compression must be one of"):
        TFRecordWriter(tmp_path / "f", "auto")
    with pytest.raises(FileNotFoundError, match="parent directory"):
        TFRecordWriter(tmp_path / "missing" / "f")
    writer = TFRecordWriter(tmp_path / "f")
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"x")


# --- tf.train.Example: published bytes and hand-built protobuf -------------------------------------------------


def test_decodes_the_tensorflow_tutorial_example():
    example = decode_example(TUTORIAL_EXAMPLE)
    assert list(example) == ["feature0", "feature1", "feature2", "feature3"]
    assert example["feature0"].kind == "int64_list" and example["feature0"].values().tolist() == [0]
    assert example["feature1"].values().tolist() == [4]
    assert example["feature2"].kind == "bytes_list" and example["feature2"].values() == [b"goat"]
    assert example["feature3"].kind == "float_list"
    np.testing.assert_array_equal(example["feature3"].values(), np.array([0.9876], dtype=np.float32))


def test_encodes_the_tensorflow_tutorial_example_byte_for_byte():
    features = {
        "feature2": bytes_feature([b"goat"]),
        "feature0": int64_feature([0]),
        "feature3": float_feature([0.9876]),
        "feature1": int64_feature(np.array([4])),
    }
    assert encode_example(features) == TUTORIAL_EXAMPLE  # the tutorial's entries happen to be in key order


def _entry(key: bytes, feature: bytes) -> bytes:
    entry = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(feature)]) + feature
    return b"\x0a" + bytes([len(entry)]) + entry


def _example(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return b"\x0a" + bytes([len(body)]) + body


def test_unpacked_floats_and_int64s_decode():
    floats = b"".join(b"\x0d" + struct.pack("<f", v) for v in (1.5, -2.0))  # FloatList.value, wire type 5
    ints = b"\x08\x07" + b"\x08" + b"\xff" * 9 + b"\x01"  # Int64List.value, wire type 0: 7 and -1 (10 bytes)
    data = _example(
        _entry(b"f", b"\x12" + bytes([len(floats)]) + floats), _entry(b"i", b"\x1a" + bytes([len(ints)]) + ints)
    )
    example = decode_example(data)
    assert example["f"].values().tolist() == [1.5, -2.0]
    assert example["i"].values().tolist() == [7, -1] and example["i"].values().dtype == np.int64


def test_mixed_packed_chunks_concatenate():
    payload = b"\x0a\x04" + struct.pack("<f", 1.0) + b"\x0d" + struct.pack("<f", 2.0) + b"\x0a\x00"
    payload += b"\x0a\x08" + struct.pack("<ff", 3.0, 4.0)
    data = _example(_entry(b"x", b"\x12" + bytes([len(payload)]) + payload))
    assert decode_example(data)["x"].values().tolist() == [1.0, 2.0, 3.0, 4.0]


def test_protobuf_merge_rules():
    a = b"\x1a\x03\x0a\x01\x01"  # int64_list [1]
    b = b"\x1a\x03\x0a\x01\x02"  # int64_list [2]
    s = b"\x0a\x03\x0a\x01z"  # bytes_list [b"z"]
    data = _example(_entry(b"k", a + b))  # the same oneof member twice: the lists merge
    assert decode_example(data)["k"].values().tolist() == [1, 2]
    data = _example(_entry(b"k", a + s))  # a different member replaces
    assert decode_example(data)["k"].values() == [b"z"]
    data = _example(_entry(b"k", a), _entry(b"j", s), _entry(b"k", b))  # a repeated map key: the last wins
    assert decode_example(data)["k"].values().tolist() == [2] and decode_example(data)["j"].values() == [b"z"]
    data = _example(_entry(b"k", a)) + _example(_entry(b"j", s))  # Example.features twice: merged
    assert sorted(decode_example(data)) == ["j", "k"]


def test_unknown_fields_are_skipped():
    unknown = b"\x28\x96\x01" + b"\x31" + bytes(8) + b"\x3a\x02hi" + b"\x45" + bytes(4) + b"\x4b\x08\x01\x4c"
    feature = b"\x1a\x03\x0a\x01\x05" + unknown  # fields 5 (varint), 6 (fixed64), 7 (bytes), 8 (fixed32), 9 (group)
    data = _example(_entry(b"k", feature)) + b"\x10\x01"  # and an unknown Example field 2
    assert decode_example(data)["k"].values().tolist() == [5]
    # a known field number with an unexpected wire type is an unknown field too
    assert decode_example(_example(_entry(b"k", b"\x08\x01" + feature)))["k"].values().tolist() == [5]


def test_empty_feature_and_empty_lists():
    example = decode_example(_example(_entry(b"e", b""), _entry(b"f", b"\x12\x00")))
    assert example["e"].kind is None and example["e"].values() == [] and len(example["e"]) == 0
    assert example["f"].kind == "float_list" and example["f"].values().shape == (0,)
    assert decode_example(b"") == {}
    assert encode_example({}) == b""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x0a", "truncated varint"),
        (b"\x0a\x05\x0a", "runs past the end"),
        (b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", "longer than 10 bytes"),
        (b"\x0f", "invalid wire type 7"),
        (b"\x00\x01", "invalid field number 0"),
        (b"\x15\x00\x00", "truncated fixed-size value"),
        (b"\x1b\x08\x01", "group 3: no end-group tag"),
        (_example(_entry(b"\xff\xfe", b"")), "not valid UTF-8"),
    ],
)
def test_malformed_examples_raise_data_error(data, message):
    with pytest.raises(DataError, match=message):
        decode_example(data)


def test_malformed_lists_raise_data_error_when_read():
    feature = decode_example(_example(_entry(b"f", b"\x12\x03\x0a\x01\x00")))["f"]  # 1-byte packed float
    with pytest.raises(DataError, match="not a whole number of float32s"):
        feature.values()


# --- one-byte strings (how multi_object_datasets store pixels) ---------------------------------------------------


@SETTINGS
@given(values=st.binary(max_size=200))
def test_uint8_fast_path_equals_the_general_parse(values):
    array = np.frombuffer(values, dtype=np.uint8)
    fast = bytes_feature_from_uint8(array)
    general = bytes_feature([bytes([v]) for v in values])
    assert fast == general  # identical serialization
    np.testing.assert_array_equal(fast.to_uint8(), array)
    assert fast.values() == [bytes([v]) for v in values]


def test_uint8_general_path_handles_other_encodings():
    # the same one-byte values, but with an unknown field in between: the fast path does not apply
    feature = Feature("bytes_list", b"\x0a\x01\x07\x10\x01\x0a\x01\x08")
    np.testing.assert_array_equal(feature.to_uint8(), [7, 8])
    assert feature.to_uint8().flags.writeable


def test_uint8_rejects_longer_strings_and_other_kinds():
    with pytest.raises(DataError, match="1 byte, found 2 bytes at value 1"):
        bytes_feature([b"a", b"bc", b"d"]).to_uint8()
    with pytest.raises(DataError, match="found float_list"):
        float_feature([1.0]).to_uint8()
    with pytest.raises(ValueError, match="uint8"):
        bytes_feature_from_uint8(np.zeros(3, dtype=np.int16))


def test_int64_feature_range_checks():
    assert int64_feature(np.array([2**63 - 1, -(2**63)])).values().tolist() == [2**63 - 1, -(2**63)]
    with pytest.raises(ValueError, match="int64 range"):
        int64_feature(np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(ValueError, match="expected integers"):
        int64_feature(np.array([1.5]))


# --- round trips, and protobuf's own serializer/parser as the oracle ------------------------------------------

_feature_values = st.one_of(
    st.tuples(st.just("bytes_list"), st.lists(st.binary(max_size=20), max_size=5)),
    st.tuples(st.just("float_list"), st.lists(st.floats(width=32, allow_nan=True), max_size=6)),
    st.tuples(st.just("int64_list"), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6)),
    st.tuples(st.none(), st.just([])),
)
_examples = st.dictionaries(st.text(max_size=8), _feature_values, max_size=5)


def _make(kind, values) -> Feature:
    if kind == "bytes_list":
        return bytes_feature(values)
    if kind == "float_list":
        return float_feature(np.array(values, dtype=np.float32))
    if kind == "int64_list":
        return int64_feature(np.array(values, dtype=np.int64))
    return Feature(None, b"")


def _same_values(kind, got, values):
    if kind == "float_list":  # bit patterns, so NaN payloads and -0.0 count
        return got.dtype == np.float32 and got.tobytes() == np.array(values, dtype=np.float32).tobytes()
    if kind == "int64_list":
        return got.dtype == np.int64 and got.tolist() == values
    return list(got) == values


@SETTINGS
@given(spec=_examples)
def test_example_round_trip(spec):
    decoded = decode_example(encode_example({k: _make(*v) for k, v in spec.items()}))
    assert sorted(decoded) == sorted(spec)
    for key, (kind, values) in spec.items():
        assert decoded[key].kind == kind and _same_values(kind, decoded[key].values(), values)


def _example_class(packed: bool):
    """tf.train.Example built by protobuf's runtime from a descriptor (example.proto/feature.proto, transcribed)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"slotattn_test_example_{packed}.proto", package="tensorflow", syntax="proto3"
    )

    def message(name, parent=None):
        m = (parent.nested_type if parent else proto.message_type).add()
        m.name = name
        return m

    def field(m, name, number, kind, label=F.LABEL_OPTIONAL, type_name="", oneof=None, is_packed=None):
        f = m.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            f.type_name = type_name
        if oneof is not None:
            f.oneof_index = oneof
        if is_packed is not None:
            f.options.packed = is_packed
        return f

    field(message("BytesList"), "value", 1, F.TYPE_BYTES, F.LABEL_REPEATED)
    field(message("FloatList"), "value", 1, F.TYPE_FLOAT, F.LABEL_REPEATED, is_packed=packed)
    field(message("Int64List"), "value", 1, F.TYPE_INT64, F.LABEL_REPEATED, is_packed=packed)
    feature = message("Feature")
    feature.oneof_decl.add(name="kind")
    for number, kind in enumerate(("bytes_list", "float_list", "int64_list"), start=1):
        name = "".join(p.capitalize() for p in kind.split("_")).replace("list", "List")
        field(feature, kind, number, F.TYPE_MESSAGE, type_name=f".tensorflow.{name}", oneof=0)
    features = message("Features")
    entry = message("FeatureEntry", features)
    entry.options.map_entry = True
    field(entry, "key", 1, F.TYPE_STRING)
    field(entry, "value", 2, F.TYPE_MESSAGE, type_name=".tensorflow.Feature")
    field(features, "feature", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, type_name=".tensorflow.Features.FeatureEntry")
    field(message("Example"), "features", 1, F.TYPE_MESSAGE, type_name=".tensorflow.Features")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


@pytest.fixture(scope="module")
def pb_examples():
    return {"packed": _example_class(True), "unpacked": _example_class(False)}


def _pb_fill(message, spec):
    for key, (kind, values) in spec.items():
        feature = message.features.feature[key]
        if kind is not None:
            getattr(feature, kind).SetInParent()
            getattr(feature, kind).value.extend(values)


@pytest.mark.parametrize("layout", ["packed", "unpacked"])
@SETTINGS
@given(spec=_examples)
def test_decoder_agrees_with_protobuf(pb_examples, layout, spec):
    message = pb_examples[layout]()
    _pb_fill(message, spec)
    decoded = decode_example(message.SerializeToString())
    assert sorted(decoded) == sorted(spec)
    for key, (kind, values) in spec.items():
        assert decoded[key].kind == kind and _same_values(kind, decoded[key].values(), values)


@SETTINGS
@given(spec=_examples)
def test_encoder_agrees_with_protobuf(pb_examples, spec):
    ours = encode_example({k: _make(*v) for k, v in spec.items()})
    expected = pb_examples["packed"]()
    _pb_fill(expected, spec)
    parsed = pb_examples["packed"].FromString(ours)
    assert parsed == expected
    # byte for byte, per feature (upb's deterministic map order differs from C++'s, so not per example)
    for key in spec:
        assert _make(*spec[key]).serialize() == expected.features.feature[key].SerializeToString()


@SETTINGS
@given(data=st.binary(max_size=120))
def test_random_bytes_decode_or_raise_data_error(data):
    try:
        example = decode_example(data)
        for feature in example.values():
            feature.values()
    except DataError:
        pass
