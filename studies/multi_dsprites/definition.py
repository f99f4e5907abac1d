"""The Multi-dSprites recipe study (issue 33): which optimisation recipe, and whether learned slot queries, get the
paper's Multi-dSprites model furthest per training image on one CPU core.

The model is the paper's (configs/multi_dsprites.yaml: 4 x 32-channel 5x5 encoder, 3 x 32-channel decoder at full
resolution, 6 slots, T = 3) except in the candidates that change it on purpose (T = 5 with implicit
differentiation, learned slot queries). The base is configs/multi_dsprites_cpu.yaml with global-norm clipping at
1.0, the recipe of the Multi-dSprites run from scratch of 2026-12-07 (FG-ARI 0.61-0.64 from 88k to 176k images) and
the Tetrominoes study's choice. Each candidate changes one thing; all get BUDGET_IMAGES training images of their
seed's generated scenes and are scored on the 320 held-out scenes at T = 3 (the paper's) and T = 5, with ARI and
the background measure beside FG-ARI (`studies.study.final_scores`).

Scales: "proxy32" draws the scenes at 64x64 and area-downsamples them to 32x32 (the position grids span [0, 1], so
the model is the same function of a coarser image) at ~1/4.5 of the cost per image; it ranks candidates first.
"full64" is the paper's 64x64, where the leaders are confirmed before the proxy's ranking decides anything.
"""

from studies.study import RecipeStudy

BUDGET_IMAGES = 153_600  # >= 150k images per run: 9,600 steps of batch 16, 4,800 of batch 32
EVAL_IMAGES = 9_600  # 16 in-run evaluations on the 320 held-out scenes
STEPS = BUDGET_IMAGES // 16

STUDY = RecipeStudy(
    name="multi_dsprites",
    title="The paper's Multi-dSprites model on one CPU core: recipe candidates",
    base="multi_dsprites_cpu",
    base_overrides=("optim.grad_clip_norm=1.0",),
    candidates={
        "base": (),
        # A schedule sized to the budget: the base's warm-up (500), then cosine decay to 0 at the run's last step
        # (Invariant Slot Attention's Tetrominoes config decays this way); the base keeps ~0.72 of the peak rate.
        "cosine": ("optim.schedule=cosine", f"optim.decay_steps={STEPS - 500}"),
        "clip0.05": ("optim.grad_clip_norm=0.05",),  # Invariant Slot Attention's clipping
        "clip0.1": ("optim.grad_clip_norm=0.1",),  # MESH's Multi-dSprites clipping
        "lr1e-3": ("optim.learning_rate=1e-3",),  # 2.5x the paper's learning rate
        # Chang et al. 2022: the gradient through the last iteration only, which makes more iterations safe
        "implicit_t5": ("model.implicit_diff=true", "model.num_iterations=5"),
        # BO-QSA: one learned query per slot, noise annealed to 0 over the first half of the run
        "queries": ("model.slot_init=learned_queries", f"model.query_noise_steps={STEPS // 2}"),
        # batch 32 on the base's schedule per image: warm-up and decay halve in steps
        "bs32": ("train.batch_size=32", "optim.warmup_steps=250", "optim.decay_steps=10000"),
    },
    budget_images=BUDGET_IMAGES,
    eval_images=EVAL_IMAGES,
    scales={
        "proxy32": ("model.resolution=[32,32]", "model.decoder_broadcast_size=[32,32]"),
        "full64": (),
    },
    final_iterations=(3, 5),
)
