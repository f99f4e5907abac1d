"""The batch contract between data and training: key names, dtypes, value ranges, 0 = background.

Stores, generators and readers keep the official multi_object_datasets layout (``image`` uint8 [B, H, W, 3],
``mask`` uint8 [B, M, H, W, 1] with entity 0 the background). Training consumes :func:`to_model_batch`'s
output: ``image`` float32 [B, 3, H, W] in [-1, 1], channel-first, and ``mask_ids`` int64 [B, H, W] with
0 = background. The [-1, 1] range is the official slot_attention ``data.py`` preprocessing
(``((image / 255.0) - 0.5) * 2.0``).
"""

from collections.abc import Mapping

import numpy as np
import torch
from jaxtyping import Int64, UInt8

from slotattn.data.errors import DataError

__all__ = ["IMAGE", "MASK_IDS", "check_mask_partition", "masks_to_ids", "to_model_batch"]

# A model batch: the keys below (plus "index", the examples' positions in their split), tensors of any device.
Batch = dict[str, torch.Tensor]

IMAGE = "image"  # float32 [B, 3, H, W] in [-1, 1]
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


def to_model_batch(sample: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a batch in the official layout into the training batch.

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
    if IMAGE not in sample:
        raise ValueError(f"to_model_batch: sample has no 'image' key (keys: {sorted(sample)})")
    image = _as_tensor(sample[IMAGE])
    if image.dtype != torch.uint8 or image.ndim != 4 or image.shape[-1] not in (1, 3):
        raise ValueError(
            f"to_model_batch: 'image' must be uint8 [B, H, W, 3] (or [B, H, W, 1]), got {image.dtype} "
            f"{list(image.shape)}"
        )
    if image.shape[-1] == 1:
        image = image.expand(-1, -1, -1, 3)
    b, h, w = image.shape[0], image.shape[1], image.shape[2]
    image = image.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)  # (B, 3, H, W)
    out = {IMAGE: image.div_(127.5).sub_(1.0)}  # [0, 255] -> [-1, 1]
    if "mask" in sample:
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
        out[MASK_IDS] = torch.as_tensor(ids, dtype=torch.int64)  # (B, H, W), 0 = background
    if "target" in sample:
        target = _as_tensor(sample["target"])
        if not target.is_floating_point() or target.ndim != 3 or target.shape[0] != b:
            raise ValueError(f"to_model_batch: 'target' must be float [{b}, M, P], got {target.dtype} "
                             f"{list(target.shape)}")
        out["target"] = target.to(torch.float32)
    if "num_objects" in sample:
        out["num_objects"] = _as_tensor(sample["num_objects"]).to(torch.int64).reshape(b)
    return out
