"""Train the official TF2 model (official_tf.py here) as the official object_discovery/train.py does.

Runs in the TensorFlow environment (see official_tf.py), never with slotattn. Reads a multi_object_datasets
TFRecord file in file order (the same batches slotattn reads), runs the official `train_step` (l2 loss, Keras
`Adam(lr, epsilon=1e-8)`, the official warm-up + decay set as `optimizer.lr` before each step) and writes:

    OUT/run.json                the arguments, the model and the TensorFlow version (written first)
    OUT/losses.json             per-step loss (float32 as TF computed it) and learning rate, rewritten at every
                                checkpoint, so an interrupted run keeps the losses of the steps it checkpointed
    OUT/ckpt/ckpt-<step>.*      tf.train.Checkpoint(network=model) at step 0 and every --save-steps step
    OUT/noise.npy               (--noise fed) the standard-normal slot noise of every step, [steps, B, K, D]

`--noise fed` draws the noise from numpy (seeded) and feeds it to the model; `--noise own` lets the model draw
`tf.random.normal` as the official code does. `--init` names a checkpoint to start from instead of Keras' own
initialisation (seeded by --seed).

    TF_NUM_INTEROP_THREADS=1 taskset -c 0 /tmp/tfvenv/bin/python -m benchmarks.parity.tf_train \
        --data tetro.tfrecords --steps 300 --batch-size 16 --out runs/parity/tf
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.parity import official_tf
from benchmarks.parity.official_tf import tf

# The appendix's Tetrominoes model (slotattn's configs/tetrominoes.yaml).
TETROMINOES = dict(resolution=(35, 35), num_slots=4, num_iterations=3, encoder_channels=(32,) * 4, hidden_size=64,
                   slot_size=64, mlp_hidden_size=128, decoder_initial_size=(35, 35), decoder_channels=(32,) * 3,
                   decoder_strides=(1, 1, 1))
MAX_NUM_ENTITIES = 4  # tetrominoes: background + 3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="tetrominoes TFRecord file (GZIP)")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="tf.random.set_seed / Keras init / fed noise")
    parser.add_argument("--learning-rate", type=float, default=4e-4)
    parser.add_argument("--warmup-steps", type=int, default=10_000)
    parser.add_argument("--decay-rate", type=float, default=0.5)
    parser.add_argument("--decay-steps", type=int, default=100_000)
    parser.add_argument("--noise", choices=["fed", "own"], default="fed")
    parser.add_argument("--init", help="checkpoint prefix to start from (default: Keras' own initialisation)")
    parser.add_argument("--save-steps", type=int, nargs="*", default=[], help="also checkpoint after these steps")
    parser.add_argument("--save-every", type=int, help="also checkpoint every N steps")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(args.seed)  # the official train.py: tf.random.set_seed(FLAGS.seed)
    out = Path(args.out)
    (out / "ckpt").mkdir(parents=True, exist_ok=True)
    batch_size, spec = args.batch_size, TETROMINOES
    model, inner = official_tf.build_model(spec["resolution"], batch_size, official_tf.SlotAttentionAutoEncoder,
                                           **{k: v for k, v in spec.items() if k != "resolution"})
    sa = inner.slot_attention
    noise_shape = (batch_size, spec["num_slots"], spec["slot_size"])
    noise_var = tf.Variable(tf.zeros(noise_shape), trainable=False) if args.noise == "fed" else None
    if noise_var is not None:
        sa.noise = lambda: noise_var.read_value()  # a function: the variable is not tracked as a model weight
    # The official optimizer: OptimizerV2 Adam (TF 2.2-2.10's tf.keras.optimizers.Adam), epsilon 1e-8.
    optimizer = tf.keras.optimizers.legacy.Adam(args.learning_rate, epsilon=1e-08)
    if args.init:
        tf.train.Checkpoint(network=model).read(args.init).assert_existing_objects_matched()

    @tf.function
    def train_step(image):  # official object_discovery/train.py train_step
        with tf.GradientTape() as tape:
            recon_combined, recons, masks, slots = model(image, training=True)
            loss_value = tf.reduce_mean(tf.math.squared_difference(recon_combined, image))  # utils.l2_loss
        gradients = tape.gradient(loss_value, model.trainable_weights)
        optimizer.apply_gradients(zip(gradients, model.trainable_weights))
        return loss_value

    info = {"args": vars(args), "model": spec, "tensorflow": tf.__version__, "keras": tf.keras.__name__}
    (out / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    losses, lrs = [], []
    started = time.perf_counter()

    def save(step):
        tf.train.Checkpoint(network=model).write(str(out / "ckpt" / f"ckpt-{step}"))
        (out / "losses.json").write_text(json.dumps({
            "loss": losses, "lr": lrs, "seconds": time.perf_counter() - started, **info}, indent=1) + "\n")

    save(0)
    dataset = official_tf.multi_object_dataset(args.data, spec["resolution"], MAX_NUM_ENTITIES)
    images = dataset.map(lambda ex: official_tf.preprocess_image(ex["image"])).repeat().batch(batch_size,
                                                                                            drop_remainder=True)
    rng_noise = []
    saves = set(args.save_steps)
    for step, image in enumerate(images.take(args.steps)):
        if noise_var is not None:
            noise = np.random.default_rng([args.seed, step]).standard_normal(noise_shape, dtype=np.float32)
            noise_var.assign(noise)
            rng_noise.append(noise)
        lr = official_tf.learning_rate(step, args.learning_rate, args.warmup_steps, args.decay_rate, args.decay_steps)
        optimizer.lr = lr  # the official loop: optimizer.lr = learning_rate.numpy()
        lrs.append(float(lr))
        losses.append(float(train_step(image).numpy()))
        done = step + 1
        if done in saves or (args.save_every and done % args.save_every == 0) or done == args.steps:
            save(done)
        if done % 100 == 0:
            print(f"step {done} loss {losses[-1]:.6f} ({time.perf_counter() - started:.0f} s)", flush=True)
    if rng_noise:
        np.save(out / "noise.npy", np.stack(rng_noise))


if __name__ == "__main__":
    main()
