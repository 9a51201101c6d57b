"""PixelRNN layers (van den Oord, Kalchbrenner & Kavukcuoglu 2016): Row LSTM and Diagonal BiLSTM.

Written from plain convolution, matmul and gate ops with the time loop
unrolled over rows or diagonals (the image size is static), so they export to
TFLite with built-in ops only; Keras' LSTM layer and TensorArray need Flex.
"""

import contextlib
import threading

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
    # One split and one sigmoid for the three gates: fewer small ops per step, and no
    # per-gate slice, whose gradient would be gates-sized.
    sigmoid_gates, candidate = tf.split(split, [3, 1], axis=-2)
    flat_shape = tf.concat([leading, [units]], 0)
    input_gate, forget_gate, output_gate = (
        tf.reshape(gate, flat_shape) for gate in tf.unstack(tf.sigmoid(sigmoid_gates), axis=-2)
    )
    cell = forget_gate * cell + input_gate * tf.tanh(tf.reshape(candidate, flat_shape))
    return output_gate * tf.tanh(cell), cell


@register
class RowLSTM(keras.layers.Layer):
    """Row LSTM: processes the image row by row, top to bottom.

    The input-to-state part is a masked 1 x k convolution along the row; the
    state-to-state part is a 1 x k convolution over the previous row's hidden
    state. The receptive field is the triangle above each pixel.

    Input (batch, H, W, features) -> output (batch, H, W, units).

    Example:

    ```python
    lstm = RowLSTM(units=4, kernel_size=3)
    states = lstm(np.zeros((2, 5, 6, 4), "float32"))          # (2, 5, 6, 4), row by row from the top
    ```
    """

    def __init__(self, units, kernel_size=3, color_channels=1, **kwargs):
        super().__init__(**kwargs)
        self.units, self.kernel_size, self.color_channels = (
            int(units),
            int(kernel_size),
            int(color_channels),
        )
        channel_groups(self.units, self.color_channels)
        self.input_to_state = MaskedConv2D(
            4 * self.units,
            (1, self.kernel_size),
            "B",
            self.color_channels,
            name="input_to_state",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.input_to_state.build(input_shape)
        self.state_kernel = self.add_weight(
            name="state_kernel",
            shape=(1, self.kernel_size, self.units, 4 * self.units),
            initializer="glorot_uniform",
        )

    def state_gates(self, hidden):
        """The state-to-state part of the gates: (batch, W, u) hidden of a row -> (batch, W, 4u) for the next."""
        kernel = tf.cast(self.state_kernel, hidden.dtype)
        # expand_dims and squeeze, not [:, None] and [:, 0]: a strided slice's gradient costs a copy.
        return tf.squeeze(
            tf.nn.conv2d(tf.expand_dims(hidden, 1), kernel, strides=1, padding="SAME"), 1
        )

    def step(self, input_gates, hidden, cell):
        """One row: input_gates (batch, W, 4u) and the previous row's (hidden, cell), each (batch, W, u)."""
        return lstm_update(input_gates + self.state_gates(hidden), cell, self.color_channels)

    def initial_state(self, features):
        """Zero (hidden, cell) for one row of `features` (batch, rows, W, channels)."""
        zeros = tf.zeros(
            tf.concat([tf.shape(features)[:1], [features.shape[2], self.units]], 0), features.dtype
        )
        return zeros, zeros

    def call(self, features):
        # One unstack, not a slice per row: each slice's gradient would be a full-size tensor.
        input_gates = tf.unstack(self.input_to_state(features), axis=1)
        hidden, cell = self.initial_state(features)
        rows = []
        for row_gates in input_gates:
            hidden, cell = self.step(row_gates, hidden, cell)
            rows.append(hidden)
        return tf.stack(rows, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, kernel_size=self.kernel_size, color_channels=self.color_channels
        )
        return config


def skew(images):
    """(batch, H, W, C) -> (batch, H, W + H - 1, C): row r moves right by r, so diagonals become columns."""
    height = images.shape[1]
    return tf.concat(
        [
            tf.pad(images[:, r : r + 1], [[0, 0], [0, 0], [r, height - 1 - r], [0, 0]])
            for r in range(height)
        ],
        axis=1,
    )


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
    order = [
        raster[r, k - r] for k, (first, last) in enumerate(spans) for r in range(first, last + 1)
    ]
    return np.array(order, np.int32), spans


def permute(values, permutation):
    """values (batch, n, ...) reordered along axis 1: values[:, permutation].

    The gradient gathers with the inverse permutation; tf.gather's own
    gradient is a scatter-add (UnsortedSegmentSum), which was a tenth of the
    Diagonal BiLSTM's training step on CPU.
    """
    permutation = np.asarray(permutation, np.int32)
    inverse = np.argsort(permutation).astype(np.int32)

    @tf.custom_gradient
    def reorder(values):
        return tf.gather(values, permutation, axis=1), lambda upstream: tf.gather(
            upstream, inverse, axis=1
        )

    return reorder(values)


def _rows(values, first_row, wanted_first, wanted_last, axis=1):
    """Rows wanted_first..wanted_last of `values`, which holds rows first_row.. along `axis`; zeros outside.

    The rows are Python ints in an unrolled loop, scalar tensors in a graph loop.
    """
    static = isinstance(first_row, int) and isinstance(wanted_first, int)
    maximum = max if static else tf.maximum
    count = values.shape[axis] if static else tf.shape(values)[axis]
    top, bottom = (
        maximum(0, first_row - wanted_first),
        maximum(0, wanted_last - (first_row + count - 1)),
    )
    paddings = [[0, 0]] * 3
    paddings[axis] = [top, bottom]
    begin, size = [0, 0, 0], [-1, -1, -1]
    begin[axis], size[axis] = wanted_first - first_row + top, wanted_last - wanted_first + 1
    return tf.slice(tf.pad(values, paddings), begin, size)


_UNROLLED = threading.local()


@contextlib.contextmanager
def unrolled_loops():
    """Within it, recurrent layers trace their time loop unrolled in Python instead of as a graph loop.

    The graph loop keeps tracing time and memory flat in the image size, but
    its TensorArrays become TensorList ops, which TFLite runs only with Flex;
    exports trace under this, so they use built-in ops only.
    """
    previous = getattr(_UNROLLED, "active", False)
    _UNROLLED.active = True
    try:
        yield
    finally:
        _UNROLLED.active = previous


def loops_unrolled():
    """Whether recurrent layers should unroll their time loop (inside `unrolled_loops`)."""
    return getattr(_UNROLLED, "active", False)


@register
class DiagonalLSTM(keras.layers.Layer):
    """One direction of the Diagonal BiLSTM: an LSTM over the diagonals of the image.

    The input is skewed so that each diagonal is a column (see `skew`), and the
    LSTM steps from column to column. Only the cells of each diagonal are
    computed, so every row starts from a zero state. The input-to-state part
    is a 1 x 1 masked convolution, the state-to-state part a 2 x 1 convolution
    over the previous column (the pixel above and the pixel to the left).
    `mirrored` runs right to left instead (the pixel above and to the right).
    `masked=False` drops the input-to-state mask, for a direction whose
    output only the rows below use.

    Input (batch, H, W, features) -> output (batch, H, W, units).

    Example:

    ```python
    lstm = DiagonalLSTM(units=4)
    states = lstm(np.zeros((2, 5, 6, 4), "float32"))          # (2, 5, 6, 4), diagonal by diagonal
    ```
    """

    def __init__(self, units, color_channels=1, mirrored=False, masked=True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.color_channels, self.mirrored = (
            int(units),
            int(color_channels),
            bool(mirrored),
        )
        self.masked = bool(masked)
        channel_groups(self.units, self.color_channels)
        self.input_to_state = MaskedConv2D(
            4 * self.units,
            1,
            "B" if self.masked else None,
            self.color_channels,
            name="input_to_state",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.input_to_state.build(input_shape)
        self.state_kernel = self.add_weight(
            name="state_kernel", shape=(2, self.units, 4 * self.units), initializer="glorot_uniform"
        )

    def step(self, input_gates, above, previous, previous_cell):
        """One cell: input_gates (..., 4u); the hidden state above, and the previous cell's (hidden, cell)
        (to the left, or to the right when mirrored), each (..., u), zeros past the border."""
        # Rows of the kernel: the state above, then the previous state.
        kernel = tf.reshape(
            tf.cast(self.state_kernel, above.dtype), (2 * self.units, 4 * self.units)
        )
        states = tf.concat([above, previous], -1)
        # A plain 2-D matmul: an einsum over "..." ran 8x slower in bfloat16 on CPU.
        state_gates = tf.reshape(
            tf.matmul(tf.reshape(states, [-1, 2 * self.units]), kernel),
            tf.concat([tf.shape(states)[:-1], [4 * self.units]], 0),
        )
        return lstm_update(input_gates + state_gates, previous_cell, self.color_channels)

    def call(self, features):
        height, width = features.shape[1], features.shape[2]
        batch = tf.shape(features)[0]
        order, spans = diagonal_order(height, width, self.mirrored)
        input_gates = tf.reshape(
            self.input_to_state(features), [batch, height * width, 4 * self.units]
        )
        input_gates = permute(input_gates, order)  # (batch, H * W, 4u), diagonal by diagonal
        scan = self._unrolled_scan if loops_unrolled() else self._graph_scan
        outputs = scan(input_gates, spans)
        raster = permute(outputs, np.argsort(order))
        return tf.reshape(raster, [batch, height, width, self.units])

    def _unrolled_scan(self, input_gates, spans):
        """(batch, H * W, 4u) gates in diagonal order -> (batch, H * W, u) hidden states, a Python loop."""
        # One split, not a slice per diagonal: each slice's gradient would be a full-size tensor.
        input_gates = tf.split(input_gates, [last - first + 1 for first, last in spans], axis=1)
        hidden = cell = tf.zeros([tf.shape(input_gates[0])[0], 0, self.units], input_gates[0].dtype)
        previous_first, outputs = 0, []
        for (first, last), diagonal_gates in zip(spans, input_gates):
            hidden, cell = self.step(
                diagonal_gates,
                _rows(hidden, previous_first, first - 1, last - 1),
                _rows(hidden, previous_first, first, last),
                _rows(cell, previous_first, first, last),
            )
            outputs.append(hidden)
            previous_first = first
        return tf.concat(outputs, axis=1)

    def _graph_scan(self, input_gates, spans):
        """The same as `_unrolled_scan` inside one tf.while_loop, time-major, one diagonal per iteration."""
        batch, dtype = tf.shape(input_gates)[0], input_gates.dtype
        firsts = tf.constant([first for first, _ in spans], tf.int32)
        lasts = tf.constant([last for _, last in spans], tf.int32)
        lengths = [last - first + 1 for first, last in spans]
        # TensorArrays, so a step neither slices nor writes into a full-size tensor (nor its gradient).
        gates = tf.TensorArray(
            dtype, size=len(spans), infer_shape=False, element_shape=[None, None, 4 * self.units]
        ).split(tf.transpose(input_gates, [1, 0, 2]), lengths)
        outputs = tf.TensorArray(
            dtype, size=len(spans), infer_shape=False, element_shape=[None, None, self.units]
        )

        def step(k, hidden, cell, outputs):
            first, last, previous_first = firsts[k], lasts[k], firsts[tf.maximum(k - 1, 0)]
            hidden, cell = self.step(
                gates.read(k),
                _rows(hidden, previous_first, first - 1, last - 1, axis=0),
                _rows(hidden, previous_first, first, last, axis=0),
                _rows(cell, previous_first, first, last, axis=0),
            )
            return k + 1, hidden, cell, outputs.write(k, hidden)

        empty = tf.zeros([0, batch, self.units], dtype)
        _, _, _, outputs = tf.while_loop(
            lambda k, *_: k < len(spans),
            step,
            (tf.constant(0), empty, empty, outputs),
            shape_invariants=(
                tf.TensorShape([]),
                tf.TensorShape([None, None, self.units]),
                tf.TensorShape([None, None, self.units]),
                tf.TensorShape(None),
            ),
        )
        return tf.transpose(outputs.concat(), [1, 0, 2])

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            color_channels=self.color_channels,
            mirrored=self.mirrored,
            masked=self.masked,
        )
        return config


@register
class DiagonalBiLSTM(keras.layers.Layer):
    """Diagonal BiLSTM: a left-to-right and a right-to-left diagonal LSTM.

    The right-to-left output is shifted down one row before the two are added,
    so no pixel of the current row to the right leaks in.

    With `complete_context=True`, the right-to-left LSTM also reads the image
    row itself, unmasked: the row below is all it feeds, and every value of the
    row is earlier than that. Without it, as in the paper, the last pixel of a
    row reaches the next row only through the first layer's kernel, so the
    first pixels of the next row miss it once the image is wider than the kernel.

    Input (batch, H, W, features) [and with complete_context the image,
    (batch, H, W, color_channels) in [-1, 1]] -> output (batch, H, W, units).

    Example:

    ```python
    bilstm = DiagonalBiLSTM(units=4, complete_context=True)
    images = np.zeros((2, 5, 6, 1), "float32")
    states = bilstm(np.zeros((2, 5, 6, 4), "float32"), images)   # (2, 5, 6, 4)
    ```
    """

    def __init__(self, units, color_channels=1, complete_context=False, **kwargs):
        super().__init__(**kwargs)
        self.units, self.color_channels = int(units), int(color_channels)
        self.complete_context = bool(complete_context)
        self.left_to_right = DiagonalLSTM(
            units, color_channels, name="left_to_right", dtype=self.dtype_policy
        )
        self.right_to_left = DiagonalLSTM(
            units,
            color_channels,
            mirrored=True,
            masked=not self.complete_context,
            name="right_to_left",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.left_to_right.build(input_shape)
        extra = self.color_channels if self.complete_context else 0
        self.right_to_left.build(tuple(input_shape[:-1]) + (input_shape[-1] + extra,))

    def call(self, features, image=None):
        backward_inputs = features
        if self.complete_context:
            if image is None:
                raise ValueError(
                    "A DiagonalBiLSTM with complete_context=True needs the image as well."
                )
            backward_inputs = tf.concat([features, tf.cast(image, features.dtype)], axis=-1)
        return self.left_to_right(features) + shift_down(self.right_to_left(backward_inputs))

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            color_channels=self.color_channels,
            complete_context=self.complete_context,
        )
        return config
