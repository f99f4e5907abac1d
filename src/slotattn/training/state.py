"""Everything a run needs to continue exactly: model, optimizer, scheduler, step counters and the RNG states.

`TrainState.checkpoint()` is the payload of a checkpoint file (plain containers and tensors, so it loads with
`torch.load(weights_only=True)`); `TrainState.restore()` puts one back. Together with the step-indexed data sources
(`slotattn.data.stream`) this is what makes `--resume` continue bit for bit.
"""

import logging
from dataclasses import dataclass
from typing import Any

import torch

from slotattn.config import OptimConfig
from slotattn.training.optimizer import build_optimizer
from slotattn.training.schedule import build_scheduler

log = logging.getLogger(__name__)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The RNG states training draws from (slot noise; nothing else is random): the CPU generator's, and the
    training device's alone when it is a GPU (not every visible GPU's: under DDP each rank draws on its own)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["device"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Put `rng_state`'s states back, the GPU state into `device`'s generator.

    Every rank draws the same global slot noise from identically seeded generators (`engine.draw_slot_noise`), so
    the state rank 0 saved is each rank's own. A GPU state is skipped, with a log line, on a machine that trains on
    the CPU (a GPU run continued on a CPU), and a CPU run continued on a GPU starts the GPU generator from its
    seed: in both cases the slot noise after the resume differs from an uninterrupted run's.
    """
    torch.set_rng_state(state["torch"])
    stored = state.get("device")
    if stored is None and "cuda" in state:  # checkpoints before 2026-12-08 stored every visible GPU's state
        index = (device.index or 0) if device.type == "cuda" else 0
        stored = state["cuda"][index] if index < len(state["cuda"]) else None
    if device.type == "cuda" and stored is not None:
        torch.cuda.set_rng_state(stored, device)
    elif stored is not None or device.type == "cuda":
        log.info("resuming on %s from a checkpoint trained on another kind of device: its slot noise differs from "
                 "an uninterrupted run's from here on", device)


@dataclass
class TrainState:
    """The mutable state of a run.

    Attributes:
        model: the plain model (not a DDP wrapper): what checkpoints hold and evaluation runs.
        optimizer: `KerasAdam` over the model's parameters.
        scheduler: the paper's learning-rate schedule; its `last_epoch` equals `step`.
        step: optimizer steps taken (including skipped non-finite ones).
        skipped_steps: steps whose update was skipped for a non-finite loss or gradient.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int = 0
    skipped_steps: int = 0

    @classmethod
    def create(cls, model: torch.nn.Module, optim: OptimConfig) -> "TrainState":
        """Step 0 of a run: the official optimizer and schedule over `model`'s parameters."""
        optimizer = build_optimizer(model.parameters(), optim.learning_rate)
        return cls(model, optimizer, build_scheduler(optimizer, optim))

    @property
    def device(self) -> torch.device:
        """Where the model trains (its parameters' device)."""
        return next(self.model.parameters()).device

    @property
    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def checkpoint(self, config: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint payload: all of the state, the RNG states and the run's resolved config."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng_state(self.device), "config": config,
                "skipped_steps": self.skipped_steps}

    def restore(self, payload: dict[str, Any]) -> None:
        """Load a checkpoint payload (as `checkpoint` wrote it) into this state and the global RNG."""
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        set_rng_state(payload["rng"], self.device)
        self.step = int(payload["step"])
        self.skipped_steps = int(payload.get("skipped_steps", 0))
