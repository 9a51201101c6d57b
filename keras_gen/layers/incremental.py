"""Tools of the cached (fast) samplers: each layer computed at one position at a time.

A masked layer's output at a position depends only on earlier sub-pixels, so a sampler can
compute it once, when the position is reached, from what it carries: the rows above (for a
whole row at once) and a small window of the current row. These helpers turn masked kernels
into float32 matrices and move that window along a row; every op is a LiteRT built-in.
"""

import collections

import tensorflow as tf


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
        return tf.broadcast_to(
            bias, tf.concat([tf.shape(rows)[:1], [rows.shape[2], bias.shape[0]]], 0)
        )
    return tf.nn.conv2d(rows, above, strides=1, padding="VALID")[:, 0] + bias


def shift_in(ring, newest):
    """A ring of the last n items along axis 1 with `newest` added at the end and the oldest dropped.

    ring: (batch, n, ...), newest: (batch, ...); n may be 0 (a kernel with no context to its left).
    """
    if ring.shape[1] == 0:
        return ring
    return tf.concat([ring[:, 1:], newest[:, None]], axis=1)


def any_batch(tensor):
    """The shape of `tensor` with its batch left open: a loop's shape invariant when the batch is static."""
    return tf.TensorShape([None]).concatenate(tensor.shape[1:])


def read_column(row, col):
    """row[:, col] for a column index that is a loop tensor: (batch, W, ...) -> (batch, ...)."""
    return tf.gather(row, col, axis=1)


def write_column(row, col, column):
    """`row` (batch, W, ...) with its column `col` replaced by `column` (batch, ...); a select, exact."""
    at_col = tf.equal(tf.range(row.shape[1]), col)
    return tf.where(tf.reshape(at_col, [1, -1] + [1] * (row.shape.rank - 2)), column[:, None], row)


class Window(collections.namedtuple("Window", ["before", "current"])):
    """What the centre row of a causal kernel reads at the column being drawn, carried from column to column.

    before: (batch, pad * channels), the values of the pad columns to the left, oldest first (zeros off the image);
    current: (batch, channels), the current column's values.
    Static shapes, so it is a loop variable of the samplers' column loop.

    Example:

    ```python
    window = Window.zeros(batch=2, pad=1, channels=3)         # one column to the left, 3 channels
    window = window.with_current(tf.ones((2, 3))).advance()
    window.flat().shape                                        # (2, 6): columns c - 1 and c
    ```
    """

    @classmethod
    def zeros(cls, batch, pad, channels):
        return cls(tf.zeros([batch, pad * channels]), tf.zeros([batch, channels]))

    def flat(self):
        """(batch, (pad + 1) * channels): columns c - pad .. c, for the `current` kernel of `split_causal_kernel`."""
        return (
            tf.concat([self.before, self.current], axis=-1)
            if self.before.shape[-1]
            else self.current
        )

    def with_current(self, current):
        return self._replace(current=current)

    def with_channel(self, channel, value):
        """`current` with its channel `channel` (a Python int) set to `value`: (batch,), or
        (batch, F) for a channel that F features stand for (an embedded level)."""
        channels = self.current.shape[-1]
        value = value if value.shape.rank == 2 else value[:, None]
        start, width = channel * value.shape[-1], value.shape[-1]
        parts = [self.current[:, :start], value, self.current[:, start + width :]]
        # No empty slices: with them inside a graph loop, LiteRT's XNNPack delegate failed to prepare.
        sizes = (start, width, channels - start - width)
        parts = [part for part, size in zip(parts, sizes) if size]
        return self._replace(current=tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0])

    def advance(self):
        """On to the next column: `current` joins `before`. `current` keeps its value until replaced."""
        pad_width, channels = self.before.shape[-1], self.current.shape[-1]
        if pad_width == 0:
            return self
        if pad_width == channels:  # a window of one column: no slice and concat per step
            return self._replace(before=self.current)
        return self._replace(before=tf.concat([self.before[:, channels:], self.current], axis=-1))


def subpixel_coordinates(batch, *position):
    """(batch, 1 + len(position)) gather/scatter indices of one position in every image of a batch."""
    return tf.stack([tf.range(batch)] + [tf.fill([batch], p) for p in position], axis=1)
