"""Whole models built from `slotattn.nn`; `build_model` is the only code that reads `ModelConfig`."""

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
    m = cfg.model
    # The encoder + grouping half both models share (`SlotModel`).
    shared = dict(
        resolution=m.resolution,
        num_slots=m.num_slots,
        num_iterations=m.num_iterations,
        slot_size=m.slot_size,
        mlp_hidden_size=m.mlp_hidden_size,
        epsilon=m.epsilon,
        encoder_channels=m.encoder_channels,
        encoder_kernel_size=m.encoder_kernel_size,
        hidden_size=m.hidden_size,
        use_encoder_position=m.use_encoder_position,
        grouping=m.grouping,
        attention_axis=m.attention_axis,
        use_gru=m.use_gru,
        use_mlp=m.use_mlp,
    )
    if cfg.task == "object_discovery":
        return SlotAttentionAutoEncoder(
            **shared,
            encoder_strides=m.encoder_strides,
            decoder_broadcast_size=m.decoder_broadcast_size,
            decoder_channels=m.decoder_channels,
            decoder_strides=m.decoder_strides,
            decoder_kernel_size=m.decoder_kernel_size,
            decoder_out_kernel_size=m.decoder_out_kernel_size,
            use_decoder_position=m.use_decoder_position,
        )
    if cfg.task == "set_prediction":
        return SlotAttentionSetPredictor(
            **shared,
            encoder_strides=m.encoder_strides or (1,) * len(m.encoder_channels),
            head_hidden_size=m.head_hidden_size,
            num_outputs=m.num_outputs,
        )
    raise ValueError(f"build_model: unknown task {cfg.task!r}")
