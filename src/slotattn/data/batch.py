"""The batch contract between data and training: key names, dtypes, value ranges, 0 = background.

Stores, generators and readers keep the official multi_object_datasets layout (``image`` uint8 [B, H, W, 3],
``mask`` uint8 [B, M, H, W, 1] with entity 0 the background). Two batches are made from it:

- the evaluation batch, :func:`to_model_batch`: everything the metrics and figures read, on the CPU: ``image``
  float32 [B, 3, H, W] in [-1, 1], channel-first; ``mask_ids`` int64 [B, H, W] with 0 = background (masks checked
  to partition the pixels); ``target`` and ``num_objects`` for set prediction;
- the training batch, :func:`to_train_batch`: only what the task's loss reads (``Task.train_keys``: the image for
  object discovery; image, ``target`` and ``num_objects`` for set prediction), with ``image`` still uint8
  [B, H, W, C] as stored (C = 3, or 1 for binarized Multi-dSprites). It crosses to the training device as uint8
  (a quarter of the bytes of float32) and :func:`image_to_model` converts it there; the engine's ``to_device``
  does that for any batch whose image is uint8. Object discovery's training batch has no masks: their check and
  argmax cost ~2 + ~25 ms per CLEVR6 batch of 64 on one core (:func:`check_mask_partition`), for nothing the loss
  reads.

The [-1, 1] range is the official slot_attention ``data.py`` preprocessing (``((image / 255.0) - 0.5) * 2.0``);
:func:`image_to_model` computes ``image / 127.5 - 1``, equal to it bit for bit in float32 for every uint8 value.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from jaxtyping import Int64, UInt8

from slotattn.data.errors import DataError

__all__ = ["IMAGE", "MASK_IDS", "check_mask_partition", "image_to_model", "masks_to_ids", "to_model_batch",
           "to_train_batch"]

# A model batch: the keys below (plus "index", the examples' positions in their split), tensors of any device.
Batch = dict[str, torch.Tensor]

IMAGE = "image"  # float32 [B, 3, H, W] in [-1, 1] (a training batch: uint8 [B, H, W, C] until `image_to_model`)
MASK_IDS = "mask_ids"  # int64 [B, H, W], 0 = background, i = the pixel's entity in the source ``mask``


def masks_to_ids(mask: UInt8[np.ndarray, "*batch M H W 1"]) -> Int64[np.ndarray, "*batch H W"]:
    """Turn per-entity binary masks into one integer id map.

    Args:
        mask: uint8 masks in the official layout, one [H, W, 1] plane per entity, entity 0 the background;
            any value above 0 counts as "in the mask" when the masks are exclusive (DeepMind data is 0/255).

    Returns:
        The index of each pixel's entity (argmax over M), so 0 = background. A pixel in no mask gets 0, a
        pixel in several masks the one with the largest value, ties to the lowest index.

    Raises:
        ValueError: ``mask`` is not uint8 or does not end in [M, H, W, 1].
    """
    if mask.dtype != np.uint8 or mask.ndim < 4 or mask.shape[-1] != 1:
        raise ValueError(
            f"masks_to_ids: mask must be uint8 [..., M, H, W, 1], got {mask.dtype} {list(mask.shape)}"
        )
    return np.argmax(mask[..., 0], axis=-3).astype(np.int64)


def check_mask_partition(
    mask: np.ndarray | torch.Tensor, where: str = "mask", *, first_index: int = 0, item: str = "example"
) -> None:
    """Check that entity masks partition the image: each pixel is claimed by exactly one entity, with value 255 (or 1).

    The format (``mask`` uint8 [..., M, H, W, 1], entity 0 = background) promises this: the multi_object_datasets
    masks and our generators set one entity per pixel to 255 and the others to 0, and nearest-neighbour resizing
    (``clevr6.crop_resize_masks``) keeps it. Without the check, ``argmax`` silently turns a pixel in no mask into
    background and a pixel in two masks into the lower id, so ARI would be computed against wrong labels.

    Cost: two reductions over M (``sum`` and ``max``, ~2 ms for a [64, 11, 128, 128] batch on one core, against
    ~25 ms for the ``argmax`` of :func:`to_model_batch`), so it runs on every batch; the per-pixel diagnosis below
    runs only on failure.

    Args:
        mask: uint8 [..., M, H, W, 1] (numpy, or a CPU tensor; the layout is checked by the caller).
        where: names the source in the message, e.g. ``"train.tfrecords: feature 'mask'"``.
        first_index: index of the first example along the leading axis, for the message (a chunk's offset).
        item: what an entry of the leading axis is called in the message (``"example"``, ``"record"``).

    Raises:
        DataError: some pixel is claimed by no entity, by several, or with a value other than 0 and 255 (or 0 and
            1); the message gives the example, the pixel, the entities and values found there, what was
            expected, and how many pixels of the batch are bad.
    """
    planes = mask.numpy(force=True) if isinstance(mask, torch.Tensor) else np.asarray(mask)
    planes = planes[..., 0]  # (..., M, H, W)
    num_entities = planes.shape[-3]
    top = planes.max(axis=-3)  # (..., H, W)
    total = planes.sum(axis=-3, dtype=np.uint16 if num_entities <= 257 else np.uint32)  # no overflow: M * 255
    # The one entity's value: 255 in the DeepMind files and our generators (third-party loaders threshold
    # ``mask == 255``), 1 in binary masks from other tools; one value for the whole batch.
    on = 1 if top.size and int(top.max()) == 1 else 255
    # total == top <=> every other entity is 0 there (values are >= 0); top == on <=> that one entity says "in".
    bad = (total != top) | (top != on)
    num_bad = int(np.count_nonzero(bad))
    if num_bad == 0:
        return
    first = np.unravel_index(int(np.flatnonzero(bad)[0]), bad.shape)
    *lead, row, col = (int(i) for i in first)
    values = planes[(*lead, slice(None), row, col)]
    claimed = np.flatnonzero(values).tolist()
    found = {0: "no entity", 1: "one entity"}.get(len(claimed), f"{len(claimed)} entities")
    if lead:
        lead[0] += first_index
    example = f"{item} {', '.join(map(str, lead))}, " if lead else ""
    raise DataError(
        f"{where}: {example}pixel (row {row}, col {col}) is claimed by {found} {claimed} with mask values "
        f"{values[claimed].tolist()}; expected exactly one of the {num_entities} entities at {on} and the others "
        f"at 0 (the masks partition the image, entity 0 = background); {num_bad} of {bad.size} pixels are bad"
    )


def _as_tensor(value: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``value`` as a tensor without a copy; read-only arrays (memmaps) are copied, as torch wants writable memory."""
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        value = np.array(value)
    return torch.as_tensor(value)


def image_to_model(image: torch.Tensor) -> torch.Tensor:
    """uint8 images [B, H, W, C] (C = 3, or 1: repeated to RGB) -> float32 [B, 3, H, W] in [-1, 1], contiguous, on
    ``image``'s device.

    Run where the model runs: the training batch crosses to the GPU as uint8 and is converted there. The values are
    ``image / 127.5 - 1``, bit for bit the official ``((image / 255.0) - 0.5) * 2.0`` in float32 on the CPU
    (tests/test_pipeline.py checks all 256 values).
    """
    if image.dtype != torch.uint8 or image.ndim != 4 or image.shape[-1] not in (1, 3):
        raise ValueError(f"image_to_model: expected uint8 [B, H, W, 3] (or [B, H, W, 1]), got {image.dtype} "
                         f"{list(image.shape)}")
    if image.shape[-1] == 1:
        image = image.expand(-1, -1, -1, 3)
    image = image.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)  # (B, 3, H, W)
    return image.div_(127.5).sub_(1.0)  # [0, 255] -> [-1, 1]


def to_model_batch(sample: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a batch in the official layout into the evaluation batch (everything, image as float on the CPU).

    Accepts numpy arrays (a :class:`~slotattn.data.stream.GeneratedSource` batch, slices of ``Store.arrays``) or the
    tensors a ``DataLoader`` collates from them. Keys other than those below are ignored.

    Args:
        sample: ``image`` uint8 [B, H, W, 3] or [B, H, W, 1] (required; one channel, as binarized Multi-dSprites,
            is repeated to RGB), ``mask`` uint8 [B, M, H, W, 1] (optional; entity 0 = background), and for set
            prediction ``target`` float [B, M, P] (19-d CLEVR targets, zero-padded) and ``num_objects`` [B].

    Returns:
        ``image``: float32 [B, 3, H, W] in [-1, 1]; ``mask_ids``: int64 [B, H, W] (0 = background), present only
        when ``sample`` has a ``mask``; ``target`` float32 and ``num_objects`` int64 when present. Tensors live on
        the CPU, in fresh memory (safe to pin or move).

    Raises:
        ValueError: ``image`` is missing, or ``image``/``target`` has the wrong dtype or shape (the message names
            the key).
        DataError: ``mask`` has the wrong dtype, rank or size for ``image``, or does not partition the pixels
            (see :func:`check_mask_partition`; the message names the example and pixel).
    """
    batch = to_train_batch(sample)
    batch[IMAGE] = image_to_model(batch[IMAGE])
    return batch


def to_train_batch(sample: Mapping[str, np.ndarray | torch.Tensor],
                   keys: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The training batch: ``image`` uint8 [B, H, W, C] as stored (for :func:`image_to_model` on the training
    device) and, of the other keys of :func:`to_model_batch`, only those in ``keys``.

    Args:
        sample: a batch in the official layout, as for :func:`to_model_batch`.
        keys: the batch keys the task's loss reads (``Task.train_keys``), e.g. ``("image",)`` for object discovery:
            no ``mask`` is read, checked or converted then. None: every key ``sample`` can give (``mask_ids`` when it
            has a ``mask``, ``target``, ``num_objects``).

    Returns:
        ``image`` uint8 [B, H, W, C] (C = 3 or 1), plus ``mask_ids`` int64 [B, H, W], ``target`` float32 [B, M, P]
        and ``num_objects`` int64 [B] as asked; CPU tensors, never a view of a read-only array.

    Raises:
        ValueError: ``image`` is missing or malformed, a key is unknown, or ``sample`` lacks what a key needs.
        DataError: the ``mask`` for ``mask_ids`` is malformed or does not partition the pixels.
    """
    if IMAGE not in sample:
        raise ValueError(f"to_model_batch: sample has no 'image' key (keys: {sorted(sample)})")
    image = _as_tensor(sample[IMAGE])
    if image.dtype != torch.uint8 or image.ndim != 4 or image.shape[-1] not in (1, 3):
        raise ValueError(
            f"to_model_batch: 'image' must be uint8 [B, H, W, 3] (or [B, H, W, 1]), got {image.dtype} "
            f"{list(image.shape)}"
        )
    if keys is None:
        keys = [IMAGE, *(key for key, needs in _NEEDS.items() if needs in sample)]
    unknown = [key for key in keys if key != IMAGE and key not in _NEEDS]
    missing = [f"'{_NEEDS[key]}'" + (f" (for '{key}')" if _NEEDS[key] != key else "") for key in keys
               if key in _NEEDS and _NEEDS[key] not in sample]
    if unknown or missing:
        problem = (f"unknown batch keys {unknown} (known: {[IMAGE, *_NEEDS]})" if unknown else
                   f"the sample has no {', '.join(missing)} (its keys: {sorted(sample)})")
        raise ValueError(f"to_train_batch: asked for {list(keys)}, but {problem}")
    out = {IMAGE: image}
    b, h, w = image.shape[0], image.shape[1], image.shape[2]
    if MASK_IDS in keys:
        out[MASK_IDS] = _mask_ids(sample, b, h, w)
    if "target" in keys:
        target = _as_tensor(sample["target"])
        if not target.is_floating_point() or target.ndim != 3 or target.shape[0] != b:
            raise ValueError(f"to_model_batch: 'target' must be float [{b}, M, P], got {target.dtype} "
                             f"{list(target.shape)}")
        out["target"] = target.to(torch.float32)
    if "num_objects" in keys:
        out["num_objects"] = _as_tensor(sample["num_objects"]).to(torch.int64).reshape(b)
    return out


# The batch keys besides the image, and the key of the official layout each is made from.
_NEEDS = {MASK_IDS: "mask", "target": "target", "num_objects": "num_objects"}


def _mask_ids(sample: Mapping[str, np.ndarray | torch.Tensor], b: int, h: int, w: int) -> torch.Tensor:
    """``sample["mask"]`` checked (layout against the image's [b, h, w], partition) and turned into entity ids."""
    mask = _as_tensor(sample["mask"])
    layout_ok = mask.ndim == 5 and mask.shape[-1] == 1 and (mask.shape[0], *mask.shape[2:4]) == (b, h, w)
    if mask.dtype != torch.uint8 or not layout_ok or mask.shape[1] == 0:
        raise DataError(
            f"to_model_batch: 'mask' must be uint8 [B, M, H, W, 1] = [{b}, M, {h}, {w}, 1] (M >= 1) to match "
            f"'image' {list(sample[IMAGE].shape)}, got {str(mask.dtype).removeprefix('torch.')} {list(mask.shape)}"
        )
    check_mask_partition(mask, "to_model_batch: 'mask'")
    # numpy's argmax over uint8 is ~7x faster than torch's here (benchmarks/data_throughput.py).
    raw = sample["mask"]
    ids = np.argmax(raw[..., 0], axis=1) if isinstance(raw, np.ndarray) else mask[..., 0].argmax(dim=1)
    return torch.as_tensor(ids, dtype=torch.int64)  # (B, H, W), 0 = background
