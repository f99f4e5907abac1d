"""Pairwise set costs and the Hungarian assignment (paper Sec. 2.3; official `hungarian_huber_loss` in `utils.py`).

As DETR's `HungarianMatcher`: one cost tensor for the whole batch on the device, then
`scipy.optimize.linear_sum_assignment` per sample on the CPU, with no gradient through the assignment.
"""

import typing

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F

from slotattn.shapes import Float, Int, Tensor

__all__ = ["hungarian_match", "pairwise_huber_cost"]


def _check_sets(name: str, pred: object, target: object) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(
            f"{name}: pred and target must be torch.Tensors, got {type(pred).__name__} and {type(target).__name__}"
        )
    if pred.ndim != 3 or target.ndim != 3 or pred.shape[0] != target.shape[0] or pred.shape[2] != target.shape[2]:
        raise ValueError(
            f"{name}: pred must be [B, K, P] and target [B, M, P] with the same B and P, "
            f"got pred {list(pred.shape)} and target {list(target.shape)}"
        )


@typing.no_type_check  # checks its own inputs with the ValueError above
def pairwise_huber_cost(
    pred: Float[Tensor, "B K P"], target: Float[Tensor, "B M P"], delta: float = 1.0
) -> Float[Tensor, "B K M"]:
    """Huber loss between every prediction and every target of the same sample, averaged over the P properties.

    This is the official pairwise cost: `tf.keras.losses.Huber(delta=1.0)` with reduction NONE, which averages the
    elementwise Huber loss over the last axis. The official tensor is [B, M, K] (targets first); ours is its
    transpose.

    Args:
        pred: predicted sets.
        target: ground-truth sets (padding rows included: they are matched like any other element).
        delta: Huber threshold between the quadratic and the linear regime.

    Returns:
        cost[b, k, m] = mean_p huber(pred[b, k, p] - target[b, m, p]); differentiable in both inputs.
    """
    _check_sets("pairwise_huber_cost", pred, target)
    if not delta > 0:
        raise ValueError(f"pairwise_huber_cost: delta must be > 0, got {delta}")
    pred, target = torch.broadcast_tensors(pred.unsqueeze(2), target.unsqueeze(1))  # (B, K, M, P) each
    return F.huber_loss(pred, target, reduction="none", delta=delta).mean(dim=-1)


@typing.no_type_check  # checks its own input
@torch.no_grad()
def hungarian_match(cost: Float[Tensor, "B K M"]) -> tuple[Int[Tensor, "B L"], Int[Tensor, "B L"]]:
    """Minimum-cost one-to-one assignment of predictions to targets, per sample.

    Args:
        cost: cost[b, k, m] of assigning prediction k to target m in sample b; K and M may differ.

    Returns:
        (pred_idx, target_idx), int64 on `cost`'s device, each [B, L] with L = min(K, M): sample b pairs
        prediction pred_idx[b, i] with target target_idx[b, i]. pred_idx is increasing along i when K <= M;
        otherwise target_idx is. Unmatched elements (|K - M| per sample) appear in neither.

    Raises:
        ValueError: if cost is not [B, K, M] or holds a non-finite entry.
    """
    if not isinstance(cost, torch.Tensor) or cost.ndim != 3:
        raise ValueError(f"hungarian_match: cost must be a [B, K, M] tensor, got {getattr(cost, 'shape', cost)!r}")
    batch_size, num_preds, num_targets = cost.shape
    cost_np = cost.detach().to("cpu", torch.float64).numpy()  # one device -> host copy for the whole batch
    if not np.isfinite(cost_np).all():
        bad = sorted({int(b) for b in np.argwhere(~np.isfinite(cost_np))[:, 0]})
        raise ValueError(f"hungarian_match: cost must be finite, found NaN/inf in sample(s) {bad}")
    length = min(num_preds, num_targets)
    pred_idx = np.empty((batch_size, length), dtype=np.int64)
    target_idx = np.empty((batch_size, length), dtype=np.int64)
    for b in range(batch_size):
        pred_idx[b], target_idx[b] = scipy.optimize.linear_sum_assignment(cost_np[b])
    return torch.from_numpy(pred_idx).to(cost.device), torch.from_numpy(target_idx).to(cost.device)
