"""Tasks tell the one training engine what a loss, a metric and a figure are; the engine knows nothing else."""

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from slotattn.metrics import ari, mean_best_overlap
from slotattn.models.outputs import AutoEncoderOutput
from slotattn.viz import decomposition_figure


@runtime_checkable
class Task(Protocol):
    """What the engine calls. Batches are dicts of tensors (see `slotattn.data.batch`)."""

    def loss(self, out: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named loss terms; "loss" is the one to minimise."""

    def metrics(self, out: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-example metric values [B] (float64; NaN where undefined), averaged by the engine over a split."""

    def visualize(self, out: Any, batch: dict[str, torch.Tensor], path: Path) -> Path:
        """Write a figure of the first examples of the batch."""


class ObjectDiscoveryTask:
    """Unsupervised object discovery (Sec. 2.2, 4.1): reconstruct the image; score segmentation by ARI."""

    def loss(self, out: AutoEncoderOutput, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Mean over all B*C*H*W elements of the [-1, 1] images, as the official `utils.l2_loss`.
        mse = F.mse_loss(out.recon, batch["image"])
        return {"loss": mse, "mse": mse}

    def metrics(self, out: AutoEncoderOutput, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred_ids = out.masks[:, :, 0].argmax(dim=1)  # (B, H, W): each pixel to the slot with the largest alpha
        true_ids = batch["mask_ids"]
        return {
            "ari": ari(true_ids, pred_ids),
            "fg_ari": ari(true_ids, pred_ids, ignore_background=True),
            "mbo": mean_best_overlap(true_ids, pred_ids),
        }

    def visualize(self, out: AutoEncoderOutput, batch: dict[str, torch.Tensor], path: Path) -> Path:
        num = min(8, batch["image"].shape[0])
        to_np = lambda t: t[:num].detach().float().cpu().numpy()  # noqa: E731
        true_ids = to_np(batch["mask_ids"]).astype(int) if "mask_ids" in batch else None
        return decomposition_figure(to_np(batch["image"]), to_np(out.recon), to_np(out.recons), to_np(out.masks),
                                    true_ids, path)


def build_task(name: str) -> Task:
    if name == "object_discovery":
        return ObjectDiscoveryTask()
    raise ValueError(f"unknown task {name!r}; expected 'object_discovery'")
