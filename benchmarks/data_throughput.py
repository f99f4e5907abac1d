"""Data throughput against what training consumes: can the input pipeline keep up with a training step?

Measures examples/s of
  (a) the Tetrominoes and Multi-dSprites generators (`slotattn.data.generators`), arrays only;
  (b) `StoreSource.batch` + `to_model_batch` from a store on disk (memory-mapped reads; the store was just written,
      so its pages are in the OS cache: this is the warm-cache rate);
  (c) `DataLoader(StepBatches(source), batch_size=None, num_workers=W)` for W in {0, 2}, steady state (the first
      batch, which pays for starting the workers, is not timed), for generated and stored sources;
and, in the same run, one forward + backward + Adam step of the model built from `configs/tetrominoes.yaml` and
`configs/multi_dsprites.yaml` at batch 64. Each data row is divided by the training rate of its dataset:
ratio > 1 means the pipeline produces images faster than a training step consumes them.

    python benchmarks/data_throughput.py --quick          # ~1 minute on one CPU core
    python benchmarks/data_throughput.py --json out.json  # longer timings, 3 training steps per model

`--pipeline` measures instead the training input pipeline alone, as the engine builds it (`engine._step_loader`:
source -> DataLoader -> training batch, here without workers, so one core's rate), for Tetrominoes, Multi-dSprites
and CLEVR6 (rendered on the fly, and read from a store of rendered scenes) at batch 64, against a GPU step
estimated at 1,000 Tetrominoes images/s (`GPU_STEP_IMAGES_PER_S`); it writes benchmarks/results/data_pipeline.json:

    taskset -c 0 env OMP_NUM_THREADS=1 python benchmarks/data_throughput.py --pipeline --batches 3   # ~3 minutes

Rates are measured on whatever CPUs the process may use (pin with `taskset`); DataLoader workers share them, so
on one core W=2 only adds inter-process copies. The header line records the allowed cores and the load average.
"""

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from slotattn.config import load_config
from slotattn.data.batch import image_to_model, to_model_batch
from slotattn.data.build import generator_for
from slotattn.data.generators.multi_dsprites import generate_multi_dsprites
from slotattn.data.generators.tetrominoes import generate_tetrominoes
from slotattn.data.store import open_store, write_store
from slotattn.data.stream import GeneratedSource, StepBatches, StoreSource
from slotattn.models import build_model
from slotattn.tasks import ObjectDiscoveryTask, build_task
from slotattn.training import engine
from slotattn.training.runlog import cpu_model, describe_device

GENERATORS: dict[str, Callable[[int, np.random.Generator], dict[str, np.ndarray]]] = {
    "tetrominoes": generate_tetrominoes,
    "multi_dsprites": generate_multi_dsprites,
}


def rate(fn: Callable[[int], int], min_seconds: float, min_calls: int = 2) -> float:
    """Examples/s of `fn(i) -> examples made`, called with i = 0, 1, ... for at least `min_seconds` (after one
    untimed call)."""
    fn(0)
    done, calls, start = 0, 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        done += fn(calls + 1)
        calls += 1
    return done / (time.perf_counter() - start)


def loader_rate(source: GeneratedSource | StoreSource, workers: int, min_seconds: float) -> float:
    loader = DataLoader(StepBatches(source), batch_size=None, num_workers=workers)
    it = iter(loader)  # its workers shut down when it is collected, on return
    return rate(lambda _: len(next(it)["image"]), min_seconds, min_calls=max(2, 2 * workers))


def train_rate(name: str, batch_size: int, steps: int, device: str) -> tuple[float, list[float]]:
    """Images/s of forward + loss + backward + Adam step at `batch_size` (median over `steps` timed steps)."""
    cfg = load_config(name)
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    task = build_task(cfg.task)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.learning_rate)
    data = GENERATORS[name](batch_size, np.random.default_rng(0))

    def step(b: int) -> float:
        batch = {k: v.to(device) for k, v in to_model_batch({k: data[k][:b] for k in ("image", "mask")}).items()}
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model(batch["image"])
        loss = task.loss(out, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    step(2)  # warm-up at a tiny batch: lazy initialisation and Adam's state, without a second full-size step
    times = [step(batch_size) for _ in range(steps)]
    return batch_size / statistics.median(times), times


# What a GPU training step is estimated to consume: 1,000 Tetrominoes images/s (the pipeline's yardstick).
GPU_STEP_IMAGES_PER_S = 1_000.0
PIPELINE_JSON = Path(__file__).resolve().parent / "results" / "data_pipeline.json"


def pipeline_rate(source: GeneratedSource | StoreSource, keys: tuple[str, ...] | None, batches: int,
                  min_seconds: float, on_cpu_float: bool = False) -> tuple[float, int, float]:
    """(batches/s, batches timed, seconds) of the engine's training loader over `source` with `keys` and no
    workers, after one untimed batch; at least `batches` batches and `min_seconds`. `on_cpu_float` also converts
    the image to float on the CPU, as every training batch was before the conversion moved to the device."""
    it = iter(engine._step_loader(source, 0, 0, torch.device("cpu"), keys))

    def one() -> None:
        batch = next(it)
        if on_cpu_float:
            image_to_model(batch["image"])

    one()
    done, start = 0, time.perf_counter()
    while done < batches or time.perf_counter() - start < min_seconds:
        one()
        done += 1
    seconds = time.perf_counter() - start
    return done / seconds, done, seconds


def pipeline_main(args: argparse.Namespace) -> int:
    """`--pipeline`: batches/s of the training input pipeline alone, and its ratio to a GPU step's 1,000 images/s."""
    b = args.batch_size
    train_keys = ObjectDiscoveryTask.train_keys
    started = time.perf_counter()
    rows: list[dict] = []

    def measure(dataset: str, source_name: str, make_source: Callable[[], GeneratedSource | StoreSource]) -> None:
        for pipeline, keys, on_cpu in (("training batch: uint8 image only (now)", train_keys, False),
                                       ("full batch: masks checked + ids, float image on the CPU (before)", None,
                                        True)):
            per_s, done, seconds = pipeline_rate(make_source(), keys, args.batches, args.min_seconds, on_cpu)
            images = per_s * b
            rows.append({"dataset": dataset, "source": source_name, "pipeline": pipeline, "batch_size": b,
                         "batches_timed": done, "seconds": round(seconds, 3), "batches_per_s": per_s,
                         "images_per_s": images, "ratio_to_gpu_step": images / GPU_STEP_IMAGES_PER_S,
                         "cores_to_keep_up": math.ceil(GPU_STEP_IMAGES_PER_S / images)})
            print(f"  {dataset:15s} {source_name:9s} {pipeline:66s} {per_s:8.2f} batches/s {images:9.1f} images/s"
                  f"  ratio {images / GPU_STEP_IMAGES_PER_S:7.3f}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="slotattn-pipeline-") as tmp:
        for name in ("tetrominoes", "multi_dsprites", "clevr6"):
            generate = generator_for(name)
            measure(name, "rendered" if name == "clevr6" else "generated",
                    lambda g=generate: GeneratedSource(g, b, seed=0))
        # A store of rendered CLEVR6 scenes, as `slotattn generate clevr6` writes (2 batches: the epoch reshuffles).
        store = write_store(Path(tmp) / "clevr6", generator_for("clevr6")(2 * b, np.random.default_rng([1, 0])),
                            {"dataset": "clevr6"})
        measure("clevr6", "store", lambda: StoreSource(open_store(store.path), b, seed=0))

    total = time.perf_counter() - started
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    result = {
        "what": "training input pipeline alone (source -> DataLoader without workers -> training batch on the CPU), "
                f"batch {b}, against a GPU step estimated at {GPU_STEP_IMAGES_PER_S:,.0f} Tetrominoes images/s; "
                "ratio_to_gpu_step = pipeline images/s / 1,000 (> 1: one core keeps a GPU step fed); "
                "cores_to_keep_up = ceil(1,000 / images/s), DataLoader workers assumed to scale linearly",
        "machine": describe_device(torch.device("cpu")),
        "allowed_cores": affinity,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "date": str(datetime.date.today()),
        "command": args.command or " ".join(["python", "benchmarks/data_throughput.py", *sys.argv[1:]]),
        "seconds": round(total, 1),
        "rows": rows,
    }
    out = Path(args.json) if args.json else PIPELINE_JSON
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"pipeline vs a GPU step, batch {b}, {result['date']}, {total:.0f} s, {result['machine']}, cores "
          f"{affinity}; written to {out}")
    print("| dataset | source | pipeline | batches/s | images/s | ÷ 1,000 images/s | cores to keep up |")
    print("|---|---|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['dataset']} | {row['source']} | {row['pipeline']} | {row['batches_per_s']:.2f} | "
              f"{row['images_per_s']:.1f} | {row['ratio_to_gpu_step']:.3f} | {row['cores_to_keep_up']} |")
    return 0


def machine() -> str:
    cpu = cpu_model()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{cpu}; allowed cores {cores}; torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
            f"load average {load}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings, one training step (~1 minute)")
    parser.add_argument("--batch-size", type=int, default=64, help="data and training batch (paper: 64)")
    parser.add_argument("--device", default="cpu", help="device of the training step (cpu, cuda)")
    parser.add_argument("--store-size", type=int, help="examples per benchmark store (default 512, 4096 full)")
    parser.add_argument("--json", help="also write the results here (--pipeline: instead of "
                                        "benchmarks/results/data_pipeline.json)")
    parser.add_argument("--pipeline", action="store_true",
                        help="the training input pipeline alone against a GPU step's 1,000 images/s (see above)")
    parser.add_argument("--batches", type=int, default=3, help="--pipeline: batches timed per row (at least)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="--pipeline: seconds timed per row (at least)")
    parser.add_argument("--command", help="--pipeline: the command line to record (default: this one)")
    args = parser.parse_args(argv)
    if args.pipeline:
        return pipeline_main(args)
    # torch warns when there are more workers than allowed cores; on purpose here (the table says how it went)
    warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
    b = args.batch_size
    seconds = 0.5 if args.quick else 5.0
    steps = 1 if args.quick else 3
    store_size = args.store_size or (512 if args.quick else 4096)
    started = time.perf_counter()
    rows: list[dict] = []

    def add(dataset: str, pipeline: str, workers: int | str, value: float) -> None:
        rows.append({"dataset": dataset, "pipeline": pipeline, "workers": workers, "examples_per_s": value})
        print(f"  {dataset:15s} {pipeline:32s} workers={workers}: {value:9.1f} examples/s", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="slotattn-bench-") as tmp:
        for name, generate in GENERATORS.items():
            # (a) the generator alone
            add(name, "generator", "-", rate(lambda i, g=generate: len(g(b, np.random.default_rng(i))["image"]),
                                             seconds))
            # (b) a store on disk: StoreSource.batch + to_model_batch
            path = Path(tmp) / name
            chunks = (generate(min(1024, store_size - s), np.random.default_rng([1, s]))
                      for s in range(0, store_size, 1024))
            store = write_store(path, chunks, {"dataset": name}, num=store_size)
            store_source = StoreSource(store, b, seed=0)
            add(name, "StoreSource + to_model_batch", "-",
                rate(lambda i, s=store_source: len(to_model_batch(s.batch(i))["image"]), seconds))
            # (c) the DataLoader training uses, over generated and stored batches
            for workers in (0, 2):
                add(name, "DataLoader(StepBatches(generated))", workers,
                    loader_rate(GeneratedSource(generate, b, seed=0), workers, seconds))
                add(name, "DataLoader(StepBatches(store))", workers,
                    loader_rate(StoreSource(open_store(path), b, seed=0), workers, seconds))

        # A CLEVR6-shaped store (128x128 image + 11 masks, ~229 KB per example; content irrelevant to read speed):
        # what `slotattn convert` of clevr_with_masks gives training to read. No CPU training rate to compare.
        rng = np.random.default_rng(0)
        clevr_size = max(2 * b, store_size // 4)
        clevr = write_store(Path(tmp) / "clevr6", {
            "image": rng.integers(0, 256, (clevr_size, 128, 128, 3), dtype=np.uint8),
            "mask": (rng.integers(0, 11, (clevr_size, 1, 128, 128, 1)) == np.arange(11)[None, :, None, None, None])
            .astype(np.uint8) * 255,
        }, {"dataset": "clevr6"})
        clevr_source = StoreSource(clevr, b, seed=0)
        add("clevr6", "StoreSource + to_model_batch", "-",
            rate(lambda i: len(to_model_batch(clevr_source.batch(i))["image"]), seconds))
        for workers in (0, 2):
            add("clevr6", "DataLoader(StepBatches(store))", workers,
                loader_rate(StoreSource(clevr, b, seed=0), workers, seconds))

    train = {}
    for name in GENERATORS:
        value, times = train_rate(name, b, steps, args.device)
        train[name] = {"images_per_s": value, "step_seconds": times}
        print(f"  {name:15s} train step (batch {b}, {args.device}): {value:.1f} images/s, steps {times}",
              file=sys.stderr)

    total = time.perf_counter() - started
    header = (f"data throughput vs training, batch {b}, {'--quick' if args.quick else 'full'} run, "
              f"{datetime.date.today()}, {total:.0f} s\n{machine()}\n")
    lines = [
        f"| dataset | pipeline | workers | examples/s | train images/s ({args.device}, batch {b}) | data ÷ train |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        t = train.get(row["dataset"], {}).get("images_per_s")
        row["ratio"] = row["examples_per_s"] / t if t else None
        t_text, ratio_text = (f"{t:.1f}", f"{row['ratio']:.0f}") if t else ("n/a", "n/a")
        lines.append(f"| {row['dataset']} | {row['pipeline']} | {row['workers']} | {row['examples_per_s']:.0f} | "
                     f"{t_text} | {ratio_text} |")
    print(header)
    print("\n".join(lines))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"header": header, "rows": rows, "train": train}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
