"""The learning-rate schedule: the paper's (Sec. 4 / appendix; official `train.py`) linear warm-up and exponential
decay, or, as an option, warm-up then cosine decay to zero (Invariant Slot Attention's configs, google-research
`invariant_slot_attention/configs/`: optax `warmup_cosine_decay_schedule`)."""

import math

import torch

from slotattn.config import OptimConfig


def lr_factor(step: int, warmup_steps: int, decay_rate: float, decay_steps: int, schedule: str = "exponential") -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based).

    "exponential", as the official code: min(step / warmup_steps, 1) * decay_rate ** (step / decay_steps), the
    decay continuous (not staircase) and applied during warm-up too; step 0 has lr 0.
    "cosine": the same warm-up, then 0.5 * (1 + cos(pi * t / decay_steps)) with t the steps since the warm-up
    ended, reaching 0 after `decay_steps` more steps and staying there (`decay_rate` unused).
    """
    warmup = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    if schedule == "cosine":
        since = min(max(step - warmup_steps, 0), decay_steps)
        return warmup * 0.5 * (1.0 + math.cos(math.pi * since / decay_steps))
    return warmup * decay_rate ** (step / decay_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR whose `last_epoch` is the number of optimizer steps taken (state saved in checkpoints)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg.warmup_steps, cfg.decay_rate, cfg.decay_steps, cfg.schedule)
    )
