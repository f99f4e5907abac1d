"""Import the official TF2 Slot Attention checkpoints (google-research `slot_attention/`) without TensorFlow.

The official `train.py` files save `tf.train.Checkpoint(network=model, optimizer=..., global_step=...)` of the
Keras models in `slot_attention/model.py`: `ckpt-N.index` + `ckpt-N.data-00000-of-00001`. This module reads that
tensor bundle directly and maps each variable to a slotattn parameter.

**The bundle format** (TensorFlow `core/util/tensor_bundle/`). The `.index` file is a LevelDB-style sorted string
table (`core/lib/io/table*`): data blocks of prefix-compressed `(key, value)` entries with restart points, each
followed by a 5-byte trailer (compression type, masked CRC32C of block + type); an index block mapping the last
key of each data block to its `BlockHandle` (varint offset, varint size); and a 48-byte footer holding the
metaindex and index handles and the magic number 0xdb4775248b80fb57. The bundle writer stores blocks
uncompressed (`options.compression = kNoCompression`); a compressed block is refused here with a clear error.
Each value is a serialized `BundleEntryProto` (dtype, shape, shard_id, offset, size, crc32c = the *masked*
CRC32C of the tensor's bytes), except the empty key, whose value is the `BundleHeaderProto` (num_shards,
endianness). Tensors are raw little-endian bytes at `offset` in `<prefix>.data-<shard>-of-<num_shards>`; string
tensors (the `_CHECKPOINTABLE_OBJECT_GRAPH`) are varint lengths, a masked CRC of those lengths, then the bytes.

**Variable names** are object-graph paths. The official model is a Keras functional model whose first layer with
weights is the `SlotAttentionAutoEncoder`/`SlotAttentionClassifier`, so each model variable is
`network/layer_with_weights-0/<attribute path>/.ATTRIBUTES/VARIABLE_VALUE`; the attribute path uses the Python
attribute names of `model.py` (`slot_attention/project_q`, not the Keras layer name `q`) and, inside a
`tf.keras.Sequential`, `layer_with_weights-<i>`. Optimizer slots (`.OPTIMIZER_SLOT`), `optimizer/...`,
`global_step` and `save_counter` are ignored. The mapping (official attribute path -> slotattn parameter, with
the layout conversion; TF is channel-last, slotattn channel-first):

    official variable (model-relative)    TF shape        slotattn parameter                       conversion
    ------------------------------------  --------------  ---------------------------------------  -----------------
    encoder_cnn/layer_with_weights-i/     [kh,kw,in,out]  encoder_cnn.{2i}.weight [out,in,kh,kw]   permute(3,2,0,1)
      kernel, bias                        [out]           encoder_cnn.{2i}.bias                    as is
    encoder_pos/dense/kernel, bias        [4,C], [C]      encoder_pos.dense.weight [C,4], .bias    transpose
    layer_norm/gamma, beta                [C]             layer_norm.weight, .bias                 as is
    mlp/layer_with_weights-{0,1}/         [in,out]        mlp.{0,2}.weight [out,in], .bias         transpose
    slot_attention/slots_mu,              [1,1,D]         slot_attention.slots_mu,                 as is
      slot_attention/slots_log_sigma                        slot_attention.slots_log_sigma
    slot_attention/norm_{inputs,slots,    [D] or [Din]    slot_attention.norm_*.weight, .bias      as is
      mlp}/gamma, beta
    slot_attention/project_{q,k,v}/kernel [in,D]          slot_attention.project_*.weight [D,in]   transpose
    slot_attention/gru/kernel             [in,3D] z|r|h   slot_attention.gru.weight_ih [3D,in]     gates r|z|n, .T
    slot_attention/gru/recurrent_kernel   [D,3D] z|r|h    slot_attention.gru.weight_hh [3D,D]      gates r|z|n, .T
    slot_attention/gru/bias               [2,3D] z|r|h    gru.bias_ih = row 0, gru.bias_hh = row 1 gates r|z|n
    slot_attention/mlp/                   [in,out]        slot_attention.mlp.{0,2}                 transpose
      layer_with_weights-{0,1}/
    decoder_pos/dense/kernel, bias        [4,D], [D]      decoder.position.dense.weight, .bias     transpose
    decoder_cnn/layer_with_weights-i/     [kh,kw,out,in]  decoder.cnn.{2i}.weight [in,out,kh,kw]   permute(3,2,0,1)
      kernel, bias                        [out]           decoder.cnn.{2i}.bias                    as is
    mlp_classifier/layer_with_weights-    [in,out]        mlp_classifier.{0,2}.weight [out,in]     transpose
      {0,1}/kernel, bias                                    mlp_classifier.{0,2}.bias

Notes on the conversions. The GRU: Keras' `GRUCell` (TF2 default `reset_after=True`) computes exactly PyTorch's
`GRUCell`, but Keras concatenates the gates as (update z, reset r, candidate h) and PyTorch as (reset r, update
z, new n), and Keras keeps the input and recurrent biases as the two rows of one [2, 3D] bias. Transposed
convolutions: TF's `conv2d_transpose` and PyTorch's `conv_transpose2d` are both the adjoint of the same
cross-correlation, so only the axes move, no spatial flip (checked against TensorFlow by
`tests/test_tf_import.py`). "SAME" padding is reproduced by `slotattn.nn.Conv2dSame`/`ConvTranspose2dSame`, and
the position grid channel order (`build_grid`) and the LayerNorm epsilon (1e-3) follow the official code.

What the checkpoint does not hold (resolution, strides, number of slots and iterations, broadcast size) comes
from the official `train.py` defaults for the task, and can be overridden for models trained differently.
"""

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slotattn.training.checkpoint import CheckpointError, export_safetensors
from slotattn.config import TASKS, ConfigError, from_dict, to_dict
from slotattn.protowire import WireFormatError, crc32c, fields, masked_crc32c, varint
from slotattn.models import build_model
from slotattn.nn.init import KERAS_TO_TORCH_GATES

__all__ = [
    "OFFICIAL_DEFAULTS",
    "TFCheckpointError",
    "TensorBundle",
    "convert_variables",
    "import_tf_checkpoint",
    "import_tf_to_safetensors",
]

log = logging.getLogger(__name__)


class TFCheckpointError(CheckpointError):
    """A TF checkpoint is missing, corrupted, of an unsupported kind, or not of an official Slot Attention model."""


# ------------------------------------------------------------------------------------- the sorted string table

_TABLE_MAGIC = 0xDB4775248B80FB57  # LevelDB's kTableMagicNumber, also TensorFlow's
_FOOTER_SIZE = 48  # two BlockHandles padded to 40 bytes + 8-byte magic
_BLOCK_TRAILER_SIZE = 5  # 1-byte compression type + 4-byte masked CRC32C
_NO_COMPRESSION = 0


def _read_block(data: bytes, offset: int, size: int, where: str) -> bytes:
    """The contents of the block at (offset, size), its trailer's CRC checked."""
    end = offset + size
    if offset < 0 or end + _BLOCK_TRAILER_SIZE > len(data):
        raise TFCheckpointError(f"{where}: block ({offset}, {size}) runs past the end of the file ({len(data)} bytes)")
    kind = data[end]
    (stored,) = struct.unpack_from("<I", data, end + 1)
    computed = masked_crc32c(data[offset : end + 1])  # over the contents and the type byte
    if stored != computed:
        raise TFCheckpointError(
            f"{where}: block at offset {offset}: CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})"
        )
    if kind != _NO_COMPRESSION:
        raise TFCheckpointError(
            f"{where}: block at offset {offset} is compressed (type {kind}); TensorFlow's bundle writer stores "
            "blocks uncompressed, so this is not a checkpoint index this reader supports"
        )
    return data[offset:end]


def _block_entries(block: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of one block: entries `shared, non_shared, value_len, key_delta, value`, then restarts."""
    if len(block) < 4:
        raise TFCheckpointError(f"{where}: block of {len(block)} bytes has no restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise TFCheckpointError(f"{where}: block claims {num_restarts} restart points but has {len(block)} bytes")
    entries = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = varint(block, pos, limit)
        non_shared, pos = varint(block, pos, limit)
        value_len, pos = varint(block, pos, limit)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise TFCheckpointError(f"{where}: corrupt block entry at byte {pos}")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _read_table(path: Path) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a TensorFlow/LevelDB table file, in key order."""
    data = path.read_bytes()
    if len(data) < _FOOTER_SIZE:
        raise TFCheckpointError(f"{path}: {len(data)} bytes is too short for a checkpoint index (footer: 48 bytes)")
    footer = data[-_FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != _TABLE_MAGIC:
        raise TFCheckpointError(f"{path}: not a TensorFlow checkpoint index (magic 0x{magic:016x}, "
                                f"expected 0x{_TABLE_MAGIC:016x})")
    try:
        _, pos = varint(footer, 0, 40)  # metaindex handle: TF writes an empty metaindex, not needed
        _, pos = varint(footer, pos, 40)
        index_offset, pos = varint(footer, pos, 40)
        index_size, pos = varint(footer, pos, 40)
        entries = []
        for _, handle in _block_entries(_read_block(data, index_offset, index_size, str(path)), str(path)):
            offset, hpos = varint(handle, 0, len(handle))
            size, _ = varint(handle, hpos, len(handle))
            entries += _block_entries(_read_block(data, offset, size, str(path)), str(path))
    except WireFormatError as err:  # a truncated varint
        raise TFCheckpointError(f"{path}: corrupt checkpoint index ({err})") from err
    return entries


# ------------------------------------------------------------------------------------------ bundle entries

# TensorFlow DataType enum (`core/framework/types.proto`) -> little-endian numpy dtype.
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 17: "<u2", 19: "<f2",
           22: "<u4", 23: "<u8"}
_DT_STRING = 7


@dataclass(frozen=True)
class BundleEntry:
    """One `BundleEntryProto`: where a tensor lives in the data shards and its masked CRC32C."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    sliced: bool


def _parse_shape(buf: bytes, a: int, b: int) -> tuple[int, ...]:
    dims = []
    for number, wire, da, db in fields(buf, a, b):
        if number == 2 and wire == 2:  # TensorShapeProto.dim
            size = 0
            for dn, dw, va, _ in fields(buf, da, db):
                if dn == 1 and dw == 0:
                    size = va - (1 << 64) if va >= 1 << 63 else va
            dims.append(size)
    return tuple(dims)


def _parse_entry(buf: bytes) -> BundleEntry:
    values: dict[str, Any] = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0,
                              "sliced": False}
    for number, wire, a, b in fields(buf, 0, len(buf)):
        if number == 1 and wire == 0:
            values["dtype"] = a
        elif number == 2 and wire == 2:
            values["shape"] = _parse_shape(buf, a, b)
        elif number == 3 and wire == 0:
            values["shard_id"] = a
        elif number == 4 and wire == 0:
            values["offset"] = a
        elif number == 5 and wire == 0:
            values["size"] = a
        elif number == 6 and wire == 5:
            values["crc32c"] = struct.unpack_from("<I", buf, a)[0]
        elif number == 7:
            values["sliced"] = True
    return BundleEntry(**values)


class TensorBundle:
    """A TF2 checkpoint (tensor bundle) opened for reading: names, shapes, and CRC-checked tensors.

    Args:
        prefix: the checkpoint prefix `.../ckpt-N` (the `.index` and `.data-*` files sit beside it); a path to the
            `.index` file itself is accepted too.
    """

    def __init__(self, prefix: str | Path):
        prefix = Path(prefix)
        if prefix.suffix == ".index":
            prefix = prefix.with_suffix("")
        self.prefix = prefix
        index = Path(f"{prefix}.index")
        if not index.is_file():
            raise TFCheckpointError(
                f"{index}: no such checkpoint index; pass the checkpoint prefix, e.g. .../ckpt-100 for "
                "ckpt-100.index + ckpt-100.data-00000-of-00001"
            )
        self.num_shards = 1
        self.entries: dict[str, BundleEntry] = {}
        try:
            for key, value in _read_table(index):
                if key == b"":
                    self._parse_header(value, index)
                else:
                    self.entries[key.decode("utf-8")] = _parse_entry(value)
        except (WireFormatError, UnicodeDecodeError) as err:
            raise TFCheckpointError(f"{index}: corrupt bundle entry ({err})") from err
        self._shards: dict[int, bytes] = {}

    def _parse_header(self, value: bytes, index: Path) -> None:
        for number, wire, a, _ in fields(value, 0, len(value)):
            if number == 1 and wire == 0:
                self.num_shards = a
            elif number == 2 and wire == 0 and a != 0:
                raise TFCheckpointError(f"{index}: a big-endian checkpoint; only little-endian ones are supported")

    def _shard(self, shard_id: int) -> bytes:
        if shard_id not in self._shards:
            path = Path(f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}")
            if not path.is_file():
                raise TFCheckpointError(f"{path}: missing checkpoint data shard (named by {self.prefix}.index)")
            self._shards[shard_id] = path.read_bytes()
        return self._shards[shard_id]

    def _raw(self, name: str) -> tuple[BundleEntry, bytes]:
        if name not in self.entries:
            raise TFCheckpointError(f"{self.prefix}: no tensor named {name!r}")
        entry = self.entries[name]
        if entry.sliced:
            raise TFCheckpointError(f"{self.prefix}: {name}: partitioned (sliced) variables are not supported")
        shard = self._shard(entry.shard_id)
        if entry.offset + entry.size > len(shard):
            raise TFCheckpointError(
                f"{self.prefix}: {name}: bytes {entry.offset}..{entry.offset + entry.size} lie past the end of data "
                f"shard {entry.shard_id} ({len(shard)} bytes): the shard is truncated"
            )
        return entry, shard[entry.offset : entry.offset + entry.size]

    def _check_crc(self, name: str, entry: BundleEntry, computed_unmasked: int) -> None:
        computed = ((((computed_unmasked >> 15) | (computed_unmasked << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
        if computed != entry.crc32c:
            raise TFCheckpointError(
                f"{self.prefix}: tensor {name!r}: CRC mismatch (stored 0x{entry.crc32c:08x}, computed "
                f"0x{computed:08x}): the data shard is corrupted"
            )

    def tensor(self, name: str) -> np.ndarray:
        """The tensor `name` as a numpy array (numeric dtypes), its masked CRC32C checked."""
        entry, data = self._raw(name)
        if entry.dtype not in _DTYPES:
            raise TFCheckpointError(f"{self.prefix}: {name}: unsupported dtype {entry.dtype} (TensorFlow enum)")
        self._check_crc(name, entry, crc32c(data))
        dtype = np.dtype(_DTYPES[entry.dtype])
        expected = int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize
        if len(data) != expected:
            raise TFCheckpointError(f"{self.prefix}: {name}: {len(data)} bytes for shape {list(entry.shape)} "
                                    f"of {dtype} ({expected} expected)")
        return np.frombuffer(data, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))

    def strings(self, name: str) -> list[bytes]:
        """A string tensor (e.g. `_CHECKPOINTABLE_OBJECT_GRAPH`) as a flat list of bytes, its CRC checked.

        Layout (`WriteStringTensor`): varint64 lengths, a masked CRC32C of the lengths, then the bytes; the entry's
        CRC covers each length as uint32 (uint64 if longer), the stored length CRC, and the bytes.
        """
        entry, data = self._raw(name)
        if entry.dtype != _DT_STRING:
            raise TFCheckpointError(f"{self.prefix}: {name}: not a string tensor (dtype {entry.dtype})")
        count = int(np.prod(entry.shape, dtype=np.int64))
        try:
            lengths, pos, crc = [], 0, 0
            for _ in range(count):
                length, pos = varint(data, pos, len(data))
                lengths.append(length)
                crc = crc32c(struct.pack("<I" if length <= 0xFFFFFFFF else "<Q", length), crc)
        except WireFormatError as err:
            raise TFCheckpointError(f"{self.prefix}: {name}: corrupt string tensor ({err})") from err
        crc = crc32c(data[pos : pos + 4], crc)
        pos += 4
        out = []
        for length in lengths:
            out.append(data[pos : pos + length])
            crc = crc32c(data[pos : pos + length], crc)
            pos += length
        self._check_crc(name, entry, crc)
        return out


# ------------------------------------------------------------------------------------------------ mapping

# What the checkpoint does not hold: the official train.py settings (resolution, slots, iterations) and the
# fixed layer geometry of model.py (strides, 8x8 broadcast).
OFFICIAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "object_discovery": {"resolution": (128, 128), "num_slots": 7, "num_iterations": 3,
                         "encoder_strides": None, "decoder_broadcast_size": (8, 8)},
    "set_prediction": {"resolution": (128, 128), "num_slots": 10, "num_iterations": 3,
                       "encoder_strides": (1, 2, 2, 1)},
}

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _gru_gates(x: np.ndarray) -> np.ndarray:
    """Reorder the last axis of a Keras GRU weight from gate blocks (z, r, h) to PyTorch's (r, z, n)."""
    blocks = np.split(x, 3, axis=-1)
    return np.concatenate([blocks[i] for i in KERAS_TO_TORCH_GATES], axis=-1)


def _model_prefix(names: list[str], where: str) -> str:
    anchors = sorted({n[: -len("slot_attention/slots_mu" + _SUFFIX)] for n in names
                      if n.endswith("slot_attention/slots_mu" + _SUFFIX) and ".OPTIMIZER_SLOT" not in n})
    if len(anchors) != 1:
        found = "none" if not anchors else ", ".join(anchors)
        raise TFCheckpointError(f"{where}: expected exactly one official Slot Attention model (a variable "
                                f"'.../slot_attention/slots_mu'), found {found}")
    return anchors[0]


def _sequential(variables: dict[str, np.ndarray], group: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of each layer of a Keras Sequential stored as `<group>/layer_with_weights-<i>/...`."""
    layers = []
    while f"{group}/layer_with_weights-{len(layers)}/kernel" in variables:
        i = len(layers)
        kernel = variables.pop(f"{group}/layer_with_weights-{i}/kernel")
        bias_key = f"{group}/layer_with_weights-{i}/bias"
        if bias_key not in variables:
            raise TFCheckpointError(f"missing variable '{bias_key}'")
        layers.append((kernel, variables.pop(bias_key)))
    return layers


def _take(variables: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in variables:
        raise TFCheckpointError(f"missing variable '{key}'")
    return variables.pop(key)


def convert_variables(variables: dict[str, np.ndarray], task: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Map official model variables (attribute paths relative to the model, without `/.ATTRIBUTES/...`) to a
    slotattn state dict, and the model-config fields their shapes determine.

    Raises:
        TFCheckpointError: a variable is missing, or some are left that no slotattn parameter takes (listed).
    """
    variables = dict(variables)
    holds = {"object_discovery": any(k.startswith("decoder_cnn/") for k in variables),
             "set_prediction": any(k.startswith("mlp_classifier/") for k in variables)}
    other = next(t for t in TASKS if t != task)
    if holds[other] and not holds[task]:
        kind = "SlotAttentionAutoEncoder (decoder_cnn)" if other == "object_discovery" else \
            "SlotAttentionClassifier (mlp_classifier)"
        raise TFCheckpointError(f"the checkpoint holds an official {kind}, not a {task} model: use task '{other}'")
    state: dict[str, np.ndarray] = {}
    model: dict[str, Any] = {}

    def dense(prefix: str, kernel: np.ndarray, bias: np.ndarray | None) -> None:
        state[f"{prefix}.weight"] = kernel.T  # Dense [in, out] -> Linear [out, in]
        if bias is not None:
            state[f"{prefix}.bias"] = bias

    def dense_at(group: str, prefix: str) -> None:
        dense(prefix, _take(variables, f"{group}/kernel"), _take(variables, f"{group}/bias"))

    def layer_norm(group: str, prefix: str) -> None:
        state[f"{prefix}.weight"] = _take(variables, f"{group}/gamma")
        state[f"{prefix}.bias"] = _take(variables, f"{group}/beta")

    def mlp(group: str, prefix: str) -> tuple[int, int]:
        layers = _sequential(variables, group)
        if len(layers) != 2:
            raise TFCheckpointError(f"'{group}': expected 2 Dense layers, found {len(layers)}")
        for i, (kernel, bias) in enumerate(layers):
            dense(f"{prefix}.{2 * i}", kernel, bias)
        return layers[0][0].shape[1], layers[1][0].shape[1]

    encoder = _sequential(variables, "encoder_cnn")
    if not encoder:
        raise TFCheckpointError("missing variables 'encoder_cnn/layer_with_weights-0/kernel' and following")
    for i, (kernel, bias) in enumerate(encoder):
        state[f"encoder_cnn.{2 * i}.weight"] = kernel.transpose(3, 2, 0, 1)  # [kh,kw,in,out] -> [out,in,kh,kw]
        state[f"encoder_cnn.{2 * i}.bias"] = bias
    model["encoder_channels"] = tuple(int(k.shape[3]) for k, _ in encoder)
    model["encoder_kernel_size"] = int(encoder[0][0].shape[0])
    model["use_encoder_position"] = "encoder_pos/dense/kernel" in variables
    if model["use_encoder_position"]:
        dense_at("encoder_pos/dense", "encoder_pos.dense")
    layer_norm("layer_norm", "layer_norm")
    model["hidden_size"] = int(mlp("mlp", "mlp")[1])

    sa = "slot_attention"
    state[f"{sa}.slots_mu"] = _take(variables, f"{sa}/slots_mu")
    state[f"{sa}.slots_log_sigma"] = _take(variables, f"{sa}/slots_log_sigma")
    for name in ("norm_inputs", "norm_slots", "norm_mlp"):
        layer_norm(f"{sa}/{name}", f"{sa}.{name}")
    for name in ("project_q", "project_k", "project_v"):
        dense(f"{sa}.{name}", _take(variables, f"{sa}/{name}/kernel"), None)
    kernel = _take(variables, f"{sa}/gru/kernel")  # [in, 3D], gates z|r|h
    recurrent = _take(variables, f"{sa}/gru/recurrent_kernel")  # [D, 3D]
    bias = _take(variables, f"{sa}/gru/bias")  # [2, 3D]: input bias, recurrent bias (reset_after=True)
    if bias.ndim != 2:
        raise TFCheckpointError(f"'{sa}/gru/bias' has shape {list(bias.shape)}; expected [2, 3D] "
                                "(Keras GRUCell with reset_after=True, the TF2 default)")
    state[f"{sa}.gru.weight_ih"] = _gru_gates(kernel).T
    state[f"{sa}.gru.weight_hh"] = _gru_gates(recurrent).T
    state[f"{sa}.gru.bias_ih"] = _gru_gates(bias[0])
    state[f"{sa}.gru.bias_hh"] = _gru_gates(bias[1])
    model["mlp_hidden_size"] = int(mlp(f"{sa}/mlp", f"{sa}.mlp")[0])
    model["slot_size"] = int(state[f"{sa}.slots_mu"].shape[-1])

    if task == "object_discovery":
        model["use_decoder_position"] = "decoder_pos/dense/kernel" in variables
        if model["use_decoder_position"]:
            dense_at("decoder_pos/dense", "decoder.position.dense")
        decoder = _sequential(variables, "decoder_cnn")
        if len(decoder) < 2:
            raise TFCheckpointError(f"'decoder_cnn': expected at least 2 Conv2DTranspose layers, found {len(decoder)}")
        for i, (kernel, bias) in enumerate(decoder):
            # Conv2DTranspose [kh,kw,out,in] -> ConvTranspose2d [in,out,kh,kw]; no spatial flip (module docstring)
            state[f"decoder.cnn.{2 * i}.weight"] = kernel.transpose(3, 2, 0, 1)
            state[f"decoder.cnn.{2 * i}.bias"] = bias
        model["decoder_channels"] = tuple(int(k.shape[2]) for k, _ in decoder[:-1])
        model["decoder_kernel_size"] = int(decoder[0][0].shape[0])
        model["decoder_out_kernel_size"] = int(decoder[-1][0].shape[0])
    else:
        model["head_hidden_size"], model["num_outputs"] = (int(n) for n in mlp("mlp_classifier", "mlp_classifier"))

    if variables:
        raise TFCheckpointError(f"unexpected variables that no slotattn parameter takes: {sorted(variables)}")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}, model


def import_tf_checkpoint(path: str | Path, task: str, **model_overrides: Any) -> tuple[dict[str, torch.Tensor],
                                                                                       dict[str, Any]]:
    """Read an official TF2 Slot Attention checkpoint and convert it to slotattn weights and config.

    Args:
        path: the checkpoint prefix, e.g. `/tmp/object_discovery/ckpt-500` (or its `.index` file).
        task: "object_discovery" (official `SlotAttentionAutoEncoder`) or "set_prediction"
            (`SlotAttentionClassifier`).
        **model_overrides: `ModelConfig` fields the checkpoint cannot tell, for a model trained with other settings
            than the official `train.py` (see OFFICIAL_DEFAULTS): resolution, num_slots, num_iterations,
            encoder_strides, decoder_strides, decoder_broadcast_size, epsilon.

    Returns:
        (state dict for `build_model(cfg)`, the full config as a plain dict, as `slotattn export` stores it).

    Raises:
        TFCheckpointError: missing files, a CRC mismatch (naming the tensor), missing or unexpected variables
            (listed), or a config that does not fit the weights.
    """
    if task not in TASKS:
        raise TFCheckpointError(f"task must be one of {TASKS}, got {task!r}")
    bundle = TensorBundle(path)
    names = sorted(bundle.entries)
    prefix = _model_prefix(names, str(bundle.prefix))
    variables, ignored = {}, []
    for name in names:
        if name.startswith(prefix) and name.endswith(_SUFFIX) and ".OPTIMIZER_SLOT" not in name:
            variables[name[len(prefix) : -len(_SUFFIX)]] = bundle.tensor(name)
        else:
            ignored.append(name)
    log.debug("%s: ignoring %d entries outside the model (optimizer, step counters): %s", bundle.prefix,
              len(ignored), ignored)
    try:
        state, model = convert_variables(variables, task)
    except TFCheckpointError as err:
        raise TFCheckpointError(f"{bundle.prefix} (model variables under '{prefix}'): {err}") from None
    model = {**OFFICIAL_DEFAULTS[task], **model, **model_overrides}
    try:
        cfg = from_dict({"task": task, "model": model})
        net = build_model(cfg)
    except (ConfigError, ValueError) as err:
        raise TFCheckpointError(f"{bundle.prefix}: the imported weights do not fit a slotattn {task} model: {err}") \
            from err
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:  # shape mismatches or keys this version names differently
        lines = " ".join(line.strip() for line in str(err).splitlines()[:6])
        raise TFCheckpointError(f"{bundle.prefix}: the converted weights do not load into the model: {lines}") \
            from err
    return state, to_dict(cfg)


def import_tf_to_safetensors(path: str | Path, task: str, out: str | Path, **model_overrides: Any) -> Path:
    """`import_tf_checkpoint`, written as `out` (.safetensors with the config in its metadata, plus `out`.json).

    The result loads with `slotattn.from_pretrained(out)`.
    """
    state, config = import_tf_checkpoint(path, task, **model_overrides)
    return export_safetensors(state, config, out)
