"""Average precision of CLEVR set prediction (paper Sec. 4.2; official `average_precision_clevr` and
`compute_average_precision` in `utils.py`), vectorised, plus a streaming accumulator.

The 19 numbers per object: coords (3, normalised (c + 3) / 6), size (2), material (2), shape (3), colour (8), and
last the real-object flag of a target or the confidence of a prediction.
"""

import math
import typing
from collections.abc import Iterable

import numpy as np
import torch

from slotattn.clevr_layout import ATTRIBUTE_SLICES, COORD_SCALE, TARGET_SIZE
from slotattn.shapes import Float, Tensor

__all__ = ["ClevrAPAccumulator", "clevr_average_precision"]

NUM_PROPERTIES = TARGET_SIZE
DEFAULT_THRESHOLDS = (math.inf, 1.0, 0.5, 0.25, 0.125)


def _to_numpy(name: str, x: object) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        x = x.astype(np.float64)
    else:
        raise TypeError(f"clevr AP: {name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim != 3 or x.shape[-1] != NUM_PROPERTIES:
        raise ValueError(f"clevr AP: {name} must be [B, *, {NUM_PROPERTIES}], got {list(x.shape)}")
    return x


# `float | int`: beartype (the run-time checker under pytest) does not let an int pass as a float, and the
# official thresholds are often written -1.
def _threshold(value: float | int) -> float:  # noqa: PYI041
    value = float(value)
    if value == -1 or value == math.inf:  # the official code's -1 means "no distance threshold"
        return math.inf
    if not value >= 0:
        raise ValueError(f"clevr AP: distance threshold must be >= 0, -1 or inf, got {value}")
    return value


def threshold_key(value: float | int) -> str:  # noqa: PYI041
    """Metric name of a threshold: "ap@inf", "ap@1", "ap@0.5", "ap@0.25", "ap@0.125"."""
    return f"ap@{_threshold(value):g}"


def _attributes(x: np.ndarray) -> np.ndarray:
    """Argmax of each discrete property group (first index on ties, as `tf.argmax`): [B, *, 4] int64."""
    return np.stack([x[..., s].argmax(axis=-1) for s in ATTRIBUTE_SLICES], axis=-1)


def _detections(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """For every prediction (flattened b-major, k-minor): confidence, distance to its nearest candidate target
    (inf if none) and that target's flat index b * M + m; plus the number of real targets."""
    batch_size, num_targets = target.shape[:2]
    real = target[..., -1] == 1  # (B, M)
    same = (_attributes(pred)[:, :, None, :] == _attributes(target)[:, None, :, :]).all(axis=-1)  # (B, K, M)
    candidate = same & real[:, None, :]
    offset = (pred[:, :, None, :3] - target[:, None, :, :3]) * COORD_SCALE  # (B, K, M, 3)
    distance = np.where(candidate, np.linalg.norm(offset, axis=-1), np.inf)  # (B, K, M)
    nearest = distance.argmin(axis=-1)  # (B, K); first index on ties, as the official strict `<` scan
    best = np.take_along_axis(distance, nearest[..., None], axis=-1)[..., 0]
    key = np.arange(batch_size)[:, None] * num_targets + nearest  # (B, K)
    return pred[..., -1].reshape(-1), best.reshape(-1), key.reshape(-1), int(real.sum())


def _average_precision(
    confidence: np.ndarray, best: np.ndarray, key: np.ndarray, num_real: int, threshold: float
) -> float:
    if num_real == 0:
        return math.nan
    # Highest confidence first. Exact ties: the later prediction (flat b-major, k-minor) first, from a stable sort
    # reversed. The official code reverses np.argsort's default sort, which is not stable, so its order among equal
    # confidences is unspecified (it can depend on the array size, NumPy's version and the CPU); the two APs may
    # differ on exact ties, never otherwise.
    order = np.argsort(confidence, kind="stable")[::-1]
    best, key = best[order], key[order]
    # A hit is within the threshold of its NEAREST same-attribute target; no fallback to the next-nearest.
    hit = best < threshold  # best is inf for a prediction without candidates, so never a hit
    hits = np.flatnonzero(hit)
    # Only the first hit on a target is a true positive; later hits on it are false positives.
    _, first = np.unique(key[hits], return_index=True)
    true_positive = np.zeros(len(order))
    true_positive[hits[first]] = 1.0
    tp = np.cumsum(true_positive)
    recall = tp / num_real
    precision = tp / np.arange(1, len(order) + 1)
    # VOC all-point AP (official `compute_average_precision`): precision envelope, area under the step curve.
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * precision[1:]))


class ClevrAPAccumulator:
    """Streaming CLEVR AP: `update` per batch, then `compute`; equal to one call on all batches concatenated.

    Each update keeps only three numbers per prediction, so the cost is O(total predictions).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every batch added so far."""
        self._confidence: list[np.ndarray] = []  # per prediction: confidence,
        self._best: list[np.ndarray] = []  # distance to the nearest same-attribute real target (inf: none),
        self._key: list[np.ndarray] = []  # and that target's index among all target rows seen
        self._num_real = 0
        self._num_target_rows = 0

    @typing.no_type_check  # checks its own inputs with ValueErrors
    def update(self, pred: Float[Tensor, "B K 19"], target: Float[Tensor, "B M 19"]) -> None:
        """Add a batch.

        Args:
            pred: predictions in the 19-d layout; the last entry is the confidence.
            target: targets in the 19-d layout, padded; the last entry is 1 for a real object, 0 for padding.

        Raises:
            ValueError: on shapes other than [B, K, 19] / [B, M, 19] with one B, or a real flag not 0 or 1.
        """
        pred_np, target_np = _to_numpy("pred", pred), _to_numpy("target", target)
        if pred_np.shape[0] != target_np.shape[0]:
            raise ValueError(
                f"clevr AP: pred and target must have the same batch size, got {list(pred_np.shape)} "
                f"and {list(target_np.shape)}"
            )
        flags = target_np[..., -1]
        if not np.isin(flags, (0.0, 1.0)).all():
            raise ValueError(f"clevr AP: target[..., 18] must be 0 or 1, found {np.unique(flags)[:5].tolist()}")
        confidence, best, key, num_real = _detections(pred_np, target_np)
        self._confidence.append(confidence)
        self._best.append(best)
        self._key.append(key + self._num_target_rows)  # target indices unique over all batches
        self._num_real += num_real
        self._num_target_rows += target_np.shape[0] * target_np.shape[1]

    def merge(self, other: "ClevrAPAccumulator") -> "ClevrAPAccumulator":
        """Add another accumulator's predictions (e.g. another rank's shard); target indices stay distinct."""
        self._confidence += other._confidence
        self._best += other._best
        self._key += [key + self._num_target_rows for key in other._key]
        self._num_real += other._num_real
        self._num_target_rows += other._num_target_rows
        return self

    def compute(self, thresholds: Iterable[float | int] = DEFAULT_THRESHOLDS) -> dict[str, float]:
        """AP at each distance threshold (in CLEVR's original units; -1 or inf = no threshold).

        Returns:
            {"ap@inf": ..., "ap@1": ..., "ap@0.5": ..., "ap@0.25": ..., "ap@0.125": ...} for the default thresholds;
            NaN values when no real target was seen.

        Raises:
            ValueError: if nothing was added yet, or a threshold is negative (other than -1).
        """
        if not self._confidence:
            raise ValueError("ClevrAPAccumulator.compute: no batches were added (call update first)")
        confidence = np.concatenate(self._confidence)
        best = np.concatenate(self._best)
        key = np.concatenate(self._key)
        return {
            threshold_key(t): _average_precision(confidence, best, key, self._num_real, _threshold(t))
            for t in thresholds
        }


@typing.no_type_check  # checks its own inputs with ValueErrors
def clevr_average_precision(
    pred: Float[Tensor, "B K 19"], target: Float[Tensor, "B M 19"], distance_threshold: float
) -> float:
    """Average precision of CLEVR property prediction at one distance threshold (official `average_precision_clevr`).

    All predictions of the batch are pooled and sorted by confidence (last entry), highest first. A prediction's
    candidates are the real targets of its own image whose size, material, shape and colour (argmax of each group)
    all equal its own; it is a true positive iff its NEAREST candidate (Euclidean distance of the coordinates in the
    original [-3, 3] units) is closer than `distance_threshold` and was not claimed by a more confident prediction;
    otherwise it is a false positive. Recall is over the number of real targets; AP is the VOC all-point area under
    the precision envelope. Computed in float64.

    Predictions with exactly equal confidences are taken later-first (flattened b-major, k-minor). The official
    code orders them by NumPy's default, unstable sort, so its tie order is unspecified, and on such ties its AP
    may differ from this one.

    Args:
        pred: predictions in the 19-d layout; the last entry is the confidence.
        target: targets in the 19-d layout, zero-padded; the last entry is 1 for a real object, 0 for padding.
        distance_threshold: in CLEVR's original units; -1 (the official spelling) or math.inf for none.

    Returns:
        AP in [0, 1]; NaN when there is no real target.
    """
    accumulator = ClevrAPAccumulator()
    accumulator.update(pred, target)
    return next(iter(accumulator.compute((distance_threshold,)).values()))
