"""Adjusted Rand index (ARI) and foreground ARI (FG-ARI) of integer segmentation maps.

Hubert & Arabie (1985), computed exactly as ``sklearn.metrics.adjusted_rand_score``; FG-ARI drops the pixels whose
ground-truth id is 0 (background), as the Slot Attention paper (Sec. 4.1) and OCL's ``ocl/metrics/utils.py`` do.
"""

from typing import NamedTuple

import torch

from slotattn.shapes import Float, Int, Shaped, Tensor

__all__ = ["ari", "fg_ari"]

_INTEGER_DTYPES = (
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint16,
    torch.uint32,
    torch.uint64,
)


def _check_label_maps(name: str, true_ids: Tensor, pred_ids: Tensor) -> None:
    """Raise ValueError unless both are same-shape, same-device, non-negative integer ``[B, H, W]``/``[B, N]`` maps.

    Shared by every metric in this package (``mbo.py`` imports it), so all of them reject the same inputs.
    """
    for arg, ids in (("true_ids", true_ids), ("pred_ids", pred_ids)):
        if not isinstance(ids, torch.Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(ids).__name__}")
        if ids.dtype not in _INTEGER_DTYPES:
            raise ValueError(f"{name}: {arg} must have an integer dtype (e.g. torch.int64), got {ids.dtype}")
    if true_ids.ndim not in (2, 3):
        raise ValueError(f"{name}: true_ids must be [B, H, W] or [B, N], got {list(true_ids.shape)}")
    if pred_ids.shape != true_ids.shape:
        raise ValueError(
            f"{name}: pred_ids must have the shape of true_ids {list(true_ids.shape)}, got {list(pred_ids.shape)}"
        )
    if pred_ids.device != true_ids.device:
        raise ValueError(
            f"{name}: pred_ids must be on the device of true_ids ({true_ids.device}), got {pred_ids.device}"
        )
    if any(size == 0 for size in true_ids.shape[1:]):
        raise ValueError(f"{name}: label maps need at least one pixel per example, got {list(true_ids.shape)}")
    for arg, ids in (("true_ids", true_ids), ("pred_ids", pred_ids)):
        if ids.dtype.is_signed and ids.numel() > 0 and (lowest := int(ids.min())) < 0:
            raise ValueError(f"{name}: {arg} must hold non-negative ids, found {lowest}")


class _Contingency(NamedTuple):
    """Sparse per-example contingency table: only the non-empty (true id, pred id) cells are stored.

    A "group" is one (example, id) pair; cells index into the true and pred groups. ``G``, ``Q``, ``E`` below are the
    numbers of true groups, pred groups and non-empty cells over the whole batch.
    """

    num_pixels: Int[Tensor, "B"]  # pixels counted per example
    true_batch: Int[Tensor, "G"]  # example of each true group
    true_id: Int[Tensor, "G"]  # the (int64-cast) ground-truth id of each true group
    true_size: Int[Tensor, "G"]  # pixels in each true group
    pred_batch: Int[Tensor, "Q"]
    pred_size: Int[Tensor, "Q"]
    cell_true: Int[Tensor, "E"]  # true group of each cell
    cell_pred: Int[Tensor, "E"]  # pred group of each cell
    cell_size: Int[Tensor, "E"]  # pixels in each cell, n_ij


def _group(batch: Int[Tensor, "P"], ids: Int[Tensor, "P"]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Number the distinct (example, id) pairs; return each group's example, id and size, and each pixel's group."""
    values, compact = torch.unique(ids, return_inverse=True)  # any id values -> 0..U-1, so keys stay < P**2
    num_values = max(len(values), 1)
    keys, group, size = torch.unique(batch * num_values + compact, return_inverse=True, return_counts=True)
    return keys // num_values, values[keys % num_values], size, group


def _sparse_contingency(
    true_ids: Shaped[Tensor, "B *spatial"],
    pred_ids: Shaped[Tensor, "B *spatial"],
    keep: Shaped[Tensor, "B *spatial"] | None = None,
) -> _Contingency:
    """Contingency tables of a whole batch at once, on the inputs' device, counting only pixels where ``keep``.

    Sort-based (``torch.unique``) rather than a dense ``[B, U, V]`` table, so memory stays linear in the number of
    pixels whatever the id values are, and there is no Python loop over the batch.
    """
    batch_size = true_ids.shape[0]
    true = true_ids.flatten(1).long()  # (B, N)
    pred = pred_ids.flatten(1).long()  # (B, N)
    batch = torch.arange(batch_size, device=true.device).unsqueeze(1).expand_as(true)
    if keep is None:
        true, pred, batch = true.flatten(), pred.flatten(), batch.flatten()  # (P,) with P = B*N
    else:
        keep = keep.flatten(1)
        true, pred, batch = true[keep], pred[keep], batch[keep]  # (P,) with P = kept pixels
    true_batch, true_id, true_size, true_group = _group(batch, true)
    pred_batch, _, pred_size, pred_group = _group(batch, pred)
    num_pred = max(len(pred_size), 1)
    # A pixel's cell is its (true group, pred group) pair; a true group already fixes the example.
    cells, cell_size = torch.unique(true_group * num_pred + pred_group, return_counts=True)
    return _Contingency(
        num_pixels=torch.bincount(batch, minlength=batch_size),
        true_batch=true_batch,
        true_id=true_id,
        true_size=true_size,
        pred_batch=pred_batch,
        pred_size=pred_size,
        cell_true=cells // num_pred,
        cell_pred=cells % num_pred,
        cell_size=cell_size,
    )


def _sum_per_example(values: Int[Tensor, "G"], batch: Int[Tensor, "G"], batch_size: int) -> Int[Tensor, "B"]:
    return torch.zeros(batch_size, dtype=values.dtype, device=values.device).index_add_(0, batch, values)


def ari(
    true_ids: Shaped[Tensor, "B *spatial"],
    pred_ids: Shaped[Tensor, "_B *_spatial"],
    ignore_background: bool = False,
) -> Float[Tensor, "B"]:
    """Adjusted Rand index of each example's predicted grouping against its ground truth.

    Equal to ``sklearn.metrics.adjusted_rand_score(true_ids[b].ravel(), pred_ids[b].ravel())`` for every ``b``
    (to about 1e-15), including its conventions: two groupings that are the same partition up to renaming (one
    cluster on both sides, a single pixel, identical maps) score 1.0. Ids are arbitrary non-negative integers; only
    which pixels share an id matters. Runs batched on the inputs' device; pair counts are exact int64 and the final
    ratio is float64 whatever the autocast state (the only float ops are element-wise float64 ones, which autocast
    leaves alone).

    Args:
        true_ids: ground-truth ids, ``[B, H, W]`` or ``[B, N]``, any integer dtype; 0 = background.
        pred_ids: predicted ids (e.g. the argmax slot of each pixel), same shape and device as ``true_ids``.
        ignore_background: score only the pixels whose ground-truth id is not 0 (FG-ARI). An example with no such
            pixel gets NaN, not sklearn's 1.0 for empty input: there is nothing to score, and NaN keeps it out of
            ``torch.nanmean`` instead of inflating the average (OCL maps it to 1.0). Callers averaging over a
            dataset should use ``nanmean`` or count the NaNs.

    Returns:
        float64 ARI of each example, in [-1, 1] (or NaN as above).

    Raises:
        ValueError: if the shapes differ, are not ``[B, H, W]``/``[B, N]``, have no pixels per example, the dtype is
            not an integer one (bool and floats included), the devices differ, or an id is negative.
        TypeError: if an input is not a ``torch.Tensor``.
    """
    _check_label_maps("fg_ari" if ignore_background else "ari", true_ids, pred_ids)
    batch_size = true_ids.shape[0]
    table = _sparse_contingency(true_ids, pred_ids, keep=true_ids != 0 if ignore_background else None)
    n = table.num_pixels
    sum_cells = _sum_per_example(table.cell_size.square(), table.true_batch[table.cell_true], batch_size)
    sum_true = _sum_per_example(table.true_size.square(), table.true_batch, batch_size)
    sum_pred = _sum_per_example(table.pred_size.square(), table.pred_batch, batch_size)
    # sklearn's pair confusion matrix (ordered pairs of distinct pixels), exact in int64.
    tp = sum_cells - n  # same true id, same pred id
    fp = sum_pred - sum_cells  # different true ids, same pred id
    fn = sum_true - sum_cells  # same true id, different pred ids
    tn = n * n - fp - fn - sum_cells
    identical = (fn == 0) & (fp == 0)  # same partition; sklearn's special case, also the only 0/0 case
    # float64: the products below reach n**4 (7e16 at 128x128), beyond int64 from 256x256 on; float16/32 would
    # lose the digits that decide an ARI near 0 (OCL casts to float64 for the same reason).
    tp, fp, fn, tn = tp.double(), fp.double(), fn.double(), tn.double()
    score = 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    score = torch.where(identical, torch.ones_like(score), score)
    return torch.where(n == 0, torch.full_like(score, float("nan")), score)


def fg_ari(
    true_ids: Shaped[Tensor, "B *spatial"],
    pred_ids: Shaped[Tensor, "_B *_spatial"],
) -> Float[Tensor, "B"]:
    """Foreground ARI: :func:`ari` over the pixels whose ground-truth id is not 0 (background).

    The paper's main object-discovery metric (Sec. 4.1). Predictions on background pixels do not matter.

    Args:
        true_ids: ground-truth ids, ``[B, H, W]`` or ``[B, N]``, any integer dtype; 0 = background.
        pred_ids: predicted ids, same shape and device as ``true_ids``.

    Returns:
        float64 FG-ARI of each example; NaN for an example without foreground pixels (average with ``nanmean``).

    Raises:
        ValueError: on the inputs :func:`ari` rejects.
    """
    return ari(true_ids, pred_ids, ignore_background=True)
