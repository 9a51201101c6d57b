"""PixelCNN (van den Oord et al. 2016a) and Gated PixelCNN (van den Oord et al. 2016b)."""

import tensorflow as tf

from keras_gen.layers import (
    AutoregressiveHead,
    GatedPixelCNNBackbone,
    PixelCNNBackbone,
    gated_activation,
)
from keras_gen.models.autoregressive import (
    AutoregressiveModel,
    Window,
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


def _condition_bias(class_bias, condition_bias, condition):
    """What a layer adds from its condition, in float32: (batch or 1, H or 1, W or 1, channels)
    for class labels (a `ClassBias`), a vector or a map (a `ConditionBias`); (1, 1, 1, 1) zeros
    for an unconditioned layer."""
    if class_bias is not None:
        embeddings = class_bias.embedding.embeddings
        return tf.cast(tf.gather(embeddings, condition), tf.float32)[:, None, None]
    if condition_bias is not None:
        return tf.cast(condition_bias(condition), tf.float32)
    return tf.zeros([1, 1, 1, 1])


def _row_of(values, row):
    """values[:, row], or values[:, 0] for a condition that is the same on every row."""
    return values[:, 0] if values.shape[1] == 1 else tf.gather(values, row, axis=1)


def _column_of(row_values, col):
    """row_values[:, col] of a row from `_row_of`, or [:, 0] where it is the same on every column."""
    return row_values[:, 0] if row_values.shape[1] == 1 else read_column(row_values, col)


def _float32(conv):
    """A plain Conv2D's (kh, kw, in, out) kernel and its bias, in float32."""
    return tf.cast(conv.kernel, tf.float32), tf.cast(conv.bias, tf.float32)


@register
class PixelCNN(AutoregressiveModel):
    """A mask-A convolution, residual mask-B blocks, then 1x1 mask-B layers into the output head.

    Args:
        image_shape: (H, W, C); C = 3 uses the R->G->B channel grouping.
        num_levels: 2 (Bernoulli logits) or 2**n (a 2**n-way softmax per sub-pixel).
        filters: channels of the residual stream, a multiple of 2C (default 64, rounded up to one).
        num_blocks: residual blocks.
        first_kernel_size, kernel_size: of the mask-A layer and of each block's spatial conv.
        head_filters: channels of the 1x1 layer before the output, a multiple of C (default 64,
            rounded up to one).
        num_classes: class-conditional when set (a learned class bias in each block).
        condition_kind, condition_size: conditional on a "vector" (batch, condition_size) or a
            "spatial" map (batch, H, W, condition_size) instead, passed where labels go; a
            PixelVAE's decoder is one. Such a model trains and samples in Keras, but does not
            export on its own.
        embedding_dim: read each level as a learned vector of this size instead of a number
            in [-1, 1]: for categories without an order, such as a VQ-VAE's codes (C = 1).

    Example:

    ```python
    model = PixelCNN(image_shape=(6, 6, 1), filters=4, num_blocks=1, head_filters=4)
    model.compile_for_training()
    images = (np.random.default_rng(0).random((16, 6, 6, 1)) < 0.3).astype("uint8")
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    nats = model.log_prob(images)                             # (16,) exact log-likelihood
    samples = model.sample(model.make_noise(4, seed=0))       # (4, 6, 6, 1) uint8 pixels
    ```
    """

    has_fast_sampler = True

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=2,
        filters=None,
        num_blocks=5,
        first_kernel_size=7,
        kernel_size=3,
        head_filters=None,
        num_classes=None,
        likelihood=None,
        condition_kind=None,
        condition_size=None,
        embedding_dim=None,
        **kwargs,
    ):
        super().__init__(
            image_shape=image_shape,
            num_levels=num_levels,
            num_classes=num_classes,
            likelihood=likelihood,
            **kwargs,
        )
        colors = self.image_shape[-1]
        self._set_condition(condition_kind, condition_size)
        self._add_level_embedding(embedding_dim)
        self.filters = channel_width(filters, 64, 2 * colors, "filters")  # each block halves it
        self.head_filters = channel_width(head_filters, 64, colors, "head_filters")
        self.num_blocks = int(num_blocks)
        self.first_kernel_size, self.kernel_size = int(first_kernel_size), int(kernel_size)
        self.trunk = PixelCNNBackbone(
            self.filters,
            self.num_blocks,
            self.first_kernel_size,
            self.kernel_size,
            colors,
            self.num_classes,
            condition_kind,
            condition_size,
            name="trunk",
        )
        self.output_head = AutoregressiveHead(
            self.head_filters, self.output_channels, colors, name="output_head"
        )
        feature_shape = (None,) + self.image_shape[:2] + (self.filters,)
        self.trunk.build((None,) + self.image_shape[:2] + (colors * self.input_features,))
        self.output_head.build(feature_shape)
        self.built = True

    # The trunk's layers, where model.keras files keep their weights: Keras saves each layer
    # under the first attribute path that reaches it, alphabetically, and these come before
    # `trunk`, so files written before the trunk was a layer of its own load unchanged.
    @property
    def input_conv(self):
        return self.trunk.input_conv

    @property
    def blocks(self):
        return self.trunk.blocks

    def call(self, images, labels=None, training=False):
        """(batch, H, W, C) integer levels -> (batch, H, W, C * num_params) likelihood params.

        `labels`: class labels (batch,), or with `condition_kind` the condition: a vector
        (batch, condition_size) or a map (batch, H, W, condition_size).
        """
        return self.output_head(self.trunk(self.network_inputs(images), labels))

    def _fast_sample_levels(self, noise, labels, known, known_mask):
        """Cached sampling (Ramachandran et al. 2017): each step computes every layer at one position only.

        Causal masks mean a position's activations depend only on earlier
        sub-pixels, so once computed they are final. Each masked k x k conv is
        split in two: its rows above, computed for a whole row when the row
        begins from a ring of the k // 2 rows before it, and the current row's
        columns c - k // 2 .. c, computed per position from the values so far.
        """
        width, colors = self.image_shape[1:]
        batch = tf.shape(noise)[0]
        first_pad, pad, half = self.first_kernel_size // 2, self.kernel_size // 2, self.filters // 2
        input_conv = split_causal_kernel(self.input_conv)
        blocks = [
            (
                float32_matrix(b.reduce),
                split_causal_kernel(b.spatial),
                float32_matrix(b.expand),
                _condition_bias(b.class_bias, b.condition_bias, labels),
            )
            for b in self.blocks
        ]
        head_step = self.output_head.stepper()

        def begin_row(row, state):
            image_rows, reduced_rows = state
            fixed = dict(
                state=state,
                input_from_above=from_rows_above(image_rows, *input_conv),
                spatial_from_above=[
                    from_rows_above(rows, *spatial) + _row_of(bias, row)
                    for rows, (_, spatial, _, bias) in zip(reduced_rows, blocks)
                ],
            )
            carried = dict(
                reduced=[Window.zeros(batch, pad, half) for _ in blocks],
                reduced_row=[tf.zeros([batch, width, half]) for _ in blocks],
            )
            return fixed, carried

        def params_at(col, image, fixed, now):
            hidden = read_column(fixed["input_from_above"], col) + tf.matmul(image, input_conv[1])
            reduced = []
            for window, from_above, ((rk, rb), (_, sk, _), (ek, eb), _) in zip(
                now["reduced"], fixed["spatial_from_above"], blocks
            ):
                window = window.with_current(dense(tf.nn.relu(hidden), rk, rb, tf.nn.relu))
                spatial = read_column(from_above, col) + tf.matmul(window.flat(), sk)
                hidden = hidden + dense(tf.nn.relu(spatial), ek, eb)
                reduced.append(window)
            return head_step(hidden), {**now, "reduced": reduced}

        def end_column(col, now):
            return {
                "reduced": [window.advance() for window in now["reduced"]],
                "reduced_row": [
                    write_column(values, col, window.current)
                    for values, window in zip(now["reduced_row"], now["reduced"])
                ],
            }

        def end_row(levels, fixed, now):
            image_rows, reduced_rows = fixed["state"]
            return (
                shift_in(image_rows, self._padded_row_inputs(levels, first_pad)),
                [
                    shift_in(rows, tf.pad(values, [[0, 0], [pad, pad], [0, 0]]))
                    for rows, values in zip(reduced_rows, now["reduced_row"])
                ],
            )

        state = (
            tf.zeros([batch, first_pad, width + 2 * first_pad, colors * self.input_features]),
            [tf.zeros([batch, pad, width + 2 * pad, half]) for _ in blocks],
        )
        return self._raster_loop(
            noise, known, known_mask, first_pad, state, begin_row, params_at, end_column, end_row
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            num_blocks=self.num_blocks,
            first_kernel_size=self.first_kernel_size,
            kernel_size=self.kernel_size,
            head_filters=self.head_filters,
            condition_kind=self.condition_kind,
            condition_size=self.condition_size,
            embedding_dim=self.embedding_dim,
        )
        return config


@register
class GatedPixelCNN(AutoregressiveModel):
    """Gated PixelCNN: vertical and horizontal stacks with gated tanh * sigmoid units, no blind spot.

    Args:
        filters: channels of each stack, a multiple of C (default 64, rounded up to one).
        num_layers: gated layers; the first uses `first_kernel_size` and hides the current sub-pixel.
        kernel_size: of the later layers.
        head_filters: channels of the 1x1 layer before the output, a multiple of C (default 64,
            rounded up to one).
        num_classes: class-conditional when set (a learned class bias in every layer).
        embedding_dim: read each level as a learned vector of this size instead of a number
            (one channel; for categories with no order, such as a VQ-VAE's codes).
        condition_kind, condition_size: conditional on a "vector" (batch, condition_size), such
            as a PixelVAE's z, or a map (batch, H, W, condition_size), added to both stacks'
            gates in every layer; passed where `labels` are. Not with `num_classes`.

    Example:

    ```python
    model = GatedPixelCNN(image_shape=(6, 6, 1), filters=4, num_layers=2, head_filters=4, num_classes=3)
    labels = np.array([0, 1, 2, 0])
    samples = model.sample(model.make_noise(4, seed=0), labels)   # (4, 6, 6, 1), one class each
    ```
    """

    has_fast_sampler = True

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=2,
        filters=None,
        num_layers=6,
        first_kernel_size=7,
        kernel_size=3,
        head_filters=None,
        num_classes=None,
        likelihood=None,
        embedding_dim=None,
        condition_kind=None,
        condition_size=None,
        **kwargs,
    ):
        super().__init__(
            image_shape=image_shape,
            num_levels=num_levels,
            num_classes=num_classes,
            likelihood=likelihood,
            **kwargs,
        )
        colors = self.image_shape[-1]
        self._set_condition(condition_kind, condition_size)
        self._add_level_embedding(embedding_dim)
        self.filters = channel_width(filters, 64, colors, "filters")
        self.head_filters = channel_width(head_filters, 64, colors, "head_filters")
        self.num_layers = int(num_layers)
        self.first_kernel_size, self.kernel_size = int(first_kernel_size), int(kernel_size)
        self.trunk = GatedPixelCNNBackbone(
            self.filters,
            self.num_layers,
            self.first_kernel_size,
            self.kernel_size,
            colors,
            self.num_classes,
            condition_kind,
            condition_size,
            name="trunk",
        )
        self.output_head = AutoregressiveHead(
            self.head_filters, self.output_channels, colors, name="output_head"
        )
        self.trunk.build((None,) + self.image_shape[:2] + (colors * self.input_features,))
        self.output_head.build((None,) + self.image_shape[:-1] + (self.filters,))
        self.built = True

    @property
    def gated_layers(self):
        # Where model.keras files keep the trunk's weights (see PixelCNN.input_conv).
        return self.trunk.gated_layers

    def features(self, images, labels=None):
        """(batch, H, W, C) levels -> (batch, H, W, filters): the horizontal stack before the 1 x 1 head."""
        return self.trunk(self.network_inputs(images), labels)

    def call(self, images, labels=None, training=False):
        """(batch, H, W, C) integer levels -> (batch, H, W, C * num_params) likelihood params."""
        return self.output_head(self.features(images, labels))

    def _fast_sample_levels(self, noise, labels, known, known_mask):
        """Cached sampling: the vertical stack once per finished row, the horizontal stack per position.

        The vertical stack at row r sees rows <= r and reaches the horizontal
        stack only through row r + 1, so it runs once when a row is done, from
        a ring of the k // 2 + 1 rows each layer's kernel reads. The horizontal
        stack at (r, c) reads its input at columns c - k // 2 .. c of the row so
        far. Everything computes in float32, as exports do.
        """
        width, colors = self.image_shape[1:]
        batch = tf.shape(noise)[0]
        pads = [layer.kernel_size // 2 for layer in self.gated_layers]
        in_channels = [colors * self.input_features] + [self.filters] * (
            self.num_layers - 1
        )  # of each layer's vertical ring
        weights = [
            dict(
                horizontal=split_causal_kernel(layer.horizontal)[1:],
                horizontal_out=float32_matrix(layer.horizontal_out),
                vertical=_float32(layer.vertical),
                vertical_to_horizontal=_float32(layer.vertical_to_horizontal),
                vertical_bias=_condition_bias(
                    layer.vertical_bias, layer.vertical_condition, labels
                ),
                horizontal_bias=_condition_bias(
                    layer.horizontal_bias, layer.horizontal_condition, labels
                ),
            )
            for layer in self.gated_layers
        ]
        head_step = self.output_head.stepper()

        def vertical_to_horizontal(vertical, weights):  # the 1 x 1 conv on (batch, W, 2f)
            kernel, bias = weights["vertical_to_horizontal"]
            return tf.nn.bias_add(tf.matmul(vertical, kernel[0]), bias)

        def begin_row(row, state):
            biases = [  # each layer's condition on this row, (batch or 1, W or 1, 2f)
                (_row_of(w["vertical_bias"], row), _row_of(w["horizontal_bias"], row))
                for w in weights
            ]
            return (state, biases), [Window.zeros(batch, p, self.filters) for p in pads[1:]]

        def params_at(col, image, fixed, windows):
            (_, from_above), biases = fixed
            horizontal, new_windows = None, []
            for i, (layer, weights_i) in enumerate(zip(self.gated_layers, weights)):
                if i == 0:
                    window = image
                else:  # this layer's input at (row, col) is the previous layer's output
                    new_windows.append(windows[i - 1].with_current(horizontal))
                    window = new_windows[-1].flat()
                gates = (
                    dense(window, *weights_i["horizontal"])
                    + read_column(from_above[i], col)
                    + _column_of(biases[i][1], col)
                )
                output = dense(
                    gated_activation(gates, layer.color_channels), *weights_i["horizontal_out"]
                )
                horizontal = output if layer.first else horizontal + output
            return head_step(horizontal), new_windows

        def end_column(col, windows):
            return [window.advance() for window in windows]

        def end_row(levels, fixed, windows):
            (vertical_rings, _), biases = fixed
            vertical_in = self._padded_row_inputs(levels, pads[0])
            new_rings, new_from_above = [], []
            for i, (pad, weights_i) in enumerate(zip(pads, weights)):
                if i > 0:
                    vertical_in = tf.pad(vertical_in, [[0, 0], [pad, pad], [0, 0]])
                ring = shift_in(vertical_rings[i], vertical_in)
                kernel, bias = weights_i["vertical"]
                vertical = tf.nn.bias_add(
                    tf.nn.conv2d(ring, kernel, strides=1, padding="VALID")[:, 0], bias
                )
                new_rings.append(ring)
                new_from_above.append(vertical_to_horizontal(vertical, weights_i))
                vertical = vertical + biases[i][0]
                vertical_in = gated_activation(vertical)  # as the layer: no colour groups
            return new_rings, new_from_above

        # Before row 0 the shifted vertical stack is zero.
        zero_row = tf.zeros([batch, width, 2 * self.filters])
        state = (
            [tf.zeros([batch, p + 1, width + 2 * p, c]) for p, c in zip(pads, in_channels)],
            [vertical_to_horizontal(zero_row, weights_i) for weights_i in weights],
        )
        return self._raster_loop(
            noise, known, known_mask, pads[0], state, begin_row, params_at, end_column, end_row
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            num_layers=self.num_layers,
            first_kernel_size=self.first_kernel_size,
            kernel_size=self.kernel_size,
            head_filters=self.head_filters,
            embedding_dim=self.embedding_dim,
            condition_kind=self.condition_kind,
            condition_size=self.condition_size,
        )
        return config


# The two networks a model can put where a PixelCNN goes (a VQ-VAE's prior, a PixelVAE's
# decoder), and the name of each one's depth argument.
PIXELCNN_NETWORKS = {
    "pixelcnn": (PixelCNN, "num_blocks"),
    "gated_pixelcnn": (GatedPixelCNN, "num_layers"),
}


def pixelcnn_network(kind, num_blocks, argument="network", **options):
    """A `PixelCNN` or `GatedPixelCNN` by kind ("pixelcnn", "gated_pixelcnn"), `num_blocks` deep
    (residual blocks or gated layers); `options` are the network's other arguments. A bad kind
    is reported as a bad `argument`."""
    if kind not in PIXELCNN_NETWORKS:
        raise ValueError(f"{argument} must be one of {sorted(PIXELCNN_NETWORKS)}, got {kind!r}.")
    network, depth_name = PIXELCNN_NETWORKS[kind]
    return network(**{depth_name: num_blocks}, **options)


def pixelcnn_network_depth(network):
    """The `num_blocks` that `pixelcnn_network` built `network` with."""
    return network.num_layers if isinstance(network, GatedPixelCNN) else network.num_blocks
