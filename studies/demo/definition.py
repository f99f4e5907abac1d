"""The demo-recipe study: which recipe learns Tetrominoes (the demo's model) in the demo's budget on a slow CPU.

The budget is what `make demo` completed in its 5 minutes on the slowest machine the project runs on (2 cores, AVX2
only, float32, 2026-12-04): BUDGET_STEPS steps of batch BUDGET_BATCH with the old demo recipe
(configs/tetrominoes_small.yaml, the base). Every candidate gets that many images divided by its cost of an image
relative to the base (`costs`, measured by `cost` below), in float32 whatever machine runs the study, so the study
measures learning within the slow machine's budget, not the speed of the machine it ran on. Each run is evaluated on
the demo's 256 held-out scenes every quarter of its steps (rounded down) and at its end. Training reads a store of
the demo's scenes, $DEMO_STUDY_DATA (default runs/demo_data):

    slotattn generate tetrominoes --num 60000 --seed 0 --out runs/demo_data
    taskset -c 1 env OMP_NUM_THREADS=1 python -m studies.demo run --candidate torch_enc3_lr1e-3_wu100 --seed 0 \\
        --out runs/demo_study
    python -m studies.demo summary --page docs/performance.md
    python -m studies.demo cost torch_enc3_lr1e-3_wu100      # cost of an image relative to the base, one process

The runs committed up to 2026-12-07 were recorded by benchmarks/demo_recipe.py, which kept only their summary; it
was split into per-run JSON of this shape without retraining (each record's "note" says how).
"""

import argparse
import os
import statistics
from collections.abc import Sequence

import torch

from benchmarks.precision_speed import seconds_per_image
from studies.study import RecipeStudy

BUDGET_STEPS, BUDGET_BATCH = 990, 32  # `make demo` in 5 minutes on a 2-core AVX2-only EPYC, float32 (2026-12-04)
BUDGET_IMAGES = BUDGET_STEPS * BUDGET_BATCH
DATA = os.environ.get("DEMO_STUDY_DATA", "runs/demo_data")  # `slotattn generate tetrominoes --num 60000 --seed 0`

# name -> (overrides of configs/tetrominoes_small.yaml, cost of an image relative to the base's). Costs: `cost` on
# one thread of the study's machine, 2026-12-06, interleaved, with two study runs beside it: batch 8/16 0.98/0.94,
# implicit_diff 0.87 (run at 1.0 here), 3x3 encoder 0.80, decoder 3 x 32 channels 1.77 (5x5: 2.27), both 1.60.
CANDIDATES: dict[str, tuple[tuple[str, ...], float]] = {
    "base": ((), 1.0),
    "torch_init": (("model.init=torch",), 1.0),
    "lr1e-3_wu100": (("optim.learning_rate=1e-3", "optim.warmup_steps=100"), 1.0),
    "lr1e-3_wu100_torch": (("optim.learning_rate=1e-3", "optim.warmup_steps=100", "model.init=torch"), 1.0),
    "lr1e-3_wu100_clip1": (("optim.learning_rate=1e-3", "optim.warmup_steps=100", "optim.grad_clip_norm=1.0"), 1.0),
    "lr2e-3_wu200_clip1": (("optim.learning_rate=2e-3", "optim.warmup_steps=200", "optim.grad_clip_norm=1.0"), 1.0),
    "bs16_lr1e-3_wu200": (("train.batch_size=16", "optim.learning_rate=1e-3", "optim.warmup_steps=200"), 1.0),
    "lr1e-3_wu100_implicit": (("optim.learning_rate=1e-3", "optim.warmup_steps=100", "model.implicit_diff=true"),
                              1.0),
    # Round 2: PyTorch's initialisation, smaller batches (more updates per image), a wider decoder.
    "torch_bs16_wu200": (("model.init=torch", "train.batch_size=16", "optim.warmup_steps=200"), 1.0),
    "torch_bs16_lr1e-3_wu200": (("model.init=torch", "train.batch_size=16", "optim.learning_rate=1e-3",
                                 "optim.warmup_steps=200"), 1.0),
    "torch_bs8_lr1e-3_wu200": (("model.init=torch", "train.batch_size=8", "optim.learning_rate=1e-3",
                                "optim.warmup_steps=200"), 1.0),
    "torch_bs8_wu200": (("model.init=torch", "train.batch_size=8", "optim.warmup_steps=200"), 1.0),
    "bs8_lr1e-3_wu200": (("train.batch_size=8", "optim.learning_rate=1e-3", "optim.warmup_steps=200"), 1.0),
    "torch_bs16_wu200_dec32": (("model.init=torch", "train.batch_size=16", "optim.warmup_steps=200",
                                "model.decoder_channels=[32,32,32]", "model.decoder_strides=[1,1,1]"), 2.0),
    # Round 3: a higher learning rate with clipping; a cheaper encoder (3x3 kernels).
    "torch_lr2e-3_wu100_clip1": (("model.init=torch", "optim.learning_rate=2e-3", "optim.warmup_steps=100",
                                  "optim.grad_clip_norm=1.0"), 1.0),
    "torch_enc3_lr1e-3_wu100": (("model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                 "model.encoder_kernel_size=3"), 0.8),
    # Round 4: the decoder's width (the paper's Tetrominoes decoder is 3 x 32 channels, 5x5) paid for by the cost.
    "torch_lr1e-3_wu100_dec32": (("model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                  "model.decoder_channels=[32,32,32]", "model.decoder_strides=[1,1,1]"), 1.8),
    "torch_lr1e-3_wu100_paperdec": (("model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                     "model.decoder_channels=[32,32,32]", "model.decoder_strides=[1,1,1]",
                                     "model.decoder_kernel_size=5"), 2.3),
    "torch_bs8_lr1e-3_wu200_paperdec": (("model.init=torch", "train.batch_size=8", "optim.learning_rate=1e-3",
                                         "optim.warmup_steps=200", "model.decoder_channels=[32,32,32]",
                                         "model.decoder_strides=[1,1,1]", "model.decoder_kernel_size=5"), 2.3),
    # Round 5: the 3x3 encoder with smaller batches.
    "torch_enc3_bs8_lr1e-3_wu200": (("model.init=torch", "train.batch_size=8", "optim.learning_rate=1e-3",
                                     "optim.warmup_steps=200", "model.encoder_kernel_size=3"), 0.8),
    "torch_enc3_bs16_lr1e-3_wu200": (("model.init=torch", "train.batch_size=16", "optim.learning_rate=1e-3",
                                      "optim.warmup_steps=200", "model.encoder_kernel_size=3"), 0.8),
    "torch_enc3_lr2e-3_wu100_clip1": (("model.init=torch", "optim.learning_rate=2e-3", "optim.warmup_steps=100",
                                       "optim.grad_clip_norm=1.0", "model.encoder_kernel_size=3"), 0.8),
    "torch_enc3": (("model.init=torch", "model.encoder_kernel_size=3"), 0.8),  # the old learning rate, warm-up
    "torch_enc3_lr1e-3_wu100_decay1k": (("model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                         "optim.decay_steps=1000", "model.encoder_kernel_size=3"), 0.8),
    "enc3_lr1e-3_wu100": (("optim.learning_rate=1e-3", "optim.warmup_steps=100", "model.encoder_kernel_size=3"), 0.8),
    "torch_lr1e-3_wu100_enc3_dec32": (("model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                       "model.encoder_kernel_size=3", "model.decoder_channels=[32,32,32]",
                                       "model.decoder_strides=[1,1,1]"), 1.6),
    # Round 6: global-norm clipping on the chosen recipe (in the CPU-recipe study clipping learned on every seed).
    "torch_enc3_lr1e-3_wu100_clip1": (("model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                       "model.encoder_kernel_size=3", "optim.grad_clip_norm=1.0"), 0.8),
}

STUDY = RecipeStudy(
    name="demo",
    title="The demo's model in the demo's 5-minute budget on a 2-core AVX2 CPU: recipe candidates",
    base="tetrominoes_small",
    base_overrides=(f"data.path={DATA}", "train.precision=fp32"),
    candidates={name: overrides for name, (overrides, _) in CANDIDATES.items()},
    costs={name: cost for name, (_, cost) in CANDIDATES.items()},
    budget_images=BUDGET_IMAGES,
    eval_images=None,
    evaluations=4,
    final_iterations=(3,),
)


def measure_costs(names: Sequence[str], rounds: int = 3) -> dict[str, float]:
    """Each candidate's cost of a training image relative to `base`, measured interleaved in this one process."""
    per_image = {name: [] for name in ["base", *names]}
    for _ in range(rounds):
        for name in per_image:
            per_image[name].append(seconds_per_image(STUDY.config(name, 0)))
    base = statistics.median(per_image["base"])
    return {name: statistics.median(times) / base for name, times in per_image.items()}


def cost_main(argv: Sequence[str] | None = None) -> None:
    """`python -m studies.demo cost CANDIDATE...`: what goes into `CANDIDATES` as a new candidate's cost."""
    parser = argparse.ArgumentParser(prog="python -m studies.demo cost", description=measure_costs.__doc__)
    parser.add_argument("candidates", nargs="+", choices=list(STUDY.candidates))
    for name, ratio in measure_costs(parser.parse_args(argv).candidates).items():
        print(f"{name:28s} {ratio:.3f}x the base recipe's cost per image ({torch.get_num_threads()} thread(s))")
