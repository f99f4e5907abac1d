"""Brute-force oracle for set matching (shared by tests/test_matching.py and tests/test_losses.py)."""

import itertools

import numpy as np


def brute_force_min_cost(cost: np.ndarray) -> float:
    """Minimum over all one-to-one assignments of the smaller side into the larger (K, M <= 6)."""
    k, m = cost.shape
    if k <= m:
        return min(sum(cost[i, p[i]] for i in range(k)) for p in itertools.permutations(range(m), k))
    return min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(k), m))
