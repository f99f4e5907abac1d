"""The official TF2 Slot Attention models, transcribed: google-research/google-research `slot_attention/model.py`.

Used by `scripts/make_tf_fixtures.py` (the TF-import fixtures) and `benchmarks/parity/` (training the official
model step for step beside slotattn). Needs TensorFlow with Keras 2 (the `tf.keras` the official code was written
for), in its own environment; slotattn never imports this file:

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf-keras

Two kinds of changes to `model.py`, none to its computation:
- the widths, strides and grid sizes it hard-codes for 128x128 CLEVR are arguments whose defaults are its values, so
  the appendix's Multi-dSprites/Tetrominoes layout (32-channel convs, full-resolution broadcast, stride-1 decoder)
  and small test fixtures can be built; the attribute names, and so the checkpoint variable paths, are the
  official ones;
- `SlotAttention.noise` may hold the standard-normal draw of the slot initialisation (a constant, or a function
  returning it, e.g. reading a `tf.Variable` assigned before each step), so that a run can be fed the same noise
  as slotattn.
Also transcribed: the official `train.py` learning-rate schedule and the multi_object_datasets TFRecord decoder.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras = Keras 2, as in the official code (TF 2.2-2.4)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

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
        elif callable(self.noise):  # e.g. reads a tf.Variable kept outside the layer (not saved with the model)
            noise = self.noise()
        else:
            noise = tf.convert_to_tensor(self.noise)
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


def encoder_cnn(channels, strides, kernel_size=5):
    return tf.keras.Sequential([
        layers.Conv2D(c, kernel_size=kernel_size, strides=(s, s), padding="SAME", activation="relu")
        for c, s in zip(channels, strides)
    ], name="encoder_cnn")


class SlotAttentionAutoEncoder(layers.Layer):
    """Official SlotAttentionAutoEncoder; the defaults are model.py's CLEVR6 layout."""

    def __init__(self, resolution, num_slots, num_iterations, encoder_channels=(64,) * 4, hidden_size=64,
                 slot_size=64, mlp_hidden_size=128, decoder_initial_size=(8, 8), decoder_channels=(64,) * 5,
                 decoder_strides=(2, 2, 2, 2, 1), kernel_size=5, out_kernel_size=3):
        super().__init__()
        self.resolution = resolution
        self.num_slots = num_slots
        self.num_iterations = num_iterations
        self.encoder_cnn = encoder_cnn(encoder_channels, [1] * len(encoder_channels), kernel_size)
        self.decoder_initial_size = decoder_initial_size
        self.decoder_cnn = tf.keras.Sequential(
            [layers.Conv2DTranspose(c, kernel_size, strides=(s, s), padding="SAME", activation="relu")
             for c, s in zip(decoder_channels, decoder_strides)]
            + [layers.Conv2DTranspose(4, out_kernel_size, strides=(1, 1), padding="SAME", activation=None)],
            name="decoder_cnn")
        self.encoder_pos = SoftPositionEmbed(encoder_channels[-1], self.resolution)
        self.decoder_pos = SoftPositionEmbed(slot_size, self.decoder_initial_size)
        self.layer_norm = layers.LayerNormalization()
        self.mlp = tf.keras.Sequential([layers.Dense(hidden_size, activation="relu"), layers.Dense(hidden_size)],
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
    """Official SlotAttentionClassifier (model.py's defaults). `last_slots` keeps the slots."""

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


def learning_rate(global_step, base_learning_rate, warmup_steps, decay_rate, decay_steps):
    """The official train.py schedule, as it computes it (float32 TF ops, then `.numpy()`)."""
    global_step = tf.constant(global_step, tf.int64)
    if global_step < warmup_steps:
        lr = base_learning_rate * tf.cast(global_step, tf.float32) / tf.cast(warmup_steps, tf.float32)
    else:
        lr = base_learning_rate
    lr = lr * (decay_rate ** (tf.cast(global_step, tf.float32) / tf.cast(decay_steps, tf.float32)))
    return lr.numpy()


def multi_object_dataset(path, image_size, max_num_entities):
    """google-deepmind/multi_object_datasets (`tetrominoes.py`, ...): GZIP TFRecords of tf.train.Example, each
    byte feature one string per value, decoded to uint8. Only `image` and `mask` are parsed."""
    features = {
        "image": tf.io.FixedLenFeature(list(image_size) + [3], tf.string),
        "mask": tf.io.FixedLenFeature([max_num_entities] + list(image_size) + [1], tf.string),
    }

    def decode(example_proto):
        single_example = tf.io.parse_single_example(example_proto, features)
        for k in ("mask", "image"):
            single_example[k] = tf.squeeze(tf.io.decode_raw(single_example[k], tf.uint8), axis=-1)
        return single_example

    return tf.data.TFRecordDataset(path, compression_type="GZIP").map(decode)


def preprocess_image(image):
    """The official data.py: uint8 -> float32 in [-1, 1]."""
    image = tf.cast(image, dtype=tf.float32)
    return ((image / 255.0) - 0.5) * 2.0
