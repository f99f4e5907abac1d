"""The parts of a model, each built from `ModelConfig`: the only code that reads the model config.

A model is composed from its parts (DETR- and timm-style): `build_model` (models/__init__.py) builds them here and
hands them to `SlotAttentionAutoEncoder` / `SlotAttentionSetPredictor`, so each setting is written once in the
config and once in the part that uses it. The parts keep the official attribute names (`encoder_cnn`, `mlp`,
`slot_attention`, `decoder`, `mlp_classifier`), so state-dict keys are those of every earlier slotattn version and
map one to one onto the official TF variables (`slotattn.tf_import`).
"""

from torch import nn

from slotattn.config import ModelConfig
from slotattn.models.baselines import SlotMLPBaseline, SoftKMeans
from slotattn.nn import MLP, CNNEncoder, SlotAttention, SpatialBroadcastDecoder

# The switches that belong to Slot Attention alone, with the paper's values.
SLOT_ATTENTION_SWITCHES = {"attention_axis": "slots", "use_gru": True, "use_mlp": True, "implicit_diff": False,
                           "slot_init": "gaussian"}


def build_encoder_cnn(m: ModelConfig) -> CNNEncoder:
    """The CNN on the image: 5x5 SAME convs with ReLU, stride 1 unless `encoder_strides` says otherwise."""
    strides = m.encoder_strides or (1,) * len(m.encoder_channels)
    return CNNEncoder(3, m.encoder_channels, m.encoder_kernel_size, strides)


def build_feedforward(m: ModelConfig) -> MLP:
    """The feedforward net on each encoder position, Dense(hidden, relu) -> Dense(hidden) (official `mlp`)."""
    return MLP(m.encoder_channels[-1], m.hidden_size, m.hidden_size)


def build_grouping(m: ModelConfig) -> nn.Module:
    """The module between encoder and decoder/head: Slot Attention (paper) or a baseline of Sec. 4.

    A baseline given a non-default Slot Attention switch raises, so that a study cannot label a run with a switch
    that changed nothing.
    """
    if m.grouping == "slot_attention":
        return SlotAttention(num_slots=m.num_slots, slot_size=m.slot_size, input_size=m.hidden_size,
                             num_iterations=m.num_iterations, mlp_hidden_size=m.mlp_hidden_size, epsilon=m.epsilon,
                             attention_axis=m.attention_axis, use_gru=m.use_gru, use_mlp=m.use_mlp,
                             implicit_diff=m.implicit_diff, slot_init=m.slot_init,
                             query_noise_steps=m.query_noise_steps)
    changed = [f"{k}={getattr(m, k)!r}" for k, default in SLOT_ATTENTION_SWITCHES.items() if getattr(m, k) != default]
    if changed:
        raise ValueError(
            f"grouping {m.grouping!r}: the switches {', '.join(changed)} apply only to grouping 'slot_attention'; "
            f"expected their defaults ({', '.join(f'{k}={v!r}' for k, v in SLOT_ATTENTION_SWITCHES.items())})"
        )
    if m.grouping == "slot_mlp":
        return SlotMLPBaseline(num_slots=m.num_slots, slot_size=m.slot_size, input_size=m.hidden_size)
    return SoftKMeans(num_slots=m.num_slots, slot_size=m.slot_size, input_size=m.hidden_size,
                      num_iterations=m.num_iterations, epsilon=m.epsilon)


def build_decoder(m: ModelConfig) -> SpatialBroadcastDecoder:
    """The spatial broadcast decoder: RGB + alpha logit per slot."""
    return SpatialBroadcastDecoder(m.slot_size, m.decoder_broadcast_size, m.decoder_channels, m.decoder_strides,
                                   kernel_size=m.decoder_kernel_size, out_kernel_size=m.decoder_out_kernel_size,
                                   out_channels=4, use_position_embedding=m.use_decoder_position)


def build_head(m: ModelConfig) -> MLP:
    """The set-prediction head: the same MLP on every slot (official `mlp_classifier`)."""
    return MLP(m.slot_size, m.head_hidden_size, m.num_outputs)
