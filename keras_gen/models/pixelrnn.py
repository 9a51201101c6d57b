"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016): Row LSTM and Diagonal BiLSTM."""

import tensorflow as tf

from keras_gen.layers import AutoregressiveHead, PixelRNNBackbone
from keras_gen.layers.recurrent import lstm_update
from keras_gen.models.autoregressive import (
    AutoregressiveModel,
    Window,
    any_batch,
    channel_width,
    dense,
    float32_matrix,
    from_rows_above,
    read_column,
    shift_in,
    split_causal_kernel,
    write_column,
)
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
        complete_context: Diagonal BiLSTM only: its right-to-left LSTM also reads the
            image row, so every earlier pixel is in each pixel's context (see DiagonalBiLSTM).
            Default: on for the Diagonal BiLSTM, which then learns faster
            (benchmarks/complete_context.py); False gives the paper's version.
        head_filters: channels of the 1 x 1 layer before the output, a multiple of C (default 64,
            rounded up to one).

    Example:

    ```python
    model = PixelRNN(image_shape=(5, 5, 1), kind="diagonal_bilstm", units=4, num_layers=1, head_filters=4)
    images = (np.random.default_rng(0).random((2, 5, 5, 1)) < 0.3).astype("uint8")
    nats = model.log_prob(images)                             # (2,)
    samples = model.sample(model.make_noise(2, seed=0))       # (2, 5, 5, 1) uint8 pixels
    ```
    """

    has_fast_sampler = True

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=2,
        kind="row_lstm",
        units=None,
        num_layers=2,
        kernel_size=3,
        head_filters=None,
        complete_context=None,
        likelihood=None,
        **kwargs,
    ):
        super().__init__(
            image_shape=image_shape, num_levels=num_levels, likelihood=likelihood, **kwargs
        )
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
        colors = self.image_shape[-1]
        self.units = channel_width(units, 32, colors, "units")
        self.head_filters = channel_width(head_filters, 64, colors, "head_filters")
        if complete_context is None:
            complete_context = kind == "diagonal_bilstm"
        if complete_context and kind != "diagonal_bilstm":
            raise ValueError("complete_context applies to kind='diagonal_bilstm' only.")
        self.kind, self.num_layers, self.complete_context = (
            kind,
            int(num_layers),
            bool(complete_context),
        )
        self.kernel_size = int(kernel_size)
        self.trunk = PixelRNNBackbone(
            kind,
            self.units,
            self.num_layers,
            self.kernel_size,
            colors,
            self.complete_context,
            name="trunk",
        )
        self.output_head = AutoregressiveHead(
            self.head_filters, self.output_channels, colors, name="output_head"
        )
        self.trunk.build((None,) + self.image_shape)
        self.output_head.build((None,) + self.image_shape[:2] + (self.units,))
        self.built = True

    # Where model.keras files keep the trunk's weights (see PixelCNN.input_conv). Files written
    # before the trunk was a layer of its own keep the recurrent and residual layers under the
    # model's `layers` (which Keras reaches before `recurrent_layers`), named by their classes in
    # this order, so `layers` lists the model's layers as it then did.
    @property
    def layers(self):
        trunk = self.trunk
        return [
            trunk.input_conv,
            *trunk.recurrent_layers,
            *trunk.residual_convs,
            self.output_head.hidden,
            self.output_head.out,
        ]

    @property
    def input_conv(self):
        return self.trunk.input_conv

    @property
    def recurrent_layers(self):
        return self.trunk.recurrent_layers

    @property
    def residual_convs(self):
        return self.trunk.residual_convs

    def features(self, images):
        """(batch, H, W, C) levels -> (batch, H, W, units): the recurrent stack's output, before the 1 x 1 head."""
        return self.trunk(self.to_symmetric_interval(images))

    def call(self, images, labels=None, training=False):
        """(batch, H, W, C) integer levels -> (batch, H, W, C * num_params) likelihood params."""
        return self.output_head(self.features(images))

    def _fast_sample_levels(self, noise, labels, known, known_mask):
        """Carried-state sampling: each sub-pixel step computes every layer at one pixel only.

        The 7 x 7 input conv is split into its rows above (once per row) and
        the current row's columns. Each recurrent layer keeps its states along
        the row above and the row so far (`_row_lstm_cells`,
        `_diagonal_bilstm_cells`). Everything computes in float32, as exports do.
        """
        width, colors = self.image_shape[1:]
        batch = tf.shape(noise)[0]
        pad = self.input_conv.kernel_size[0] // 2
        input_conv = split_causal_kernel(self.input_conv)
        residuals = [float32_matrix(conv) for conv in self.residual_convs]
        head_step = self.output_head.stepper()
        cells = (
            self._row_lstm_cells(batch)
            if self.kind == "row_lstm"
            else self._diagonal_bilstm_cells(batch)
        )
        begin_cells, cell_at, end_column_cells, end_row_cells, initial_cells = cells

        def begin_row(row, state):
            image_rows, cell_states = state
            fixed, carried = zip(
                *[
                    begin_cells(layer, cell_state)
                    for layer, cell_state in zip(self.recurrent_layers, cell_states)
                ]
            )
            return dict(
                image_rows=image_rows,
                input_from_above=from_rows_above(image_rows, *input_conv),
                layers=fixed,
            ), list(carried)

        def params_at(col, image, fixed, carried):
            features = read_column(fixed["input_from_above"], col) + tf.matmul(image, input_conv[1])
            new_carried = []
            for layer, layer_fixed, layer_now, (kernel, bias) in zip(
                self.recurrent_layers, fixed["layers"], carried, residuals
            ):
                outputs, layer_now = cell_at(layer, col, features, layer_fixed, layer_now)
                features = features + dense(outputs, kernel, bias)
                new_carried.append(layer_now)
            return head_step(features), new_carried

        def end_column(col, carried):
            return [end_column_cells(layer_now) for layer_now in carried]

        def end_row(levels, fixed, carried):
            image_row = self._padded_row_inputs(levels, pad)
            return shift_in(fixed["image_rows"], image_row), [
                end_row_cells(layer, image_row[:, pad : pad + width], layer_fixed, layer_now)
                for layer, layer_fixed, layer_now in zip(
                    self.recurrent_layers, fixed["layers"], carried
                )
            ]

        state = (
            tf.zeros([batch, pad, width + 2 * pad, colors]),
            [initial_cells for _ in self.recurrent_layers],
        )
        return self._raster_loop(
            noise, known, known_mask, pad, state, begin_row, params_at, end_column, end_row
        )

    def _row_lstm_cells(self, batch):
        """A Row LSTM pixel by pixel: its (hidden, cell) along the row above and the row so far.

        At (r, c) the gates are the masked 1 x k input-to-state conv over the
        layer's inputs at c - k // 2 .. c, plus the state-to-state conv over the
        row above's hidden states, computed for the whole row when it begins.
        """
        width, pad = self.image_shape[1], self.kernel_size // 2
        zeros = tf.zeros([batch, width, self.units])
        input_to_state = {
            layer.name: split_causal_kernel(layer.input_to_state)[1:]
            for layer in self.recurrent_layers
        }

        def begin(layer, state):
            hidden, cell = state
            fixed = dict(from_above=layer.state_gates(hidden), cell_above=cell)
            return fixed, dict(
                inputs=Window.zeros(batch, pad, self.units), hidden=zeros, cell=zeros
            )

        def at(layer, col, features, fixed, now):
            inputs = now["inputs"].with_current(features)
            gates = dense(inputs.flat(), *input_to_state[layer.name]) + read_column(
                fixed["from_above"], col
            )
            hidden, cell = lstm_update(
                gates, read_column(fixed["cell_above"], col), layer.color_channels
            )
            return hidden, dict(
                inputs=inputs,
                hidden=write_column(now["hidden"], col, hidden),
                cell=write_column(now["cell"], col, cell),
            )

        def end_column(now):
            return {**now, "inputs": now["inputs"].advance()}

        def end(layer, image_row, fixed, now):
            return now["hidden"], now["cell"]

        return begin, at, end_column, end, (zeros, zeros)

    def _diagonal_bilstm_cells(self, batch):
        """A Diagonal BiLSTM pixel by pixel.

        The left-to-right LSTM at (r, c) needs the states at (r, c - 1) and
        (r - 1, c), and the shifted right-to-left output at (r, c) is that of
        (r - 1, c): all known by then. Carried from row to row: both
        directions' hidden states along the row above. When a row is done, the
        right-to-left LSTM runs along it once.
        """
        width = self.image_shape[1]
        zero_pixel = tf.zeros([batch, self.units])
        zero_row = tf.zeros([batch, width, self.units])
        input_to_state = {
            bilstm.name: float32_matrix(bilstm.left_to_right.input_to_state)
            for bilstm in self.recurrent_layers
        }

        def begin(bilstm, state):
            forward_above, backward_above = state
            fixed = dict(forward_above=forward_above, backward_above=backward_above)
            return fixed, dict(
                inputs=zero_row,
                hidden=zero_row,
                left=(zero_pixel, zero_pixel),
                current=(zero_pixel, zero_pixel),
            )

        def at(bilstm, col, features, fixed, now):
            gates = dense(features, *input_to_state[bilstm.name])
            hidden, cell = bilstm.left_to_right.step(
                gates, read_column(fixed["forward_above"], col), *now["left"]
            )
            outputs = hidden + read_column(
                fixed["backward_above"], col
            )  # the right-to-left pass, shifted down
            return outputs, {
                **now,
                "inputs": write_column(now["inputs"], col, features),
                "hidden": write_column(now["hidden"], col, hidden),
                "current": (hidden, cell),
            }

        def end_column(now):
            return {**now, "left": now["current"]}

        def end(bilstm, image_row, fixed, now):
            backward = bilstm.right_to_left
            inputs = now["inputs"]
            if self.complete_context:
                inputs = tf.concat([inputs, image_row], axis=-1)
            gates = dense(inputs, *float32_matrix(backward.input_to_state))

            def step(col, hidden, cell, backward_hidden):
                hidden, cell = backward.step(
                    read_column(gates, col), read_column(fixed["backward_above"], col), hidden, cell
                )
                return col - 1, hidden, cell, write_column(backward_hidden, col, hidden)

            # A graph loop, like the sampler's columns, so the export holds one step's ops.
            start = (tf.constant(width - 1), zero_pixel, zero_pixel, zero_row)
            _, _, _, backward_hidden = tf.while_loop(
                lambda col, *_: col >= 0,
                step,
                start,
                shape_invariants=(tf.TensorShape([]),) + tuple(map(any_batch, start[1:])),
            )
            return now["hidden"], backward_hidden

        return begin, at, end_column, end, (zero_row, zero_row)

    @classmethod
    def from_config(cls, config):
        # Files saved before the option existed hold the paper's version.
        return super().from_config({"complete_context": False, **config})

    def get_config(self):
        config = super().get_config()
        config.update(
            kind=self.kind,
            units=self.units,
            num_layers=self.num_layers,
            kernel_size=self.kernel_size,
            head_filters=self.head_filters,
            complete_context=self.complete_context,
        )
        return config
