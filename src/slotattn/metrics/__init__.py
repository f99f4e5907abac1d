"""Object-discovery metrics on integer id maps (0 = background): ARI, FG-ARI, mean best overlap; all float64."""

from slotattn.metrics.ari import ari, fg_ari
from slotattn.metrics.mbo import mean_best_overlap

__all__ = ["ari", "fg_ari", "mean_best_overlap"]
