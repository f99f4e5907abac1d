"""Make the TensorFlow fixtures of `tests/test_tf_import.py`: official-model checkpoints and their outputs.

Needs TensorFlow with Keras 2 (the `tf.keras` the official code was written for), in its own environment; slotattn
itself is not imported here and the test suite never needs TensorFlow:

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf-keras
    /tmp/tfvenv/bin/python -m scripts.make_tf_fixtures tests/fixtures/tf_checkpoints

The official models come from `benchmarks/parity/official_tf.py`, a transcription of google-research/google-research
`slot_attention/model.py` whose widths, strides and grid sizes are arguments (so a small model fits in a test
fixture; the attribute names, and so the checkpoint's variable paths, are the official ones) and whose
`SlotAttention.noise` may hold the standard-normal draw of the slot initialisation, so that the outputs are
deterministic while `slots_log_sigma` keeps random values (and its mapping is tested too).

Each fixture directory holds the checkpoint (`ckpt-1.index` + `ckpt-1.data-00000-of-00001`, written by
`tf.train.Checkpoint` with the official root names `network`, `optimizer`, `global_step`) and `outputs.npz`:
the channel-last input `image`, the `noise`, the official outputs, and `spec` (the model's arguments, JSON).
"""

import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.parity.official_tf import SlotAttentionAutoEncoder, SlotAttentionClassifier, build_model, tf

SPECS = {
    # CLEVR6 decoder layout scaled down: broadcast 2x3, four stride-2 layers -> 32x48 (non-square on purpose).
    "od_small": {"task": "object_discovery", "resolution": (32, 48), "batch_size": 2, "num_slots": 4,
                 "num_iterations": 3, "encoder_channels": (16,) * 4, "hidden_size": 16, "slot_size": 16,
                 "mlp_hidden_size": 32, "decoder_initial_size": (2, 3), "decoder_channels": (16,) * 5,
                 "decoder_strides": (2, 2, 2, 2, 1), "train_step": True},
    "sp_small": {"task": "set_prediction", "resolution": (32, 32), "batch_size": 2, "num_slots": 5,
                 "num_iterations": 2, "channels": 16, "slot_size": 16, "mlp_hidden_size": 32, "feature_size": (8, 8),
                 "num_outputs": 19, "train_step": False},
    # The official SlotAttentionClassifier exactly as model.py builds it (128x128, 10 slots, widths 64).
    "sp_full": {"task": "set_prediction", "resolution": (128, 128), "batch_size": 1, "num_slots": 10,
                "num_iterations": 3, "train_step": False},
}


def make(name, spec, out_dir, seed):
    tf.keras.utils.set_random_seed(seed)
    spec = dict(spec)
    task, batch_size, train_step = spec.pop("task"), spec.pop("batch_size"), spec.pop("train_step")
    model_def = SlotAttentionAutoEncoder if task == "object_discovery" else SlotAttentionClassifier
    model, inner = build_model(spec["resolution"], batch_size, model_def,
                               **{k: v for k, v in spec.items() if k != "resolution"})
    rng = np.random.default_rng(seed)
    # Keras initialises biases to 0 and LayerNorm to (1, 0), which would leave their mapping untested: draw them.
    for var in model.weights:
        leaf = var.name.split("/")[-1].split(":")[0]
        if leaf in ("bias", "beta"):
            var.assign(rng.normal(0.0, 0.3, var.shape).astype(np.float32))
        elif leaf == "gamma":
            var.assign(rng.normal(1.0, 0.3, var.shape).astype(np.float32))
    image = rng.uniform(-1, 1, size=(batch_size, *spec["resolution"], 3)).astype(np.float32)
    sa = inner.slot_attention
    noise = rng.standard_normal((batch_size, spec["num_slots"], sa.slot_size)).astype(np.float32)
    sa.noise = tf.constant(noise)
    global_step = tf.Variable(0, trainable=False, name="global_step", dtype=tf.int64)
    # The OptimizerV2 Adam of TF 2.2-2.10 that trained the official models: its slots are stored under the model's
    # variables as `.../.OPTIMIZER_SLOT/optimizer/m`, which an importer must skip.
    optimizer = tf.keras.optimizers.legacy.Adam(4e-4, epsilon=1e-08)
    if train_step:  # one official training step, so the checkpoint holds optimizer slots as real ones do
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(image, training=True)[0] - image))
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        global_step.assign_add(1)
        ckpt = tf.train.Checkpoint(network=model, optimizer=optimizer, global_step=global_step)
    else:
        ckpt = tf.train.Checkpoint(network=model, global_step=global_step)
    directory = Path(out_dir) / name
    directory.mkdir(parents=True, exist_ok=True)
    for old in [*directory.glob("ckpt-*"), directory / "checkpoint"]:
        old.unlink(missing_ok=True)
    prefix = ckpt.save(str(directory / "ckpt"))  # as CheckpointManager.save in the official train.py: ckpt-1
    outputs = model(image, training=False)
    if task == "object_discovery":
        recon, recons, masks, slots = (o.numpy() for o in outputs)
        arrays = {"recon": recon, "recons": recons, "masks": masks, "slots": slots}
    else:
        arrays = {"preds": outputs.numpy(), "slots": inner.last_slots.numpy()}
    np.savez_compressed(directory / "outputs.npz", image=image, noise=noise,
                        spec=np.array(json.dumps({"task": task, **spec})), **arrays)
    sizes = {p.name: p.stat().st_size for p in sorted(directory.iterdir())}
    print(name, prefix, sizes, f"tf {tf.__version__}, keras {tf.keras.__name__}")


def main(argv):
    out_dir = argv[1] if len(argv) > 1 else "tests/fixtures/tf_checkpoints"
    for i, (name, spec) in enumerate(SPECS.items()):
        make(name, spec, out_dir, seed=i)


if __name__ == "__main__":
    main(sys.argv)
