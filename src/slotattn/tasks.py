"""Tasks tell the one training engine what a loss, a metric and a figure are; the engine knows nothing else."""

from collections.abc import Callable
from functools import reduce
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from slotattn.data.batch import Batch
from slotattn.clevr_layout import describe_prediction
from slotattn.losses import hungarian_huber_loss
from slotattn.metrics import ClevrAPAccumulator, ari, mean_best_overlap
from slotattn.models.outputs import AutoEncoderOutput, SetPredictionOutput
from slotattn.viz import attention_figure, decomposition_figure

Gather = Callable[[Any], list[Any]]  # this rank's partial result -> every rank's, in rank order


@runtime_checkable
class Evaluator(Protocol):
    """Accumulates a split's metrics batch by batch; `compute` combines every rank's partial results."""

    def update(self, out: Any, batch: Batch) -> None: ...

    def compute(self, gather: Gather) -> dict[str, float]: ...


@runtime_checkable
class Task(Protocol):
    """What the engine calls. Batches are dicts of tensors (see `slotattn.data.batch`).

    Optional attribute `train_keys` (tuple of str): the batch keys `loss` reads; training batches carry only those
    (`to_train_batch`), evaluation batches everything. A task without it gets every key the data has. Not declared
    as a protocol member, so that tasks written without it still are Tasks.
    """

    def loss(self, out: Any, batch: Batch) -> dict[str, torch.Tensor]:
        """Named loss terms; "loss" is the one to minimise."""

    def evaluator(self) -> Evaluator:
        """A fresh accumulator of the task's metrics over a split."""

    def visualize(self, out: Any, batch: Batch, path: Path) -> Path:
        """Write a figure of the first examples of the batch."""


def _numpy(t: torch.Tensor, num: int):
    return t[:num].detach().float().cpu().numpy()


class MeanEvaluator:
    """Means of per-example metric values over a split; NaN examples (e.g. no foreground) are left out."""

    def __init__(self, per_example: Callable[[Any, Batch], dict[str, torch.Tensor]]):
        self.per_example = per_example
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def update(self, out: Any, batch: Batch) -> None:
        for key, value in self.per_example(out, batch).items():
            finite = value[~value.isnan()]
            self.sums[key] = self.sums.get(key, 0.0) + float(finite.sum())
            self.counts[key] = self.counts.get(key, 0) + int(finite.numel())

    def compute(self, gather: Gather) -> dict[str, float]:
        # Sums and counts over all ranks: the mean over the whole split, not a mean of per-rank means.
        parts = gather((self.sums, self.counts))
        keys = sorted({k for sums, _ in parts for k in sums})
        total = {k: sum(s.get(k, 0.0) for s, _ in parts) for k in keys}
        count = {k: sum(c.get(k, 0) for _, c in parts) for k in keys}
        return {k: total[k] / count[k] if count[k] else float("nan") for k in keys}


class ObjectDiscoveryTask:
    """Unsupervised object discovery (Sec. 2.2, 4.1): reconstruct the image; score segmentation by ARI."""

    train_keys = ("image",)  # the loss is the reconstruction error: no masks in training batches

    def loss(self, out: AutoEncoderOutput, batch: Batch) -> dict[str, torch.Tensor]:
        # Mean over all B*C*H*W elements of the [-1, 1] images, as the official `utils.l2_loss`.
        mse = F.mse_loss(out.recon, batch["image"])
        return {"loss": mse, "mse": mse}

    @staticmethod
    def per_example(out: AutoEncoderOutput, batch: Batch) -> dict[str, torch.Tensor]:
        pred_ids = out.masks[:, :, 0].argmax(dim=1)  # (B, H, W): each pixel to the slot with the largest alpha
        true_ids = batch["mask_ids"]
        return {
            "ari": ari(true_ids, pred_ids),
            "fg_ari": ari(true_ids, pred_ids, ignore_background=True),
            "mbo": mean_best_overlap(true_ids, pred_ids),
        }

    def evaluator(self) -> MeanEvaluator:
        return MeanEvaluator(self.per_example)

    def visualize(self, out: AutoEncoderOutput, batch: Batch, path: Path) -> Path:
        num = min(8, batch["image"].shape[0])
        true_ids = _numpy(batch["mask_ids"], num).astype(int) if "mask_ids" in batch else None
        return decomposition_figure(_numpy(batch["image"], num), _numpy(out.recon, num), _numpy(out.recons, num),
                                    _numpy(out.masks, num), true_ids, path)


class APEvaluator:
    """CLEVR average precision at the paper's distance thresholds, over the whole split (Sec. 4.2)."""

    def __init__(self) -> None:
        self.accumulator = ClevrAPAccumulator()

    def update(self, out: SetPredictionOutput, batch: Batch) -> None:
        self.accumulator.update(out.preds, batch["target"])

    def compute(self, gather: Gather) -> dict[str, float]:
        merged = reduce(ClevrAPAccumulator.merge, gather(self.accumulator), ClevrAPAccumulator())
        return merged.compute()


class SetPredictionTask:
    """Supervised set prediction (Sec. 2.3, 4.2): Hungarian-matched Huber loss; AP at distance thresholds."""

    train_keys = ("image", "target", "num_objects")

    def loss(self, out: SetPredictionOutput, batch: Batch) -> dict[str, torch.Tensor]:
        huber = hungarian_huber_loss(out.preds, batch["target"])
        return {"loss": huber, "huber": huber}

    def evaluator(self) -> APEvaluator:
        return APEvaluator()

    def visualize(self, out: SetPredictionOutput, batch: Batch, path: Path) -> Path:
        num = min(4, batch["image"].shape[0])
        labels = []
        for preds in _numpy(out.preds, num):
            described = [describe_prediction(p) for p in preds]
            labels.append([f"{d['size']} {d['color']}\n{d['material']} {d['shape']}\n"
                           f"({', '.join(f'{c:.1f}' for c in d['3d_coords'])}) p={d['real']:.2f}" for d in described])
        return attention_figure(_numpy(batch["image"], num), _numpy(out.attn, num), labels, path)


def build_task(name: str) -> Task:
    if name == "object_discovery":
        return ObjectDiscoveryTask()
    if name == "set_prediction":
        return SetPredictionTask()
    raise ValueError(f"unknown task {name!r}; expected 'object_discovery' or 'set_prediction'")
