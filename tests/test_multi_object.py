"""multi_object_datasets without TensorFlow: the official feature tables, the official decoding, round trips, errors."""

import gzip

import numpy as np
import pytest

from slotattn.data.errors import DataError
from slotattn.data.generators.tetrominoes import generate_tetrominoes
from slotattn.data.multi_object import (
    DATASETS,
    convert_multi_object,
    multi_object_spec,
    read_multi_object,
    write_multi_object,
)
from slotattn.data.store import open_store
from slotattn.data.tfrecord import (
    Feature,
    bytes_feature,
    bytes_feature_from_uint8,
    decode_example,
    encode_example,
    float_feature,
    read_records,
    write_records,
)

U8, F32 = np.dtype(np.uint8), np.dtype(np.float32)


# The official readers, transcribed by hand from google-deepmind/multi_object_datasets (decoded shapes, in the
# order of each reader's `features` dict; tf.string features come out as uint8 via decode_raw + squeeze).
def _multi_dsprites(n, c):
    # multi_dsprites.py: IMAGE_SIZE = [64, 64]; num_channels = 1 if binarized else 3; 'mask' is
    # FixedLenFeature(IMAGE_SIZE+[n, 1], tf.string), then tf.transpose(mask, [2, 0, 1, 3]) -> [n, 64, 64, 1].
    return {
        "image": ((64, 64, c), U8), "mask": ((n, 64, 64, 1), U8), "x": ((n,), F32), "y": ((n,), F32),
        "shape": ((n,), F32), "color": ((n, c), F32), "visibility": ((n,), F32), "orientation": ((n,), F32),
        "scale": ((n,), F32),
    }


def _objects_room(n):
    # objects_room.py: IMAGE_SIZE = [64, 64]; image [64, 64, 3] and mask [n, 64, 64, 1], both tf.string.
    return {"image": ((64, 64, 3), U8), "mask": ((n, 64, 64, 1), U8)}


OFFICIAL = {
    # multi_dsprites.py MAX_NUM_ENTITIES = {'binarized': 4, 'colored_on_grayscale': 6, 'colored_on_colored': 5}
    ("multi_dsprites", "binarized"): _multi_dsprites(4, 1),
    ("multi_dsprites", "colored_on_grayscale"): _multi_dsprites(6, 3),
    ("multi_dsprites", "colored_on_colored"): _multi_dsprites(5, 3),
    # tetrominoes.py: IMAGE_SIZE = [35, 35], MAX_NUM_ENTITIES = 4
    ("tetrominoes", None): {
        "image": ((35, 35, 3), U8), "mask": ((4, 35, 35, 1), U8), "x": ((4,), F32), "y": ((4,), F32),
        "shape": ((4,), F32), "color": ((4, 3), F32), "visibility": ((4,), F32),
    },
    # objects_room.py MAX_NUM_ENTITIES = {'train': 7, 'six_objects': 10, 'empty_room': 4, 'identical_color': 10}
    ("objects_room", "train"): _objects_room(7),
    ("objects_room", "six_objects"): _objects_room(10),
    ("objects_room", "empty_room"): _objects_room(4),
    ("objects_room", "identical_color"): _objects_room(10),
    # clevr_with_masks.py: IMAGE_SIZE = [240, 320], MAX_NUM_ENTITIES = 11; BYTE_FEATURES = ['mask', 'image',
    # 'color', 'material', 'shape', 'size']
    ("clevr_with_masks", None): {
        "image": ((240, 320, 3), U8), "mask": ((11, 240, 320, 1), U8), "x": ((11,), F32), "y": ((11,), F32),
        "z": ((11,), F32), "pixel_coords": ((11, 3), F32), "rotation": ((11,), F32), "size": ((11,), U8),
        "material": ((11,), U8), "shape": ((11,), U8), "color": ((11,), U8), "visibility": ((11,), F32),
    },
}


def _random_examples(name, variant, num, rng):
    """Random arrays of the official decoded shapes, with a leading examples axis."""
    out = {}
    for key, (shape, dtype) in OFFICIAL[(name, variant)].items():
        if dtype == U8:
            out[key] = rng.integers(0, 256, size=(num, *shape), dtype=np.uint8)
        else:
            out[key] = rng.standard_normal((num, *shape)).astype(np.float32)
    return out


def _assert_same(examples, batch):
    assert len(examples) == next(iter(batch.values())).shape[0]
    for i, example in enumerate(examples):
        assert list(example) == list(batch)
        for key, value in example.items():
            assert value.dtype == batch[key].dtype and value.shape == batch[key].shape[1:]
            np.testing.assert_array_equal(value, batch[key][i], err_msg=f"example {i}, {key}")


# --- the official tables -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "variant"), list(OFFICIAL), ids=lambda v: str(v))
def test_specs_match_the_official_readers(name, variant):
    spec = multi_object_spec(name, variant)
    official = OFFICIAL[(name, variant)]
    assert list(spec.features) == list(official)  # same keys, in the official order
    assert spec.decoded_shapes() == {key: shape for key, (shape, _) in official.items()}
    assert spec.decoded_dtypes() == {key: dtype for key, (_, dtype) in official.items()}
    assert spec.max_num_entities == official["mask"][0][0]


def test_every_dataset_and_variant_is_covered():
    assert {name for name, _ in OFFICIAL} == set(DATASETS)


@pytest.mark.parametrize(
    ("name", "variant", "message"),
    [
        ("multi_dsprites", None, r"needs a variant; expected one of \['binarized'"),
        ("multi_dsprites", "train", "has no variant 'train'"),
        ("objects_room", "binarized", r"expected one of \['train', 'six_objects'"),
        ("tetrominoes", "binarized", "has no variants"),
        ("tetris", None, "unknown multi_object_datasets name 'tetris'"),
    ],
)
def test_bad_name_or_variant_is_a_clear_error(tmp_path, name, variant, message):
    with pytest.raises(ValueError, match=message):
        multi_object_spec(name, variant)
    with pytest.raises(ValueError, match=message):
        read_multi_object(tmp_path / "x.tfrecords", name, variant)


# --- round trips -----------------------------------------------------------------------------------------------------


def test_tetrominoes_generator_round_trips_through_gzip_tfrecords(tmp_path):
    batch = generate_tetrominoes(16, np.random.default_rng(0))
    path = tmp_path / "tetrominoes_train.tfrecords"
    assert write_multi_object(path, "tetrominoes", batch) == 16
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # GZIP, as the original files
    _assert_same(list(read_multi_object(path, "tetrominoes")), batch)
    _assert_same(list(read_multi_object(path, "tetrominoes", compression="gzip")), batch)


def test_examples_chunks_and_one_batch_write_the_same_file(tmp_path):
    batch = generate_tetrominoes(6, np.random.default_rng(1))
    write_multi_object(tmp_path / "a", "tetrominoes", batch)
    write_multi_object(tmp_path / "b", "tetrominoes", [{k: v[i] for k, v in batch.items()} for i in range(6)])
    write_multi_object(tmp_path / "c", "tetrominoes", [{k: v[:4] for k, v in batch.items()},
                                                       {k: v[4] for k, v in batch.items()},
                                                       {k: v[5:] for k, v in batch.items()}])
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == (tmp_path / "c").read_bytes()


@pytest.mark.parametrize(("name", "variant"), [k for k in OFFICIAL if k[0] != "tetrominoes"], ids=lambda v: str(v))
def test_random_arrays_of_the_official_shapes_round_trip(tmp_path, name, variant):
    num = 2 if name == "clevr_with_masks" else 3
    batch = _random_examples(name, variant, num, np.random.default_rng(2))
    path = tmp_path / f"{name}.tfrecords"
    # random bytes are slow to GZIP (seconds for CLEVR); the compression is tested on the smaller datasets
    compression = "none" if name == "clevr_with_masks" else "gzip"
    assert write_multi_object(path, name, batch, variant, compression=compression) == num
    examples = list(read_multi_object(path, name, variant))
    _assert_same(examples, batch)
    assert all(v.flags.c_contiguous and v.flags.writeable for ex in examples for v in ex.values())


def test_uncompressed_files_are_read_too(tmp_path):
    batch = generate_tetrominoes(3, np.random.default_rng(3))
    write_multi_object(tmp_path / "plain", "tetrominoes", batch, compression="none")
    assert (tmp_path / "plain").read_bytes()[:2] != b"\x1f\x8b"
    _assert_same(list(read_multi_object(tmp_path / "plain", "tetrominoes")), batch)


# --- the official decoding, on records built by hand -------------------------------------------------------------


def _one_byte_strings(array):
    """A bytes_list of one-byte strings built value by value (not with the writer's vectorised path)."""
    return bytes_feature([bytes([v]) for v in np.asarray(array, dtype=np.uint8).reshape(-1).tolist()])


def test_multi_dsprites_masks_are_stored_hwn1_and_transposed_like_the_official_decode(tmp_path):
    rng = np.random.default_rng(4)
    stored_mask = rng.integers(0, 256, size=(64, 64, 5, 1), dtype=np.uint8)  # FixedLenFeature(IMAGE_SIZE+[n, 1])
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    floats = {k: rng.standard_normal(5) for k in ("x", "y", "shape", "visibility", "orientation", "scale")}
    features = {"image": _one_byte_strings(image), "mask": _one_byte_strings(stored_mask),
                "color": float_feature(rng.standard_normal((5, 3))), "extra": float_feature([1.0])}
    features.update({k: float_feature(v) for k, v in floats.items()})
    write_records(tmp_path / "md.tfrecords", [encode_example(features)], "gzip")
    (example,) = read_multi_object(tmp_path / "md.tfrecords", "multi_dsprites", "colored_on_colored")
    np.testing.assert_array_equal(example["mask"], np.transpose(stored_mask, [2, 0, 1, 3]))  # the official transpose
    np.testing.assert_array_equal(example["image"], image)
    assert "extra" not in example  # parse_single_example ignores features outside the spec
    np.testing.assert_array_equal(example["scale"], floats["scale"].astype(np.float32))
    # and the writer stores masks back in [64, 64, n, 1]
    write_multi_object(tmp_path / "again.tfrecords", "multi_dsprites", [example], "colored_on_colored")
    (record,) = read_records(tmp_path / "again.tfrecords")
    np.testing.assert_array_equal(decode_example(record)["mask"].to_uint8(), stored_mask.reshape(-1))


def test_clevr_categorical_features_are_one_byte_strings(tmp_path):
    rng = np.random.default_rng(5)
    batch = _random_examples("clevr_with_masks", None, 1, rng)
    features = {}
    for key, (shape, dtype) in OFFICIAL[("clevr_with_masks", None)].items():
        value = batch[key][0]
        if key in ("image", "mask"):  # a million values: the vectorised path (equal bytes: test_tfrecord.py)
            features[key] = bytes_feature_from_uint8(value)
        else:
            features[key] = _one_byte_strings(value) if dtype == U8 else float_feature(value)
    write_records(tmp_path / "c.tfrecords", [encode_example(features)])
    (example,) = read_multi_object(tmp_path / "c.tfrecords", "clevr_with_masks")
    _assert_same([example], batch)
    assert example["size"].shape == (11,) and example["size"].dtype == np.uint8


# --- damaged or non-conforming records -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tetromino_features():
    """The Features of one generated scene, built value by value (a fresh dict per use: copy before changing)."""
    example = {k: v[0] for k, v in generate_tetrominoes(1, np.random.default_rng(6)).items()}
    return {k: _one_byte_strings(v) if v.dtype == np.uint8 else float_feature(v) for k, v in example.items()}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.pop("visibility"), r"feature 'visibility' is missing \(expected 4 float32 values"),
        (lambda f: f.update(image=_one_byte_strings(np.zeros(3674))),
         (r"feature 'image': expected 3675 bytes \(3675 one-byte strings \(bytes_list, shape \[35, 35, 3\]\)\), "
          r"found 3674")),
        (lambda f: f.update(x=float_feature([0.0] * 5)), r"feature 'x': expected 4 float32 values .*found 5"),
        (lambda f: f.update(x=bytes_feature([b"a"] * 4)),
         r"feature 'x': expected 4 float32 values .*found a bytes_list"),
        (lambda f: f.update(mask=bytes_feature([b"ab"] * 4900)),
         r"feature 'mask': expected every value to be 1 byte, found 2 bytes at value 0"),
        (lambda f: f.update(color=Feature(None, b"")), r"feature 'color': expected 12 float32 values .*found 0"),
    ],
)
def test_bad_record_names_file_record_key_expected_and_found(tmp_path, tetromino_features, change, message):
    good = [encode_example(tetromino_features)] * 2
    bad = dict(tetromino_features)
    change(bad)
    write_records(tmp_path / "tetro.tfrecords", good + [encode_example(bad)], "gzip")
    examples = read_multi_object(tmp_path / "tetro.tfrecords", "tetrominoes")
    next(examples), next(examples)
    with pytest.raises(DataError, match=r"tetro\.tfrecords: record 2: " + message):
        next(examples)


def test_record_that_is_not_an_example(tmp_path):
    write_records(tmp_path / "f", [b"\x0a\x05\x0a"], "gzip")
    with pytest.raises(DataError, match=r"f: record 0: not a valid tf.train.Example: .*runs past the end"):
        list(read_multi_object(tmp_path / "f", "tetrominoes"))


def test_corrupted_gzip_file_names_the_record(tmp_path):
    batch = generate_tetrominoes(4, np.random.default_rng(7))
    write_multi_object(tmp_path / "t", "tetrominoes", batch)
    raw = bytearray(gzip.decompress((tmp_path / "t").read_bytes()))
    raw[3 * len(raw) // 4 + 100] ^= 0x10  # inside record 3's data (the 4 records are equally long)
    (tmp_path / "t").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t: record 3 \(offset \d+\): data CRC mismatch"):
        list(read_multi_object(tmp_path / "t", "tetrominoes"))


def test_truncated_file_raises(tmp_path):
    write_multi_object(tmp_path / "t", "tetrominoes", generate_tetrominoes(4, np.random.default_rng(8)))
    raw = (tmp_path / "t").read_bytes()
    (tmp_path / "t").write_bytes(raw[: len(raw) - 10])
    with pytest.raises(DataError, match=r"t: record \d .*(corrupt or truncated|truncated)"):
        list(read_multi_object(tmp_path / "t", "tetrominoes"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.pop("color"), r"expected exactly the features .*; missing \['color'\], unexpected \[\]"),
        (lambda b: b.update(z=b["x"]), r"expected exactly the features .*; missing \[\], unexpected \['z'\]"),
        (lambda b: b.update(image=b["image"].astype(np.int16)), "'image' expected dtype uint8, found int16"),
        (lambda b: b.update(mask=b["mask"][:, :3]), r"'mask' expected shape \[N, 4, 35, 35, 1\], found \[2, 3, 35"),
        (lambda b: b.update(x=b["x"][:1]), "features disagree on the number of examples"),
    ],
)
def test_writer_rejects_arrays_that_do_not_match_the_spec(tmp_path, change, message):
    batch = generate_tetrominoes(2, np.random.default_rng(9))
    change(batch)
    with pytest.raises(DataError, match=r"write_multi_object: item 0: " + message):
        write_multi_object(tmp_path / "t", "tetrominoes", batch)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


# --- conversion to the store ---------------------------------------------------------------------------------------


def test_convert_writes_the_official_arrays_and_records_the_source(tmp_path):
    batch = generate_tetrominoes(10, np.random.default_rng(10))
    src = tmp_path / "tetrominoes_train.tfrecords"
    write_multi_object(src, "tetrominoes", batch)
    seen = []
    store = convert_multi_object("tetrominoes", src, tmp_path / "store", progress=seen.append, chunk=4)
    assert seen == [4, 4, 2] and len(store) == 10 and store.name == "tetrominoes"
    for key, arr in batch.items():
        assert store.arrays[key].dtype == arr.dtype
        np.testing.assert_array_equal(store.arrays[key], arr)
    source = open_store(tmp_path / "store").meta["source"]
    assert source["path"] == str(src.resolve()) and source["size_bytes"] == src.stat().st_size
    assert source["compression"] == "gzip" and source["num_records"] == 10 and source["format"] == "tfrecord"
    assert source["official_reader"].endswith("multi_object_datasets tetrominoes.py")


def _partition_masks(num, entities, h, w, rng):
    """uint8 [num, entities, h, w, 1]: each pixel at 255 in exactly one entity (the official masks' layout)."""
    ids = rng.integers(0, entities, size=(num, h, w))
    return ((ids[:, None] == np.arange(entities)[None, :, None, None]) * np.uint8(255))[..., None]


def test_convert_a_variant(tmp_path):
    rng = np.random.default_rng(11)
    batch = _random_examples("objects_room", "empty_room", 3, rng)
    batch["mask"] = _partition_masks(3, 4, 64, 64, rng)  # conversion checks that the masks partition the pixels
    write_multi_object(tmp_path / "or", "objects_room", batch, "empty_room")
    store = convert_multi_object("objects_room", tmp_path / "or", tmp_path / "store", "empty_room", num=3)
    assert store.meta["variant"] == "empty_room" and store.arrays["mask"].shape == (3, 4, 64, 64, 1)
    np.testing.assert_array_equal(store.arrays["image"], batch["image"])


def test_convert_checks_num_and_leaves_no_store_on_error(tmp_path):
    write_multi_object(tmp_path / "t", "tetrominoes", generate_tetrominoes(5, np.random.default_rng(12)))
    with pytest.raises(ValueError, match="num=4"):
        convert_multi_object("tetrominoes", tmp_path / "t", tmp_path / "s", num=4)
    with pytest.raises(ValueError, match="expected num=6 examples, the source gave 5"):
        convert_multi_object("tetrominoes", tmp_path / "t", tmp_path / "s", num=6)
    write_records(tmp_path / "empty", [], "gzip")
    with pytest.raises(DataError, match="holds no records"):
        convert_multi_object("tetrominoes", tmp_path / "empty", tmp_path / "s")
    with pytest.raises(DataError, match="no such TFRecord file"):
        convert_multi_object("tetrominoes", tmp_path / "missing", tmp_path / "s")
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        convert_multi_object("tetrominoes", tmp_path / "t", tmp_path / "s", chunk=0)
    assert not (tmp_path / "s").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_convert_stops_at_a_damaged_record(tmp_path):
    batch = generate_tetrominoes(6, np.random.default_rng(13))
    write_multi_object(tmp_path / "t", "tetrominoes", batch, compression="none")
    raw = bytearray((tmp_path / "t").read_bytes())
    raw[-20] ^= 1  # inside the last record's data
    (tmp_path / "t").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="record 5 .*data CRC mismatch"):
        convert_multi_object("tetrominoes", tmp_path / "t", tmp_path / "s", chunk=4)
    assert not (tmp_path / "s").exists()


def test_convert_rejects_masks_that_do_not_partition_naming_file_and_record(tmp_path):
    batch = generate_tetrominoes(6, np.random.default_rng(14))
    batch["mask"][5, 2, 10, 20] = 255  # record 5: pixel (10, 20) in a second entity
    batch["mask"][5, 0, 10, 20] = 255
    write_multi_object(tmp_path / "t", "tetrominoes", batch)
    with pytest.raises(DataError) as info:
        convert_multi_object("tetrominoes", tmp_path / "t", tmp_path / "s", chunk=4)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 't'}: feature 'mask': record 5, pixel (row 10, col 20) is claimed by ")
    assert "expected exactly one of the 4 entities at 255 and the others at 0" in message
    assert not (tmp_path / "s").exists()
