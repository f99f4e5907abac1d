"""A fuzz campaign over the readers: seeded byte flips, truncations and insertions of a small valid file.

Each case must either read back (the original, or well-formed arrays where the damage hit payload bytes that no
check covers) or raise DataError, the readers' one documented error for bad data; never another exception, never
a hang. The default suite runs QUICK cases per reader; ``--runslow`` runs the campaign, FULL cases per reader. Each
test writes its counts to the terminal (``fuzz <reader>: N cases ...``) and to the junit-xml properties.
"""

import json
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slotattn.data.batch import to_model_batch
from slotattn.data.clevr import COLORS, MATERIALS, SHAPES, SIZES, ClevrV1, load_clevr_png
from slotattn.data.errors import DataError
from slotattn.data.generators.tetrominoes import generate_tetrominoes
from slotattn.data.multi_object import multi_object_spec, read_multi_object, write_multi_object
from slotattn.data.store import open_store, write_store
from slotattn.data.tfrecord import read_records, write_records

QUICK = 30  # per reader in the default suite (all five readers together: about 1 s)
FULL = 2000  # per reader with --runslow
CASE_TIMEOUT_S = 10.0  # a case that takes longer is a hang


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no reader's ``except Exception`` can swallow it."""


def _on_alarm(signum, frame):
    raise _Hang(f"no result after {CASE_TIMEOUT_S} s")


def mutate(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One seeded mutation of ``data``: flip 1-4 bytes, truncate, or insert 1-16 random bytes."""
    kind = ("flip", "truncate", "insert")[rng.integers(3)]
    if kind == "flip" and data:
        out = bytearray(data)
        positions = rng.integers(0, len(data), size=rng.integers(1, 5))
        for pos in positions:
            out[pos] ^= int(rng.integers(1, 256))
        return bytes(out), f"flip bytes {sorted(positions.tolist())}"
    if kind == "truncate" and data:
        keep = int(rng.integers(0, len(data)))
        return data[:keep], f"truncate to {keep} of {len(data)} bytes"
    pos = int(rng.integers(0, len(data) + 1))
    extra = rng.integers(0, 256, size=rng.integers(1, 17), dtype=np.uint8).tobytes()
    return data[:pos] + extra + data[pos:], f"insert {extra.hex()} at byte {pos}"


@dataclass
class Target:
    """A reader under fuzz: valid files, and ``read(path) -> outcome`` that checks what it got.

    ``read`` returns ``"same"`` (read back equal to the original) or ``"changed"`` (read, well-formed, different
    values: damage in bytes no check covers), and fails the case with an AssertionError otherwise.
    """

    name: str
    files: list[Path]  # each case mutates one of these (restored afterwards)
    read: Callable[[], str]
    mutate: Callable[[bytes, np.random.Generator], tuple[bytes, str]] = mutate


def run_campaign(target: Target, num: int, seed: int, report) -> Counter:
    rng = np.random.default_rng(seed)
    originals = {path: path.read_bytes() for path in target.files}
    counts: Counter = Counter()
    bad: list[str] = []
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for case in range(num):
            path = target.files[int(rng.integers(len(target.files)))]
            data, how = target.mutate(originals[path], rng)
            path.write_bytes(data)
            signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
            try:
                outcome = target.read()
            except DataError as err:
                outcome = "raised DataError"
                if not str(err):
                    bad.append(f"case {case} ({path.name}: {how}): DataError without a message")
            except (Exception, _Hang) as err:  # noqa: BLE001 -- any other exception is a finding
                outcome = f"other: {type(err).__name__}"
                bad.append(f"case {case} ({path.name}: {how}): {type(err).__name__}: {err}"[:400])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                path.write_bytes(originals[path])
            counts[outcome] += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    summary = (
        f"fuzz {target.name}: {num} cases (seed {seed}): {counts['same']} read back unchanged, "
        f"{counts['changed']} read with changed values, {counts['raised DataError']} raised DataError, "
        f"{num - counts['same'] - counts['changed'] - counts['raised DataError']} other"
    )
    report(summary)
    assert not bad, summary + "\n" + "\n".join(bad[:10])
    assert target.read() == "same"  # the originals are back
    return counts


@pytest.fixture
def report(request, record_property, capsys):
    """Write a line to the terminal (also without -s) and to the junit-xml properties."""
    reporter = request.config.pluginmanager.getplugin("terminalreporter")

    def write(line: str) -> None:
        record_property("fuzz", line)
        with capsys.disabled():
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line)

    return write


# --- the readers ---------------------------------------------------------------------------------------------------


def _same_arrays(got: dict, want: dict) -> bool:
    return list(got) == list(want) and all(
        got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]) for k in want
    )


def tfrecord_file_target(root: Path) -> Target:
    """Whole TFRecord files (one uncompressed, one GZIP) of 2 Tetrominoes records, read by read_multi_object."""
    batch = generate_tetrominoes(2, np.random.default_rng(0))
    files = [root / "t.tfrecords", root / "t.tfrecords.gz"]
    write_multi_object(files[0], "tetrominoes", batch, compression="none")
    write_multi_object(files[1], "tetrominoes", batch, compression="gzip")
    want = [{k: v[i] for k, v in batch.items()} for i in range(2)]

    def read() -> str:
        changed = False
        for path in files:
            got = list(read_multi_object(path, "tetrominoes"))  # compression "auto", the default
            # Every record is CRC-checked, so what comes back is the original; only an uncompressed file cut at
            # a record boundary reads as a valid shorter file (the format's limit, tfrecord.py's docstring).
            assert len(got) <= 2 and all(_same_arrays(g, w) for g, w in zip(got, want)), path
            changed |= len(got) < 2
        return "changed" if changed else "same"

    return Target("tfrecord file + multi_object", files, read)


def example_payload_target(root: Path) -> Target:
    """A tf.train.Example whose bytes are damaged *inside* valid framing (CRCs recomputed): the protobuf codec and
    the official FixedLenFeature checks of multi_object._decode, which no CRC protects."""
    batch = generate_tetrominoes(1, np.random.default_rng(1))
    write_multi_object(root / "one.tfrecords", "tetrominoes", batch, compression="none")
    (payload,) = read_records(root / "one.tfrecords")
    source, framed = root / "example.pb", root / "example.tfrecords"
    source.write_bytes(payload)
    want = {k: v[0] for k, v in batch.items()}
    spec = multi_object_spec("tetrominoes")

    def read() -> str:
        write_records(framed, [source.read_bytes()], "none")
        (got,) = list(read_multi_object(framed, "tetrominoes"))
        assert {k: (v.shape, v.dtype) for k, v in got.items()} == {
            k: (f.decoded_shape, f.decoded_dtype) for k, f in spec.features.items()
        }
        return "same" if _same_arrays(got, want) else "changed"

    return Target("tf.train.Example payload (multi_object decode)", [source], read)


def store_target(root: Path) -> Target:
    """A Tetrominoes store of 4 examples: meta.json and every .npy, opened, read in full and batched."""
    data = generate_tetrominoes(4, np.random.default_rng(2))
    path = root / "store"
    write_store(path, data, {"dataset": "tetrominoes"})

    def read() -> str:
        store = open_store(path)
        arrays = {k: np.array(v) for k, v in store.arrays.items()}  # read every byte
        for key, spec in store.meta["features"].items():
            assert arrays[key].shape == (len(store), *spec["shape"]) and arrays[key].dtype == np.dtype(spec["dtype"])
        if {"image", "mask"} <= set(arrays):
            batch = to_model_batch({"image": arrays["image"], "mask": arrays["mask"]})  # checks the mask partition
            assert batch["mask_ids"].shape == arrays["image"].shape[:3]
        return "same" if set(arrays) == set(data) and _same_arrays({k: arrays[k] for k in data}, data) else "changed"

    return Target("store (open_store + to_model_batch)", sorted(path.iterdir()), read)


def _scene(i: int, rng: np.random.Generator) -> dict:
    objects = [
        {"3d_coords": rng.uniform(-3, 3, 3).round(3).tolist(), "size": SIZES[rng.integers(2)],
         "material": MATERIALS[rng.integers(2)], "shape": SHAPES[rng.integers(3)], "color": COLORS[rng.integers(8)],
         "rotation": 12.5, "pixel_coords": [10, 20, 11.2]}
        for _ in range(int(rng.integers(3, 7)))
    ]
    return {"split": "train", "image_index": i, "image_filename": f"CLEVR_train_{i:06d}.png", "objects": objects}


def _png(path: Path, frame: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    rgba = rng.integers(0, 256, (*frame, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(path)
    return rgba[..., :3].copy()


# Values that a hand-edited or generated scenes file may hold where a number, string, list or dict belongs.
_ODD_JSON_VALUES = ["null", "true", "-1", "1e39", "1e999", "NaN", "-Infinity", "1" * 400, "1" * 5000, '""',
                    '"' + "x" * 300 + '"', "[]", "{}", "[" * 3000 + "]" * 3000, '"\\ud800"']


def mutate_json(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """Half the cases: a byte mutation; the other half: one value of the (valid) JSON replaced by an odd one."""
    if rng.integers(2):
        return mutate(data, rng)
    doc = json.loads(data)
    parent, key = None, None
    node = doc
    path = []
    while isinstance(node, (dict, list)) and node and (parent is None or rng.integers(4)):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, keys[int(rng.integers(len(keys)))]
        node = node[key]
        path.append(key)
    odd = _ODD_JSON_VALUES[int(rng.integers(len(_ODD_JSON_VALUES)))]
    marker = "\u0000ODD\u0000"
    parent[key] = marker
    text = json.dumps(doc).replace(json.dumps(marker), odd)
    return text.encode(), f"set {path} to {odd[:40]}"


def clevr_scenes_target(root: Path) -> Target:
    """The scenes JSON of a 3-scene CLEVR v1.0 tree, read by ClevrV1 (set prediction: every scene kept)."""
    rng = np.random.default_rng(3)
    clevr = root / "CLEVR_v1.0"
    (clevr / "images" / "train").mkdir(parents=True)
    (clevr / "scenes").mkdir()
    scenes = [_scene(i, rng) for i in range(3)]
    for scene in scenes:
        _png(clevr / "images" / "train" / scene["image_filename"], (6, 8), rng)
    scenes_file = clevr / "scenes" / "CLEVR_train_scenes.json"
    scenes_file.write_text(json.dumps({"info": {"split": "train"}, "scenes": scenes}))
    want = ClevrV1(clevr, "train", task="set_prediction", frame_size=(6, 8)).targets

    def read() -> str:
        ds = ClevrV1(clevr, "train", task="set_prediction", frame_size=(6, 8))
        assert ds.targets.shape == (len(ds), 10, 19) and ds.targets.dtype == np.float32
        assert np.isfinite(ds.targets).all() and len(ds.num_objects) == len(ds)
        return "same" if ds.targets.shape == want.shape and np.array_equal(ds.targets, want) else "changed"

    return Target("CLEVR scenes JSON (ClevrV1)", [scenes_file], read, mutate_json)


def clevr_png_target(root: Path) -> Target:
    """One 12x16 RGBA render, decoded by load_clevr_png."""
    path = root / "CLEVR_train_000000.png"
    want = _png(path, (12, 16), np.random.default_rng(4))

    def read() -> str:
        image = load_clevr_png(path, frame_size=(12, 16))
        assert image.shape == (12, 16, 3) and image.dtype == np.uint8 and image.flags.c_contiguous
        return "same" if np.array_equal(image, want) else "changed"

    return Target("CLEVR PNG (load_clevr_png)", [path], read)


TARGETS = {
    "tfrecord_file": tfrecord_file_target,
    "example_payload": example_payload_target,
    "store": store_target,
    "clevr_scenes": clevr_scenes_target,
    "clevr_png": clevr_png_target,
}


@pytest.mark.parametrize("reader", list(TARGETS))
def test_damaged_files_read_or_raise_data_error(tmp_path, report, reader):
    counts = run_campaign(TARGETS[reader](tmp_path), QUICK, seed=0, report=report)
    assert sum(counts.values()) == QUICK


@pytest.mark.slow
@pytest.mark.parametrize("reader", list(TARGETS))
def test_fuzz_campaign(tmp_path, report, reader):
    counts = run_campaign(TARGETS[reader](tmp_path), FULL, seed=1, report=report)
    assert counts["raised DataError"] > 0  # the campaign reached the checks
    assert sum(counts.values()) == FULL


def test_mutations_are_seeded_and_cover_all_three_kinds():
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    a = [mutate(b"0123456789", rng_a) for _ in range(60)]
    assert a == [mutate(b"0123456789", rng_b) for _ in range(60)]
    assert {how.split()[0] for _, how in a} == {"flip", "truncate", "insert"}
    assert all(data != b"0123456789" for data, _ in a)
    doc = b'{"scenes": [{"objects": [{"3d_coords": [1, 2, 3]}]}]}'
    edits = [mutate_json(doc, np.random.default_rng(seed))[1] for seed in range(40)]
    assert any(how.startswith("set ['scenes'") for how in edits) and any(how.startswith("flip") for how in edits)


def test_the_campaign_reports_a_reader_that_raises_another_exception(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"valid")

    def read() -> str:
        if path.read_bytes() != b"valid":
            raise KeyError("boom")  # a reader bug: neither a result nor DataError
        return "same"

    lines = []
    with pytest.raises(AssertionError, match=r"fuzz toy: 5 cases .* 0 raised DataError, 5 other\n.*KeyError: 'boom'"):
        run_campaign(Target("toy", [path], read), 5, seed=0, report=lines.append)
    assert lines and lines[0].startswith("fuzz toy: 5 cases (seed 0)")
