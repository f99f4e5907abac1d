"""Load a trained model for inference from a checkpoint, a run directory or an exported .safetensors file."""

from pathlib import Path

import torch

from slotattn.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, load_safetensors
from slotattn.config import Config, from_dict
from slotattn.models import build_model


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, Config]:
    """The model rebuilt from the config stored with its weights, in eval mode, and that config.

    Args:
        path: `model.safetensors` written by `slotattn export`, a checkpoint `.pt`, or a run directory.
        map_location: where to put the weights.
    """
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: no complete checkpoint under {path / 'checkpoints'}")
        path = found
    state = load_safetensors(path) if path.suffix == ".safetensors" else load_checkpoint(path, map_location)
    cfg = from_dict(state["config"])
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    return model.to(map_location).eval(), cfg
