"""The speed suite of issue 8: slotattn vs a plain port of the official model vs lucidrains' module, in one run.

For each object-discovery recipe (`configs/tetrominoes.yaml`, `multi_dsprites.yaml`, `clevr6.yaml`) it builds
  slotattn     `slotattn.models.build_model(load_config(recipe))`
  reference    `benchmarks/reference_model.py`: the plain PyTorch port of the official TF2 autoencoder
  lucidrains   `benchmarks/peers.py`: the reference with lucidrains' `slot_attention.SlotAttention` swapped in
and measures, with the three models interleaved (each repeat runs one step of every model, in an order rotated
every repeat) and medians reported:
  - training images/s: forward + MSE reconstruction loss + backward + Adam step (lr 4e-4);
  - inference images/s: forward under `torch.no_grad()`;
  - peak memory of one inference and one training step, each model in a fresh subprocess after one untimed
    step of each (so Adam's state and one-time kernel set-up already exist). CUDA: `torch.cuda.max_memory_allocated()`
    minus what was allocated before the step. CPU: peak RSS during the step minus RSS before it (Linux: freed heap
    is handed back with malloc_trim and the peak, VmHWM, reset through /proc/self/clear_refs before each step) --
    whole-process memory as the OS sees it; tracemalloc cannot see torch's C++ allocations;
  - FLOPs per image (`torch.utils.flop_counter.FlopCounterMode`: matmuls, convolutions and their backward; Adam,
    softmax and the elementwise ops are not counted) and the achieved fraction of this machine's float32 matmul and
    convolution peaks, measured in the same run with large matmuls and 5x5 64->64 convolutions.
Then the Slot Attention module alone (N = 4096 inputs, K = 7, D = 64, batch 32): forward and forward + backward,
the same three implementations. Every ratio is against the reference: speed-up (> 1 is faster) or memory ratio.

    python benchmarks/run.py --quick                          # a few minutes on 2 CPU cores
    python benchmarks/run.py --out benchmarks/results/run.json
    python benchmarks/run.py --device cuda --recipes clevr6

Results are Markdown tables on stdout (progress on stderr); `--out` also writes them as JSON. Threads: torch's
default (set OMP_NUM_THREADS, pin with taskset); the header records them.
"""

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import data_throughput
import peers
import reference_model
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from slotattn.config import load_config
from slotattn.training.engine import resolve_precision
from slotattn.models import build_model
from slotattn.nn import SlotAttention

RECIPES = ("tetrominoes", "multi_dsprites", "clevr6")
# Variant -> (implementation, precision, channels-last). "fast" is slotattn's default training path: the precision
# `train.precision=auto` picks on the device (bf16 where it runs natively) -- its default. The reference also runs
# under the same bf16 autocast + channels-last, the fair comparison for the mixed-precision path.
VARIANTS = {
    "reference": ("reference", "fp32", False),
    "reference-bf16cl": ("reference", "bf16", True),
    "lucidrains": ("lucidrains", "fp32", False),
    "slotattn-fp32": ("slotattn", "fp32", True),
    "slotattn-fast": ("slotattn", "auto", True),
}
MODELS = tuple(VARIANTS)
QUICK_BATCH = {"tetrominoes": 16, "multi_dsprites": 8, "clevr6": 4}  # full runs use the recipe's batch (64)
LEARNING_RATE = 4e-4


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reference_kwargs(recipe: str) -> dict:
    """The reference's constructor arguments for a recipe, read from the same YAML slotattn's model uses."""
    m = load_config(recipe).model
    if m.encoder_strides is not None and any(s != 1 for s in m.encoder_strides):
        raise ValueError(f"{recipe}: the reference port has a stride-1 encoder, got strides {m.encoder_strides}")
    return {"resolution": m.resolution, "num_slots": m.num_slots, "num_iterations": m.num_iterations,
            "slot_size": m.slot_size, "mlp_hidden_size": m.mlp_hidden_size, "hidden_size": m.hidden_size,
            "encoder_channels": m.encoder_channels, "encoder_kernel_size": m.encoder_kernel_size,
            "decoder_initial_size": m.decoder_broadcast_size, "decoder_channels": m.decoder_channels,
            "decoder_strides": m.decoder_strides, "decoder_kernel_size": m.decoder_kernel_size,
            "decoder_out_kernel_size": m.decoder_out_kernel_size}


def precision_of(variant: str, device: str) -> str:
    """"fp32" or "bf16": the variant's precision, with slotattn's "auto" resolved as training resolves it."""
    return resolve_precision(VARIANTS[variant][1], torch.device(device))


def autocast(variant: str, device: str):
    if precision_of(variant, device) == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build(recipe: str, name: str, device: str) -> nn.Module:
    """The implementation `name` ("slotattn", "reference" or "lucidrains") of `recipe`, seeded."""
    torch.manual_seed(0)
    if name == "slotattn":
        model = build_model(load_config(recipe))
    elif name == "reference":
        model = reference_model.SlotAttentionAutoEncoder(**reference_kwargs(recipe))
    else:
        model = peers.lucidrains_autoencoder(**reference_kwargs(recipe))
    return model.to(device)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def reconstruction(name: str, model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The combined reconstruction [B, 3, H, W] in float32; the TF port returns it channel-last, as the official
    model does."""
    if name == "slotattn":
        return model(image).recon.float()
    return model(image)[0].permute(0, 3, 1, 2).float()


class Runner:
    """One model with its optimiser: `train()` and `infer()` each run one step and return its seconds."""

    def __init__(self, recipe: str, variant: str, batch: int, device: str):
        self.variant, self.device = variant, device
        self.name, _, channels_last = VARIANTS[variant]
        self.model = build(recipe, self.name, device)
        resolution = load_config(recipe).model.resolution
        generator = torch.Generator().manual_seed(1)
        # Content does not change the cost of any layer; a fixed random batch in [-1, 1] keeps data out of timings.
        self.image = (torch.rand(batch, 3, *resolution, generator=generator) * 2 - 1).to(device)
        if channels_last and self.name != "slotattn":  # slotattn's models are channels-last by construction
            self.model = self.model.to(memory_format=torch.channels_last)
            self.image = self.image.contiguous(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)

    def train(self) -> float:
        sync(self.device)
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.variant, self.device):
            loss = F.mse_loss(reconstruction(self.name, self.model, self.image), self.image)
        loss.backward()
        self.optimizer.step()
        sync(self.device)
        return time.perf_counter() - start

    def infer(self) -> float:
        sync(self.device)
        start = time.perf_counter()
        with torch.no_grad(), autocast(self.variant, self.device):
            reconstruction(self.name, self.model, self.image)
        sync(self.device)
        return time.perf_counter() - start


def reference_difference(recipe: str) -> float | None:
    """Max |recon difference| between slotattn and the reference given slotattn's weights and the same slot noise
    (CPU, float32, batch 2), or None where the layouts differ on purpose: TF's SAME transposed convs (slotattn)
    crop stride-2 outputs one pixel away from PyTorch's `output_padding` (the plain port)."""
    if any(s != 1 for s in load_config(recipe).model.decoder_strides):
        return None
    ours, reference = build(recipe, "slotattn", "cpu"), build(recipe, "reference", "cpu")
    # Same parameter names by construction, except the decoder's submodules.
    renamed = {k.replace("decoder.cnn.", "decoder_cnn.").replace("decoder.position.", "decoder_pos."): v
               for k, v in ours.state_dict().items()}
    reference.load_state_dict(renamed)
    image = torch.rand(2, 3, *ours.resolution, generator=torch.Generator().manual_seed(2)) * 2 - 1
    torch.manual_seed(3)
    noise = torch.randn(2, ours.slot_attention.num_slots, ours.slot_attention.slot_size)
    torch.manual_seed(3)  # the reference draws the same noise: its forward's only random call
    with torch.no_grad():
        return (ours(image, noise=noise).recon - reconstruction("reference", reference, image)).abs().max().item()


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def interleaved(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each fn over `repeats` rounds; every round runs all of them, in an order rotated each round."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[: r % len(names)]:
            times[n].append(fns[n]())
    return times


def peak_memory(recipe: str, name: str, batch: int, device: str) -> dict[str, float]:
    """Peak memory (MiB) of one inference and one training step, in a fresh interpreter (see the module doc)."""
    command = [sys.executable, __file__, "--memory-child", recipe, name, "--batch", str(batch), "--device", device]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory child {recipe}/{name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def reset_peak_rss() -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS and return that RSS in KiB (Linux >= 4.0).

    Without /proc (or a writable clear_refs) it falls back to `ru_maxrss`, the high-water mark since the process
    started, which under-reports a step whose peak stays below what imports and set-up already reached.
    """
    try:  # hand freed heap memory back first, so that a step cannot hide in pages an earlier one left (glibc)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_kib() -> int:
    try:
        return _status_kib("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(recipe: str, name: str, batch: int, device: str) -> None:
    runner = Runner(recipe, name, batch, device)
    runner.infer()  # steady state: one-time kernel set-up and Adam's state exist before anything is measured
    runner.train()
    mib = 2.0**20
    if device.startswith("cuda"):
        def measure(fn: Callable[[], float]) -> float:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            return (torch.cuda.max_memory_allocated() - base) / mib
        infer, train = measure(runner.infer), measure(runner.train)
    else:
        def measure(fn: Callable[[], float]) -> float:
            base = reset_peak_rss()
            fn()
            return (peak_rss_kib() - base) / 1024
        infer, train = measure(runner.infer), measure(runner.train)
    print(json.dumps({"infer_mib": infer, "train_mib": train}))


def measure_peaks(device: str, quick: bool, repeats: int) -> dict[str, float]:
    """Best GFLOP/s of a large square matmul and of a 5x5, 64 -> 64 channel convolution (the model's), in float32
    and in bfloat16 (the convolution channels-last, the layout oneDNN/cuDNN run bfloat16 fastest in)."""
    n = 2048 if quick else 4096
    x = torch.randn(4 if quick else 16, 64, 64, 64, device=device)
    conv = nn.Conv2d(64, 64, 5, padding=2).to(device)
    conv_flops = 2 * x.shape[0] * 64 * 64 * 25 * x.shape[2] * x.shape[3]

    def timed(fn: Callable[[], object]) -> float:
        fn()  # warm-up
        best = float("inf")
        for _ in range(max(repeats, 3)):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            best = min(best, time.perf_counter() - start)
        return best

    peaks: dict = {"matmul_size": n, "conv_input": list(x.shape)}
    with torch.no_grad():
        for dtype, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            peaks[f"matmul_gflops_{tag}"] = 2 * n**3 / timed(lambda: a @ b) / 1e9
            layout = torch.channels_last if dtype == torch.bfloat16 else torch.contiguous_format
            c = conv.to(dtype=dtype, memory_format=layout)
            xi = x.to(dtype=dtype).contiguous(memory_format=layout)
            peaks[f"conv_gflops_{tag}"] = conv_flops / timed(lambda: c(xi)) / 1e9
    return peaks


def bench_recipe(recipe: str, names: list[str], batch: int, repeats: int, device: str, memory: bool) -> list[dict]:
    difference = reference_difference(recipe)
    log(f"{recipe}: max |recon(slotattn) - recon(reference)| with shared weights and noise: "
        + ("not comparable (stride-2 decoder: TF SAME vs output_padding crops)" if difference is None
           else f"{difference:.1e}"))
    runners = {n: Runner(recipe, n, batch, device) for n in names}
    params = {n: num_params(r.model) for n, r in runners.items()}
    if params["slotattn-fp32"] != params["reference"]:
        raise RuntimeError(f"{recipe}: slotattn has {params['slotattn-fp32']} parameters but the reference port "
                           f"{params['reference']}; the two must be the same model")
    # The warm-up step of each model runs under the FLOP counter (it runs the real kernels).
    flops = {n: {"train": count_flops(r.train) / batch, "infer": count_flops(r.infer) / batch}
             for n, r in runners.items()}
    train = interleaved({n: r.train for n, r in runners.items()}, repeats)
    infer = interleaved({n: r.infer for n, r in runners.items()}, repeats)
    del runners
    rows = []
    for n in names:
        row = {"recipe": recipe, "model": n, "precision": precision_of(n, device), "batch": batch,
               "params": params[n],
               "max_recon_difference_vs_reference": difference if n == "slotattn-fp32" else None,
               "train_images_per_s": batch / statistics.median(train[n]), "train_seconds": train[n],
               "infer_images_per_s": batch / statistics.median(infer[n]), "infer_seconds": infer[n],
               "train_gflop_per_image": flops[n]["train"] / 1e9, "infer_gflop_per_image": flops[n]["infer"] / 1e9}
        row["train_achieved_gflops"] = row["train_gflop_per_image"] * row["train_images_per_s"]
        if memory:
            peak = peak_memory(recipe, n, batch, device)
            row |= {"train_peak_mib": peak["train_mib"], "infer_peak_mib": peak["infer_mib"]}
        log(f"  {recipe:15s} {n:10s} train {row['train_images_per_s']:8.2f} img/s, "
            f"infer {row['infer_images_per_s']:8.2f} img/s, {row['train_gflop_per_image']:.2f} GFLOP/img (train)")
        rows.append(row)
    return rows


def bench_module(names: list[str], batch: int, num_inputs: int, repeats: int, device: str) -> list[dict]:
    """Slot Attention alone: K = 7, D = 64, T = 3, inputs [batch, num_inputs, 64]."""
    num_slots, size = 7, 64
    torch.manual_seed(0)
    modules = {}
    for n in names:
        impl = VARIANTS[n][0]
        torch.manual_seed(0)
        if impl == "slotattn":
            modules[n] = SlotAttention(num_slots=num_slots, slot_size=size, input_size=size)
        elif impl == "reference":
            modules[n] = reference_model.SlotAttention(3, num_slots, size, 128, input_size=size)
        else:
            modules[n] = peers.lucidrains_slot_attention(num_slots, size, 3, 128)
        modules[n].to(device)
    params = {n: num_params(m) for n, m in modules.items()}
    inputs = torch.randn(batch, num_inputs, size, generator=torch.Generator().manual_seed(1)).to(device)

    def slots_of(n: str, x: torch.Tensor) -> torch.Tensor:
        with autocast(n, device):
            out = modules[n](x)
        return (out[0] if VARIANTS[n][0] == "slotattn" else out).float()  # slotattn returns (slots, attn)

    def forward(n: str) -> Callable[[], float]:
        def run() -> float:
            sync(device)
            start = time.perf_counter()
            with torch.no_grad():
                slots_of(n, inputs)
            sync(device)
            return time.perf_counter() - start
        return run

    def forward_backward(n: str) -> Callable[[], float]:
        x = inputs.clone().requires_grad_(True)  # gradients reach the inputs, as inside a model

        def run() -> float:
            sync(device)
            start = time.perf_counter()
            modules[n].zero_grad(set_to_none=True)
            x.grad = None
            slots_of(n, x).square().mean().backward()
            sync(device)
            return time.perf_counter() - start
        return run

    flops = {n: {"forward": count_flops(forward(n)), "forward_backward": count_flops(forward_backward(n))}
             for n in names}
    interleaved({n: forward(n) for n in names} | {f"{n}+bwd": forward_backward(n) for n in names}, 1)  # warm-up
    fwd = interleaved({n: forward(n) for n in names}, repeats)
    fwd_bwd = interleaved({n: forward_backward(n) for n in names}, repeats)
    rows = []
    for n in names:
        rows.append({"model": n, "precision": precision_of(n, device), "batch": batch, "num_inputs": num_inputs,
                     "num_slots": num_slots,
                     "slot_size": size, "params": params[n],
                     "forward_ms": 1e3 * statistics.median(fwd[n]), "forward_seconds": fwd[n],
                     "forward_backward_ms": 1e3 * statistics.median(fwd_bwd[n]), "forward_backward_seconds": fwd_bwd[n],
                     "forward_gflop": flops[n]["forward"] / 1e9,
                     "forward_backward_gflop": flops[n]["forward_backward"] / 1e9})
        log(f"  module {n:10s} forward {rows[-1]['forward_ms']:8.1f} ms, "
            f"forward+backward {rows[-1]['forward_backward_ms']:8.1f} ms")
    return rows


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def tables(recipe_rows: list[dict], module_rows: list[dict], peaks: dict[str, float], device: str) -> str:
    lines = ["### Peaks (measured in this run: the better of a probe before and after the models)", "",
             "| operation | float32 GFLOP/s | bfloat16 GFLOP/s |", "|---|---:|---:|",
             f"| matmul {peaks['matmul_size']}×{peaks['matmul_size']} | {peaks['matmul_gflops_fp32']:.0f} | "
             f"{peaks['matmul_gflops_bf16']:.0f} |",
             f"| conv 5×5 64→64, input {peaks['conv_input']} (bf16: channels-last) | {peaks['conv_gflops_fp32']:.0f} | "
             f"{peaks['conv_gflops_bf16']:.0f} |", ""]
    memory_kind = ("CUDA max_memory_allocated" if device.startswith("cuda") else "CPU peak RSS - RSS before")
    if recipe_rows:
        lines += ["### Training and inference", "",
                  "Ratios: ×ref against the plain reference (float32) in the same run; ×ref-bf16cl against the "
                  "reference under the same bf16 autocast + channels-last.", "",
                  (f"| recipe | variant | precision | batch | train img/s | ×ref | ×ref-bf16cl | infer img/s | ×ref | "
                   f"train peak MiB ({memory_kind}) | ×ref | infer peak MiB | ×ref |"),
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        by_recipe = {(r["recipe"], r["model"]): r for r in recipe_rows}
        for r in recipe_rows:
            ref = by_recipe[(r["recipe"], "reference")]
            ref_bf16 = by_recipe.get((r["recipe"], "reference-bf16cl"))
            vs_bf16 = r["train_images_per_s"] / ref_bf16["train_images_per_s"] if ref_bf16 else None
            mem = [f"{r[k]:.0f} | {fmt_ratio(r[k] / ref[k] if ref[k] > 0 else None)}" if k in r else "n/a | n/a"
                   for k in ("train_peak_mib", "infer_peak_mib")]
            lines.append(
                f"| {r['recipe']} | {r['model']} | {r['precision']} | {r['batch']} | {r['train_images_per_s']:.2f} | "
                f"{fmt_ratio(r['train_images_per_s'] / ref['train_images_per_s'])} | {fmt_ratio(vs_bf16)} | "
                f"{r['infer_images_per_s']:.2f} | {fmt_ratio(r['infer_images_per_s'] / ref['infer_images_per_s'])} | "
                f"{mem[0]} | {mem[1]} |")
        for r in recipe_rows:
            if r["model"] == "slotattn-fp32":
                d = r["max_recon_difference_vs_reference"]
                lines.append(f"\n{r['recipe']}: slotattn vs reference with shared weights and slot noise, max |Δ recon| "
                             + ("not comparable (stride-2 decoder: TF SAME crop vs PyTorch output_padding)"
                                if d is None else f"= {d:.1e}"))
        lines += ["", "### FLOPs (FlopCounterMode) and the achieved fraction of the measured peaks of the row's "
                  "precision", "",
                  ("| recipe | variant | GFLOP/img train | GFLOP/img infer | achieved train GFLOP/s | "
                   "% of matmul peak | % of conv peak |"), "|---|---|---:|---:|---:|---:|---:|"]
        for r in recipe_rows:
            lines.append(f"| {r['recipe']} | {r['model']} | {r['train_gflop_per_image']:.2f} | "
                         f"{r['infer_gflop_per_image']:.2f} | {r['train_achieved_gflops']:.1f} | "
                         f"{100 * r['train_fraction_of_matmul_peak']:.1f}% | "
                         f"{100 * r['train_fraction_of_conv_peak']:.1f}% |")
        lines.append("")
    if module_rows:
        m0 = module_rows[0]
        ref = next(r for r in module_rows if r["model"] == "reference")
        luci = next((r for r in module_rows if r["model"] == "lucidrains"), None)
        lines += [(f"### Slot Attention module alone (batch {m0['batch']}, N = {m0['num_inputs']}, "
                   f"K = {m0['num_slots']}, D = {m0['slot_size']}, T = 3)"), "",
                  ("| variant | precision | params | forward ms | ×ref | forward+backward ms | ×ref | ×lucidrains | "
                   "GFLOP fwd | GFLOP fwd+bwd |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in module_rows:
            vs_luci = luci["forward_backward_ms"] / r["forward_backward_ms"] if luci else None
            lines.append(f"| {r['model']} | {r['precision']} | {r['params']:,} | {r['forward_ms']:.1f} | "
                         f"{fmt_ratio(ref['forward_ms'] / r['forward_ms'])} | {r['forward_backward_ms']:.1f} | "
                         f"{fmt_ratio(ref['forward_backward_ms'] / r['forward_backward_ms'])} | {fmt_ratio(vs_luci)} | "
                         f"{r['forward_gflop']:.2f} | {r['forward_backward_gflop']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small batches (16/8/4), 3 repeats, smaller peak probes: a few minutes on 2 CPU cores")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated subset of {RECIPES}")
    parser.add_argument("--batch", type=int, help="training/inference batch for every recipe (default: the "
                        "recipe's train.batch_size, or the --quick batches)")
    parser.add_argument("--repeats", type=int, help="timed steps per model (default 3 with --quick, else 10)")
    parser.add_argument("--variants", help=f"comma-separated subset of {MODELS} (default: all)")
    parser.add_argument("--module-batch", type=int, default=32, help="batch of the module-alone benchmark")
    parser.add_argument("--module-inputs", type=int, default=4096, help="N of the module-alone benchmark")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-module", action="store_true", help="skip the module-alone benchmark")
    parser.add_argument("--data", action="store_true",
                        help="then run benchmarks/data_throughput.py too (with --quick when --quick; CPU training)")
    parser.add_argument("--out", help="also write the results as JSON here")
    parser.add_argument("--memory-child", nargs=2, metavar=("RECIPE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available in this torch build / machine")
    if args.memory_child:
        memory_child(*args.memory_child, args.batch, args.device)
        return 0
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        parser.error(f"--recipes: unknown {unknown}; choose from {RECIPES}")
    repeats = args.repeats or (3 if args.quick else 10)
    names = list(MODELS)
    if not peers.available():
        log(peers.MISSING)
        names.remove("lucidrains")
    if args.variants:
        names = [n for n in args.variants.split(",") if n]
        unknown = [n for n in names if n not in VARIANTS]
        if unknown or not {"reference", "slotattn-fp32"} <= set(names):
            parser.error(f"--variants: choose from {MODELS}, including reference and slotattn-fp32")

    started = time.perf_counter()
    log(f"peaks ({args.device}) ...")
    peaks = measure_peaks(args.device, args.quick, repeats)
    recipe_rows: list[dict] = []
    for recipe in recipes:
        batch = args.batch or (QUICK_BATCH[recipe] if args.quick else load_config(recipe).train.batch_size)
        log(f"{recipe}: batch {batch}, {repeats} interleaved repeats ...")
        recipe_rows += bench_recipe(recipe, names, batch, repeats, args.device, not args.no_memory)
    module_rows = []
    if not args.no_module:
        log("Slot Attention module alone ...")
        module_rows = bench_module(names, args.module_batch, args.module_inputs, repeats, args.device)

    # Peaks again at the end, keeping the better of the two: a transient load on a shared machine lowers one probe.
    log(f"peaks again ({args.device}) ...")
    again = measure_peaks(args.device, args.quick, repeats)
    for key in again:
        if key.endswith(("_fp32", "_bf16")):
            peaks[key] = max(peaks[key], again[key])
    for row in recipe_rows:  # against the peaks of the row's own precision
        row["train_fraction_of_matmul_peak"] = row["train_achieved_gflops"] / peaks[f"matmul_gflops_{row['precision']}"]
        row["train_fraction_of_conv_peak"] = row["train_achieved_gflops"] / peaks[f"conv_gflops_{row['precision']}"]

    total = time.perf_counter() - started
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    header = (f"benchmarks/run.py {'--quick' if args.quick else 'full'} run on {device_name}, {repeats} interleaved "
              f"repeats (medians), {datetime.date.today()}, {total:.0f} s\n{data_throughput.machine()}; "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
              f"lucidrains slot-attention {peers.version() or 'not installed'}\n")
    print(header)
    print(tables(recipe_rows, module_rows, peaks, args.device))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"header": header, "argv": sys.argv[1:], "peaks": peaks,
                                              "recipes": recipe_rows, "module": module_rows}, indent=2) + "\n")
    if args.data:
        log("data throughput (benchmarks/data_throughput.py) ...")
        data_throughput.main(["--device", args.device] + (["--quick"] if args.quick else []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
