"""One frozen, typed config tree whose defaults are the paper's hyperparameters (Sec. 4 and appendix).

One default is not the paper's: `train.precision="auto"` trains under bfloat16 autocast where the device runs
bfloat16 natively, while the paper trained in float32; `--set train.precision=fp32` gives a float32 run.

Recipes in `configs/*.yaml` hold only overrides; `--set a.b=c` overrides one typed value. Every paper default below,
and that one exception, is asserted by `tests/test_config.py::test_defaults_are_the_paper_recipe`.
"""

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A config file, key or value is not valid; the message says where and what was expected."""


# The values a string setting may take (checked when a config is loaded or overridden).
Task = Literal["object_discovery", "set_prediction"]
Grouping = Literal["slot_attention", "slot_mlp", "soft_kmeans"]  # models/baselines.py
AttentionAxis = Literal["slots", "inputs"]  # nn/slot_attention.py
Init = Literal["official", "torch"]  # nn/init.py
SlotInit = Literal["gaussian", "learned_queries"]  # nn/slot_attention.py
Schedule = Literal["exponential", "cosine"]  # training/schedule.py
Precision = Literal["auto", "fp32", "bf16"]  # training/engine.py


@dataclass(frozen=True)
class ModelConfig:
    resolution: tuple[int, int] = (128, 128)  # CLEVR6 recipe; Multi-dSprites 64x64, Tetrominoes 35x35
    num_slots: int = 7  # CLEVR6 (up to 6 objects + background); Multi-dSprites 6, Tetrominoes 4
    num_iterations: int = 3  # T in Algorithm 1; may be changed at test time
    slot_size: int = 64  # D; also the q/k/v width, so logits are scaled by 64 ** -0.5 (Eq. 1)
    mlp_hidden_size: int = 128  # Slot Attention's residual MLP
    epsilon: float = 1e-8  # added to attn before the weighted mean (Algorithm 1)
    encoder_channels: tuple[int, ...] = (64, 64, 64, 64)  # 4 conv layers 5x5, stride 1 (appendix)
    encoder_kernel_size: int = 5
    encoder_strides: tuple[int, ...] | None = None  # None: all 1 (discovery); set prediction (1, 2, 2, 1): 32x32
    hidden_size: int = 64  # feedforward net on the encoder's set of features: Dense(64, relu), Dense(64)
    decoder_broadcast_size: tuple[int, int] = (8, 8)  # CLEVR6: broadcast to 8x8, upsample x16
    decoder_channels: tuple[int, ...] = (64, 64, 64, 64, 64)
    decoder_strides: tuple[int, ...] = (2, 2, 2, 2, 1)
    decoder_kernel_size: int = 5
    decoder_out_kernel_size: int = 3  # last layer: 3x3, 4 channels (RGB + alpha logit)
    use_encoder_position: bool = True
    use_decoder_position: bool = True
    # The analysis of Sec. 4 (models/baselines.py); each default is the paper's model.
    grouping: Grouping = "slot_attention"  # or the baselines "slot_mlp" (pooled features -> MLP -> K slots), "soft_kmeans"
    attention_axis: AttentionAxis = "slots"  # Eq. 1 softmax over slots; "inputs": the ablation, softmax over the N inputs
    use_gru: bool = True  # GRU slot update (Algorithm 1); False: slots = slots_prev + updates
    use_mlp: bool = True  # residual MLP after the update (Algorithm 1); False removes it
    # Not the paper's: implicit differentiation (Chang et al., NeurIPS 2022), the last iteration on detached slots
    # so the gradient skips the unrolled loop (nn/slot_attention.py). Opt-in; forward values are unchanged.
    implicit_diff: bool = False
    # Not the paper's: "learned_queries" (BO-QSA, Jia et al., ICLR 2023) learns one initial vector per slot, with
    # training noise annealed to 0 over `query_noise_steps` and a straight-through last iteration
    # (nn/slot_attention.py). The paper's "gaussian" draws every slot from one learned Gaussian.
    slot_init: SlotInit = "gaussian"
    query_noise_steps: int = 30_000  # BO-QSA's sigma_steps; used only with slot_init=learned_queries
    head_hidden_size: int = 64  # set prediction: per-slot Dense(64, relu) -> Dense(num_outputs, sigmoid)
    num_outputs: int = 19  # set prediction: CLEVR's property vector (3 coords, 2+2+3+8 one-hots, 1 objectness)
    # Parameter initialisation: "official" = the official Keras model's (glorot_uniform kernels, zero biases,
    # orthogonal GRU recurrent kernel; slotattn.nn.init); "torch" = PyTorch's layer defaults, for comparison.
    init: Init = "official"


@dataclass(frozen=True)
class DataConfig:
    name: str = "clevr6"  # dataset: tetrominoes | multi_dsprites | clevr6 | clevr (set prediction)
    variant: str | None = None  # multi_dsprites: binarized | colored_on_grayscale (paper) | colored_on_colored
    path: str | None = None  # a dataset directory written by `slotattn generate`/`convert`; None streams generated data
    eval_path: str | None = None  # held-out split; None generates one from `eval_seed`
    num_eval: int = 512  # examples in the held-out split when it is generated
    eval_seed: int = 1_000_003  # seed of the generated held-out split, disjoint from training seeds
    # DataLoader workers that build training batches beside the step: "auto" = none on the CPU (built in series
    # with the step, whose cores they would take), min(8, cores per process - 1) on CUDA (engine.resolve_num_workers);
    # or a number. Batches do not depend on it (exact resume holds for any value).
    num_workers: int | Literal["auto"] = "auto"
    # Generated data only (multi_dsprites, clevr6): most objects per scene instead of the dataset's own, for
    # training and for the held-out split (None: the dataset's; eval_max_objects None: = max_objects).
    max_objects: int | None = None
    eval_max_objects: int | None = None


@dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 4e-4  # Adam, peak learning rate
    warmup_steps: int = 10_000  # linear warm-up from 0
    decay_rate: float = 0.5  # lr * decay_rate ** (step / decay_steps), also during warm-up (official train.py)
    decay_steps: int = 100_000  # exponential: steps per x decay_rate; cosine: steps from the end of warm-up to 0
    # "exponential" (the paper's) | "cosine": warm-up, then cosine decay to 0 over decay_steps (training/schedule.py)
    schedule: Schedule = "exponential"
    grad_clip_norm: float | None = None  # the paper clips nothing; set for ablations only
    skip_nonfinite: bool = False  # skip (and count) steps with a non-finite loss/gradient instead of stopping


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 500_000
    batch_size: int = 64  # global batch (split over ranks under DDP)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 100
    eval_every: int = 10_000
    ckpt_every: int = 10_000
    vis_every: int = 10_000
    keep_last: int = 3  # checkpoints kept in run_dir/checkpoints
    eval_batch_size: int = 64
    tensorboard: bool = False
    max_minutes: float | None = None  # wall-clock budget of one invocation: stop early, evaluate, checkpoint
    # Training forward/loss: "fp32" (as the paper) | "bf16" (torch.autocast: convolutions and the big matmuls in
    # bfloat16, normalisations/softmax/loss in float32; evaluation always float32) | "auto": bf16 where the device
    # runs it natively (CUDA with bf16, CPUs with AVX512-BF16/AMX), else fp32. The one default that is not the
    # paper's (float32); learning curves of both in benchmarks/README.md.
    precision: Precision = "auto"
    # torch.compile the training forward (evaluation runs the plain module). Measured on the development CPU:
    # +6 % images/s for Tetrominoes in bf16 after ~3 minutes of compiling; off by default (benchmarks/README.md).
    compile: bool = False
    # Fine-tuning: start from the weights of a checkpoint, run directory, exported .safetensors or shipped name
    # (e.g. "multi_dsprites") instead of the initialisation; step, optimizer and schedule start afresh. Its model
    # config must equal this one's (except model.init). Ignored when resuming a run that has a checkpoint.
    init_from: str | None = None


@dataclass(frozen=True)
class Config:
    task: Task = "object_discovery"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


TASKS: tuple[str, ...] = typing.get_args(Task)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain YAML/JSON-able containers (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return plain(cfg)


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):
        ftype = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(ftype):
            keys += _all_keys(ftype, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, _all_keys(Config), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}")


def _coerce(key: str, value: Any, ftype: Any) -> Any:
    """Check `value` against the field type, converting YAML lists to tuples and ints to floats."""
    origin, args = typing.get_origin(ftype), typing.get_args(ftype)
    if origin is Literal:
        if value not in args or isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(key, value, inner[0])
        for option in inner:  # e.g. int | Literal["auto"]: the first type that takes the value
            try:
                return _coerce(key, value, option)
            except ConfigError:
                pass
        expected = " or ".join(f"one of {list(typing.get_args(a))}" if typing.get_origin(a) is Literal else
                               getattr(a, "__name__", str(a)) for a in inner)
        raise ConfigError(f"config key '{key}' expects {expected}, got {type(value).__name__} {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' expects a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"config key '{key}' expects {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    if ftype is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if ftype is float and isinstance(value, str):
        try:  # YAML 1.1 reads "4e-4" as a string
            return float(value)
        except ValueError:
            pass
    if ftype in (int, float, str, bool) and not (isinstance(value, ftype) and (ftype is bool or not isinstance(value, bool))):
        raise ConfigError(f"config key '{key}' expects {ftype.__name__}, got {type(value).__name__} {value!r}")
    return value


def _apply(cfg: Any, updates: dict[str, Any], prefix: str = "") -> Any:
    if not isinstance(updates, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {updates!r}")
    hints = typing.get_type_hints(type(cfg))
    changes = {}
    for name, value in updates.items():
        key = f"{prefix}{name}"
        if name not in hints:
            raise _unknown_key(key)
        ftype = hints[name]
        if dataclasses.is_dataclass(ftype):
            changes[name] = _apply(getattr(cfg, name), {} if value is None else value, f"{key}.")
        else:
            changes[name] = _coerce(key, value, ftype)
    return dataclasses.replace(cfg, **changes)


def validate(cfg: Config) -> Config:
    """Cross-field checks that single field types cannot express."""
    positive = {
        "model.num_slots": cfg.model.num_slots,
        "model.num_iterations": cfg.model.num_iterations,
        "model.slot_size": cfg.model.slot_size,
        "train.steps": cfg.train.steps,
        "train.batch_size": cfg.train.batch_size,
        "train.log_every": cfg.train.log_every,
        "train.eval_every": cfg.train.eval_every,
        "train.ckpt_every": cfg.train.ckpt_every,
        "train.vis_every": cfg.train.vis_every,
        "train.keep_last": cfg.train.keep_last,
        "train.eval_batch_size": cfg.train.eval_batch_size,
        "optim.decay_steps": cfg.optim.decay_steps,
        "data.num_eval": cfg.data.num_eval,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {value}")
    if cfg.optim.learning_rate <= 0:
        raise ConfigError(f"config key 'optim.learning_rate' must be > 0, got {cfg.optim.learning_rate}")
    for section in (cfg.model, cfg.data, cfg.optim, cfg.train):
        for f in dataclasses.fields(section):
            key, value = f"{type(section).__name__[:-6].lower()}.{f.name}", getattr(section, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"config key '{key}' must be a finite number, got {value}")
            if isinstance(value, tuple) and (not value or any(v < 1 for v in value)):
                raise ConfigError(f"config key '{key}' must be a non-empty list of positive ints, got {list(value)}")
    checks = {
        "optim.decay_rate": 0 < cfg.optim.decay_rate <= 1,
        "model.epsilon": cfg.model.epsilon > 0,
        "optim.grad_clip_norm": cfg.optim.grad_clip_norm is None or cfg.optim.grad_clip_norm > 0,
        "train.max_minutes": cfg.train.max_minutes is None or cfg.train.max_minutes > 0,
        "model.mlp_hidden_size": cfg.model.mlp_hidden_size >= 1,
        "model.hidden_size": cfg.model.hidden_size >= 1,
        "model.head_hidden_size": cfg.model.head_hidden_size >= 1,
        "model.num_outputs": cfg.model.num_outputs >= 1,
        "model.encoder_kernel_size": cfg.model.encoder_kernel_size >= 1,
        "model.decoder_kernel_size": cfg.model.decoder_kernel_size >= 1,
        "model.decoder_out_kernel_size": cfg.model.decoder_out_kernel_size >= 1,
    }
    for key, ok in checks.items():
        if not ok:
            section, name = key.split(".")
            raise ConfigError(f"config key '{key}' has an impossible value: {getattr(getattr(cfg, section), name)}")
    if cfg.data.num_workers != "auto" and cfg.data.num_workers < 0:
        raise ConfigError(f"config key 'data.num_workers' must be >= 0 or 'auto', got {cfg.data.num_workers}")
    if cfg.optim.warmup_steps < 0:
        raise ConfigError(f"config key 'optim.warmup_steps' must be >= 0, got {cfg.optim.warmup_steps}")
    if cfg.model.query_noise_steps < 0:
        raise ConfigError(f"config key 'model.query_noise_steps' must be >= 0, got {cfg.model.query_noise_steps}")
    if cfg.model.encoder_strides is not None and len(cfg.model.encoder_channels) != len(cfg.model.encoder_strides):
        raise ConfigError(
            f"config keys 'model.encoder_channels' ({len(cfg.model.encoder_channels)} layers) and "
            f"'model.encoder_strides' ({len(cfg.model.encoder_strides)} layers) must have the same length"
        )
    if len(cfg.model.decoder_channels) != len(cfg.model.decoder_strides):
        raise ConfigError(
            f"config keys 'model.decoder_channels' ({len(cfg.model.decoder_channels)} layers) and "
            f"'model.decoder_strides' ({len(cfg.model.decoder_strides)} layers) must have the same length"
        )
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=c` into ('a.b', value), the value parsed as YAML (`--set train.steps=2000`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override must look like 'section.key=value', got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: cannot parse the value as YAML: {err}") from err
    return key.strip(), value


def _nest(key: str, value: Any) -> dict[str, Any]:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def from_dict(data: dict[str, Any], base: Config | None = None) -> Config:
    """Apply a (possibly partial) nested dict of overrides to `base` (default: the paper's defaults)."""
    return validate(_apply(base or Config(), data or {}))


RECIPES = Path(__file__).resolve().parent / "configs"  # packaged recipes; `configs/` in the repo links here


def recipe_names() -> list[str]:
    """The packaged recipes, by the names `load_config` accepts."""
    return sorted(path.stem for path in RECIPES.glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """The packaged recipe of a bare name (`tetrominoes` -> .../configs/tetrominoes.yaml), else the path as given.

    A bare name (a str with no directory part and no suffix) means the packaged recipe even when the working
    directory holds a file or folder of that name, e.g. data generated into ./tetrominoes; write ./NAME for a file.
    """
    if _is_bare_name(name_or_path) and (RECIPES / f"{name_or_path}.yaml").is_file():
        return RECIPES / f"{name_or_path}.yaml"
    return Path(name_or_path)


def _is_bare_name(name_or_path: str | Path) -> bool:
    return isinstance(name_or_path, str) and Path(name_or_path).name == name_or_path and not Path(name_or_path).suffix


def _read_recipe(name_or_path: str | Path) -> dict[str, Any]:
    """The overrides in a YAML recipe, or a one-line ConfigError saying what was expected and what was found."""
    path = recipe_path(name_or_path)
    if path.is_dir():
        raise ConfigError(f"{path}: a directory, not a YAML recipe file "
                          f"(packaged recipes: {', '.join(recipe_names())})")
    if not path.exists():
        if _is_bare_name(name_or_path):
            raise ConfigError(f"config '{name_or_path}': no such file, and not a packaged recipe "
                              f"(available: {', '.join(recipe_names())})")
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read as a YAML recipe ({type(err).__name__}: "
                          f"{getattr(err, 'strerror', None) or err})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', None) or err}") from err
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of config sections (model:, data:, optim:, train:), "
                          f"found a {type(data).__name__}")
    return data or {}


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    """Apply `a.b=c` overrides in order, then the cross-field checks."""
    for text in overrides:
        key, value = parse_override(text)
        cfg = _apply(cfg, _nest(key, value))
    return validate(cfg)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML recipe at `path` (overrides only), then each `a.b=c` override, then checks.

    `path` may also name a packaged recipe (`recipe_names()`: `tetrominoes`, `multi_dsprites`, `clevr6`, `debug`,
    `demo`, ...); a bare name always means the packaged recipe, never a file or folder of that name.
    """
    cfg = Config()
    if path is not None:
        data = _read_recipe(path)
        try:
            cfg = _apply(cfg, data)
        except ConfigError as err:
            raise ConfigError(f"{recipe_path(path)}: {err}") from err
    return apply_overrides(cfg, overrides)


def dump_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (what `run_dir/config.yaml` holds)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
