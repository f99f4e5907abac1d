"""The paper's learning-rate schedule (Sec. 4 / appendix; official `train.py`): linear warm-up, exponential decay."""

import torch

from slotattn.config import OptimConfig


def lr_factor(step: int, warmup_steps: int, decay_rate: float, decay_steps: int) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based).

    As the official code: min(step / warmup_steps, 1) * decay_rate ** (step / decay_steps), the decay continuous
    (not staircase) and applied during warm-up too; step 0 has lr 0.
    """
    warmup = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    return warmup * decay_rate ** (step / decay_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR whose `last_epoch` is the number of optimizer steps taken (state saved in checkpoints)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg.warmup_steps, cfg.decay_rate, cfg.decay_steps)
    )
