"""Object-discovery metrics on integer id maps (0 = background): ARI, FG-ARI, mean best overlap; all float64."""

from slotattn.metrics.ambiguity import colour_components, touching_same_colour
from slotattn.metrics.ap import ClevrAPAccumulator, clevr_average_precision
from slotattn.metrics.ari import ari, fg_ari
from slotattn.metrics.mbo import mean_best_overlap

__all__ = [
    "ClevrAPAccumulator", "ari", "clevr_average_precision", "colour_components", "fg_ari", "mean_best_overlap",
    "touching_same_colour",
]
