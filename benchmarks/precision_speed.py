"""Training speed under bfloat16 autocast against float32 on this CPU, as the instruction set it exposes allows.

`precision=auto` trains in bf16 only where oneDNN runs bfloat16 natively (AVX512-BF16 or AMX). Whether bf16 would
also pay on an AVX2-only CPU can be measured on any newer x86 CPU by limiting what PyTorch dispatches to:
`ATEN_CPU_CAPABILITY=avx2` (ATen's vectorised kernels) and `ONEDNN_MAX_CPU_ISA=AVX2` (oneDNN's convolutions and
matmuls) make this process run the kernels an AVX2-only CPU runs. Clock, caches and memory stay this machine's, so
the ratio bf16/fp32 is what transfers, not the absolute images/s.

    python -m benchmarks.precision_speed --out /tmp/native.json
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m benchmarks.precision_speed --out /tmp/avx2.json

Per recipe (the demo's model and the paper's Tetrominoes model at their batch sizes) and thread count, float32
and bf16 steps are timed interleaved in this one process (`rounds` rounds of `steps` steps each; median per
image), so machine load affects both alike.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from slotattn import load_config
from slotattn.data.batch import to_model_batch
from slotattn.data.build import build_train_source
from slotattn.models import build_model
from slotattn.tasks import build_task
from slotattn.training.engine import autocast_for
from slotattn.training.runlog import cpu_model

RECIPES = ("demo", "tetrominoes_cpu")


def isa() -> dict:
    """What this process dispatches to: ATen's capability, oneDNN's limit (if set) and native bf16 support."""
    return {"aten_cpu_capability": torch._C._get_cpu_capability(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "onednn_bf16_native": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}


def seconds_per_image(cfg, steps: int = 20, precision: str = "fp32") -> float:
    """Median time of a training step (forward, loss, backward, Adam) over `steps`, per image, in float32 or under
    bfloat16 autocast as the engine trains (`precision` "fp32" or "bf16"). Also the demo study's cost of an image
    (`python -m studies.demo cost`)."""
    torch.manual_seed(0)
    model, task = build_model(cfg), build_task(cfg.task)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    source = build_train_source(cfg)
    times = []
    for step in range(steps + 3):
        batch = to_model_batch(source.batch(step))
        start = time.perf_counter()
        with autocast_for(precision, "cpu"):
            loss = task.loss(model(batch["image"]), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:]) / cfg.train.batch_size


def measure(recipe: str, threads: int, steps: int, rounds: int) -> dict:
    torch.set_num_threads(threads)
    cfg = load_config(recipe)
    times = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for precision in times:
            times[precision].append(seconds_per_image(cfg, steps, precision))
    fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    return {"recipe": recipe, "batch_size": cfg.train.batch_size, "threads": threads,
            "fp32_images_per_s": 1 / fp32, "bf16_images_per_s": 1 / bf16, "bf16_speedup": fp32 / bf16,
            "seconds_per_image": times}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for recipe in RECIPES:
        for threads in args.threads:
            rows.append(measure(recipe, threads, args.steps, args.rounds))
            r = rows[-1]
            print(f"{recipe:16s} {threads} thread(s): fp32 {r['fp32_images_per_s']:.1f} img/s, bf16 "
                  f"{r['bf16_images_per_s']:.1f} img/s, bf16/fp32 speed {r['bf16_speedup']:.2f}x", flush=True)
    result = {"cpu": cpu_model(), "isa": isa(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
              "steps": args.steps, "rounds": args.rounds, "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
