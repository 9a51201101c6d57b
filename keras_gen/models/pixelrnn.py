"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016): Row LSTM and Diagonal BiLSTM."""

import tensorflow as tf
from keras import ops

from keras_gen.layers import DiagonalBiLSTM, MaskedConv2D, RowLSTM
from keras_gen.models.autoregressive import AutoregressiveModel, channel_width, subpixel_coordinates
from keras_gen.registry import register

KINDS = ("row_lstm", "diagonal_bilstm")


@register
class PixelRNN(AutoregressiveModel):
    """A 7 x 7 mask-A convolution, residual recurrent layers, then 1 x 1 mask-B layers into the output head.

    Args:
        kind: "row_lstm" or "diagonal_bilstm".
        units: channels of the residual stream and of each LSTM's state, a multiple of C (default 32,
            rounded up to one).
        num_layers: recurrent layers, each followed by a 1 x 1 mask-B conv added to its input.
        kernel_size: the Row LSTM's 1 x k input-to-state and state-to-state kernels.
        head_filters: channels of the 1 x 1 layer before the output, a multiple of C (default 64,
            rounded up to one).
    """

    has_fast_sampler = True

    def __init__(self, image_shape=(28, 28, 1), num_levels=2, kind="row_lstm", units=None, num_layers=2,
                 kernel_size=3, head_filters=None, likelihood=None, **kwargs):
        super().__init__(image_shape=image_shape, num_levels=num_levels, likelihood=likelihood, **kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
        colors = self.image_shape[-1]
        self.units = channel_width(units, 32, colors, "units")
        self.head_filters = channel_width(head_filters, 64, colors, "head_filters")
        self.kind, self.num_layers = kind, int(num_layers)
        self.kernel_size = int(kernel_size)
        self.input_conv = MaskedConv2D(self.units, 7, "A", colors, name="input_conv")
        self.recurrent_layers = [
            RowLSTM(self.units, self.kernel_size, colors, name=f"row_lstm_{i}") if kind == "row_lstm"
            else DiagonalBiLSTM(self.units, colors, name=f"diagonal_bilstm_{i}")
            for i in range(self.num_layers)
        ]
        self.residual_convs = [MaskedConv2D(self.units, 1, "B", colors, name=f"residual_{i}")
                               for i in range(self.num_layers)]
        self.head_hidden = MaskedConv2D(self.head_filters, 1, "B", colors, activation="relu", name="head_hidden")
        self.head_out = MaskedConv2D(self.output_channels, 1, "B", colors, name="head_out")
        features = (None,) + self.image_shape[:2] + (self.units,)
        self.input_conv.build((None,) + self.image_shape)
        for recurrent, residual in zip(self.recurrent_layers, self.residual_convs):
            recurrent.build(features)
            residual.build(features)
        self.head_hidden.build(features)
        self.head_out.build(features[:-1] + (self.head_filters,))
        self.built = True

    def _head(self, features):
        return self.head_out(self.head_hidden(ops.relu(features)))

    def features(self, images):
        """(batch, H, W, C) levels -> (batch, H, W, units): the recurrent stack's output, before the 1 x 1 head."""
        features = self.input_conv(self.to_symmetric_interval(images))
        for recurrent, residual in zip(self.recurrent_layers, self.residual_convs):
            features = features + residual(recurrent(features))
        return features

    def call(self, images, labels=None, training=False):
        """(batch, H, W, C) integer levels -> (batch, H, W, C * num_params) likelihood params."""
        return self._head(self.features(images))

    # Fast samplers. `image` is the canvas as the network sees it, zero-padded
    # by 3 on every side for the 7 x 7 input conv: (batch, H + 6, W + 6, C) float32.

    def _input_features(self, image, row, col=None):
        """The mask-A conv's output along `row` (batch, W, units), or at (row, col) only (batch, units)."""
        dtype = self.compute_dtype  # the layers below compute in it (bfloat16 under mixed precision)
        size = [-1, 7, -1, -1] if col is None else [-1, 7, 7, -1]
        window = tf.cast(tf.slice(image, [0, row, 0 if col is None else col, 0], size), dtype)
        kernel = tf.cast(self.input_conv.masked_kernel(), dtype)
        features = tf.nn.conv2d(window, kernel, strides=1, padding="VALID") + tf.cast(self.input_conv.bias, dtype)
        return features[:, 0] if col is None else features[:, 0, 0]

    def _fast_sample_levels(self, noise, labels, known, known_mask):
        height, width, colors = self.image_shape
        batch = tf.shape(noise)[0]
        image = tf.zeros([batch, height + 6, width + 6, colors])

        def record_in_image(row, col, channel, value, image):
            where = subpixel_coordinates(batch, row + 3, col + 3, channel)
            return tf.tensor_scatter_nd_update(image, where, self._level_to_input(value))

        sampler = self._row_lstm_sampler if self.kind == "row_lstm" else self._diagonal_bilstm_sampler
        state, params_at, record, end_row = sampler(image, record_in_image)
        return self._raster_loop(noise, known, known_mask, state, params_at, record, end_row)

    def _row_lstm_sampler(self, image, record_in_image):
        """Carries each Row LSTM's state from row to row.

        A sub-pixel step recomputes only the current row; when a row is done
        it is run once more, complete, to give the state for the next row.
        """
        zeros = tf.zeros([tf.shape(image)[0], self.image_shape[1], self.units], self.compute_dtype)

        def row_pass(image, row, states):
            features = self._input_features(image, row)[:, None]
            new_states = []
            for recurrent, residual, (hidden, cell) in zip(self.recurrent_layers, self.residual_convs, states):
                hidden, cell = recurrent.step(recurrent.input_to_state(features)[:, 0], hidden, cell)
                features = features + residual(hidden[:, None])
                new_states.append((hidden, cell))
            return self._head(features)[:, 0], new_states

        def params_at(row, col, state):
            image, states = state
            return row_pass(image, row, states)[0][:, col], state

        def record(row, col, channel, value, state):
            image, states = state
            return record_in_image(row, col, channel, value, image), states

        def end_row(row, state):
            image, states = state
            return image, row_pass(image, row, states)[1]

        return (image, [(zeros, zeros) for _ in self.recurrent_layers]), params_at, record, end_row

    def _diagonal_bilstm_sampler(self, image, record_in_image):
        """Computes one pixel per sub-pixel step.

        The left-to-right LSTM at (r, c) needs the states at (r, c - 1) and
        (r - 1, c), and the shifted right-to-left output at (r, c) is that of
        (r - 1, c): all known by then. Carried: each layer's left-to-right
        (hidden, cell) at (r, c - 1); its left-to-right hidden along row r so
        far; both directions' hidden along row r - 1. When a row is done, the
        right-to-left LSTM runs along it once.
        """
        width, colors = self.image_shape[1], self.image_shape[2]
        zero_row = tf.zeros([tf.shape(image)[0], width, self.units], self.compute_dtype)
        zero_pixel = zero_row[:, 0]

        def pointwise(layer, values):  # a 1 x 1 conv on (batch, units)
            return layer(values[:, None, None])[:, 0, 0]

        def pixel_pass(image, row, col, rows_above, previous):
            features = self._input_features(image, row, col)
            states = []
            for bilstm, residual, (forward_above, backward_above), (hidden, cell) in zip(
                    self.recurrent_layers, self.residual_convs, rows_above, previous):
                forward = bilstm.left_to_right
                hidden, cell = forward.step(pointwise(forward.input_to_state, features),
                                            forward_above[:, col], hidden, cell)
                features = features + pointwise(residual, hidden + backward_above[:, col])
                states.append((hidden, cell))
            return pointwise(self._head, features), states

        def params_at(row, col, state):
            image, rows_above, _, previous = state
            return pixel_pass(image, row, col, rows_above, previous)[0], state

        def record(row, col, channel, value, state):
            image, rows_above, forward_row, previous = state
            image = record_in_image(row, col, channel, value, image)
            # Once the whole pixel is known, its states become the next pixel's `previous`.
            done = tf.equal(channel, colors - 1)
            at_col = tf.equal(tf.range(width), col)[None, :, None]
            _, states = pixel_pass(image, row, col, rows_above, previous)
            forward_row = [tf.where(done & at_col, hidden[:, None], old)
                           for (hidden, _), old in zip(states, forward_row)]
            previous = [(tf.where(done, hidden, old_hidden), tf.where(done, cell, old_cell))
                        for (hidden, cell), (old_hidden, old_cell) in zip(states, previous)]
            return image, rows_above, forward_row, previous

        def end_row(row, state):
            image, rows_above, forward_row, _ = state
            features = self._input_features(image, row)[:, None]
            new_rows_above = []
            for bilstm, residual, (_, backward_above), forward_hidden in zip(
                    self.recurrent_layers, self.residual_convs, rows_above, forward_row):
                backward = bilstm.right_to_left
                gates = backward.input_to_state(features)[:, 0]
                hidden = cell = zero_pixel
                backward_hidden = [None] * width
                for col in reversed(range(width)):
                    hidden, cell = backward.step(gates[:, col], backward_above[:, col], hidden, cell)
                    backward_hidden[col] = hidden
                features = features + residual((forward_hidden + backward_above)[:, None])
                new_rows_above.append((forward_hidden, tf.stack(backward_hidden, axis=1)))
            previous = [(zero_pixel, zero_pixel) for _ in self.recurrent_layers]
            return image, new_rows_above, forward_row, previous

        layers = self.recurrent_layers
        state = (image, [(zero_row, zero_row) for _ in layers], [zero_row for _ in layers],
                 [(zero_pixel, zero_pixel) for _ in layers])
        return state, params_at, record, end_row

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, units=self.units, num_layers=self.num_layers,
                      kernel_size=self.kernel_size, head_filters=self.head_filters)
        return config
