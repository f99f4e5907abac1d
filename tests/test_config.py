"""The config tree: paper defaults, YAML recipes, typed overrides, clear errors, round trips."""

from pathlib import Path

import pytest

from slotattn.config import Config, ConfigError, dump_config, from_dict, load_config, to_dict
from slotattn.models import build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_paper_recipe():
    cfg = Config()
    # Optimiser and schedule (Sec. 4 / appendix; official object_discovery/train.py flags).
    assert cfg.optim.learning_rate == 4e-4
    assert cfg.optim.warmup_steps == 10_000
    assert cfg.optim.decay_rate == 0.5 and cfg.optim.decay_steps == 100_000
    assert cfg.optim.grad_clip_norm is None
    assert cfg.train.batch_size == 64 and cfg.train.steps == 500_000
    # Slot Attention (Sec. 2.1).
    assert cfg.model.num_iterations == 3 and cfg.model.slot_size == 64
    assert cfg.model.mlp_hidden_size == 128 and cfg.model.epsilon == 1e-8
    # CLEVR6 autoencoder (appendix): 128x128, 7 slots, 4 x 5x5 64-channel encoder, broadcast 8x8, x16 upsampling.
    assert cfg.model.resolution == (128, 128) and cfg.model.num_slots == 7
    assert cfg.model.encoder_channels == (64, 64, 64, 64) and cfg.model.encoder_kernel_size == 5
    assert cfg.model.hidden_size == 64
    assert cfg.model.decoder_broadcast_size == (8, 8)
    assert cfg.model.decoder_channels == (64,) * 5 and cfg.model.decoder_strides == (2, 2, 2, 2, 1)
    assert cfg.model.decoder_kernel_size == 5 and cfg.model.decoder_out_kernel_size == 3
    assert cfg.model.use_encoder_position and cfg.model.use_decoder_position
    # Initialisation: the official Keras model's (tests/test_init.py checks every layer's distribution).
    assert cfg.model.init == "official"
    # The paper's module: softmax over slots, GRU, residual MLP, gradient through the unrolled iterations.
    assert cfg.model.attention_axis == "slots" and cfg.model.use_gru and cfg.model.use_mlp
    assert cfg.model.implicit_diff is False
    assert cfg.model.slot_init == "gaussian"  # Sec. 2.1: one learned Gaussian for all slots (not BO-QSA queries)
    assert cfg.optim.schedule == "exponential"  # official train.py: warm-up, then x decay_rate per decay_steps
    # The one default that is not the paper's (float32 training): the README, config.py and slotattn's docstring say
    # so where they call the defaults the paper's; change them together.
    assert cfg.train.precision == "auto"


@pytest.mark.parametrize(
    "recipe, resolution, num_slots",
    [("clevr6", (128, 128), 7), ("multi_dsprites", (64, 64), 6), ("tetrominoes", (35, 35), 4)],
)
def test_recipes_set_the_paper_resolution_and_slots(recipe, resolution, num_slots):
    cfg = load_config(CONFIGS / f"{recipe}.yaml")
    assert cfg.model.resolution == resolution and cfg.model.num_slots == num_slots
    assert cfg.data.name == recipe
    assert cfg.optim == Config().optim and cfg.train == Config().train  # paper optimiser and schedule
    assert build_model(cfg).decoder.output_resolution() == resolution


def test_recipes_hold_only_overrides():
    import yaml

    defaults = to_dict(Config())
    for path in CONFIGS.glob("*.yaml"):
        data = yaml.safe_load(path.read_text()) or {}
        for section, values in data.items():
            if not isinstance(values, dict):
                continue
            for key, value in values.items():
                assert defaults[section][key] != value or (section, key) == ("data", "name"), f"{path.name}: {section}.{key} repeats the default"


def test_set_overrides_are_typed():
    cfg = load_config(CONFIGS / "tetrominoes.yaml", ["train.steps=2000", "optim.learning_rate=1e-3",
                                                      "model.resolution=[35, 35]", "data.path=/tmp/x",
                                                      "optim.grad_clip_norm=1"])
    assert cfg.train.steps == 2000 and isinstance(cfg.train.steps, int)
    assert cfg.optim.learning_rate == 1e-3 and cfg.optim.grad_clip_norm == 1.0
    assert isinstance(cfg.optim.grad_clip_norm, float)
    assert cfg.data.path == "/tmp/x" and cfg.model.num_slots == 4


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stepz=5", r"unknown config key 'train.stepz'; did you mean 'train.steps'\?"),
        ("model.num_slot=5", r"did you mean 'model.num_slots'"),
        ("train.steps=abc", r"'train.steps' expects int, got str"),
        ("train.steps=1.5", r"'train.steps' expects int, got float"),
        ("model.resolution=[1, 2, 3]", r"'model.resolution' expects 2 values"),
        ("train.steps=0", r"'train.steps' must be >= 1"),
        ("nonsense", r"must look like 'section.key=value'"),
        ("model.use_encoder_position=3", r"expects bool, got int"),
    ],
)
def test_bad_overrides_raise_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch_sise: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'train.batch_sise'; did you mean 'train.batch_size'"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_dump_and_load_round_trip(tmp_path):
    cfg = load_config(CONFIGS / "debug.yaml", ["train.seed=7"])
    dump_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert from_dict(to_dict(cfg)) == cfg


def test_set_prediction_recipe_is_the_official_one():
    cfg = load_config(CONFIGS / "set_prediction_clevr.yaml")
    assert cfg.task == "set_prediction" and cfg.data.name == "clevr"
    assert cfg.train.batch_size == 512 and cfg.train.steps == 150_000
    assert cfg.optim.learning_rate == 4e-4 and cfg.optim.warmup_steps == 1_000
    assert cfg.optim.decay_rate == 0.5 and cfg.optim.decay_steps == 50_000
    assert cfg.model.num_slots == 10 and cfg.model.encoder_strides == (1, 2, 2, 1)
    assert cfg.model.resolution == (128, 128) and cfg.model.head_hidden_size == 64 and cfg.model.num_outputs == 19
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == 380_755  # derived in tests/test_set_predictor.py


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from slotattn.config import _all_keys  # noqa: E402

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(-2, 200), max_size=6))


@settings(max_examples=300, deadline=None)
@given(key=st.one_of(st.sampled_from(_all_keys(Config)), st.text(max_size=20)), value=_VALUES)
def test_any_override_either_applies_or_raises_config_error(key, value):
    import yaml

    text = f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
    try:
        cfg = load_config(None, [text])
    except ConfigError:
        return
    assert isinstance(cfg, Config)


@pytest.mark.parametrize("name, warmup", [("tetrominoes", 1000), ("multi_dsprites", 500)])
def test_cpu_recipe_trains_the_papers_model_with_a_cpu_sized_schedule(name, warmup):
    cpu, paper = load_config(f"{name}_cpu"), load_config(name)
    assert cpu.model == paper.model and cpu.data.name == paper.data.name
    assert cpu.optim.learning_rate == paper.optim.learning_rate and cpu.optim.decay_rate == paper.optim.decay_rate
    assert (cpu.train.batch_size, cpu.optim.warmup_steps, cpu.optim.decay_steps) == (16, warmup, 20000)
