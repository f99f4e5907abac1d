"""Process-group set-up for data-parallel training under `torchrun`, rank-0 helpers, cross-rank reductions.

Uses PyTorch's own engine (`torch.distributed` + `DistributedDataParallel`): gloo on the CPU, NCCL on CUDA,
chosen from the device. Without torchrun's environment (WORLD_SIZE unset or 1) everything is a no-op, so one
code path serves one process and many.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (env:// rendezvous); pick this rank's device.

    Returns:
        The rank info, and the device: for CUDA jobs `rank_device`'s.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = rank_device(local_rank, torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # device_id binds the NCCL communicator to this rank's GPU at once (no guess from the first collective)
        extra = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", **extra)
    return DistInfo(rank, world_size, local_rank), device


def rank_device(local_rank: int, visible: int) -> torch.device:
    """This rank's GPU: cuda:LOCAL_RANK where the process sees at least LOCAL_RANK + 1 GPUs (torchrun on one node
    with all of them visible), else cuda:0 (schedulers such as SLURM with --gpus-per-task=1 show each task only its
    own GPU, as device 0)."""
    return torch.device("cuda", local_rank if local_rank < visible else 0)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (identity for one process)."""
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_objects(obj: object, info: DistInfo) -> list[object]:
    """Every rank's `obj` (picklable), in rank order; [obj] for one process."""
    if not info.enabled:
        return [obj]
    gathered: list[object] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
