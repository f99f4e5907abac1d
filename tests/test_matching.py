"""Hungarian matching for set prediction: `slotattn.matching` (pairwise Huber costs, `hungarian_match`).

The oracles are brute force over permutations and `scipy.optimize.linear_sum_assignment`.
"""

import itertools
import math

import numpy as np
import pytest
import scipy.optimize
import torch

from slotattn.losses import hungarian_huber_loss
from slotattn.matching import hungarian_match, pairwise_huber_cost
from matching_oracle import brute_force_min_cost  # tests/matching_oracle.py


def huber(d, delta=1.0):
    d = abs(d)
    return 0.5 * d * d if d <= delta else delta * (d - 0.5 * delta)


def test_pairwise_cost_is_the_huber_loss_averaged_over_properties():
    pred = torch.randn(2, 3, 4, dtype=torch.float64) * 2
    target = torch.randn(2, 5, 4, dtype=torch.float64) * 2
    cost = pairwise_huber_cost(pred, target)
    assert cost.shape == (2, 3, 5)
    for b, k, m in itertools.product(range(2), range(3), range(5)):
        expected = np.mean([huber(float(pred[b, k, p] - target[b, m, p])) for p in range(4)])
        assert cost[b, k, m].item() == pytest.approx(expected, abs=1e-12)
    assert pairwise_huber_cost(pred, target, delta=0.5)[0, 0, 0].item() == pytest.approx(
        np.mean([huber(float(pred[0, 0, p] - target[0, 0, p]), 0.5) for p in range(4)]), abs=1e-12
    )


@pytest.mark.parametrize("num_preds, num_targets", [(1, 1), (3, 3), (6, 6), (4, 6), (6, 4), (2, 5), (5, 1)])
def test_matching_equals_brute_force_and_linear_sum_assignment(num_preds, num_targets):
    gen = torch.Generator().manual_seed(num_preds * 10 + num_targets)
    cost = torch.rand(4, num_preds, num_targets, generator=gen, dtype=torch.float64)
    pred_idx, target_idx = hungarian_match(cost)
    length = min(num_preds, num_targets)
    assert pred_idx.shape == target_idx.shape == (4, length) and pred_idx.dtype == target_idx.dtype == torch.int64
    for b in range(4):
        assert len(set(pred_idx[b].tolist())) == len(set(target_idx[b].tolist())) == length  # one-to-one
        total = cost[b, pred_idx[b], target_idx[b]].sum().item()
        assert total == pytest.approx(brute_force_min_cost(cost[b].numpy()), abs=1e-12)
        rows, cols = scipy.optimize.linear_sum_assignment(cost[b].numpy())
        assert pred_idx[b].tolist() == rows.tolist() and target_idx[b].tolist() == cols.tolist()


def test_matching_with_zero_padded_targets_pairs_real_objects_first():
    """Targets padded with zero rows, predictions near the real ones: each real target gets its own prediction."""
    target = torch.zeros(1, 6, 19)
    target[0, :3] = torch.rand(3, 19)
    target[0, :3, 18] = 1.0
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    pred = torch.full((1, 6, 19), 0.02)
    pred[0, perm[:3]] = target[0, :3] + 0.01
    cost = pairwise_huber_cost(pred, target)
    pred_idx, target_idx = hungarian_match(cost)
    pairs = dict(zip(target_idx[0].tolist(), pred_idx[0].tolist()))
    assert [pairs[m] for m in range(3)] == perm[:3].tolist()
    assert cost[0, pred_idx[0], target_idx[0]].sum().item() == pytest.approx(
        brute_force_min_cost(cost[0].numpy()), abs=1e-6
    )


def test_batched_matching_equals_one_sample_at_a_time():
    cost = torch.rand(5, 4, 6)
    pred_idx, target_idx = hungarian_match(cost)
    for b in range(5):
        single_p, single_t = hungarian_match(cost[b : b + 1])
        assert torch.equal(single_p[0], pred_idx[b]) and torch.equal(single_t[0], target_idx[b])


def test_matching_rejects_non_finite_costs_naming_the_sample():
    cost = torch.rand(3, 2, 2)
    cost[1, 0, 1] = math.nan
    with pytest.raises(ValueError, match=r"must be finite, found NaN/inf in sample\(s\) \[1\]"):
        hungarian_match(cost)


def test_pairwise_cost_rejects_mismatched_sets():
    with pytest.raises(ValueError, match=r"got pred \[2, 3, 19\] and target \[2, 3, 18\]"):
        pairwise_huber_cost(torch.zeros(2, 3, 19), torch.zeros(2, 3, 18))
    with pytest.raises(ValueError, match=r"got pred \[2, 3, 19\] and target \[3, 3, 19\]"):
        hungarian_huber_loss(torch.zeros(2, 3, 19), torch.zeros(3, 3, 19))
