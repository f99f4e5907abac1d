"""Training losses, each with its reduction stated: the matched Huber loss of set prediction (paper Sec. 2.3)."""

import typing

import torch

from slotattn.matching import hungarian_match, pairwise_huber_cost
from slotattn.shapes import Float, Tensor

__all__ = ["hungarian_huber_loss"]


@typing.no_type_check  # `pairwise_huber_cost` checks the inputs with a ValueError
def hungarian_huber_loss(pred: Float[Tensor, "B K P"], target: Float[Tensor, "B M P"]) -> Float[Tensor, ""]:
    """Huber loss between sets after the Hungarian matching, as the official `hungarian_huber_loss` (DSPN Eq. 2).

    Reduction (the official one): the Huber loss (delta 1) is averaged over the P properties of each
    (prediction, target) pair, the costs of the min(K, M) matched pairs are SUMMED within a sample, and that sum
    is averaged over the batch. Zero-padded target rows are matched too, which is what teaches the surplus slots
    to predict confidence 0.

    Gradients flow only into `pred`: the assignment is computed without gradient and `target` is detached.

    Args:
        pred: predicted sets, e.g. `SetPredictionOutput.preds`.
        target: ground-truth sets, padded to M rows.

    Returns:
        The scalar loss. If any pairwise cost is non-finite the loss is non-finite too (it is then their sum), so
        that the training loop's non-finite guard reports it rather than the matcher.
    """
    cost = pairwise_huber_cost(pred, target.detach())  # (B, K, M)
    if not torch.isfinite(cost).all():
        return cost.sum()
    pred_idx, target_idx = hungarian_match(cost)  # (B, L) each, no gradient
    batch = torch.arange(cost.shape[0], device=cost.device).unsqueeze(1)  # (B, 1)
    matched = cost[batch, pred_idx, target_idx]  # (B, L)
    return matched.sum(dim=1).mean()
