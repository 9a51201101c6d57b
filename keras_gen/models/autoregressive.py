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
        raise ValueError(f"{name}={value} cannot be split into colour groups; use a multiple of {multiple} "
                         f"(e.g. {-(-int(value) // multiple) * multiple}), or leave it unset.")
    return int(value)


def float32_matrix(conv):
    """A masked conv's kernel as a (kh * kw * in, out) float32 matrix, and its bias."""
    kernel = tf.cast(conv.masked_kernel(), tf.float32)
    return tf.reshape(kernel, (-1, kernel.shape[-1])), tf.cast(conv.bias, tf.float32)


def dense(inputs, kernel, bias, activation=None):
    """activation(inputs @ kernel + bias), written so that TensorFlow fuses it into one kernel on CPU."""
    outputs = tf.nn.bias_add(tf.matmul(inputs, kernel), bias)
    return outputs if activation is None else activation(outputs)


def split_causal_kernel(conv):
    """A masked k x k (or 1 x k) conv split for row-by-row sampling, in float32.

    Causal masks zero the kernel below its centre row and right of its centre,
    so the output at (r, c) is the rows above (all k columns) plus row r's
    columns c - k // 2 .. c. Returns (above, current, bias):
        above: (k // 2, k, in, out), for `from_rows_above`; None for a 1-row kernel.
        current: ((k // 2 + 1) * in, out), for the concatenated inputs at c - k // 2 .. c.
        bias: (out,).
    """
    kernel = tf.cast(conv.masked_kernel(), tf.float32)
    rows, cols = conv.kernel_size
    above = kernel[: rows // 2] if rows > 1 else None
    current = tf.reshape(kernel[rows // 2, : cols // 2 + 1], (-1, kernel.shape[-1]))
    return above, current, tf.cast(conv.bias, tf.float32)


def from_rows_above(rows, above, current, bias):
    """What the rows above give every position of the next row, bias included: (batch, W, out).

    Args:
        rows: (batch, k // 2, W + 2 (k // 2), in), the last k // 2 rows, zero-padded like "same".
        above, current, bias: from `split_causal_kernel`.
    """
    if above is None:
        return tf.broadcast_to(bias, tf.concat([tf.shape(rows)[:1], [rows.shape[2], bias.shape[0]]], 0))
    return tf.nn.conv2d(rows, above, strides=1, padding="VALID")[:, 0] + bias


def push_row(rows, row):
    """A ring of the last rows (batch, n, W', ch) with `row` (batch, W', ch) added at the bottom."""
    return tf.concat([rows[:, 1:], row[:, None]], axis=1)


class RowInProgress:
    """The image row a fast sampler is drawing, as its first layer reads it.

    One (batch, C) tensor per column, zero-padded by `pad` columns each side;
    values arrive a channel at a time, and a pixel's later channels stay zero
    until drawn. Lives inside one row of the graph loop (Python ints index it).
    """

    def __init__(self, batch, width, colors, pad):
        self.pad, self.colors = pad, colors
        self.zero = tf.zeros([batch])
        self.columns = [tf.zeros([batch, colors])] * (width + 2 * pad)
        self.pixel = [self.zero] * colors

    def record(self, col, channel, value):
        """Takes in the network input (batch,) float of sub-pixel (col, channel)."""
        self.pixel[channel] = value
        self.columns[col + self.pad] = tf.stack(self.pixel, axis=-1)
        if channel == self.colors - 1:
            self.pixel = [self.zero] * self.colors

    def window(self, col):
        """(batch, (pad + 1) * C): columns col - pad .. col, what a masked kernel's centre row reads."""
        return tf.concat(self.columns[col : col + self.pad + 1], axis=-1)

    def stacked(self):
        """(batch, W + 2 pad, C), the whole padded row."""
        return tf.stack(self.columns, axis=1)


def subpixel_coordinates(batch, *position):
    """(batch, 1 + len(position)) gather/scatter indices of one position in every image of a batch."""
    return tf.stack([tf.range(batch)] + [tf.fill([batch], p) for p in position], axis=1)


@register
class AutoregressiveModel(GenerativeModel):
    """Base of PixelCNN, Gated PixelCNN and PixelRNN.

    Args:
        likelihood: "bernoulli" (binary, default for num_levels=2) or
            "categorical" (a num_levels-way softmax per sub-pixel).
    """

    noise_kind = "uniform"
    has_log_prob = True
    has_fast_sampler = False

    def __init__(self, likelihood=None, **kwargs):
        super().__init__(**kwargs)
        if likelihood is None:
            likelihood = "bernoulli" if self.num_levels == 2 else "categorical"
        self.likelihood_name = likelihood
        self.likelihood = likelihoods.get(likelihood, self.num_levels)
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.bits_per_dim_tracker = keras.metrics.Mean(name="bits_per_dim")

    @property
    def noise_shape(self):
        return self.image_shape

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
            loss = tf.nn.compute_average_loss(nll)
            if self.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
        self.minimize(tape, loss, self.optimizer, self.trainable_variables)
        return self._update_metrics(nll)

    def test_step(self, data):
        images, labels = self._unpack_batch(data)
        return self._update_metrics(-self._log_prob(images, labels))

    # -- sampling ------------------------------------------------------------
    def _sample(self, noise, labels):
        if tf.executing_eagerly():  # an eager while_loop would run op by op
            levels = self._compiled_sampler("auto")(noise, labels, None, None)
        else:
            levels = self._sample_levels(noise, labels, None, None, "auto")
        return self.levels_to_pixels(levels)

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
        labels = validation.check_labels(labels, self.num_classes, noise.shape[0])
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

    def _compiled_sampler(self, method):
        cache = self.__dict__.setdefault("_sampler_cache", {})
        if method not in cache:
            cache[method] = tf.function(
                lambda noise, labels, known, known_mask: self._sample_levels(
                    noise, labels, known, known_mask, method),
                reduce_retracing=True,
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

    def _raster_loop(self, noise, known, known_mask, state, begin_row, params_at, record, end_row):
        """The loop of the fast samplers: a graph loop over rows, the row's sub-pixels unrolled inside it.

        Columns and channels are Python ints, so a sampler keeps the row in
        progress as Python lists of (batch, ...) tensors and reads its windows
        with static slices: no scatter or dynamic slice per sub-pixel.

        Args:
            state: the caches carried from row to row (tensors only).
            begin_row(row, state) -> row_state: anything, for the row's sub-pixel steps.
            params_at(row, col, row_state) -> ((batch, C * num_params) params at (row, col), row_state).
            record(row, col, channel, value, row_state) -> row_state: take in a drawn (batch,) int32 value.
            end_row(row, row_state) -> state: after the last sub-pixel of a row.
        Returns:
            (batch, H, W, C) uint8 levels; known sub-pixels are kept, the rest are
            inverse-CDF draws of their noise.
        """
        height, width, colors = self.image_shape
        num_params = self.likelihood.num_params()
        canvas, keep = self._initial_canvas(noise, known, known_mask)

        def row_step(row, canvas, state):
            given, kept = canvas[:, row], keep[:, row]  # (batch, W, C) each
            # (batch, 1, 1, 1) noise per sub-pixel, split once per row.
            uniform = tf.unstack(tf.reshape(noise[:, row], [-1, width * colors, 1, 1, 1]), axis=1)
            row_state, pixels = begin_row(row, state), []
            for col in range(width):
                pixel = []
                for channel in range(colors):
                    params, row_state = params_at(row, col, row_state)
                    own = params[:, None, None, channel * num_params : (channel + 1) * num_params]
                    value = tf.cast(self.likelihood.inverse_cdf(
                        own, uniform[col * colors + channel], 1)[:, 0, 0, 0], tf.int32)
                    if known is not None:
                        value = tf.where(kept[:, col, channel], given[:, col, channel], value)
                    row_state = record(row, col, channel, value, row_state)
                    pixel.append(value)
                pixels.append(tf.stack(pixel, axis=-1))
            canvas = tf.tensor_scatter_nd_update(canvas, subpixel_coordinates(tf.shape(noise)[0], row),
                                                 tf.stack(pixels, axis=1))
            return row + 1, canvas, end_row(row, row_state)

        any_batch = lambda tensor: tf.TensorShape([None]).concatenate(tensor.shape[1:])  # noqa: E731
        _, canvas, _ = tf.while_loop(
            lambda row, *_: row < height, row_step, (tf.constant(0), canvas, state),
            shape_invariants=(tf.TensorShape([]), any_batch(canvas), tf.nest.map_structure(any_batch, state)))
        return tf.cast(canvas, tf.uint8)

    def _level_to_input(self, value):
        """int32 levels -> the float the network sees, as `to_symmetric_interval` computes it."""
        return tf.cast(value, tf.float32) * (2.0 / (self.num_levels - 1)) - 1.0

    def get_config(self):
        config = super().get_config()
        config.update(likelihood=self.likelihood_name)
        return config
