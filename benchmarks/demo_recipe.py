"""The demo-recipe study: which recipe learns Tetrominoes (the demo's model) in the demo's budget on a slow CPU.

The budget is what `make demo` completes in its 5 minutes on the slowest machine the project runs on (2 cores,
AVX2 only, float32): 990 steps of batch 32, i.e. 31,680 images, with the demo model's cost per image. Every
candidate gets that many images in float32 whatever machine runs the study, so the study measures learning per
image at the slow machine's budget, not the speed of the machine it ran on. Candidates that change the cost of
an image (`cost` below: measured step-time ratio to the base recipe in one process) get proportionally fewer.

    python -m benchmarks.demo_recipe run --candidate base --seed 0 --out /tmp/demo_study   # one run, one core
    python -m benchmarks.demo_recipe summary --out /tmp/demo_study --json benchmarks/results/demo_recipe.json

`run` trains configs/tetrominoes_small.yaml (the demo recipe until this study) plus the candidate's overrides for the budget, evaluates FG-ARI on the demo's 256
held-out scenes four times along the way and writes OUT/CANDIDATE_sSEED.json. `summary` gathers them: per
candidate the final FG-ARI of every seed, min, mean and sample std (ddof 1), and the curve against images.
"""

import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks import recipe_study
from slotattn import load_config, run
from slotattn.config import apply_overrides
from slotattn.training.runlog import describe_device, read_metrics

BUDGET_STEPS, BUDGET_BATCH = 990, 32  # `make demo` in 5 minutes on a 2-core AVX2-only EPYC, float32 (2026-12-04)
BUDGET_IMAGES = BUDGET_STEPS * BUDGET_BATCH

# name -> (overrides of configs/tetrominoes_small.yaml, cost of an image relative to the demo model's). Costs: `cost` on one
# thread of the study's machine, 2026-12-06, interleaved, with two study runs beside it: batch 8/16 0.98/0.94,
# implicit_diff 0.87 (run at 1.0 here), 3x3 encoder 0.80, decoder 3 x 32 channels 1.77 (5x5: 2.27), both 1.60.
CANDIDATES: dict[str, tuple[list[str], float]] = {
    "base": ([], 1.0),
    "torch_init": (["model.init=torch"], 1.0),
    "lr1e-3_wu100": (["optim.learning_rate=1e-3", "optim.warmup_steps=100"], 1.0),
    "lr1e-3_wu100_torch": (["optim.learning_rate=1e-3", "optim.warmup_steps=100", "model.init=torch"], 1.0),
    "lr1e-3_wu100_clip1": (["optim.learning_rate=1e-3", "optim.warmup_steps=100", "optim.grad_clip_norm=1.0"], 1.0),
    "lr2e-3_wu200_clip1": (["optim.learning_rate=2e-3", "optim.warmup_steps=200", "optim.grad_clip_norm=1.0"], 1.0),
    "bs16_lr1e-3_wu200": (["train.batch_size=16", "optim.learning_rate=1e-3", "optim.warmup_steps=200"], 1.0),
    "lr1e-3_wu100_implicit": (["optim.learning_rate=1e-3", "optim.warmup_steps=100", "model.implicit_diff=true"],
                              1.0),
    # Round 2: PyTorch's initialisation, smaller batches (more updates per image), a wider decoder.
    "torch_bs16_wu200": (["model.init=torch", "train.batch_size=16", "optim.warmup_steps=200"], 1.0),
    "torch_bs16_lr1e-3_wu200": (["model.init=torch", "train.batch_size=16", "optim.learning_rate=1e-3",
                                 "optim.warmup_steps=200"], 1.0),
    "torch_bs8_lr1e-3_wu200": (["model.init=torch", "train.batch_size=8", "optim.learning_rate=1e-3",
                                "optim.warmup_steps=200"], 1.0),
    "torch_bs8_wu200": (["model.init=torch", "train.batch_size=8", "optim.warmup_steps=200"], 1.0),
    "bs8_lr1e-3_wu200": (["train.batch_size=8", "optim.learning_rate=1e-3", "optim.warmup_steps=200"], 1.0),
    "torch_bs16_wu200_dec32": (["model.init=torch", "train.batch_size=16", "optim.warmup_steps=200",
                                "model.decoder_channels=[32,32,32]", "model.decoder_strides=[1,1,1]"], 2.0),
    # Round 3: a higher learning rate with clipping; a cheaper encoder (3x3 kernels).
    "torch_lr2e-3_wu100_clip1": (["model.init=torch", "optim.learning_rate=2e-3", "optim.warmup_steps=100",
                                  "optim.grad_clip_norm=1.0"], 1.0),
    "torch_enc3_lr1e-3_wu100": (["model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                 "model.encoder_kernel_size=3"], 0.8),
    # Round 4: the decoder's width (the paper's Tetrominoes decoder is 3 x 32 channels, 5x5) paid for by the cost.
    "torch_lr1e-3_wu100_dec32": (["model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                  "model.decoder_channels=[32,32,32]", "model.decoder_strides=[1,1,1]"], 1.8),
    "torch_lr1e-3_wu100_paperdec": (["model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                     "model.decoder_channels=[32,32,32]", "model.decoder_strides=[1,1,1]",
                                     "model.decoder_kernel_size=5"], 2.3),
    "torch_bs8_lr1e-3_wu200_paperdec": (["model.init=torch", "train.batch_size=8", "optim.learning_rate=1e-3",
                                         "optim.warmup_steps=200", "model.decoder_channels=[32,32,32]",
                                         "model.decoder_strides=[1,1,1]", "model.decoder_kernel_size=5"], 2.3),
    # Round 5: the 3x3 encoder with smaller batches.
    "torch_enc3_bs8_lr1e-3_wu200": (["model.init=torch", "train.batch_size=8", "optim.learning_rate=1e-3",
                                     "optim.warmup_steps=200", "model.encoder_kernel_size=3"], 0.8),
    "torch_enc3_bs16_lr1e-3_wu200": (["model.init=torch", "train.batch_size=16", "optim.learning_rate=1e-3",
                                      "optim.warmup_steps=200", "model.encoder_kernel_size=3"], 0.8),
    "torch_enc3_lr2e-3_wu100_clip1": (["model.init=torch", "optim.learning_rate=2e-3", "optim.warmup_steps=100",
                                       "optim.grad_clip_norm=1.0", "model.encoder_kernel_size=3"], 0.8),
    "torch_enc3": (["model.init=torch", "model.encoder_kernel_size=3"], 0.8),  # the old learning rate, warm-up
    "torch_enc3_lr1e-3_wu100_decay1k": (["model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                         "optim.decay_steps=1000", "model.encoder_kernel_size=3"], 0.8),
    "enc3_lr1e-3_wu100": (["optim.learning_rate=1e-3", "optim.warmup_steps=100", "model.encoder_kernel_size=3"], 0.8),
    "torch_lr1e-3_wu100_enc3_dec32": (["model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                       "model.encoder_kernel_size=3", "model.decoder_channels=[32,32,32]",
                                       "model.decoder_strides=[1,1,1]"], 1.6),
    # Round 6: global-norm clipping on the chosen recipe (in the CPU-recipe study clipping learned on every seed).
    "torch_enc3_lr1e-3_wu100_clip1": (["model.init=torch", "optim.learning_rate=1e-3", "optim.warmup_steps=100",
                                       "model.encoder_kernel_size=3", "optim.grad_clip_norm=1.0"], 0.8),
}


def candidate_config(name: str, seed: int, data: str):
    overrides, cost = CANDIDATES[name]
    cfg = load_config("tetrominoes_small", [f"data.path={data}", *overrides])
    steps = round(BUDGET_IMAGES / cost / cfg.train.batch_size)
    return apply_overrides(cfg, [
        f"train.seed={seed}", "train.precision=fp32", f"train.steps={steps}", "train.max_minutes=null",
        f"train.eval_every={steps // 4}", f"train.ckpt_every={steps}", f"train.vis_every={steps}",
        "train.log_every=50"])


def run_one(name: str, seed: int, out: Path, data: str) -> Path:
    cfg = candidate_config(name, seed, data)
    run_dir = out / f"{name}_s{seed}"
    start = time.time()
    run.train(cfg, run_dir)
    curve = recipe_study.eval_curve(read_metrics(run_dir), cfg.train.batch_size)
    result = {"candidate": name, "overrides": CANDIDATES[name][0], "seed": seed, "steps": cfg.train.steps,
              "batch_size": cfg.train.batch_size, "images": cfg.train.steps * cfg.train.batch_size,
              "precision": "fp32", "fg_ari": curve[-1]["fg_ari"], "curve": curve,
              "machine": describe_device(torch.device("cpu")),
              "minutes": round((time.time() - start) / 60, 2), "date": time.strftime("%Y-%m-%d")}
    path = out / f"{name}_s{seed}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def measure_costs(names: list[str], data: str, rounds: int = 3) -> dict[str, float]:
    """Each candidate's cost of an image relative to `base`, measured interleaved in this one process."""
    per_image = {name: [] for name in ["base", *names]}
    for _ in range(rounds):
        for name in per_image:
            per_image[name].append(recipe_study.seconds_per_image(candidate_config(name, 0, data)))
    base = statistics.median(per_image["base"])
    return {name: statistics.median(times) / base for name, times in per_image.items()}


def summarize(out: Path) -> dict:
    return {"budget": {"steps": BUDGET_STEPS, "batch_size": BUDGET_BATCH, "images": BUDGET_IMAGES,
                       "precision": "fp32"}, **recipe_study.summarize(out)}


def render_into(page: Path, summary: dict) -> str:
    """`page`'s text with its demo-recipe table rendered from `summary`."""
    return recipe_study.render_into(page, "demo_recipe", recipe_study.markdown_table(summary, "tetrominoes_small"))


def main(argv=None) -> None:
    parser, run_parser, sub = recipe_study.study_parser(__doc__, CANDIDATES, "demo-recipe")
    run_parser.add_argument("--data", required=True, help="the demo's training scenes (slotattn generate "
                                                          "tetrominoes --num 60000 --seed 0 --out DIR)")
    p = sub.add_parser("cost", help="step cost per image of candidates relative to base (one process)")
    p.add_argument("candidates", nargs="+", choices=sorted(CANDIDATES))
    p.add_argument("--data", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "run":
        args.out.mkdir(parents=True, exist_ok=True)
        print(run_one(args.candidate, args.seed, args.out, args.data))
    elif args.cmd == "cost":
        for name, ratio in measure_costs(args.candidates, args.data).items():
            print(f"{name:28s} {ratio:.3f}x the base recipe's cost per image ({torch.get_num_threads()} thread(s))")
    else:
        summary = summarize(args.out)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        if args.page:
            args.page.write_text(render_into(args.page, summary))
        recipe_study.print_summary(summary)


if __name__ == "__main__":
    main()
