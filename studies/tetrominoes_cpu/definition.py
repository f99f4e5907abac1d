"""The CPU-recipe study (issue 26): which optimisation recipe learns the paper's Tetrominoes model fastest per image
on one CPU core.

The model is the paper's (configs/tetrominoes.yaml: 4 x 32-channel 5x5 encoder, 3 x 32-channel 5x5 decoder at full
resolution, T = 3, 4 slots); only optimisation settings change. The base is the project's CPU recipe
(configs/tetrominoes_cpu.yaml: official initialisation, lr 4e-4, warm-up 1,000 steps, batch 16, decay x0.5 per
20,000 steps). Every candidate gets BUDGET_IMAGES training images (on-the-fly scenes of its seed) on one core under
bf16 autocast, as every committed run trained, and is evaluated on the 320 held-out scenes every EVAL_IMAGES
images, so the study measures learning per image; a candidate that changes the cost of a step is reported with its
cost, not given more images. Beside FG-ARI each run records `cross_scene_ari` (`band_score`), which tells the band
trap (slots that split every image alike, by position) from slots that follow objects.

The runs committed up to 2026-12-07 were recorded by benchmarks/cpu_recipe.py; their JSON was converted to this
shape without retraining (each record's "note" says how).
"""

from pathlib import Path

import torch

from slotattn import run
from slotattn.data.build import build_eval_batches
from slotattn.metrics import ari
from studies.study import RecipeStudy

BUDGET_IMAGES = 153_600  # >= 150k images per run (issue 26): 9,600 steps of batch 16, 4,800 of batch 32
EVAL_IMAGES = 9_600  # 16 evaluations on the 320 held-out scenes per run


def cross_scene_ari(segmentations: torch.Tensor) -> float:
    """Mean ARI between the segmentations (B, H, W) of neighbouring scenes, scene i against scene i + 1.

    Slots that follow objects split two different scenes differently: near 0. Slots that split the image by position
    (the band trap) split every scene alike: well above 0. So it measures the trap from the masks, without FG-ARI.
    """
    return ari(segmentations[:-1], segmentations[1:]).mean().item()


def band_score(run_dir: Path, num: int = 64) -> float:
    """`cross_scene_ari` of the run's final model on the first `num` held-out scenes (argmax slot per pixel)."""
    cfg, model, _ = run.load_for_inference(run_dir, [f"train.eval_batch_size={num}", "train.device=cpu"])
    batch = next(iter(build_eval_batches(cfg, num=num)()))
    model.eval()
    with torch.no_grad():
        out = model(batch["image"].float(), generator=torch.Generator().manual_seed(cfg.train.seed))
    return cross_scene_ari(out.masks[:, :, 0].argmax(dim=1))


STUDY = RecipeStudy(
    name="tetrominoes_cpu",
    title="The paper's Tetrominoes model on one CPU core: recipe candidates",
    base="tetrominoes_cpu",
    base_overrides=("train.precision=bf16",),
    # One factor at a time against the base recipe.
    candidates={
        "base": (),
        "torch_init": ("model.init=torch",),  # PyTorch's default initialisation instead of the official code's
        "lr1e-3": ("optim.learning_rate=1e-3",),  # 2.5x the paper's learning rate
        "warmup250": ("optim.warmup_steps=250",),  # 4,000 images of warm-up instead of 16,000
        # batch 32 on the base's schedule per image: warm-up and decay halve in steps
        "bs32": ("train.batch_size=32", "optim.warmup_steps=500", "optim.decay_steps=10000"),
        "clip1": ("optim.grad_clip_norm=1.0",),  # global-norm clipping (the base's norm is ~1.7-2.2)
        "implicit": ("model.implicit_diff=true",),  # Chang et al. 2022: gradient through the last iteration only
        # Round 2: the two single changes that learned on every seed they ran (2026-12-06), together
        "torch_init_clip1": ("model.init=torch", "optim.grad_clip_norm=1.0"),
    },
    budget_images=BUDGET_IMAGES,
    eval_images=EVAL_IMAGES,
    final_iterations=(3,),
    measures={"cross_scene_ari": band_score},
)
