"""What colours alone decide in a held-out split, and a trained model's FG-ARI on the scenes they do and do not.

For the evaluation split of a config (the same scenes `slotattn eval` scores: `data.eval_seed`, `--num`), this
counts the scenes where two objects of the same colour touch (`slotattn.metrics.touching_same_colour`), the
FG-ARI of a segmentation by same-colour connected regions (1.0 exactly on the other scenes), and, for each
checkpoint and test-time T, the model's FG-ARI over all scenes, the scenes colours separate, and the others.
Slot noise as in `slotattn eval`, so the "all" column equals its FG-ARI.

    python -m reproduction.colour_ceiling --config tetrominoes --num 320 \
        --checkpoint runs/tetro_s0 --num-iterations 3 5 7 --out benchmarks/results/reproduce/tetrominoes_colour_ceiling.json
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.data_throughput import machine
from slotattn.config import apply_overrides, load_config
from slotattn.data.build import build_eval_batches
from slotattn.metrics import colour_components, fg_ari, touching_same_colour
from slotattn.run import load_for_inference
from slotattn.tasks import build_task
from slotattn.training.engine import eval_outputs, resolve_device


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Model images ([-1, 1], channel-first) back to the stored uint8 [B, H, W, 3] (exact for 8-bit sources)."""
    return torch.round((image.permute(0, 2, 3, 1) + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()


def split_summary(cfg, num: int) -> dict:
    """Touching-same-colour flags and the colour-region FG-ARI of every scene of the split."""
    touching, oracle = [], []
    for batch in build_eval_batches(cfg, num=num)():
        images, ids = to_uint8(batch["image"]), batch["mask_ids"].numpy()
        touching.append(touching_same_colour(images, ids))
        oracle.append(fg_ari(batch["mask_ids"], torch.from_numpy(colour_components(images))).numpy())
    return {"touching": np.concatenate(touching), "colour_fg_ari": np.concatenate(oracle)}


def model_fg_ari(checkpoint: str, cfg, num: int, num_iterations: int | None) -> np.ndarray:
    """The model's FG-ARI of each scene, with `slotattn eval`'s slot noise for the training seed of `cfg` (the first
    checkpoint's), so every model of one call sees the same draw of initial slots."""
    _, model, _ = load_for_inference(checkpoint)
    device = resolve_device("cpu")
    task = build_task(cfg.task)
    scores = [task.per_example(out, batch)["fg_ari"].cpu().numpy()
              for out, batch in eval_outputs(model.to(device), build_eval_batches(cfg, num=num)(), device,
                                             seed=cfg.train.seed, num_iterations=num_iterations)]
    return np.concatenate(scores)


def mean(values: np.ndarray) -> float | None:
    """The mean, unrounded: pages round what they quote, and a value rounded here first can round the other way."""
    return float(np.nanmean(values)) if len(values) else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tetrominoes", help="recipe of the split (ignored with --checkpoint)")
    parser.add_argument("--checkpoint", action="append", default=[], help="a run dir or checkpoint (repeatable)")
    parser.add_argument("--num", type=int, default=320)
    parser.add_argument("--eval-seed", type=int, help="data.eval_seed (default: the config's)")
    parser.add_argument("--num-iterations", type=int, nargs="*", default=[], help="test-time T (default: trained)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    cfg = load_for_inference(args.checkpoint[0])[0] if args.checkpoint else load_config(args.config)
    if args.eval_seed is not None:
        cfg = apply_overrides(cfg, [f"data.eval_seed={args.eval_seed}"])
    split = split_summary(cfg, args.num)
    touching = split["touching"]
    result = {
        "what": __doc__.splitlines()[0],
        "command": "python -m reproduction.colour_ceiling " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "dataset": cfg.data.name, "num": int(len(touching)), "eval_seed": cfg.data.eval_seed,
        "touching_same_colour": int(touching.sum()), "touching_fraction": float(touching.mean()),
        "colour_regions_fg_ari": {"all": mean(split["colour_fg_ari"]),
                                  "touching": mean(split["colour_fg_ari"][touching])},
        "models": [],
    }
    for checkpoint in args.checkpoint:
        for t in args.num_iterations or [None]:
            scores = model_fg_ari(checkpoint, cfg, args.num, t)
            result["models"].append({"checkpoint": checkpoint, "num_iterations": t, "fg_ari": {
                "all": mean(scores), "colours_separate": mean(scores[~touching]),
                "touching_same_colour": mean(scores[touching])}})
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
