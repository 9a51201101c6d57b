"""PixelRNN layers (van den Oord, Kalchbrenner & Kavukcuoglu 2016): Row LSTM and Diagonal BiLSTM.

Written from plain convolution, matmul and gate ops with the time loop
unrolled over rows or diagonals (the image size is static), so they export to
TFLite with built-in ops only; Keras' LSTM layer and TensorArray need Flex.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_gen.layers.gated import shift_down
from keras_gen.layers.masked_conv import MaskedConv2D, channel_groups
from keras_gen.registry import register


def lstm_update(gates, cell, color_channels):
    """One LSTM update from pre-activation gates.

    Args:
        gates: (..., 4 * units), laid out per colour group as (C, 4, units / C)
            so that the R->G->B grouping of a masked input-to-state conv holds.
        cell: (..., units).
    Returns:
        (hidden, cell), each (..., units), colour groups contiguous.
    """
    units = gates.shape[-1] // 4
    leading = tf.shape(gates)[:-1]
    split = tf.reshape(gates, tf.concat([leading, [color_channels, 4, units // color_channels]], 0))
    parts = [tf.reshape(split[..., i, :], tf.concat([leading, [units]], 0)) for i in range(4)]
    input_gate, forget_gate, output_gate = (tf.sigmoid(p) for p in parts[:3])
    cell = forget_gate * cell + input_gate * tf.tanh(parts[3])
    return output_gate * tf.tanh(cell), cell


@register
class RowLSTM(keras.layers.Layer):
    """Row LSTM: processes the image row by row, top to bottom.

    The input-to-state part is a masked 1 x k convolution along the row; the
    state-to-state part is a 1 x k convolution over the previous row's hidden
    state. The receptive field is the triangle above each pixel.

    Input (batch, H, W, features) -> output (batch, H, W, units).
    """

    def __init__(self, units, kernel_size=3, color_channels=1, **kwargs):
        super().__init__(**kwargs)
        self.units, self.kernel_size, self.color_channels = int(units), int(kernel_size), int(color_channels)
        channel_groups(self.units, self.color_channels)
        self.input_to_state = MaskedConv2D(4 * self.units, (1, self.kernel_size), "B", self.color_channels,
                                           name="input_to_state", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.input_to_state.build(input_shape)
        self.state_kernel = self.add_weight(
            name="state_kernel", shape=(1, self.kernel_size, self.units, 4 * self.units),
            initializer="glorot_uniform",
        )

    def state_gates(self, hidden):
        """The state-to-state part of the gates: (batch, W, u) hidden of a row -> (batch, W, 4u) for the next."""
        kernel = tf.cast(self.state_kernel, hidden.dtype)
        return tf.nn.conv2d(hidden[:, None], kernel, strides=1, padding="SAME")[:, 0]

    def step(self, input_gates, hidden, cell):
        """One row: input_gates (batch, W, 4u) and the previous row's (hidden, cell), each (batch, W, u)."""
        return lstm_update(input_gates + self.state_gates(hidden), cell, self.color_channels)

    def initial_state(self, features):
        """Zero (hidden, cell) for one row of `features` (batch, rows, W, channels)."""
        zeros = tf.zeros(tf.concat([tf.shape(features)[:1], [features.shape[2], self.units]], 0), features.dtype)
        return zeros, zeros

    def call(self, features):
        input_gates = self.input_to_state(features)
        hidden, cell = self.initial_state(features)
        rows = []
        for row in range(features.shape[1]):
            hidden, cell = self.step(input_gates[:, row], hidden, cell)
            rows.append(hidden)
        return tf.stack(rows, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, kernel_size=self.kernel_size, color_channels=self.color_channels)
        return config


def skew(images):
    """(batch, H, W, C) -> (batch, H, W + H - 1, C): row r moves right by r, so diagonals become columns."""
    height = images.shape[1]
    return tf.concat([tf.pad(images[:, r : r + 1], [[0, 0], [0, 0], [r, height - 1 - r], [0, 0]])
                      for r in range(height)], axis=1)


def unskew(skewed, width):
    """Inverse of `skew`: (batch, H, W + H - 1, C) -> (batch, H, W, C)."""
    return tf.concat([skewed[:, r : r + 1, r : r + width] for r in range(skewed.shape[1])], axis=1)


def diagonal_order(height, width, mirrored=False):
    """Raster indices (r * W + c) of the H * W pixels, read diagonal by diagonal.

    This is the skewed image read column by column, top to bottom, with the
    padding dropped; `mirrored` reads the image flipped left to right.
    Returns (order, spans): order has H * W entries; spans[k] = (first_row,
    last_row) of diagonal k, the cells (r, k - r).
    """
    raster = np.arange(height * width).reshape(height, width)
    if mirrored:
        raster = raster[:, ::-1]
    spans = [(max(0, k - width + 1), min(height - 1, k)) for k in range(height + width - 1)]
    order = [raster[r, k - r] for k, (first, last) in enumerate(spans) for r in range(first, last + 1)]
    return np.array(order, np.int32), spans


def _rows(values, first_row, wanted_first, wanted_last):
    """Rows wanted_first..wanted_last of `values` (batch, n, u), which holds rows first_row.., zeros outside."""
    last_row = first_row + values.shape[1] - 1
    top, bottom = max(0, first_row - wanted_first), max(0, wanted_last - last_row)
    values = tf.pad(values, [[0, 0], [top, bottom], [0, 0]])
    start = wanted_first - first_row + top
    return values[:, start : start + wanted_last - wanted_first + 1]


@register
class DiagonalLSTM(keras.layers.Layer):
    """One direction of the Diagonal BiLSTM: an LSTM over the diagonals of the image.

    The input is skewed so that each diagonal is a column (see `skew`), and the
    LSTM steps from column to column. Only the cells of each diagonal are
    computed, so every row starts from a zero state. The input-to-state part
    is a 1 x 1 masked convolution, the state-to-state part a 2 x 1 convolution
    over the previous column (the pixel above and the pixel to the left).
    `mirrored` runs right to left instead (the pixel above and to the right).

    Input (batch, H, W, features) -> output (batch, H, W, units).
    """

    def __init__(self, units, color_channels=1, mirrored=False, **kwargs):
        super().__init__(**kwargs)
        self.units, self.color_channels, self.mirrored = int(units), int(color_channels), bool(mirrored)
        channel_groups(self.units, self.color_channels)
        self.input_to_state = MaskedConv2D(4 * self.units, 1, "B", self.color_channels, name="input_to_state",
                                           dtype=self.dtype_policy)

    def build(self, input_shape):
        self.input_to_state.build(input_shape)
        self.state_kernel = self.add_weight(name="state_kernel", shape=(2, self.units, 4 * self.units),
                                            initializer="glorot_uniform")

    def step(self, input_gates, above, previous, previous_cell):
        """One cell: input_gates (..., 4u); the hidden state above, and the previous cell's (hidden, cell)
        (to the left, or to the right when mirrored), each (..., u), zeros past the border."""
        # Rows of the kernel: the state above, then the previous state.
        kernel = tf.reshape(tf.cast(self.state_kernel, above.dtype), (2 * self.units, 4 * self.units))
        states = tf.concat([above, previous], -1)
        # A plain 2-D matmul: an einsum over "..." ran 8x slower in bfloat16 on CPU.
        state_gates = tf.reshape(tf.matmul(tf.reshape(states, [-1, 2 * self.units]), kernel),
                                 tf.concat([tf.shape(states)[:-1], [4 * self.units]], 0))
        return lstm_update(input_gates + state_gates, previous_cell, self.color_channels)

    def call(self, features):
        height, width = features.shape[1], features.shape[2]
        batch = tf.shape(features)[0]
        order, spans = diagonal_order(height, width, self.mirrored)
        input_gates = tf.reshape(self.input_to_state(features), [batch, height * width, 4 * self.units])
        input_gates = tf.gather(input_gates, order, axis=1)
        hidden = cell = tf.zeros([batch, 0, self.units], features.dtype)
        previous_first, start, outputs = 0, 0, []
        for first, last in spans:
            hidden, cell = self.step(input_gates[:, start : start + last - first + 1],
                                     _rows(hidden, previous_first, first - 1, last - 1),
                                     _rows(hidden, previous_first, first, last),
                                     _rows(cell, previous_first, first, last))
            outputs.append(hidden)
            previous_first, start = first, start + last - first + 1
        raster = tf.gather(tf.concat(outputs, axis=1), np.argsort(order).astype(np.int32), axis=1)
        return tf.reshape(raster, [batch, height, width, self.units])

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, color_channels=self.color_channels, mirrored=self.mirrored)
        return config


@register
class DiagonalBiLSTM(keras.layers.Layer):
    """Diagonal BiLSTM: a left-to-right and a right-to-left diagonal LSTM.

    The right-to-left output is shifted down one row before the two are added,
    so no pixel of the current row to the right leaks in.
    Input (batch, H, W, features) -> output (batch, H, W, units).
    """

    def __init__(self, units, color_channels=1, **kwargs):
        super().__init__(**kwargs)
        self.units, self.color_channels = int(units), int(color_channels)
        self.left_to_right = DiagonalLSTM(units, color_channels, name="left_to_right", dtype=self.dtype_policy)
        self.right_to_left = DiagonalLSTM(units, color_channels, mirrored=True, name="right_to_left",
                                          dtype=self.dtype_policy)

    def build(self, input_shape):
        self.left_to_right.build(input_shape)
        self.right_to_left.build(input_shape)

    def call(self, features):
        return self.left_to_right(features) + shift_down(self.right_to_left(features))

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, color_channels=self.color_channels)
        return config
