"""Builders that turn `cfg.data` into training and evaluation batches (the only data code that reads the config)."""

import functools
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from slotattn.config import Config, ConfigError
from slotattn.data.clevr import RESOLUTION as CLEVR_RESOLUTION
from slotattn.data.clevr import TASKS as CLEVR_TASKS
from slotattn.data.clevr import preprocess_clevr_image, scene_targets
from slotattn.data.clevr6 import preprocess_clevr6
from slotattn.data.errors import DataError
from slotattn.data.generators.clevr import generate_clevr, generate_clevr_batch
from slotattn.data.generators.multi_dsprites import VARIANTS as MULTI_DSPRITES_VARIANTS
from slotattn.data.generators.multi_dsprites import generate_multi_dsprites
from slotattn.data.generators.tetrominoes import generate_tetrominoes
from slotattn.data.store import Store, open_store
from slotattn.data.stream import GeneratedSource, GenerateFn, StoreSource, eval_batches

def generate_clevr6(num: int, rng: np.random.Generator, max_objects: int = 6,
                    resolution: tuple[int, int] = CLEVR_RESOLUTION) -> dict[str, np.ndarray]:
    """CLEVR6 for object discovery, rendered on the fly: 320x240 scenes of 3-6 objects (clevr_with_masks layout),
    cropped and resized to 128x128 (or `resolution`) as the official pipeline (`preprocess_clevr6`).
    `max_objects=10` gives the whole clevr_with_masks distribution (the paper's "CLEVR10" generalisation test)."""
    return preprocess_clevr6(generate_clevr_batch(num, rng, 320, 240, min_objects=3, max_objects=max_objects),
                             resolution=resolution)


def generate_clevr_set_prediction(num: int, rng: np.random.Generator,
                                  resolution: tuple[int, int] = CLEVR_RESOLUTION) -> dict[str, np.ndarray]:
    """CLEVR set prediction, rendered on the fly: 480x320 frames (CLEVR v1.0 size) of 3-10 objects, the whole
    frame resized to 128x128 (no crop, as the official pipeline), and the official 19-d targets.

    At a smaller `resolution` the frame is rendered smaller in proportion (240x160 for 64x64: scenes drawn from the
    same distribution, ~4x cheaper to render; the renderer's visibility checks work in pixels, so one seed does not
    give the same scenes at both sizes), never below the output size."""
    scale = max(resolution[0] / CLEVR_RESOLUTION[0], resolution[1] / CLEVR_RESOLUTION[1], 1 / 8)
    width, height = (max(round(480 * scale), resolution[1]), max(round(320 * scale), resolution[0])) if scale < 1 \
        else (480, 320)
    scenes = generate_clevr(num, rng, width=width, height=height)
    task = CLEVR_TASKS["set_prediction"]
    with torch.no_grad():
        images = preprocess_clevr_image(np.stack([s["image"] for s in scenes]), task.crop, resolution)
    images = torch.round((images.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    targets = np.stack([scene_targets(s["scene"], task.max_objects) for s in scenes])
    return {"image": images, "target": targets, "num_objects": targets[:, :, -1].sum(1).astype(np.int64)}


# Dataset specifications slotattn can generate, by `data.name`, and their variants (first = default).
GENERATORS: dict[str, GenerateFn] = {
    "tetrominoes": generate_tetrominoes,
    "multi_dsprites": generate_multi_dsprites,
    "clevr6": generate_clevr6,
    "clevr": generate_clevr_set_prediction,
}
VARIANTS: dict[str, tuple[str, ...]] = {
    "tetrominoes": (),
    "multi_dsprites": ("colored_on_grayscale", *(v for v in MULTI_DSPRITES_VARIANTS if v != "colored_on_grayscale")),
    "clevr6": (),
    "clevr": (),
}


# The image size each generator draws at, (H, W). The CLEVR renderers resize to any other size as they crop; the
# others are area-downsampled by a whole factor (`downsampled`), e.g. Multi-dSprites 64 -> 32 for a cheaper proxy.
NATIVE_RESOLUTION: dict[str, tuple[int, int]] = {"tetrominoes": (35, 35), "multi_dsprites": (64, 64),
                                                 "clevr6": CLEVR_RESOLUTION, "clevr": CLEVR_RESOLUTION}
RESIZED_BY_RENDERER = ("clevr6", "clevr")

# The most objects per scene of each generated dataset as specified (its paper/official distribution).
DEFAULT_MAX_OBJECTS: dict[str, int] = {"tetrominoes": 3, "clevr6": 6, "clevr": 10}
# Generators that can draw scenes with another number of objects (`data.max_objects`), and the largest they can.
MAX_OBJECTS_LIMIT: dict[str, int] = {"multi_dsprites": 10, "clevr6": 10}


def default_max_objects(name: str, variant: str | None = None) -> int:
    """The most objects a scene of this generated dataset (and variant) has by default."""
    if name == "multi_dsprites":
        return MULTI_DSPRITES_VARIANTS[variant or VARIANTS[name][0]].max_objects
    return DEFAULT_MAX_OBJECTS[name]


def generator_for(name: str, variant: str | None = None, max_objects: int | None = None,
                  resolution: tuple[int, int] | None = None) -> GenerateFn:
    """`generate(num, rng)` for a dataset (and variant; the paper's by default), optionally with up to
    `max_objects` objects per scene instead of the dataset's own number (multi_dsprites and clevr6 only), and at
    `resolution` instead of the dataset's own (`NATIVE_RESOLUTION`; see `downsampled`)."""
    generate = _generator(name, variant, max_objects)
    if resolution is None or tuple(resolution) == NATIVE_RESOLUTION[name]:
        return generate
    resolution = tuple(resolution)
    if name in RESIZED_BY_RENDERER:
        return functools.partial(generate, resolution=resolution)
    native = NATIVE_RESOLUTION[name]
    factor = native[0] // resolution[0]
    if resolution[0] * factor != native[0] or resolution[1] * factor != native[1]:
        raise DataError(f"model.resolution={list(resolution)}: generated '{name}' scenes are "
                        f"{native[0]}x{native[1]} and can only be downsampled by a whole factor "
                        f"(e.g. {native[0] // 2}x{native[1] // 2} where that divides), or set data.path")
    return functools.partial(downsampled, generate, factor)


def downsampled(generate: GenerateFn, factor: int, num: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`generate(num, rng)` with `image` area-averaged over `factor` x `factor` blocks (rounded to uint8) and `mask`
    sampled at each block's pixel (factor // 2, factor // 2), nearest-neighbour with half-pixel centres, so every
    pixel keeps exactly one entity. Other arrays are per scene or per object and stay as they are."""
    arrays = generate(num, rng)
    image = arrays["image"]  # (num, H, W, C)
    n, h, w, c = image.shape
    blocks = image.reshape(n, h // factor, factor, w // factor, factor, c).astype(np.float32)
    arrays["image"] = np.round(blocks.mean(axis=(2, 4))).astype(np.uint8)
    arrays["mask"] = np.ascontiguousarray(arrays["mask"][:, :, factor // 2::factor, factor // 2::factor])
    return arrays


def _generator(name: str, variant: str | None, max_objects: int | None) -> GenerateFn:
    if name not in GENERATORS:
        raise DataError(
            f"no generator for dataset '{name}' (available: {', '.join(sorted(GENERATORS))}); "
            "set data.path to a dataset directory instead"
        )
    variants = VARIANTS[name]
    if variant is not None and variant not in variants:
        allowed = ", ".join(variants) if variants else "none"
        raise DataError(f"dataset '{name}' has no variant '{variant}' (variants: {allowed})")
    extra = {}
    if max_objects is not None and max_objects != default_max_objects(name, variant):
        limit = MAX_OBJECTS_LIMIT.get(name)
        if limit is None or not 1 <= max_objects <= limit:
            can = ", ".join(f"{k} (up to {v})" for k, v in MAX_OBJECTS_LIMIT.items())
            raise DataError(f"data.max_objects={max_objects}: the '{name}' generator draws "
                            f"{default_max_objects(name, variant)} objects at most and cannot change that; "
                            f"generators that can: {can}")
        extra["max_objects"] = max_objects
    if variants:
        return functools.partial(GENERATORS[name], variant=variant or variants[0], **extra)
    return functools.partial(GENERATORS[name], **extra) if extra else GENERATORS[name]


def open_checked_store(path: str, cfg: Config) -> Store:
    """Open a store and check it holds `cfg.data.name` images of `cfg.model.resolution`."""
    store = open_store(path)
    if store.name != cfg.data.name:
        raise DataError(f"{path}: holds dataset '{store.name}' but the config says data.name='{cfg.data.name}'")
    image_shape = tuple(store.arrays["image"].shape[1:]) if "image" in store.arrays else None
    expected = (*cfg.model.resolution, 3)
    if image_shape != expected:
        raise DataError(f"{path}: images are {image_shape}, the model expects {expected} (model.resolution)")
    return store


# Datasets whose generator renders 3-D scenes: ~10 (clevr6) and ~5 (clevr set prediction, 480x320 frames) scenes/s
# per CPU core, against ~1,000 images/s a GPU training step consumes (benchmarks/results/data_pipeline.json).
RENDERED = ("clevr6", "clevr")
# Scenes in the paper's training sets: the first 70,000 of clevr_with_masks (CLEVR6, `clevr6.TRAIN_SIZE`) and CLEVR
# v1.0's 70,000 training images (set prediction).
RENDERED_TRAIN_SIZE = 70_000


def store_command(cfg: Config, num: int = RENDERED_TRAIN_SIZE, out: str | None = None) -> str:
    """The one `slotattn generate` command that writes a store `data.path` accepts for `cfg` (dataset and
    `model.resolution`): `num` scenes drawn from the dataset's own distribution, into `out` (default data/NAME).

    For `clevr` it needs `--format store`: without it `generate clevr` writes CLEVR v1.0 files (PNG frames + scenes
    JSON), which only `slotattn convert clevr` reads, not `data.path`.
    """
    name = cfg.data.name
    resolution = tuple(cfg.model.resolution)
    args = ["slotattn", "generate", name, *(["--format", "store"] if name == "clevr" else []), "--num", str(num)]
    if resolution != NATIVE_RESOLUTION[name]:
        args += ["--resolution", f"{resolution[0]}x{resolution[1]}"]
    return " ".join([*args, "--out", out or f"data/{name}"])


def check_train_data_rate(cfg: Config, device: torch.device) -> None:
    """Refuse to feed a GPU from scenes rendered during training: CLEVR (`data.name` clevr6 or clevr) without
    `data.path` on a CUDA device. Rendering gives ~5-10 images/s per core; a GPU step takes ~1,000, so the GPU would
    wait on the renderer almost all the time. The error names the command that renders a store once.

    Raises:
        ConfigError: the case above; the CPU, a store (`data.path`) and the other generators (thousands of images/s
            per core) pass.
    """
    if device.type != "cuda" or cfg.data.path is not None or cfg.data.name not in RENDERED:
        return
    rate = "~10" if cfg.data.name == "clevr6" else "~5"
    note = ""
    if cfg.data.max_objects is not None and cfg.data.max_objects != default_max_objects(cfg.data.name):
        note = (f"; note: that store holds the dataset's own scenes, up to {default_max_objects(cfg.data.name)} "
                f"objects, as `slotattn generate` has no option for data.max_objects={cfg.data.max_objects}")
    raise ConfigError(
        f"data.name={cfg.data.name} without data.path on {device}: training would render CLEVR scenes while it "
        f"trains, {rate} images/s per CPU core against the ~1,000 images/s a GPU step takes, and the GPU would wait "
        f"on the renderer; render a store once with `{store_command(cfg)}` and train from it with --set "
        f"data.path=data/{cfg.data.name} (the held-out split may stay generated: it is made once per run){note}"
    )


def build_train_source(cfg: Config, rank: int = 0, world_size: int = 1) -> GeneratedSource | StoreSource:
    """Step-indexed training batches: from `data.path` if set, else generated on the fly."""
    if cfg.train.batch_size % world_size:
        raise ValueError(f"train.batch_size={cfg.train.batch_size} is not divisible by {world_size} processes")
    if cfg.data.path is not None:
        return StoreSource(open_checked_store(cfg.data.path, cfg), cfg.train.batch_size, cfg.train.seed,
                           rank, world_size)
    generate = generator_for(cfg.data.name, cfg.data.variant, cfg.data.max_objects, cfg.model.resolution)
    return GeneratedSource(generate, cfg.train.batch_size // world_size, cfg.train.seed, rank)


def build_eval_batches(
    cfg: Config, path: str | None = None, num: int | None = None, rank: int = 0, world_size: int = 1
) -> Callable[[], Iterator[dict[str, torch.Tensor]]]:
    """A factory of fresh iterators over the held-out split (`path` > `data.eval_path` > generated)."""
    path = path or cfg.data.eval_path
    if path:
        source: Store | GenerateFn = open_checked_store(path, cfg)
    else:
        max_objects = cfg.data.eval_max_objects if cfg.data.eval_max_objects is not None else cfg.data.max_objects
        source = generator_for(cfg.data.name, cfg.data.variant, max_objects, cfg.model.resolution)
    num = num or cfg.data.num_eval
    if isinstance(source, Store) and len(source) == 0:
        raise DataError(f"{path}: the evaluation split is empty")
    return lambda: eval_batches(source, num, cfg.train.eval_batch_size, cfg.data.eval_seed, rank, world_size)


def held_out_size(cfg: Config, path: str | None = None, num: int | None = None) -> int:
    """How many examples `build_eval_batches(cfg, path, num)` gives: `num` (default `data.num_eval`), or all of a
    smaller store when `num` is not given; a `num` larger than the store raises DataError."""
    path = path or cfg.data.eval_path
    wanted = num or cfg.data.num_eval
    if not path:
        return wanted
    available = len(open_checked_store(path, cfg))
    if num is not None and num > available:
        raise DataError(f"{path}: asked for {num:,} examples, the split holds {available:,}")
    return min(wanted, available)


def generate_to_arrays(
    name: str, num: int, seed: int, chunk: int = 4096, variant: str | None = None,
    resolution: tuple[int, int] | None = None,
) -> Iterable[dict[str, np.ndarray]]:
    """Chunks of a generated dataset, chunk i drawn with `default_rng([seed, i])` (what `slotattn generate` writes),
    at the dataset's own resolution or `resolution` (`generator_for`)."""
    generate = generator_for(name, variant, resolution=resolution)
    for i, start in enumerate(range(0, num, chunk)):
        yield generate(min(chunk, num - start), np.random.default_rng([seed, i]))
