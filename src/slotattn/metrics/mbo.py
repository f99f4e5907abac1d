"""Mean best overlap (mBO) of integer segmentation maps.

Pont-Tuset et al. (2016) as used for object-centric models (e.g. Seitzer et al. 2023, DINOSAUR): every ground-truth
object is paired with the predicted segment of highest IoU, and those IoUs are averaged; background (id 0) is skipped.
"""

import torch

from slotattn.metrics.ari import _check_label_maps, _sparse_contingency
from slotattn.shapes import Float, Shaped, Tensor

__all__ = ["mean_best_overlap"]


def mean_best_overlap(
    true_ids: Shaped[Tensor, "B *spatial"],
    pred_ids: Shaped[Tensor, "_B *_spatial"],
) -> Float[Tensor, "B"]:
    """Mean over ground-truth objects of the best IoU any predicted segment reaches with that object.

    Per example: for each ground-truth id ``g != 0`` present in ``true_ids[b]``, take
    ``max_p |{true == g} & {pred == p}| / |{true == g} | {pred == p}|`` over the predicted ids ``p`` present, then
    average over those ``g``. Predicted segments are whole masks, background pixels included (a segment that spills
    onto the background loses IoU), and every predicted id is a segment (0 has no special meaning there). Several
    objects may pick the same segment. Runs batched on the inputs' device; IoUs are float64.

    Args:
        true_ids: ground-truth ids, ``[B, H, W]`` or ``[B, N]``, any integer dtype; 0 = background.
        pred_ids: predicted ids (e.g. the argmax slot of each pixel), same shape and device as ``true_ids``.

    Returns:
        float64 mBO of each example, in (0, 1]; NaN for an example without ground-truth objects (no id other than
        0), so that ``torch.nanmean`` averages over the examples that have objects.

    Raises:
        ValueError: if the shapes differ, are not ``[B, H, W]``/``[B, N]``, have no pixels per example, the dtype is
            not an integer one, the devices differ, or an id is negative.
        TypeError: if an input is not a ``torch.Tensor``.
    """
    _check_label_maps("mean_best_overlap", true_ids, pred_ids)
    batch_size = true_ids.shape[0]
    table = _sparse_contingency(true_ids, pred_ids)
    # Only non-empty cells can be best: every object overlaps some segment, and an empty cell has IoU 0.
    union = table.true_size[table.cell_true] + table.pred_size[table.cell_pred] - table.cell_size
    iou = table.cell_size.double() / union.double()  # (E,)
    best = torch.zeros(len(table.true_size), dtype=torch.float64, device=iou.device)
    best = best.scatter_reduce_(0, table.cell_true, iou, reduce="amax")  # (G,) best IoU of each object
    objects = table.true_id != 0
    batch = table.true_batch[objects]
    total = torch.zeros(batch_size, dtype=torch.float64, device=iou.device).index_add_(0, batch, best[objects])
    count = torch.bincount(batch, minlength=batch_size)
    return total / count  # 0 / 0 = NaN for an example without objects
