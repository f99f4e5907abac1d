"""Everything a run needs to continue exactly: model, optimizer, scheduler, step counters and the RNG states.

`TrainState.checkpoint()` is the payload of a checkpoint file (plain containers and tensors, so it loads with
`torch.load(weights_only=True)`); `TrainState.restore()` puts one back. Together with the step-indexed data sources
(`slotattn.data.stream`) this is what makes `--resume` continue bit for bit.
"""

from dataclasses import dataclass
from typing import Any

import torch

from slotattn.config import OptimConfig
from slotattn.training.optimizer import build_optimizer
from slotattn.training.schedule import build_scheduler


def rng_state() -> dict[str, Any]:
    """The global RNG states that training draws from (slot noise, dropout-free otherwise)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def checkpoint(self, config: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint payload: all of the state, the RNG states and the run's resolved config."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng_state(), "config": config,
                "skipped_steps": self.skipped_steps}

    def restore(self, payload: dict[str, Any]) -> None:
        """Load a checkpoint payload (as `checkpoint` wrote it) into this state and the global RNG."""
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        set_rng_state(payload["rng"])
        self.step = int(payload["step"])
        self.skipped_steps = int(payload.get("skipped_steps", 0))
