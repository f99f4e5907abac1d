"""Make the TensorFlow fixtures of `tests/test_tf_import.py`: official-model checkpoints and their outputs.

Needs TensorFlow with Keras 2 (the `tf.keras` the official code was written for), in its own environment; slotattn
itself is not imported here and the test suite never needs TensorFlow:

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf-keras
    /tmp/tfvenv/bin/python scripts/make_tf_fixtures.py tests/fixtures/tf_checkpoints

The classes below transcribe google-research/google-research `slot_attention/model.py` (SlotAttention,
SoftPositionEmbed, SlotAttentionAutoEncoder, SlotAttentionClassifier, build_grid, spatial_broadcast, ...) with
two changes: the widths, strides and grid sizes that `model.py` hard-codes for 128x128 CLEVR are arguments (so a
small model fits in a test fixture; the attribute names, and so the checkpoint's variable paths, are the
official ones), and `SlotAttention.noise` may hold the standard-normal draw of the slot initialisation, so that
the outputs are deterministic while `slots_log_sigma` keeps random values (and its mapping is tested too).

Each fixture directory holds the checkpoint (`ckpt-1.index` + `ckpt-1.data-00000-of-00001`, written by
`tf.train.Checkpoint` with the official root names `network`, `optimizer`, `global_step`) and `outputs.npz`:
the channel-last input `image`, the `noise`, the official outputs, and `spec` (the model's arguments, JSON).
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras = Keras 2, as in the official code (TF 2.2-2.4)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

layers = tf.keras.layers


class SlotAttention(layers.Layer):
    """Official SlotAttention; `noise` (None: a fresh tf.random.normal draw) replaces the sampling if set."""

    def __init__(self, num_iterations, num_slots, slot_size, mlp_hidden_size, epsilon=1e-8):
        super().__init__()
        self.num_iterations = num_iterations
        self.num_slots = num_slots
        self.slot_size = slot_size
        self.mlp_hidden_size = mlp_hidden_size
        self.epsilon = epsilon
        self.noise = None

        self.norm_inputs = layers.LayerNormalization()
        self.norm_slots = layers.LayerNormalization()
        self.norm_mlp = layers.LayerNormalization()

        self.slots_mu = self.add_weight(initializer="glorot_uniform", shape=[1, 1, self.slot_size],
                                        dtype=tf.float32, name="slots_mu")
        self.slots_log_sigma = self.add_weight(initializer="glorot_uniform", shape=[1, 1, self.slot_size],
                                               dtype=tf.float32, name="slots_log_sigma")

        self.project_q = layers.Dense(self.slot_size, use_bias=False, name="q")
        self.project_k = layers.Dense(self.slot_size, use_bias=False, name="k")
        self.project_v = layers.Dense(self.slot_size, use_bias=False, name="v")

        self.gru = layers.GRUCell(self.slot_size)
        self.mlp = tf.keras.Sequential([
            layers.Dense(self.mlp_hidden_size, activation="relu"),
            layers.Dense(self.slot_size)
        ], name="mlp")

    def call(self, inputs):
        inputs = self.norm_inputs(inputs)
        k = self.project_k(inputs)
        v = self.project_v(inputs)
        if self.noise is None:
            noise = tf.random.normal([tf.shape(inputs)[0], self.num_slots, self.slot_size])
        else:
            noise = self.noise
        slots = self.slots_mu + tf.exp(self.slots_log_sigma) * noise
        for _ in range(self.num_iterations):
            slots_prev = slots
            slots = self.norm_slots(slots)
            q = self.project_q(slots)
            q *= self.slot_size ** -0.5
            attn_logits = tf.keras.backend.batch_dot(k, q, axes=-1)
            attn = tf.nn.softmax(attn_logits, axis=-1)
            attn += self.epsilon
            attn /= tf.reduce_sum(attn, axis=-2, keepdims=True)
            updates = tf.keras.backend.batch_dot(attn, v, axes=-2)
            slots, _ = self.gru(updates, [slots_prev])
            slots += self.mlp(self.norm_mlp(slots))
        return slots


def spatial_broadcast(slots, resolution):
    slots = tf.reshape(slots, [-1, slots.shape[-1]])[:, None, None, :]
    return tf.tile(slots, [1, resolution[0], resolution[1], 1])


def spatial_flatten(x):
    return tf.reshape(x, [-1, x.shape[1] * x.shape[2], x.shape[-1]])


def unstack_and_split(x, batch_size, num_channels=3):
    unstacked = tf.reshape(x, [batch_size, -1] + x.shape.as_list()[1:])
    channels, masks = tf.split(unstacked, [num_channels, 1], axis=-1)
    return channels, masks


def build_grid(resolution):
    ranges = [np.linspace(0., 1., num=res) for res in resolution]
    grid = np.meshgrid(*ranges, sparse=False, indexing="ij")
    grid = np.stack(grid, axis=-1)
    grid = np.reshape(grid, [resolution[0], resolution[1], -1])
    grid = np.expand_dims(grid, axis=0)
    grid = grid.astype(np.float32)
    return np.concatenate([grid, 1.0 - grid], axis=-1)


class SoftPositionEmbed(layers.Layer):
    def __init__(self, hidden_size, resolution):
        super().__init__()
        self.dense = layers.Dense(hidden_size, use_bias=True)
        self.grid = build_grid(resolution)

    def call(self, inputs):
        return inputs + self.dense(self.grid)


def encoder_cnn(channels, strides):
    return tf.keras.Sequential([
        layers.Conv2D(c, kernel_size=5, strides=(s, s), padding="SAME", activation="relu")
        for c, s in zip(channels, strides)
    ], name="encoder_cnn")


class SlotAttentionAutoEncoder(layers.Layer):
    """Official; model.py: channels 64, decoder_initial_size (8, 8), decoder strides (2, 2, 2, 2, 1)."""

    def __init__(self, resolution, num_slots, num_iterations, channels=64, slot_size=64, mlp_hidden_size=128,
                 decoder_initial_size=(8, 8), decoder_strides=(2, 2, 2, 2, 1)):
        super().__init__()
        self.resolution = resolution
        self.num_slots = num_slots
        self.num_iterations = num_iterations
        self.encoder_cnn = encoder_cnn([channels] * 4, [1] * 4)
        self.decoder_initial_size = decoder_initial_size
        self.decoder_cnn = tf.keras.Sequential(
            [layers.Conv2DTranspose(channels, 5, strides=(s, s), padding="SAME", activation="relu")
             for s in decoder_strides]
            + [layers.Conv2DTranspose(4, 3, strides=(1, 1), padding="SAME", activation=None)],
            name="decoder_cnn")
        self.encoder_pos = SoftPositionEmbed(channels, self.resolution)
        self.decoder_pos = SoftPositionEmbed(slot_size, self.decoder_initial_size)
        self.layer_norm = layers.LayerNormalization()
        self.mlp = tf.keras.Sequential([layers.Dense(channels, activation="relu"), layers.Dense(channels)],
                                       name="feedforward")
        self.slot_attention = SlotAttention(num_iterations=self.num_iterations, num_slots=self.num_slots,
                                            slot_size=slot_size, mlp_hidden_size=mlp_hidden_size)

    def call(self, image):
        x = self.encoder_cnn(image)
        x = self.encoder_pos(x)
        x = spatial_flatten(x)
        x = self.mlp(self.layer_norm(x))
        slots = self.slot_attention(x)
        x = spatial_broadcast(slots, self.decoder_initial_size)
        x = self.decoder_pos(x)
        x = self.decoder_cnn(x)
        recons, masks = unstack_and_split(x, batch_size=image.shape[0])
        masks = tf.nn.softmax(masks, axis=1)
        recon_combined = tf.reduce_sum(recons * masks, axis=1)
        return recon_combined, recons, masks, slots


class SlotAttentionClassifier(layers.Layer):
    """Official; model.py: channels 64, encoder_pos grid (32, 32), 19 outputs. `last_slots` keeps the slots."""

    def __init__(self, resolution, num_slots, num_iterations, channels=64, slot_size=64, mlp_hidden_size=128,
                 feature_size=(32, 32), num_outputs=19):
        super().__init__()
        self.resolution = resolution
        self.num_slots = num_slots
        self.num_iterations = num_iterations
        self.encoder_cnn = encoder_cnn([channels] * 4, [1, 2, 2, 1])
        self.encoder_pos = SoftPositionEmbed(channels, feature_size)
        self.layer_norm = layers.LayerNormalization()
        self.mlp = tf.keras.Sequential([layers.Dense(channels, activation="relu"), layers.Dense(channels)],
                                       name="feedforward")
        self.slot_attention = SlotAttention(num_iterations=self.num_iterations, num_slots=self.num_slots,
                                            slot_size=slot_size, mlp_hidden_size=mlp_hidden_size)
        self.mlp_classifier = tf.keras.Sequential(
            [layers.Dense(channels, activation="relu"), layers.Dense(num_outputs, activation="sigmoid")],
            name="mlp_classifier")
        self.last_slots = None

    def call(self, image):
        x = self.encoder_cnn(image)
        x = self.encoder_pos(x)
        x = spatial_flatten(x)
        x = self.mlp(self.layer_norm(x))
        slots = self.slot_attention(x)
        self.last_slots = slots
        return self.mlp_classifier(slots)


def build_model(resolution, batch_size, model_def, **kwargs):
    """Official build_model: a functional Keras model wrapping one SlotAttention* layer."""
    image = tf.keras.Input(list(resolution) + [3], batch_size)
    inner = model_def(resolution, **kwargs)
    outputs = inner(image)
    return tf.keras.Model(inputs=image, outputs=outputs), inner


SPECS = {
    # CLEVR6 decoder layout scaled down: broadcast 2x3, four stride-2 layers -> 32x48 (non-square on purpose).
    "od_small": {"task": "object_discovery", "resolution": (32, 48), "batch_size": 2, "num_slots": 4,
                 "num_iterations": 3, "channels": 16, "slot_size": 16, "mlp_hidden_size": 32,
                 "decoder_initial_size": (2, 3), "decoder_strides": (2, 2, 2, 2, 1), "train_step": True},
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
