"""Importing the official TF2 checkpoints: equal outputs to TensorFlow, the bundle format, and its errors.

The fixtures under `tests/fixtures/tf_checkpoints/` were written by TensorFlow (`scripts/make_tf_fixtures.py`,
a transcription of the official `model.py`) together with the official models' outputs; no test needs TensorFlow.
"""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from slotattn.config import from_dict
from slotattn.protowire import encode_varint, masked_crc32c
from slotattn.models import SlotAttentionAutoEncoder, build_model
from slotattn.tf_import import (
    OFFICIAL_DEFAULTS,
    TensorBundle,
    TFCheckpointError,
    convert_variables,
    import_tf_checkpoint,
    import_tf_to_safetensors,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tf_checkpoints"
NAMES = ["od_small", "sp_small", "sp_full"]
PREFIX = "network/layer_with_weights-0/"
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# float32 through 3 iterations and up to 6 conv layers; observed max differences are <= 3e-6
TOL = {"rtol": 1e-4, "atol": 1e-5}


def load_fixture(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(FIXTURES / name / "outputs.npz") as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(str(arrays.pop("spec"))), arrays


def overrides(spec: dict) -> dict:
    """What the official checkpoint cannot hold, taken from the fixture's model arguments."""
    out = {"resolution": tuple(spec["resolution"]), "num_slots": spec["num_slots"],
           "num_iterations": spec["num_iterations"]}
    if spec["task"] == "object_discovery":
        out.update(decoder_broadcast_size=tuple(spec["decoder_initial_size"]),
                   decoder_strides=tuple(spec["decoder_strides"]))
    return out


def run_imported(model: torch.nn.Module, arrays: dict[str, np.ndarray]):
    image = torch.from_numpy(arrays["image"]).permute(0, 3, 1, 2)  # channel-last fixture -> (B, 3, H, W)
    with torch.no_grad():
        return model.eval()(image, noise=torch.from_numpy(arrays["noise"]))


def assert_matches_official(out, arrays: dict[str, np.ndarray]) -> None:
    torch.testing.assert_close(out.slots, torch.from_numpy(arrays["slots"]), **TOL)
    if "preds" in arrays:
        torch.testing.assert_close(out.preds, torch.from_numpy(arrays["preds"]), **TOL)
        return
    torch.testing.assert_close(out.recon, torch.from_numpy(arrays["recon"]).permute(0, 3, 1, 2), **TOL)
    torch.testing.assert_close(out.recons, torch.from_numpy(arrays["recons"]).permute(0, 1, 4, 2, 3), **TOL)
    torch.testing.assert_close(out.masks, torch.from_numpy(arrays["masks"]).permute(0, 1, 4, 2, 3), **TOL)


@pytest.mark.parametrize("name", NAMES)
def test_imported_model_reproduces_official_outputs(name):
    spec, arrays = load_fixture(name)
    state, config = import_tf_checkpoint(FIXTURES / name / "ckpt-1", spec["task"], **overrides(spec))
    model = build_model(from_dict(config))
    model.load_state_dict(state)
    assert_matches_official(run_imported(model, arrays), arrays)


def test_full_size_set_predictor_needs_no_overrides():
    """sp_full is the official SlotAttentionClassifier as model.py/train.py build it: the defaults suffice."""
    _, arrays = load_fixture("sp_full")
    state, config = import_tf_checkpoint(FIXTURES / "sp_full" / "ckpt-1.index", "set_prediction")
    m = config["model"]
    assert (m["resolution"], m["num_slots"], m["encoder_strides"], m["num_outputs"]) == ([128, 128], 10,
                                                                                        [1, 2, 2, 1], 19)
    model = build_model(from_dict(config))
    model.load_state_dict(state)
    assert_matches_official(run_imported(model, arrays), arrays)


def test_safetensors_export_loads_and_reproduces_outputs(tmp_path):
    from slotattn.pretrained import load_model

    spec, arrays = load_fixture("od_small")
    out = import_tf_to_safetensors(FIXTURES / "od_small" / "ckpt-1", "object_discovery", tmp_path / "m.safetensors",
                                   **overrides(spec))
    model, cfg = load_model(out)
    assert cfg.task == "object_discovery" and cfg.model.resolution == (32, 48)
    assert_matches_official(run_imported(model, arrays), arrays)


def test_wrong_decoder_geometry_is_a_clear_error():
    # od_small broadcasts 2x3 to 32x48; with the official 8x8 / 128x128 defaults the decoder size cannot agree
    with pytest.raises(TFCheckpointError, match="resolution"):
        import_tf_checkpoint(FIXTURES / "od_small" / "ckpt-1", "object_discovery", resolution=(32, 48))


def test_optimizer_and_counters_are_ignored_and_object_graph_reads():
    bundle = TensorBundle(FIXTURES / "od_small" / "ckpt-1")
    # one step of the official (OptimizerV2) Adam was taken before saving: its slots sit under the model's variables
    assert any(n.startswith(PREFIX) and ".OPTIMIZER_SLOT" in n for n in bundle.entries)
    assert bundle.tensor("global_step" + SUFFIX) == 1
    graph = bundle.strings("_CHECKPOINTABLE_OBJECT_GRAPH")  # the string-tensor layout, its CRC checked
    assert len(graph) == 1 and b"slots_log_sigma" in graph[0]


# ------------------------------------------------------------------------------------------------- errors


def copy_fixture(tmp_path: Path, name: str = "sp_small") -> Path:
    shutil.copytree(FIXTURES / name, tmp_path / name)
    return tmp_path / name / "ckpt-1"


def test_missing_index_and_missing_shard(tmp_path):
    with pytest.raises(TFCheckpointError, match=r"no such checkpoint index.*ckpt-100"):
        import_tf_checkpoint(tmp_path / "ckpt-7", "set_prediction")
    prefix = copy_fixture(tmp_path)
    Path(f"{prefix}.data-00000-of-00001").unlink()
    with pytest.raises(TFCheckpointError, match=r"missing checkpoint data shard"):
        import_tf_checkpoint(prefix, "set_prediction", resolution=(32, 32))


def test_crc_mismatch_names_the_tensor(tmp_path):
    prefix = copy_fixture(tmp_path)
    name = PREFIX + "slot_attention/gru/kernel" + SUFFIX
    entry = TensorBundle(prefix).entries[name]
    data = Path(f"{prefix}.data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[entry.offset + 5] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(TFCheckpointError, match=r"slot_attention/gru/kernel.*CRC mismatch"):
        import_tf_checkpoint(prefix, "set_prediction", resolution=(32, 32))


def test_truncated_shard_and_corrupt_index(tmp_path):
    prefix = copy_fixture(tmp_path)
    data = Path(f"{prefix}.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(TFCheckpointError, match="truncated"):
        import_tf_checkpoint(prefix, "set_prediction", resolution=(32, 32))
    index = Path(f"{prefix}.index")
    raw = bytearray(index.read_bytes())
    raw[100] ^= 0xFF  # inside the first data block
    index.write_bytes(bytes(raw))
    with pytest.raises(TFCheckpointError, match="CRC mismatch"):
        TensorBundle(prefix)
    index.write_bytes(b"\x00" * 64)
    with pytest.raises(TFCheckpointError, match="not a TensorFlow checkpoint index"):
        TensorBundle(prefix)


def model_variables(name: str) -> dict[str, np.ndarray]:
    bundle = TensorBundle(FIXTURES / name / "ckpt-1")
    return {n[len(PREFIX) : -len(SUFFIX)]: bundle.tensor(n) for n in bundle.entries
            if n.startswith(PREFIX) and n.endswith(SUFFIX)}


def test_missing_and_unexpected_variables_are_listed():
    variables = model_variables("sp_small")
    missing = dict(variables)
    del missing["slot_attention/norm_mlp/gamma"]
    with pytest.raises(TFCheckpointError, match=r"missing variable 'slot_attention/norm_mlp/gamma'"):
        convert_variables(missing, "set_prediction")
    extra = {**variables, "slot_attention/extra/kernel": np.zeros(3, np.float32), "head/bias": np.zeros(2)}
    with pytest.raises(TFCheckpointError, match=r"unexpected variables.*'head/bias', 'slot_attention/extra/kernel'"):
        convert_variables(extra, "set_prediction")
    with pytest.raises(TFCheckpointError, match="SlotAttentionClassifier.*use task 'set_prediction'"):
        convert_variables(variables, "object_discovery")  # a set predictor read as an autoencoder
    with pytest.raises(TFCheckpointError, match="SlotAttentionAutoEncoder.*use task 'object_discovery'"):
        convert_variables(model_variables("od_small"), "set_prediction")


# ------------------------------------------------------------- full-size CLEVR6 through a hand-built bundle


def to_official(model: SlotAttentionAutoEncoder) -> dict[str, np.ndarray]:
    """The inverse of the mapping table: slotattn parameters -> official variable paths and layouts."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def gates(x):  # PyTorch (r, z, n) -> Keras (z, r, h) along the first axis
        r, z, n = np.split(x, 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    for i in range(4):
        out[f"encoder_cnn/layer_with_weights-{i}/kernel"] = sd[f"encoder_cnn.{2 * i}.weight"].transpose(2, 3, 1, 0)
        out[f"encoder_cnn/layer_with_weights-{i}/bias"] = sd[f"encoder_cnn.{2 * i}.bias"]
    for i in range(6):
        out[f"decoder_cnn/layer_with_weights-{i}/kernel"] = sd[f"decoder.cnn.{2 * i}.weight"].transpose(2, 3, 1, 0)
        out[f"decoder_cnn/layer_with_weights-{i}/bias"] = sd[f"decoder.cnn.{2 * i}.bias"]
    for tf_name, pt in [("encoder_pos/dense", "encoder_pos.dense"), ("decoder_pos/dense", "decoder.position.dense"),
                        ("mlp/layer_with_weights-0", "mlp.0"), ("mlp/layer_with_weights-1", "mlp.2"),
                        ("slot_attention/mlp/layer_with_weights-0", "slot_attention.mlp.0"),
                        ("slot_attention/mlp/layer_with_weights-1", "slot_attention.mlp.2")]:
        out[f"{tf_name}/kernel"], out[f"{tf_name}/bias"] = sd[f"{pt}.weight"].T, sd[f"{pt}.bias"]
    for tf_name, pt in [("layer_norm", "layer_norm")] + [(f"slot_attention/{n}", f"slot_attention.{n}")
                                                        for n in ("norm_inputs", "norm_slots", "norm_mlp")]:
        out[f"{tf_name}/gamma"], out[f"{tf_name}/beta"] = sd[f"{pt}.weight"], sd[f"{pt}.bias"]
    for n in ("project_q", "project_k", "project_v"):
        out[f"slot_attention/{n}/kernel"] = sd[f"slot_attention.{n}.weight"].T
    out["slot_attention/slots_mu"] = sd["slot_attention.slots_mu"]
    out["slot_attention/slots_log_sigma"] = sd["slot_attention.slots_log_sigma"]
    out["slot_attention/gru/kernel"] = gates(sd["slot_attention.gru.weight_ih"]).T
    out["slot_attention/gru/recurrent_kernel"] = gates(sd["slot_attention.gru.weight_hh"]).T
    out["slot_attention/gru/bias"] = np.stack([gates(sd["slot_attention.gru.bias_ih"]),
                                               gates(sd["slot_attention.gru.bias_hh"])])
    return out


def write_bundle(prefix: Path, tensors: dict[str, np.ndarray]) -> None:
    """A minimal TF tensor-bundle writer: float32 tensors in one shard, one uncompressed table data block."""
    data, block, restarts = bytearray(), bytearray(), []
    entries = [(b"", b"\x08\x01")]  # BundleHeaderProto(num_shards=1)
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = b"".join(b"\x12" + encode_varint(len(d)) + d
                         for d in (b"\x08" + encode_varint(n) for n in tensors[name].shape))
        proto = (b"\x08\x01" + b"\x12" + encode_varint(len(shape)) + shape + b"\x20" + encode_varint(len(data))
                 + b"\x28" + encode_varint(len(raw)) + b"\x35" + struct.pack("<I", masked_crc32c(raw)))
        entries.append((name.encode(), proto))
        data += raw
    for i, (key, value) in enumerate(entries):
        if i % 16 == 0:
            restarts.append(len(block))
        block += encode_varint(0) + encode_varint(len(key)) + encode_varint(len(value)) + key + value
    block += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))

    def with_trailer(contents: bytes) -> bytes:
        return contents + b"\x00" + struct.pack("<I", masked_crc32c(contents + b"\x00"))

    table = bytearray(with_trailer(bytes(block)))
    handle = encode_varint(0) + encode_varint(len(block))
    last = entries[-1][0]
    index = encode_varint(0) + encode_varint(len(last)) + encode_varint(len(handle)) + last + handle
    index += struct.pack("<I", 0) + struct.pack("<I", 1)
    index_offset = len(table)
    table += with_trailer(index)
    footer = encode_varint(0) + encode_varint(0) + encode_varint(index_offset) + encode_varint(len(index))
    table += footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(table))
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))


def test_full_size_clevr6_autoencoder_round_trips_through_the_bundle_format(tmp_path):
    """Full-size CLEVR6 (3.5 MB of weights, too big for a fixture): official defaults, every parameter in place."""
    model = SlotAttentionAutoEncoder()
    write_bundle(tmp_path / "ckpt-3", {PREFIX + k + SUFFIX: v for k, v in to_official(model).items()})
    state, config = import_tf_checkpoint(tmp_path / "ckpt-3", "object_discovery")
    expected = {k: v for k, v in config["model"].items()}
    assert expected["resolution"] == [128, 128] and expected["num_slots"] == 7
    assert expected["decoder_broadcast_size"] == [8, 8] and expected["decoder_strides"] == [2, 2, 2, 2, 1]
    assert set(state) == set(model.state_dict())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)


def test_official_defaults_are_the_train_py_settings():
    assert OFFICIAL_DEFAULTS["object_discovery"]["num_slots"] == 7  # object_discovery/train.py --num_slots
    assert OFFICIAL_DEFAULTS["set_prediction"]["num_slots"] == 10  # set_prediction/train.py --num_slots


def test_overrides_are_checked_like_config_keys():
    # values as `--set model.x=...` gives them (YAML lists) are accepted; an unknown key names the nearest one
    _, config = import_tf_checkpoint(FIXTURES / "sp_small" / "ckpt-1", "set_prediction", resolution=[32, 32],
                                     num_slots=7)
    assert config["model"]["num_slots"] == 7
    with pytest.raises(TFCheckpointError, match="did you mean 'model.num_slots'"):
        import_tf_checkpoint(FIXTURES / "sp_small" / "ckpt-1", "set_prediction", num_slot=7)
