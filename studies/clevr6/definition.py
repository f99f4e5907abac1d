"""The CLEVR6 recipe study (issue 34): the optimisation of the CPU-scale CLEVR6 recipe (configs/clevr6_64.yaml: the
paper's CLEVR6 model at 64x64), two candidates x two seeds x 102,400 images each.

The base is configs/clevr6_64.yaml as it stands: the Tetrominoes study's choice (global-norm clipping at 1.0 on a
batch-16 schedule with a 1,000-step warm-up). The other candidate adds learned slot queries (BO-QSA), noise annealed
over the first half of the run: on the Multi-dSprites proxy (studies/multi_dsprites; its base and clip0.1 runs, seed
0, after 153,600 images) the Gaussian slots kept the background in one slot (0.98 of its pixels) but several slots
drew the same object, which per-slot queries are meant to prevent. Training reads a store of rendered scenes (rendering costs more than a step):

    slotattn generate clevr6 --resolution 64x64 --num 20000 --seed 0 --out data/clevr6_64
    slotattn generate clevr6 --resolution 64x64 --num 320 --seed 1000003 --out data/clevr6_64_eval
    CLEVR6_64_DATA=data/clevr6_64 CLEVR6_64_EVAL=data/clevr6_64_eval \\
        python -m studies.clevr6 run --candidate base --seed 0 --out runs/clevr6_study
"""

import os

from studies.study import RecipeStudy

BUDGET_IMAGES = 102_400  # >= 100k images per run: 6,400 steps of batch 16
EVAL_IMAGES = 6_400  # 16 in-run evaluations on the 320 held-out scenes
STEPS = BUDGET_IMAGES // 16


def data_overrides() -> tuple[str, ...]:
    """Where the rendered stores are: $CLEVR6_64_DATA and $CLEVR6_64_EVAL (stores of `slotattn generate clevr6
    --resolution 64x64`), so that a run reads them instead of rendering during training; none when unset."""
    train, held_out = os.environ.get("CLEVR6_64_DATA"), os.environ.get("CLEVR6_64_EVAL")
    return (*([f"data.path={train}"] if train else []), *([f"data.eval_path={held_out}"] if held_out else []))


STUDY = RecipeStudy(
    name="clevr6",
    title="The paper's CLEVR6 model at 64x64 on one CPU core: recipe candidates",
    base="clevr6_64",
    base_overrides=data_overrides(),
    candidates={
        "base": (),
        "queries": ("model.slot_init=learned_queries", f"model.query_noise_steps={STEPS // 2}"),
    },
    budget_images=BUDGET_IMAGES,
    eval_images=EVAL_IMAGES,
    scales={"full64": ()},
    final_iterations=(3, 5),
)
