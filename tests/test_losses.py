"""The matched Huber loss of set prediction: `slotattn.losses.hungarian_huber_loss` (official reductions).

The oracle is brute force over permutations.
"""

import math

import numpy as np
import pytest
import torch

from slotattn.losses import hungarian_huber_loss
from slotattn.matching import hungarian_match, pairwise_huber_cost
from matching_oracle import brute_force_min_cost  # tests/matching_oracle.py


def test_loss_on_a_hand_made_batch():
    """Official reduction: mean over properties, SUM over matched pairs, mean over the batch.

    Sample 0: cost (pred 0, target 1) = 0 and (pred 1, target 0) = (0 + huber(0.5)) / 2 = 0.0625, the crossed
    pairing costs (1.5 + 0.125) / 2 + (1.5 + 0) / 2 = 1.5625, so the sample contributes 0.0625.
    Sample 1: identical predictions, so any pairing: (huber(3) + 0) / 2 + (0 + huber(1)) / 2 = 1.25 + 0.25 = 1.5.
    Loss = (0.0625 + 1.5) / 2 = 0.78125 (a mean over pairs would give 0.390625, a sum over the batch 1.5625).
    """
    pred = torch.tensor([[[0.0, 0.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    target = torch.tensor([[[2.0, 0.5], [0.0, 0.0]], [[3.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    assert hungarian_huber_loss(pred, target).item() == pytest.approx(0.78125, abs=1e-12)


def test_loss_is_invariant_to_target_and_prediction_order():
    pred, target = torch.rand(3, 5, 19), torch.rand(3, 5, 19)
    loss = hungarian_huber_loss(pred, target)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        perm_t, perm_p = torch.randperm(5, generator=gen), torch.randperm(5, generator=gen)
        torch.testing.assert_close(hungarian_huber_loss(pred, target[:, perm_t]), loss)
        torch.testing.assert_close(hungarian_huber_loss(pred[:, perm_p], target), loss)


def test_loss_is_zero_when_predictions_are_a_permutation_of_the_targets():
    target = torch.rand(4, 6, 19)
    target[:, 4:] = 0.0  # padding rows are matched like any other
    pred = target[:, torch.tensor([3, 5, 0, 4, 1, 2])]
    assert hungarian_huber_loss(pred, target).item() == 0.0
    assert hungarian_huber_loss(pred + 0.1, target).item() > 0.0


def test_loss_with_more_slots_than_targets_sums_only_matched_pairs():
    pred, target = torch.rand(2, 10, 19), torch.rand(2, 3, 19)
    cost = pairwise_huber_cost(pred, target).numpy()
    expected = np.mean([brute_force_min_cost(cost[b].T) for b in range(2)])  # 10 * 9 * 8 assignments each
    assert hungarian_huber_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_gradient_flows_only_into_predictions_and_not_through_the_assignment():
    pred = torch.rand(3, 4, 19, dtype=torch.float64, requires_grad=True)
    target = torch.rand(3, 4, 19, dtype=torch.float64, requires_grad=True)
    loss = hungarian_huber_loss(pred, target)
    loss.backward()
    assert target.grad is None
    # The same loss with the assignment frozen as constants has the same value and gradient: the indices
    # carry no gradient and nothing else depends on them.
    pred_fixed = pred.detach().clone().requires_grad_(True)
    cost = pairwise_huber_cost(pred_fixed, target.detach())
    pred_idx, target_idx = hungarian_match(cost)
    assert not pred_idx.requires_grad and not target_idx.requires_grad
    fixed = cost[torch.arange(3)[:, None], pred_idx, target_idx].sum(1).mean()
    fixed.backward()
    torch.testing.assert_close(loss.detach(), fixed.detach())
    torch.testing.assert_close(pred.grad, pred_fixed.grad)
    assert pred.grad.abs().sum() > 0


def test_non_finite_predictions_give_a_non_finite_loss_for_the_training_guard():
    pred = torch.rand(2, 3, 19)
    pred[1, 2, 5] = math.nan
    assert not torch.isfinite(hungarian_huber_loss(pred, torch.rand(2, 3, 19)))
