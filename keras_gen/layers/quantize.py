"""Vector quantization (van den Oord et al. 2017): latents snapped to the nearest of K codebook vectors."""

import keras
import tensorflow as tf

from keras_gen.registry import register

CODEBOOK_UPDATES = ("ema", "loss")


def sum_per_example(values):
    """(batch, ...) -> (batch,): the sum over everything but the batch axis."""
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


@register
class VectorQuantizer(keras.layers.Layer):
    """A codebook of `num_codes` vectors of size `code_dim`, and the nearest-code lookup.

    `call(latents)` maps (batch, ..., code_dim) to (quantized, codes): the nearest codebook
    vectors, with the straight-through gradient (the encoder receives the decoder's gradient
    as if quantization were the identity), and their int32 indices (batch, ...).

    With `codebook_update="ema"` the codebook follows exponential moving averages of the
    latents assigned to each code; with "loss" it is trained by the codebook loss
    ||sg[z_e] - e||^2 (`loss_terms`). Either way the model's train step calls `update`,
    which also restarts dead codes.

    Args:
        num_codes: K.
        code_dim: D.
        codebook_update: "ema" or "loss".
        decay: of the moving averages.
        epsilon: a code whose averaged count falls below it keeps its vector.
        dead_fraction: a code whose averaged count falls below this fraction of the
            codes' mean count is dead, and restarts at one of the batch's latents (0: never).
            Without restarts most codes of a fresh codebook are never chosen.

    Example:

    ```python
    quantizer = VectorQuantizer(num_codes=8, code_dim=4)
    latents = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    quantized, codes = quantizer(latents)        # (2, 3, 3, 4) floats, (2, 3, 3) ints in [0, 8)
    ```
    """

    def __init__(
        self,
        num_codes,
        code_dim,
        codebook_update="ema",
        decay=0.99,
        epsilon=1e-5,
        dead_fraction=0.03,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if codebook_update not in CODEBOOK_UPDATES:
            raise ValueError(
                f"codebook_update must be one of {CODEBOOK_UPDATES}, got {codebook_update!r}."
            )
        self.num_codes, self.code_dim = int(num_codes), int(code_dim)
        self.codebook_update = codebook_update
        self.decay, self.epsilon = float(decay), float(epsilon)
        self.dead_fraction = float(dead_fraction)

    def build(self, input_shape=None):
        ema = self.codebook_update == "ema"
        self.codebook = self.add_weight(
            shape=(self.num_codes, self.code_dim),
            initializer=keras.initializers.VarianceScaling(1.0, "fan_out", "uniform"),
            trainable=not ema,
            name="codebook",
        )
        # The averages start as one assignment of each code to itself, so a code that is never
        # chosen keeps its initial vector instead of falling to zero. Every replica computes the
        # same all-reduced update, so the first replica's is kept.
        self.ema_counts = self.add_weight(
            shape=(self.num_codes,),
            initializer="ones",
            trainable=False,
            name="ema_counts",
            aggregation="only_first_replica",
        )
        if ema:
            self.ema_sums = self.add_weight(
                shape=(self.num_codes, self.code_dim),
                initializer="zeros",
                trainable=False,
                name="ema_sums",
                aggregation="only_first_replica",
            )
            self.ema_sums.assign(self.codebook)
        self.built = True

    def codes_of(self, latents):
        """(batch, ..., code_dim) -> (batch, ...) int32 indices of the nearest codes (L2)."""
        latents = tf.cast(latents, tf.float32)
        codebook = tf.cast(self.codebook, tf.float32)
        flat = tf.reshape(latents, [-1, self.code_dim])
        distances = (
            tf.reduce_sum(tf.square(flat), 1, keepdims=True)
            - 2.0 * tf.matmul(flat, codebook, transpose_b=True)
            + tf.reduce_sum(tf.square(codebook), 1)[None]
        )
        codes = tf.argmin(distances, axis=1, output_type=tf.int32)
        return tf.reshape(codes, tf.shape(latents)[:-1])

    def lookup(self, codes):
        """(batch, ...) int codes -> (batch, ..., code_dim) codebook vectors, float32."""
        return tf.gather(tf.cast(self.codebook, tf.float32), codes)

    def call(self, latents):
        codes = self.codes_of(latents)
        quantized = self.lookup(codes)
        latents = tf.cast(latents, tf.float32)
        straight_through = latents + tf.stop_gradient(quantized - latents)
        return tf.cast(straight_through, self.compute_dtype), codes

    def loss_terms(self, latents, codes):
        """(commitment, codebook), each (batch,) summed over the code grid: ||z_e - sg[e]||^2,
        which pulls the encoder to its codes, and ||sg[z_e] - e||^2, which trains a "loss"
        codebook (an "ema" one ignores it)."""
        latents, quantized = tf.cast(latents, tf.float32), self.lookup(codes)
        commitment = sum_per_example(tf.square(latents - tf.stop_gradient(quantized)))
        codebook = sum_per_example(tf.square(tf.stop_gradient(latents) - quantized))
        return commitment, codebook

    def update(self, latents, codes, step=0):
        """After a train step: the codes' moving-average counts (and, for "ema", the codebook
        moved to the averaged means of its latents), with counts and sums added over all
        replicas first; then dead codes restart at latents of the global batch, picked by `step`
        (the optimizer's) so that every replica picks the same."""
        flat = tf.reshape(tf.cast(latents, tf.float32), [-1, self.code_dim])
        one_hot = tf.one_hot(tf.reshape(codes, [-1]), self.num_codes)
        counts = tf.reduce_sum(one_hot, axis=0)
        sums = tf.matmul(one_hot, flat, transpose_a=True)
        every = flat  # the global batch's latents, in one device's order
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            counts, sums = context.all_reduce(tf.distribute.ReduceOp.SUM, [counts, sums])
            every = context.all_gather(flat, axis=0)
        new_counts = self.decay * self.ema_counts + (1.0 - self.decay) * counts
        codebook = tf.cast(self.codebook, tf.float32)
        if self.codebook_update == "ema":
            new_sums = self.decay * self.ema_sums + (1.0 - self.decay) * sums
            # A code unused for long has a count near zero: it keeps its vector, not 0 / 0.
            means = new_sums / tf.maximum(new_counts, self.epsilon)[:, None]
            codebook = tf.where(new_counts[:, None] > self.epsilon, means, codebook)
        if self.dead_fraction > 0:
            dead = new_counts < self.dead_fraction * tf.reduce_mean(new_counts)
            # Spread, step-dependent picks: a fixed hash, so every replica picks the same rows.
            picks = (
                tf.range(self.num_codes, dtype=tf.int64) * 7919 + tf.cast(step, tf.int64) * 104729
            ) % tf.cast(tf.shape(every)[0], tf.int64)
            fresh = tf.gather(every, picks)
            new_counts = tf.where(dead, tf.ones_like(new_counts), new_counts)
            codebook = tf.where(dead[:, None], fresh, codebook)
            if self.codebook_update == "ema":
                new_sums = tf.where(dead[:, None], fresh, new_sums)
        self.ema_counts.assign(new_counts)
        if self.codebook_update == "ema":
            self.ema_sums.assign(new_sums)
        self.codebook.assign(tf.cast(codebook, self.codebook.dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape[:-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_codes=self.num_codes,
            code_dim=self.code_dim,
            codebook_update=self.codebook_update,
            decay=self.decay,
            epsilon=self.epsilon,
            dead_fraction=self.dead_fraction,
        )
        return config
