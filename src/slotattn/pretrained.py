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
    try:
        cfg = from_dict(state["config"])
    except ValueError as err:  # a config key or value this version does not know
        raise CheckpointError(f"{path}: its stored config does not fit this version of slotattn: {err}") from err
    model = build_model(cfg)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:  # missing/unexpected keys or shape mismatches
        first = str(err).splitlines()[:4]
        raise CheckpointError(f"{path}: the weights do not match the model its config builds: "
                              + " ".join(line.strip() for line in first)) from err
    return model.to(map_location).eval(), cfg
