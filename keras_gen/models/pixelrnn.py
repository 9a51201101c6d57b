"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016): Row LSTM and Diagonal BiLSTM."""

import tensorflow as tf
from keras import ops

from keras_gen.layers import DiagonalBiLSTM, MaskedConv2D, RowLSTM
from keras_gen.models.autoregressive import AutoregressiveModel, subpixel_coordinates
from keras_gen.registry import register

KINDS = ("row_lstm", "diagonal_bilstm")


@register
class PixelRNN(AutoregressiveModel):
    """A 7 x 7 mask-A convolution, residual recurrent layers, then 1 x 1 mask-B layers into the output head.

    Args:
        kind: "row_lstm" or "diagonal_bilstm".
        units: channels of the residual stream and of each LSTM's state (a multiple of C).
        num_layers: recurrent layers, each followed by a 1 x 1 mask-B conv added to its input.
        kernel_size: the Row LSTM's 1 x k input-to-state and state-to-state kernels.
        head_filters: channels of the 1 x 1 layer before the output.
    """

    def __init__(self, image_shape=(28, 28, 1), num_levels=2, kind="row_lstm", units=32, num_layers=2,
                 kernel_size=3, head_filters=64, likelihood=None, **kwargs):
        super().__init__(image_shape=image_shape, num_levels=num_levels, likelihood=likelihood, **kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
        self.kind, self.units, self.num_layers = kind, int(units), int(num_layers)
        self.kernel_size, self.head_filters = int(kernel_size), int(head_filters)
        colors = self.image_shape[-1]
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

    @property
    def has_fast_sampler(self):
        return self.kind == "row_lstm"

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

    def _row_pass(self, image, row, states):
        """Params of one row, given the zero-padded input and each Row LSTM's state from the row above.

        image: (batch, H + 6, W + 6, C) float; states: [(hidden, cell)] each (batch, W, units).
        Returns (params (batch, W, C * num_params), the states after this row).
        """
        dtype = self.compute_dtype  # the layers below compute in it (bfloat16 under mixed precision)
        window = tf.cast(tf.slice(image, [0, row, 0, 0], [-1, 7, -1, -1]), dtype)
        kernel = tf.cast(self.input_conv.masked_kernel(), dtype)
        features = tf.nn.conv2d(window, kernel, strides=1, padding="VALID") + tf.cast(self.input_conv.bias, dtype)
        new_states = []
        for recurrent, residual, (hidden, cell) in zip(self.recurrent_layers, self.residual_convs, states):
            hidden, cell = recurrent.step(recurrent.input_to_state(features)[:, 0], hidden, cell)
            features = features + residual(hidden[:, None])
            new_states.append((hidden, cell))
        return self._head(features)[:, 0], new_states

    def _fast_sample_levels(self, noise, labels, known, known_mask):
        """Row LSTM sampling that carries each layer's state from row to row.

        A sub-pixel step recomputes only the current row; when a row is done
        it is run once more, complete, to give the state for the next row.
        """
        height, width, colors = self.image_shape
        batch = tf.shape(noise)[0]
        image = tf.zeros([batch, height + 6, width + 6, colors])
        zeros = tf.zeros([batch, width, self.units], self.compute_dtype)
        states = [(zeros, zeros) for _ in self.recurrent_layers]

        def params_at(row, col, state):
            image, states = state
            params, _ = self._row_pass(image, row, states)
            return params[:, col], state

        def record(row, col, channel, value, state):
            image, states = state
            where = subpixel_coordinates(batch, row + 3, col + 3, channel)
            return tf.tensor_scatter_nd_update(image, where, self._level_to_input(value)), states

        def end_row(row, state):
            image, states = state
            return image, self._row_pass(image, row, states)[1]

        return self._raster_loop(noise, known, known_mask, (image, states), params_at, record, end_row)

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, units=self.units, num_layers=self.num_layers,
                      kernel_size=self.kernel_size, head_filters=self.head_filters)
        return config
