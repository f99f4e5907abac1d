"""Lock-step parity: slotattn trains from the official TF2 model's step-0 weights on the same batches and noise.

`python -m benchmarks.parity.tf_train --noise fed` (TensorFlow environment) trains the official model and writes its
per-step losses, the noise it was fed and checkpoints. This script (slotattn environment) imports the step-0
checkpoint (`slotattn.tf_import`), reads the same TFRecord file in the same order with slotattn's reader, feeds the
same noise, and trains with slotattn's optimizer and schedule in float32. It compares, per step, the losses and,
at every TF checkpoint, every parameter. Two more slotattn runs say what the numbers mean:

- `float64`: the same run in double precision: how far float32 rounding alone carries a run in these steps;
- `torch_adam`: float32 with `torch.optim.Adam` (PyTorch's epsilon placement) instead of `KerasAdam`.

Writes OUT/lockstep.json and OUT/lockstep.png.

    python -m benchmarks.parity.lockstep --tf-run runs/parity/tf_lockstep --data tetro.tfrecords --out DIR
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.data_throughput import machine as describe_machine
from slotattn.config import from_dict
from slotattn.data.batch import to_model_batch
from slotattn.data.multi_object import read_multi_object
from slotattn.models import build_model
from slotattn.training.optimizer import build_optimizer
from slotattn.training.schedule import build_scheduler
from slotattn.tasks import build_task
from slotattn.tf_import import import_tf_checkpoint

VARIANTS = ("float32", "float64", "torch_adam")


def tetrominoes_config(tf_args: dict, tf_model: dict, state_config: dict) -> dict:
    """slotattn's config for the official run: the imported model, the TF run's optimizer and schedule."""
    config = dict(state_config)
    config["optim"] = {"learning_rate": tf_args["learning_rate"], "warmup_steps": tf_args["warmup_steps"],
                       "decay_rate": tf_args["decay_rate"], "decay_steps": tf_args["decay_steps"]}
    config["train"] = {"batch_size": tf_args["batch_size"], "precision": "fp32", "seed": tf_args["seed"]}
    config["data"] = {"name": "tetrominoes"}
    return config


def import_tf(prefix: Path, tf_model: dict) -> tuple[dict, dict]:
    return import_tf_checkpoint(prefix, "object_discovery", resolution=tuple(tf_model["resolution"]),
                                num_slots=tf_model["num_slots"], num_iterations=tf_model["num_iterations"],
                                decoder_broadcast_size=tuple(tf_model["decoder_initial_size"]),
                                decoder_strides=tuple(tf_model["decoder_strides"]))


def batches(path: str, batch_size: int, steps: int):
    """The TF run's batches: the file in order, `batch_size` examples at a time, repeated as tf.data.repeat()."""
    step = 0
    while True:
        buffer = []
        for example in read_multi_object(path, "tetrominoes"):
            buffer.append(example)
            if len(buffer) == batch_size:
                yield to_model_batch({k: np.stack([e[k] for e in buffer]) for k in ("image", "mask")})
                buffer, step = [], step + 1
                if step == steps:
                    return


def run(variant: str, tf_dir: Path, data: str, steps: int, snapshots: list[int]) -> dict:
    """One slotattn run from TF's step-0 weights; losses per step, parameters at the snapshot steps."""
    info = json.loads((tf_dir / "losses.json").read_text())
    state, config = import_tf(tf_dir / "ckpt" / "ckpt-0", info["model"])
    cfg = from_dict(tetrominoes_config(info["args"], info["model"], config))
    dtype = torch.float64 if variant == "float64" else torch.float32
    model = build_model(cfg)
    model.load_state_dict(state)
    model.to(dtype).train()
    task = build_task(cfg.task)
    if variant == "torch_adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.learning_rate, eps=1e-8)
    else:
        optimizer = build_optimizer(model.parameters(), cfg.optim.learning_rate)
    scheduler = build_scheduler(optimizer, cfg.optim)
    noise = torch.from_numpy(np.load(tf_dir / "noise.npy"))
    losses, params = [], {}
    started = time.perf_counter()
    for step, batch in enumerate(batches(data, cfg.train.batch_size, steps)):
        batch = {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
        out = model(batch["image"], noise=noise[step].to(dtype))
        loss = task.loss(out, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss))
        if step + 1 in snapshots:
            params[step + 1] = {k: v.detach().double().clone() for k, v in model.state_dict().items()}
    return {"loss": losses, "params": params, "seconds": time.perf_counter() - started}


def compare_params(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], start: dict[str, torch.Tensor]):
    """Largest absolute difference over all parameters, and relative to how far training moved them."""
    diff = max(float((ours[k] - theirs[k]).abs().max()) for k in theirs)
    moved = max(float((theirs[k] - start[k]).abs().max()) for k in theirs)
    worst = max(theirs, key=lambda k: float((ours[k] - theirs[k]).abs().max()))
    return {"max_abs_diff": diff, "max_abs_update": moved, "ratio": diff / moved if moved else float("nan"),
            "worst_parameter": worst}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = np.arange(1, len(result["tf"]["loss"]) + 1)
    axes[0].plot(steps, result["tf"]["loss"], label="official TF2", lw=2)
    axes[0].plot(steps, result["runs"]["float32"]["loss"], "--", label="slotattn float32")
    axes[0].set(xlabel="step", ylabel="training loss (MSE)", title="loss, same weights/batches/noise")
    axes[0].legend()
    for name, style in (("float32", "-"), ("torch_adam", ":"), ("float64", "--")):
        diff = np.abs(np.array(result["runs"][name]["loss"]) - np.array(result["tf"]["loss"]))
        axes[1].semilogy(steps, np.maximum(diff, 1e-12), style, label=f"slotattn {name} vs TF")
    drift = np.abs(np.array(result["runs"]["float64"]["loss"]) - np.array(result["runs"]["float32"]["loss"]))
    axes[1].semilogy(steps, np.maximum(drift, 1e-12), color="grey", alpha=0.6, label="slotattn float64 vs float32")
    axes[1].set(xlabel="step", ylabel="|loss difference|", title="per-step loss difference")
    axes[1].legend(fontsize=8)
    snaps = sorted(int(s) for s in result["runs"]["float32"]["param_diff"])
    for name, style in (("float32", "o-"), ("torch_adam", "s:"), ("float64", "^--")):
        axes[2].semilogy(snaps, [result["runs"][name]["param_diff"][str(s)]["max_abs_diff"] for s in snaps], style,
                         label=f"slotattn {name} vs TF")
    axes[2].semilogy(snaps, [result["float64_vs_float32"][str(s)]["max_abs_diff"] for s in snaps], "x-",
                     color="grey", label="slotattn float64 vs float32")
    axes[2].set(xlabel="step", ylabel="max |parameter difference|", title="parameters at TF checkpoints")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-run", required=True, help="output directory of tf_train.py --noise fed")
    parser.add_argument("--data", required=True, help="the TFRecord file the TF run read")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tf_dir, out = Path(args.tf_run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = json.loads((tf_dir / "losses.json").read_text())
    steps = len(info["loss"])
    snapshots = sorted(int(p.name.split("-")[1].split(".")[0]) for p in (tf_dir / "ckpt").glob("ckpt-*.index"))
    snapshots = [s for s in snapshots if s > 0]
    tf_params = {s: {k: v.double() for k, v in import_tf(tf_dir / "ckpt" / f"ckpt-{s}", info["model"])[0].items()}
                 for s in [0, *snapshots]}
    result = {"tf": {"loss": info["loss"], "lr": info["lr"], "seconds": info["seconds"],
                     "tensorflow": info["tensorflow"]},
              "setup": {"model": info["model"], "tf_args": info["args"], "steps": steps, "snapshots": snapshots},
              "machine": describe_machine(), "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
              "python": platform.python_version(), "runs": {}}
    runs = {}
    for variant in VARIANTS:
        runs[variant] = run(variant, tf_dir, args.data, steps, snapshots)
        loss = np.array(runs[variant]["loss"])
        tf_loss = np.array(info["loss"])
        result["runs"][variant] = {
            "loss": runs[variant]["loss"], "seconds": runs[variant]["seconds"],
            "loss_abs_diff_max": float(np.abs(loss - tf_loss).max()),
            "loss_rel_diff_max": float((np.abs(loss - tf_loss) / tf_loss).max()),
            "loss_rel_diff_last": float(abs(loss[-1] - tf_loss[-1]) / tf_loss[-1]),
            "param_diff": {str(s): compare_params(runs[variant]["params"][s], tf_params[s], tf_params[0])
                           for s in snapshots},
        }
        print(variant, {k: v for k, v in result["runs"][variant].items() if k not in ("loss", "param_diff")},
              flush=True)
    result["float64_vs_float32"] = {str(s): compare_params(runs["float32"]["params"][s], runs["float64"]["params"][s],
                                                           tf_params[0]) for s in snapshots}
    (out / "lockstep.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, out / "lockstep.png")
    print(f"wrote {out / 'lockstep.json'} and {out / 'lockstep.png'}")


if __name__ == "__main__":
    main()
