"""Load a trained model for inference from a checkpoint, a run directory, an exported .safetensors file, or the
name of a model shipped with slotattn (`PRETRAINED`; model card in docs/models.md). Nothing is downloaded."""

from pathlib import Path

import torch

from slotattn.training.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, load_safetensors
from slotattn.config import Config, from_dict, to_dict
from slotattn.models import build_model


# Weights shipped inside the package (src/slotattn/weights), trained by the commands in docs/models.md.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def pretrained_names() -> list[str]:
    """Names `load_model` / `from_pretrained` accept besides paths: the shipped weights."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def resolve(path_or_name: str | Path) -> Path:
    """A path as given if it exists, else the shipped weights of that name; a clear error otherwise."""
    path = Path(path_or_name)
    if path.exists():
        return path
    if isinstance(path_or_name, str) and path.name == path_or_name and not path.suffix:  # a bare name
        shipped = WEIGHTS_DIR / f"{path_or_name}.safetensors"
        if shipped.is_file():
            return shipped
        raise CheckpointError(f"{path_or_name}: no such file or directory, and not the name of shipped weights "
                              f"(available: {', '.join(pretrained_names()) or 'none'}; see docs/models.md)")
    raise CheckpointError(f"checkpoint not found: {path}")


def resolve_checkpoint(path_or_name: str | Path) -> Path:
    """The file to load: as `resolve`, with a run directory replaced by its newest complete checkpoint."""
    path = resolve(path_or_name)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: no complete checkpoint under {path / 'checkpoints'}")
        path = found
    return path


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, Config]:
    """The model rebuilt from the config stored with its weights, in eval mode, and that config.

    Args:
        path: `model.safetensors` written by `slotattn export`, a checkpoint `.pt`, a run directory, or the name
            of shipped weights (`pretrained_names()`, e.g. "tetrominoes").
        map_location: where to put the weights.
    """
    path = resolve_checkpoint(path)
    state = _read_state(path, map_location)
    try:
        cfg = from_dict(state["config"])
    except ValueError as err:  # a config key or value this version does not know
        raise CheckpointError(f"{path}: its stored config does not fit this version of slotattn: {err}") from err
    model = build_model(cfg)
    _load_state_dict(model, state["model"], f"{path}: the weights do not match the model its config builds")
    return model.to(map_location).eval(), cfg


def _read_state(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """{"model", "config", ...} of an exported .safetensors or a checkpoint."""
    return load_safetensors(path) if path.suffix == ".safetensors" else load_checkpoint(path, map_location)


def _load_state_dict(model: torch.nn.Module, weights: dict, problem: str) -> None:
    """`model.load_state_dict`, with missing/unexpected keys or shape mismatches as a CheckpointError."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).splitlines()[:4]
        raise CheckpointError(f"{problem}: " + " ".join(line.strip() for line in first)) from err


def from_pretrained(path_or_name: str | Path, model_class: type[torch.nn.Module] | None = None,
                    map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """A trained model in eval mode, from local files only.

    Args:
        path_or_name: the name of weights shipped with slotattn ("tetrominoes", "multi_dsprites"; docs/models.md),
            an exported `.safetensors`, a checkpoint or a run directory. The architecture comes from the config
            stored with the weights.
        model_class: if given, the class the weights must hold (e.g. `SlotAttentionAutoEncoder`); another one is a
            CheckpointError naming both.
        map_location: where to put the weights.
    """
    model, cfg = load_model(path_or_name, map_location)
    if model_class is not None and not isinstance(model, model_class):
        raise CheckpointError(f"{path_or_name}: holds a {type(model).__name__} (task {cfg.task!r}), "
                              f"not a {model_class.__name__}")
    return model


def load_weights_into(model: torch.nn.Module, cfg: Config, path_or_name: str | Path) -> Path:
    """Copy trained weights into `model` (built from `cfg`) to fine-tune it; returns the file they came from.

    The weights' stored model config must equal `cfg.model` except `model.init` (which only says how parameters
    are drawn before training); a difference is a CheckpointError naming the first differing keys.
    """
    path = resolve_checkpoint(path_or_name)
    state = _read_state(path)
    stored = dict(state["config"].get("model", {}))
    wanted = to_dict(cfg.model)
    differ = [key for key in wanted if key != "init" and key in stored and stored[key] != wanted[key]]
    differ += [key for key in stored if key not in wanted]
    if state["config"].get("task", cfg.task) != cfg.task:
        differ.insert(0, f"task ({state['config']['task']!r} there, {cfg.task!r} here)")
    if differ:
        shown = ", ".join(f"model.{key} ({stored.get(key)!r} there, {wanted.get(key)!r} here)"
                          if not key.startswith("task") else key for key in differ[:3])
        raise CheckpointError(f"train.init_from={path_or_name}: {path} holds a different model: {shown}")
    _load_state_dict(model, state["model"], f"train.init_from={path_or_name}: {path}: the weights do not fit the model")
    return path
