"""The on-disk store (write_store/open_store): round trips, memory maps, atomicity and clear errors."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slotattn.data.errors import DataError
from slotattn.data.generators.tetrominoes import generate_tetrominoes
from slotattn.data.store import INCOMPLETE_MARKER, META_FILE, Store, open_store, write_store

META = {"dataset": "tetrominoes", "generator": {"name": "tetrominoes", "seed": 0, "args": {}}}


@pytest.fixture(scope="module")
def data():
    return generate_tetrominoes(30, np.random.default_rng(0))


def _chunks(data, sizes):
    start = 0
    for size in sizes:
        yield {k: v[start : start + size] for k, v in data.items()}
        start += size


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --- write_store / open_store ----------------------------------------------------------------------------------


def test_round_trip_is_identical(tmp_path, data):
    store = write_store(tmp_path / "ds", data, META)
    assert isinstance(store, Store) and len(store) == 30 and store.name == "tetrominoes"
    reopened = open_store(tmp_path / "ds")
    for key, arr in data.items():
        assert reopened.arrays[key].dtype == arr.dtype
        np.testing.assert_array_equal(reopened.arrays[key], arr)
    meta = reopened.meta
    assert meta["format"] == "slotattn-store" and meta["format_version"] == 1
    assert meta["num_examples"] == 30 and meta["generator"] == META["generator"]
    assert meta["features"]["mask"] == {"dtype": "uint8", "shape": [4, 35, 35, 1]}
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == sorted([META_FILE] + [f"{k}.npy" for k in data])
    assert _leftovers(tmp_path) == []


def test_arrays_are_read_only_memmaps(tmp_path, data):
    store = write_store(tmp_path / "ds", data, META)
    for arr in store.arrays.values():
        assert isinstance(arr, np.memmap)
        with pytest.raises(ValueError):
            arr[0] = 0
    plain = np.load(tmp_path / "ds" / "image.npy", mmap_mode="r")  # a plain .npy, readable without slotattn
    np.testing.assert_array_equal(plain, data["image"])


def test_getitem_returns_one_example(tmp_path, data):
    store = write_store(tmp_path / "ds", data, META)
    for idx in (0, 17, -1):
        example = store[idx]
        assert set(example) == set(data)
        for key in data:
            np.testing.assert_array_equal(example[key], data[key][idx])
    with pytest.raises(IndexError, match="out of range"):
        store[30]


def test_chunked_write_equals_one_shot(tmp_path, data):
    write_store(tmp_path / "one", data, META)
    counts = []
    write_store(tmp_path / "chunked", _chunks(data, [7, 0, 13, 10]), META, num=30, progress=counts.append)
    assert counts == [7, 0, 13, 10]
    for name in [META_FILE] + [f"{k}.npy" for k in data]:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "chunked" / name).read_bytes(), name


def test_progress_accepts_a_tqdm_like_bar(tmp_path, data):
    class Bar:
        total = 0

        def update(self, n):
            self.total += n

    bar = Bar()
    write_store(tmp_path / "ds", _chunks(data, [10, 10, 10]), META, num=30, progress=bar)
    assert bar.total == 30


@pytest.mark.parametrize(("sizes", "num", "match"), [([10, 10], 30, "gave 20"), ([10, 10, 10, 5], 30, "total to 35")])
def test_wrong_example_count_fails_and_leaves_nothing(tmp_path, data, sizes, num, match):
    extra = {k: v[:5] for k, v in data.items()}
    chunks = list(_chunks(data, sizes[:3])) + ([extra] if len(sizes) > 3 else [])
    with pytest.raises(ValueError, match=match):
        write_store(tmp_path / "ds", chunks, META, num=num)
    assert not (tmp_path / "ds").exists() and _leftovers(tmp_path) == []


def test_inconsistent_chunks_fail_naming_chunk_and_key(tmp_path, data):
    first, second = _chunks(data, [10, 20])
    second = dict(second, image=second["image"].astype(np.float32))
    with pytest.raises(ValueError, match=r"chunk 1: 'image' expected .*uint8.*found .*float32"):
        write_store(tmp_path / "ds", [first, second], META, num=30)
    with pytest.raises(ValueError, match="chunk 0: features disagree"):
        write_store(tmp_path / "ds", dict(data, x=data["x"][:5]), META)
    assert _leftovers(tmp_path) == []


def test_bad_meta_or_num_is_rejected(tmp_path, data):
    with pytest.raises(ValueError, match="'dataset'"):
        write_store(tmp_path / "ds", data, {"generator": {}})
    with pytest.raises(ValueError, match="filled in by write_store"):
        write_store(tmp_path / "ds", data, {"dataset": "t", "num_examples": 3})
    with pytest.raises(ValueError, match="JSON"):
        write_store(tmp_path / "ds", data, {"dataset": "t", "args": {"rng": object()}})
    with pytest.raises(ValueError, match="num must be a positive int"):
        write_store(tmp_path / "ds", _chunks(data, [30]), META)  # an iterable needs num
    assert not (tmp_path / "ds").exists()


def test_existing_directory_needs_overwrite(tmp_path, data):
    write_store(tmp_path / "ds", data, META)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_store(tmp_path / "ds", data, META)
    small = {k: v[:4] for k, v in data.items()}
    store = write_store(tmp_path / "ds", small, dict(META, dataset="small"), overwrite=True)
    assert len(store) == 4 and open_store(tmp_path / "ds").name == "small"
    assert _leftovers(tmp_path) == []


def test_crash_mid_write_leaves_no_dataset(tmp_path, data):
    def crashing():
        yield {k: v[:10] for k, v in data.items()}
        raise RuntimeError("generator died")

    with pytest.raises(RuntimeError, match="generator died"):
        write_store(tmp_path / "ds", crashing(), META, num=30)
    assert not (tmp_path / "ds").exists() and _leftovers(tmp_path) == []


def test_unfinished_temporary_directory_is_never_opened(tmp_path, data, monkeypatch):
    import slotattn.data.store as store_module

    def killed(*args, **kwargs):
        raise OSError("killed")

    # a writer killed after meta.json is on disk but before the marker is removed and the rename: no cleanup ran
    monkeypatch.setattr(store_module.shutil, "rmtree", lambda *args, **kwargs: None)
    monkeypatch.setattr(store_module.Path, "unlink", killed)
    with pytest.raises(OSError, match="killed"):
        write_store(tmp_path / "ds", data, META)
    monkeypatch.undo()
    (tmp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".ds.tmp-")]
    assert (tmp / META_FILE).is_file() and (tmp / INCOMPLETE_MARKER).is_file()  # complete-looking, but marked
    with pytest.raises(DataError, match="unfinished"):
        open_store(tmp)
    assert not (tmp_path / "ds").exists()


def test_missing_path_names_it_and_the_generate_command(tmp_path):
    with pytest.raises(DataError, match=r"nope.*no such dataset directory.*slotattn generate"):
        open_store(tmp_path / "nope")


def test_empty_directory_is_not_a_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*no meta\.json \(the directory is empty\).*slotattn generate"):
        open_store(tmp_path / "empty")


def test_directory_without_meta_is_not_a_dataset(tmp_path, data):
    write_store(tmp_path / "ds", data, META)
    (tmp_path / "ds" / META_FILE).unlink()
    with pytest.raises(DataError, match=r"no meta\.json \(not a slotattn dataset\)"):
        open_store(tmp_path / "ds")


def test_file_instead_of_directory(tmp_path):
    (tmp_path / "f.npy").write_bytes(b"x")
    with pytest.raises(DataError, match="found a file"):
        open_store(tmp_path / "f.npy")


def test_zero_examples_is_an_empty_dataset(tmp_path, data):
    write_store(tmp_path / "ds", data, META)
    meta = json.loads((tmp_path / "ds" / META_FILE).read_text())
    meta["num_examples"] = 0
    (tmp_path / "ds" / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(DataError, match="empty dataset"):
        open_store(tmp_path / "ds")


@pytest.mark.parametrize(
    ("replacement", "match"),
    [
        (lambda a: a[:-1], r"image\.npy: expected shape \[30, 35, 35, 3\] uint8 .*found \[29, 35, 35, 3\] uint8"),
        (lambda a: a.astype(np.float32), r"image\.npy: expected .*uint8.*found \[30, 35, 35, 3\] float32"),
        (lambda a: a[..., :2], r"image\.npy: expected .*found \[30, 35, 35, 2\]"),
    ],
)
def test_array_disagreeing_with_meta_names_the_file(tmp_path, data, replacement, match):
    write_store(tmp_path / "ds", data, META)
    np.save(tmp_path / "ds" / "image.npy", replacement(data["image"]))
    with pytest.raises(DataError, match=match):
        open_store(tmp_path / "ds")


def test_missing_or_corrupt_feature_file(tmp_path, data):
    write_store(tmp_path / "ds", data, META)
    (tmp_path / "ds" / "x.npy").unlink()
    with pytest.raises(DataError, match=r"x\.npy: missing"):
        open_store(tmp_path / "ds")
    (tmp_path / "ds" / "x.npy").write_bytes(b"not numpy at all")
    with pytest.raises(DataError, match=r"x\.npy: not a readable \.npy"):
        open_store(tmp_path / "ds")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: dict(m, format_version=2), "expected format_version 1, found 2"),
        (lambda m: dict(m, format="other"), "expected format 'slotattn-store'"),
        (lambda m: dict(m, features={}), "empty dataset"),
        (lambda m: dict(m, features={"image": {"dtype": "uint8"}}), "needs 'dtype' and 'shape'"),
        (lambda m: dict(m, features={"../image": {"dtype": "uint8", "shape": [35, 35, 3]}}), "feature names must"),
    ],
)
def test_bad_meta_json_is_reported(tmp_path, data, edit, match):
    write_store(tmp_path / "ds", data, META)
    meta = json.loads((tmp_path / "ds" / META_FILE).read_text())
    (tmp_path / "ds" / META_FILE).write_text(json.dumps(edit(meta)))
    with pytest.raises(DataError, match=match):
        open_store(tmp_path / "ds")


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=200), st.builds(json.dumps, st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
))))
def test_random_meta_json_opens_or_raises_data_error(tmp_path, data, text):
    path = tmp_path / "ds"
    if not path.exists():
        write_store(path, {k: v[:3] for k, v in data.items()}, META)
    (path / META_FILE).write_text(text)
    with pytest.raises(DataError):
        open_store(path)


@pytest.mark.parametrize(
    ("mask", "found"),
    [(np.zeros((3, 4, 34, 35, 1), np.uint8), "[3, 4, 34, 35, 1] uint8"),
     (np.zeros((3, 35, 35), np.uint8), "[3, 35, 35] uint8"),
     (np.zeros((3, 4, 35, 35, 1), np.int32), "[3, 4, 35, 35, 1] int32")],
)
def test_mask_that_does_not_fit_the_images_is_rejected_on_write_and_open(tmp_path, data, mask, found):
    bad = {"image": data["image"][:3], "mask": mask}
    with pytest.raises(DataError) as info:
        write_store(tmp_path / "w", bad, META)
    assert str(info.value) == (
        "write_store: chunk 0: feature 'mask' must be uint8 [num_examples, M, 35, 35, 1] (one plane per entity, the "
        f"H, W of 'image'), found {found}"
    )
    assert not (tmp_path / "w").exists() and _leftovers(tmp_path) == []
    # a store written by other means (here: a valid one with its mask file swapped) fails at open
    write_store(tmp_path / "o", {"image": data["image"][:3], "mask": data["mask"][:3]}, META)
    np.save(tmp_path / "o" / "mask.npy", mask)
    meta = json.loads((tmp_path / "o" / META_FILE).read_text())
    meta["features"]["mask"] = {"dtype": mask.dtype.name, "shape": list(mask.shape[1:])}
    (tmp_path / "o" / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(DataError, match=f"^{tmp_path / 'o' / META_FILE}: feature 'mask' must be uint8 .*found "
                                        + found.replace("[", r"\[").replace("]", r"\]")):
        open_store(tmp_path / "o")
