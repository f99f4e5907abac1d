"""Whole models composed from `slotattn.nn` parts; `build_model(cfg)` builds the parts (`models.parts`, the only
code that reads `ModelConfig`) and hands them to the model."""

from torch import nn

from slotattn.config import Config
from slotattn.models.autoencoder import SlotAttentionAutoEncoder
from slotattn.models.outputs import AutoEncoderOutput, SetPredictionOutput
from slotattn.models.set_predictor import SlotAttentionSetPredictor
from slotattn.nn.init import reset_torch_defaults_

__all__ = ["AutoEncoderOutput", "SetPredictionOutput", "SlotAttentionAutoEncoder", "SlotAttentionSetPredictor",
           "build_model"]


def build_model(cfg: Config) -> nn.Module:
    """The model of `cfg.task`, built from `cfg.model`, initialised as `cfg.model.init` says.

    Every slotattn layer starts as the official Keras model's does ("official", `slotattn.nn.init`); "torch"
    re-draws them with PyTorch's layer defaults.
    """
    model = _build(cfg)
    if cfg.model.init == "torch":
        reset_torch_defaults_(model)
    return model


def _build(cfg: Config) -> nn.Module:
    if cfg.task == "object_discovery":
        return SlotAttentionAutoEncoder.from_config(cfg.model)
    if cfg.task == "set_prediction":
        return SlotAttentionSetPredictor.from_config(cfg.model)
    raise ValueError(f"build_model: unknown task {cfg.task!r}")
