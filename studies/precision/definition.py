"""Does mixed precision change what the model learns? FG-ARI learning curves, float32 against bf16 autocast, over
seeds: the two candidates differ only in `train.precision`, with the same data, slot noise and evaluation.

The base is the `cpu` scale of the paper studies (`slotattn.studies.SCALES["cpu"]`: configs/tetrominoes_small.yaml,
1,500 steps of batch 16, warm-up 150, FG-ARI on 256 held-out scenes every 250 steps), so the curves also say whether
that scale's bf16 runs can be trusted. Each run also records its training speed (`train_img_per_s`: the median
images/s of its logged steps after the first tenth, as benchmarks/learning_curve.py reads it).

    taskset -c 1 env OMP_NUM_THREADS=1 python -m studies.precision run --candidate bf16 --seed 0 --out runs/precision
    python -m studies.precision summary --page docs/performance.md

The runs committed on 2026-11-26 were recorded by benchmarks/precision_curves.py; their JSON was split into per-run
JSON of this shape without retraining (each record's "note" says how).
"""

from benchmarks.learning_curve import analyze
from slotattn.studies import SCALES
from studies.study import RecipeStudy

SCALE = SCALES["cpu"]
BUDGET_IMAGES = 24_000  # the scale's 1,500 steps of batch 16
EVAL_IMAGES = 4_000  # every 250 steps: 6 evaluations per run

STUDY = RecipeStudy(
    name="precision",
    title="float32 against bf16 autocast: learning curves over seeds",
    base=SCALE.recipe,
    base_overrides=SCALE.overrides,
    candidates={"fp32": ("train.precision=fp32",), "bf16": ("train.precision=bf16",)},
    budget_images=BUDGET_IMAGES,
    eval_images=EVAL_IMAGES,
    final_iterations=(3,),
    measures={"train_img_per_s": lambda run_dir: analyze(run_dir)["median_train_img_per_s"]},
)
