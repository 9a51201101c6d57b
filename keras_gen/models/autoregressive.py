"""Autoregressive image models: p(x) = prod_i p(x_i | x_<i) over sub-pixels in raster, then R->G->B, order.

The base owns the likelihood, `log_prob`, the train/test steps, in-graph
sampling by inverse CDF of uniform noise, completion and the export endpoints.
Subclasses implement `call(images, labels=None) -> params` and may add a fast sampler.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_gen import likelihoods, validation
from keras_gen.conventions import EXACT_PIXELS
from keras_gen.layers.incremental import (  # noqa: F401  (the samplers' toolkit, imported from here before)
    Window,
    any_batch,
    dense,
    float32_matrix,
    from_rows_above,
    read_column,
    shift_in,
    split_causal_kernel,
    subpixel_coordinates,
    write_column,
)
from keras_gen.models.base import GenerativeModel
from keras_gen.registry import register


def channel_width(value, default, multiple, name):
    """A layer width: `value` checked, or, when None, `default` rounded up to a multiple of `multiple`.

    Masked layers split their channels into C colour groups, so widths must
    divide by C (by 2C where a layer halves them); rounding the defaults lets
    one constructor serve grey and RGB images alike.
    """
    if value is None:
        return -(-int(default) // multiple) * multiple
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}.")
    if value % multiple:
        raise ValueError(
            f"{name}={value} cannot be split into colour groups; use a multiple of {multiple} "
            f"(e.g. {-(-int(value) // multiple) * multiple}), or leave it unset."
        )
    return int(value)


@register
class AutoregressiveModel(GenerativeModel):
    """Base of PixelCNN, Gated PixelCNN and PixelRNN.

    Args:
        likelihood: "bernoulli" (binary, default for num_levels=2),
            "categorical" (a num_levels-way softmax per sub-pixel) or "logistic_mixture"
            (a discretized mixture of logistics per sub-pixel, PixelCNN++'s colour likelihood).
        num_mixtures: the mixture's components, for "logistic_mixture" (default 10).

    Example:

    ```python
    model = PixelCNN(image_shape=(6, 6, 1), filters=4, num_blocks=1, head_filters=4)
    images = (np.random.default_rng(0).random((3, 6, 6, 1)) < 0.3).astype("uint8")
    model.log_prob(images), model.bits_per_dim(images)        # (3,) nats, (3,) bits per sub-pixel
    fast = model.sample_levels(model.make_noise(3, seed=0))   # (3, 6, 6, 1) levels, cached sampler
    plain = model.sample_levels(model.make_noise(3, seed=0), method="plain")   # the same images
    ```
    """

    noise_kind = "uniform"
    has_log_prob = True
    default_likelihood = "categorical"
    has_fast_sampler = False
    sample_parity = EXACT_PIXELS  # discrete draws: every runtime gives the same levels

    # The head's layers, where model.keras files keep their weights: Keras saves each layer under
    # the first attribute path that reaches it, in alphabetical order, and these names come before
    # `output_head`, so files written before the head was a layer of its own load unchanged.
    @property
    def head_hidden(self):
        return self.output_head.hidden

    @property
    def head_out(self):
        return self.output_head.out

    @property
    def xla_served_sample(self):
        # A fast sampler's many small per-step ops run far faster fused by XLA (benchmarks/sampling.py).
        return self.has_fast_sampler

    def __init__(self, likelihood=None, num_mixtures=10, **kwargs):
        super().__init__(**kwargs)
        likelihood = self.likelihood_name_for(likelihood, self.num_levels)
        self.likelihood_name = likelihood
        self.num_mixtures = int(num_mixtures)
        self.likelihood = likelihoods.get(likelihood, self.num_levels, self.num_mixtures)
        self.condition_kind = self.condition_size = None  # see `_set_condition`
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.bits_per_dim_tracker = keras.metrics.Mean(name="bits_per_dim")

    @property
    def noise_shape(self):
        return self.image_shape

    # -- a condition other than class labels (what a PixelVAE's decoder reads) ----------
    def _set_condition(self, condition_kind, condition_size):
        """Conditions the network on a "vector" (batch, condition_size), such as a latent z, or
        a "spatial" map (batch, H, W, condition_size); None for labels or nothing."""
        if condition_kind is not None and self.num_classes is not None:
            raise ValueError(
                f"{type(self).__name__} takes num_classes or condition_kind, not both."
            )
        if condition_kind not in (None, "vector", "spatial"):
            raise ValueError(
                f"condition_kind must be 'vector' or 'spatial', got {condition_kind!r}."
            )
        self.condition_kind = condition_kind
        self.condition_size = None if condition_size is None else int(condition_size)

    @property
    def conditioned(self):
        return self.num_classes is not None or self.condition_kind is not None

    def _check_condition(self, condition, batch_size):
        if self.condition_kind is None:
            return super()._check_condition(condition, batch_size)
        height, width = self.image_shape[:2]
        shape = (
            (self.condition_size,)
            if self.condition_kind == "vector"
            else (height, width, self.condition_size)
        )
        return validation.check_noise(condition, shape, name="condition")

    @property
    def output_channels(self):
        """Channels of `call`'s output: image channels x params per sub-pixel."""
        return self.image_shape[-1] * self.likelihood.num_params()

    @property
    def metrics(self):
        return [self.nll_tracker, self.bits_per_dim_tracker]

    def _log_prob(self, images, labels):
        return self.likelihood.log_prob(self(images, labels), images)

    def _update_metrics(self, nll):
        self.nll_tracker.update_state(nll)
        self.bits_per_dim_tracker.update_state(nll / (self.num_subpixels * math.log(2.0)))
        logs = self.step_logs(self.metrics)
        return {"loss": logs["nll"], **logs}

    def train_step(self, data):
        images, labels = self._unpack_batch(data)
        with tf.GradientTape() as tape:
            nll = -self.likelihood.log_prob(self(images, labels, training=True), images)
            loss = self.global_mean(nll)
            if self.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
        self.minimize(tape, loss, self.optimizer, self.trainable_variables)
        return self._update_metrics(nll)

    def test_step(self, data):
        images, labels = self._unpack_batch(data)
        return self._update_metrics(-self._log_prob(images, labels))

    # -- sampling ------------------------------------------------------------
    def _sample(self, noise, labels):
        return self.levels_to_pixels(self.draw_levels(noise, labels))

    def draw_levels(self, noise, labels=None):
        """(batch, H, W, C) uint8 levels from the default sampler for checked noise and
        condition: compiled when called eagerly (an eager while_loop runs op by op), inline
        when traced, as exports and models built on this one (PixelVAE, VQVAEPrior) trace it."""
        if tf.executing_eagerly():
            return self._compiled_sampler("auto")(noise, labels, None, None)
        return self._sample_levels(noise, labels, None, None, "auto")

    def sample_levels(self, noise, labels=None, known=None, known_mask=None, method="auto"):
        """Draws images as integer levels, deterministically given the noise.

        Each sub-pixel takes the inverse-CDF value of its noise, in raster order,
        all inside one graph loop.

        Args:
            noise: (batch, H, W, C) float32 uniform in [0, 1).
            labels: (batch,) int, for class-conditional models.
            known, known_mask: completion: (batch, H, W, C) uint8 levels and a
                bool mask of the sub-pixels to keep; the rest are sampled.
            method: "plain" (one full forward pass per sub-pixel), "fast"
                (cached, where the model has it) or "auto" (fast if available).
        Returns:
            (batch, H, W, C) uint8 levels.
        """
        noise = validation.check_noise(noise, self.noise_shape, self.noise_kind)
        labels = self._check_condition(labels, noise.shape[0])
        if (known is None) != (known_mask is None):
            raise validation.InputError("Completion needs both `known` and `known_mask`.")
        if known is not None:
            known = validation.check_images(known, self.image_shape, self.num_levels, name="known")
            known_mask = tf.convert_to_tensor(known_mask)
            if known_mask.dtype != tf.bool or tuple(known_mask.shape) != tuple(known.shape):
                raise validation.InputError(
                    f"known_mask: expected bool of shape {tuple(known.shape)}, received shape "
                    f"{tuple(known_mask.shape)} and dtype {known_mask.dtype.name}."
                )
            if known.shape[0] != noise.shape[0]:
                raise validation.InputError(
                    f"known: expected {noise.shape[0]} images (one per noise row), received {known.shape[0]}."
                )
        if method not in ("auto", "plain", "fast"):
            raise ValueError(f"method must be 'auto', 'plain' or 'fast', got {method!r}.")
        if method == "fast" and not self.has_fast_sampler:
            raise ValueError(f"{type(self).__name__} has no fast sampler; use method='plain'.")
        return self._compiled_sampler(method)(noise, labels, known, known_mask)

    def complete(self, images, known_mask, noise, labels=None, method="auto"):
        """Keeps the sub-pixels of `images` where `known_mask` is True and samples the rest.

        Returns (batch, H, W, C) uint8 pixels in [0, 255].
        """
        return self.levels_to_pixels(self.sample_levels(noise, labels, images, known_mask, method))

    def export_endpoints(self):
        """The family's endpoints, and "complete": noise, `known` uint8 levels and `known_mask`
        uint8 (1: keep the sub-pixel), each (batch, H, W, C) [, labels] -> uint8 pixels."""
        if self.condition_kind is not None:
            raise NotImplementedError(
                f"A {type(self).__name__} conditioned on a {self.condition_kind} has no export "
                "signature for its condition; export the model that computes it (such as PixelVAE)."
            )
        endpoints = super().export_endpoints()
        shape = (None,) + self.image_shape
        specs = [
            tf.TensorSpec(shape, tf.float32, name="noise"),
            tf.TensorSpec(shape, tf.uint8, name="known"),
            tf.TensorSpec(shape, tf.uint8, name="known_mask"),
        ]

        def complete_fn(noise, known, known_mask, labels=None):
            keep = tf.not_equal(tf.cast(known_mask, tf.int32), 0)  # LiteRT: no uint8 NotEqual
            levels = self._sample_levels(noise, labels, known, keep, "auto")
            return {"images": self.levels_to_pixels(levels)}

        endpoints["complete"] = (complete_fn, specs + self._label_specs())
        return endpoints

    def _compiled_sampler(self, method):
        cache = self.__dict__.setdefault("_sampler_cache", {})
        if method not in cache:
            fast = method == "fast" or (method == "auto" and self.has_fast_sampler)
            # XLA fuses the fast samplers' many small per-step ops into one compiled loop: about 4x
            # faster on a CPU (benchmarks/sampling.py). Exports stay plain graphs, for the converter.
            cache[method] = tf.function(
                lambda noise, labels, known, known_mask: self._sample_levels(
                    noise, labels, known, known_mask, method
                ),
                reduce_retracing=True,
                jit_compile=fast,
            )
        return cache[method]

    def _sample_levels(self, noise, labels, known, known_mask, method):
        if method == "fast" or (method == "auto" and self.has_fast_sampler):
            return self._fast_sample_levels(noise, labels, known, known_mask)
        return self._plain_sample_levels(noise, labels, known, known_mask)

    def _initial_canvas(self, noise, known, known_mask):
        """int32 levels (LiteRT has no uint8 select or scatter kernels) and the mask of kept sub-pixels."""
        if known is None:
            return tf.zeros(tf.shape(noise), tf.int32), tf.zeros(tf.shape(noise), tf.bool)
        return tf.cast(known, tf.int32), tf.cast(known_mask, tf.bool)

    def _plain_sample_levels(self, noise, labels, known, known_mask):
        """One full forward pass per sub-pixel inside a tf.while_loop."""
        height, width, channels = self.image_shape
        canvas, keep = self._initial_canvas(noise, known, known_mask)
        positions = tf.reshape(tf.range(height * width * channels), (height, width, channels))

        def step(index, canvas):
            params = self(canvas, labels)
            candidate = tf.cast(self.likelihood.inverse_cdf(params, noise, channels), tf.int32)
            update = tf.logical_and(tf.equal(positions, index)[None], tf.logical_not(keep))
            return index + 1, tf.where(update, candidate, canvas)

        _, canvas = tf.while_loop(
            lambda index, _: index < height * width * channels, step, (tf.constant(0), canvas)
        )
        return tf.cast(canvas, tf.uint8)

    def _fast_sample_levels(self, noise, labels, known, known_mask):
        raise NotImplementedError

    def _raster_loop(
        self, noise, known, known_mask, image_pad, state, begin_row, params_at, end_column, end_row
    ):
        """The loop of the fast samplers: a graph loop over rows, and inside it one over columns.

        Both loops are graph loops, so an export holds one column's ops, not a
        row's: the LiteRT file stays small and its weights dominate. A column's
        sub-pixels are unrolled (channels are Python ints).

        Args:
            image_pad: columns left of the current one that the first layer reads.
            state: the caches carried from row to row (tensors only).
            begin_row(row, state) -> (fixed, carried): what row `row` (a scalar tensor) reads
                (`fixed`) and what they update (`carried`: tensors with static
                shapes but the batch). Only `carried` is a loop variable.
            params_at(col, image, fixed, carried) -> (params, carried): the
                (batch, C * num_params) params at column `col`, a scalar tensor;
                `image` is (batch, (image_pad + 1) * C), the first layer's inputs at
                columns col - image_pad .. col, with the current pixel's undrawn channels zero.
            end_column(col, carried) -> carried: after a pixel's last channel.
            end_row(levels, fixed, carried) -> state: after a row; `levels` is its
                (batch, W, C) int32 values.
        Returns:
            (batch, H, W, C) uint8 levels; known sub-pixels are kept, the rest are
            inverse-CDF draws of their noise.
        """
        height, width, colors = self.image_shape
        num_params = self.likelihood.num_params()
        batch = tf.shape(noise)[0]
        canvas, keep = self._initial_canvas(noise, known, known_mask)
        inputs_per_pixel = colors * self.input_features
        zero_pixel = tf.zeros([batch, inputs_per_pixel])  # the next pixel, before it is drawn

        def row_step(row, canvas, state):
            row_noise, row_given, row_kept = (
                noise[:, row],
                canvas[:, row],
                keep[:, row],
            )  # (batch, W, C) each
            fixed, carried = begin_row(row, state)

            def column_step(col, image, levels, carried):
                uniform, given, kept = (
                    read_column(values, col) for values in (row_noise, row_given, row_kept)
                )
                pixel = []
                for channel in range(colors):
                    params, carried = params_at(col, image.flat(), fixed, carried)
                    own = params[:, None, None, channel * num_params : (channel + 1) * num_params]
                    value = tf.cast(
                        self.likelihood.inverse_cdf(
                            own, uniform[:, None, None, channel : channel + 1], 1
                        )[:, 0, 0, 0],
                        tf.int32,
                    )
                    if known is not None:
                        value = tf.where(kept[:, channel], given[:, channel], value)
                    image = image.with_channel(channel, self._level_to_input(value))
                    pixel.append(value)
                levels = write_column(levels, col, tf.stack(pixel, axis=-1))
                return (
                    col + 1,
                    image.advance().with_current(zero_pixel),
                    levels,
                    end_column(col, carried),
                )

            columns = (
                tf.constant(0),
                Window.zeros(batch, image_pad, inputs_per_pixel),
                tf.zeros([batch, width, colors], tf.int32),
                carried,
            )
            _, _, levels, carried = tf.while_loop(
                lambda col, *_: col < width,
                column_step,
                columns,
                shape_invariants=(tf.TensorShape([]),)
                + tf.nest.map_structure(any_batch, columns[1:]),
            )
            canvas = tf.tensor_scatter_nd_update(canvas, subpixel_coordinates(batch, row), levels)
            return row + 1, canvas, end_row(levels, fixed, carried)

        _, canvas, _ = tf.while_loop(
            lambda row, *_: row < height,
            row_step,
            (tf.constant(0), canvas, state),
            shape_invariants=(
                tf.TensorShape([]),
                any_batch(canvas),
                tf.nest.map_structure(any_batch, state),
            ),
        )
        return tf.cast(canvas, tf.uint8)

    def _padded_row_inputs(self, levels, pad):
        """A finished row as the network sees it, zero-padded by `pad` columns each side:
        (batch, W + 2 pad, C * input_features)."""
        return tf.pad(self._level_to_input(levels), [[0, 0], [pad, pad], [0, 0]])

    # Set by `_add_level_embedding`: levels read as learned vectors instead of numbers.
    embedding_dim = None
    level_embedding = None

    def _add_level_embedding(self, embedding_dim):
        """With `embedding_dim`, the network reads each level as a learned vector of that size
        (for categories with no order, such as a VQ-VAE's codes); one channel only."""
        if embedding_dim is None:
            return
        if self.image_shape[-1] != 1:
            raise ValueError("embedding_dim needs one channel (codes, or grey levels).")
        self.embedding_dim = int(embedding_dim)
        self.level_embedding = keras.layers.Embedding(
            self.num_levels, self.embedding_dim, name="level_embedding"
        )
        self.level_embedding.build((None,))

    @property
    def input_features(self):
        """Floats per sub-pixel that the first layer reads: one, the level scaled to [-1, 1],
        or `embedding_dim`."""
        return self.embedding_dim or 1

    def network_inputs(self, images):
        """Levels (batch, H, W, C) -> the first layer's inputs: levels scaled to [-1, 1], or with
        `embedding_dim` each level's learned vector, (batch, H, W, embedding_dim)."""
        if self.level_embedding is None:
            return self.to_symmetric_interval(images)
        return self.level_embedding(images[..., 0])

    def _level_to_input(self, value):
        """int32 levels -> what the network reads, as `network_inputs` computes it: a pixel's
        level (batch,) -> (batch, F) and a row's levels (batch, W, 1) -> (batch, W, F), with F
        = `input_features` (F = 1 keeps the level's shape)."""
        if self.level_embedding is None:
            return tf.cast(value, tf.float32) * (2.0 / (self.num_levels - 1)) - 1.0
        embeddings = tf.cast(self.level_embedding.embeddings, tf.float32)
        return tf.gather(embeddings, value[..., 0] if value.shape.rank == 3 else value)

    def get_config(self):
        config = super().get_config()
        config.update(likelihood=self.likelihood_name, num_mixtures=self.num_mixtures)
        return config
