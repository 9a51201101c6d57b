"""PixelCNN (van den Oord et al. 2016a) and Gated PixelCNN (van den Oord et al. 2016b)."""

import tensorflow as tf
from keras import ops

from keras_gen.layers import GatedBlock, MaskedConv2D, MaskedResidualBlock, gated_activation
from keras_gen.models.autoregressive import AutoregressiveModel, channel_width, subpixel_coordinates
from keras_gen.registry import register


def _matrix(layer):
    """A masked conv's kernel as a (kh * kw * in, out) float32 matrix, and its bias."""
    kernel = tf.cast(layer.masked_kernel(), tf.float32)
    return tf.reshape(kernel, (-1, kernel.shape[-1])), tf.cast(layer.bias, tf.float32)


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
    """

    has_fast_sampler = True

    def __init__(self, image_shape=(28, 28, 1), num_levels=2, filters=None, num_blocks=5, first_kernel_size=7,
                 kernel_size=3, head_filters=None, num_classes=None, likelihood=None, **kwargs):
        super().__init__(image_shape=image_shape, num_levels=num_levels, num_classes=num_classes,
                         likelihood=likelihood, **kwargs)
        colors = self.image_shape[-1]
        self.filters = channel_width(filters, 64, 2 * colors, "filters")  # each block halves it
        self.head_filters = channel_width(head_filters, 64, colors, "head_filters")
        self.num_blocks = int(num_blocks)
        self.first_kernel_size, self.kernel_size = int(first_kernel_size), int(kernel_size)
        self.input_conv = MaskedConv2D(self.filters, self.first_kernel_size, "A", colors, name="input_conv")
        self.blocks = [
            MaskedResidualBlock(self.filters, self.kernel_size, colors, self.num_classes, name=f"block_{i}")
            for i in range(self.num_blocks)
        ]
        self.head_hidden = MaskedConv2D(self.head_filters, 1, "B", colors, activation="relu", name="head_hidden")
        self.head_out = MaskedConv2D(self.output_channels, 1, "B", colors, name="head_out")
        feature_shape = (None,) + self.image_shape[:2] + (self.filters,)
        self.input_conv.build((None,) + self.image_shape)
        for block in self.blocks:
            block.build(feature_shape)
        self.head_hidden.build(feature_shape)
        self.head_out.build(feature_shape[:-1] + (self.head_filters,))
        self.built = True

    def call(self, images, labels=None, training=False):
        """(batch, H, W, C) integer levels -> (batch, H, W, C * num_params) likelihood params."""
        hidden = self.input_conv(self.to_symmetric_interval(images))
        for block in self.blocks:
            hidden = block(hidden, labels)
        return self.head_out(self.head_hidden(ops.relu(hidden)))

    def _fast_sample_levels(self, noise, labels, known, known_mask):
        """Cached sampling (Ramachandran et al. 2017): each step computes every layer at one position.

        Causal masks mean a position's activations depend only on earlier
        sub-pixels, so once computed they are final. Each spatial conv keeps
        its input in a ring of the k rows its kernel reads (zero-padded like
        "same" padding); a step writes the new position into it and reads the
        k x k window around it. The rings move down one row per image row.
        """
        width, colors = self.image_shape[1:]
        batch = tf.shape(noise)[0]
        first_pad, pad = self.first_kernel_size // 2, self.kernel_size // 2
        image_ring = tf.zeros([batch, self.first_kernel_size, width + 2 * first_pad, colors])
        rings = [tf.zeros([batch, self.kernel_size, width + 2 * pad, self.filters // 2]) for _ in self.blocks]
        input_kernel, input_bias = _matrix(self.input_conv)
        block_weights = [
            (_matrix(b.reduce), _matrix(b.spatial), _matrix(b.expand),
             tf.gather(b.class_bias.embedding.embeddings, labels) if b.class_bias is not None else 0.0)
            for b in self.blocks
        ]
        (hidden_kernel, hidden_bias), (out_kernel, out_bias) = _matrix(self.head_hidden), _matrix(self.head_out)

        def window(ring, col, size):
            return tf.reshape(tf.slice(ring, [0, 0, col, 0], [-1, size, size, -1]), [batch, -1])

        def params_at(row, col, state):
            image_ring, rings = state
            hidden = tf.matmul(window(image_ring, col, self.first_kernel_size), input_kernel) + input_bias
            new_rings = []
            for ring, ((rk, rb), (sk, sb), (ek, eb), class_bias) in zip(rings, block_weights):
                reduced = tf.nn.relu(tf.matmul(tf.nn.relu(hidden), rk) + rb)
                ring = tf.tensor_scatter_nd_update(ring, subpixel_coordinates(batch, pad, col + pad), reduced)
                spatial = tf.matmul(window(ring, col, self.kernel_size), sk) + sb + class_bias
                hidden = hidden + tf.matmul(tf.nn.relu(spatial), ek) + eb
                new_rings.append(ring)
            head = tf.nn.relu(tf.matmul(tf.nn.relu(hidden), hidden_kernel) + hidden_bias)
            return tf.matmul(head, out_kernel) + out_bias, (image_ring, new_rings)

        def record(row, col, channel, value, state):
            image_ring, rings = state
            where = subpixel_coordinates(batch, first_pad, col + first_pad, channel)
            return tf.tensor_scatter_nd_update(image_ring, where, self._level_to_input(value)), rings

        def move_down(ring):
            return tf.concat([ring[:, 1:], tf.zeros_like(ring[:, :1])], axis=1)

        def end_row(row, state):
            image_ring, rings = state
            return move_down(image_ring), [move_down(ring) for ring in rings]

        return self._raster_loop(noise, known, known_mask, (image_ring, rings), params_at, record, end_row)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, num_blocks=self.num_blocks, first_kernel_size=self.first_kernel_size,
                      kernel_size=self.kernel_size, head_filters=self.head_filters)
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
    """

    has_fast_sampler = True

    def __init__(self, image_shape=(28, 28, 1), num_levels=2, filters=None, num_layers=6, first_kernel_size=7,
                 kernel_size=3, head_filters=None, num_classes=None, likelihood=None, **kwargs):
        super().__init__(image_shape=image_shape, num_levels=num_levels, num_classes=num_classes,
                         likelihood=likelihood, **kwargs)
        colors = self.image_shape[-1]
        self.filters = channel_width(filters, 64, colors, "filters")
        self.head_filters = channel_width(head_filters, 64, colors, "head_filters")
        self.num_layers = int(num_layers)
        self.first_kernel_size, self.kernel_size = int(first_kernel_size), int(kernel_size)
        self.gated_layers = [
            GatedBlock(self.filters, self.first_kernel_size if i == 0 else self.kernel_size, colors,
                       first=i == 0, num_classes=self.num_classes, name=f"gated_{i}")
            for i in range(self.num_layers)
        ]
        self.head_hidden = MaskedConv2D(self.head_filters, 1, "B", colors, activation="relu", name="head_hidden")
        self.head_out = MaskedConv2D(self.output_channels, 1, "B", colors, name="head_out")
        image_shape = (None,) + self.image_shape
        feature_shape = image_shape[:-1] + (self.filters,)
        for i, layer in enumerate(self.gated_layers):
            layer.build((image_shape, image_shape) if i == 0 else (feature_shape, feature_shape))
        self.head_hidden.build(feature_shape)
        self.head_out.build(feature_shape[:-1] + (self.head_filters,))
        self.built = True

    def features(self, images, labels=None):
        """(batch, H, W, C) levels -> (batch, H, W, filters): the horizontal stack before the 1 x 1 head."""
        vertical = horizontal = self.to_symmetric_interval(images)
        for layer in self.gated_layers:
            vertical, horizontal = layer((vertical, horizontal), labels)
        return horizontal

    def call(self, images, labels=None, training=False):
        """(batch, H, W, C) integer levels -> (batch, H, W, C * num_params) likelihood params."""
        return self.head_out(self.head_hidden(ops.relu(self.features(images, labels))))

    def _fast_sample_levels(self, noise, labels, known, known_mask):
        """Cached sampling: the vertical stack once per finished row, the horizontal stack per position.

        The vertical stack at row r sees rows <= r and reaches the horizontal
        stack only through row r + 1, so it runs once when a row is done, from
        a ring of the k // 2 + 1 rows each layer's kernel reads. Each layer's
        horizontal input along the current row is kept in a zero-padded row
        buffer; a step writes the new position into it and reads the 1 x k
        window ending there. Everything computes in float32, as exports do.
        """
        width, colors = self.image_shape[1:]
        batch = tf.shape(noise)[0]
        pads = [layer.kernel_size // 2 for layer in self.gated_layers]
        in_channels = [colors] + [self.filters] * (self.num_layers - 1)
        horizontal_rows = [tf.zeros([batch, width + 2 * p, c]) for p, c in zip(pads, in_channels)]
        vertical_rings = [tf.zeros([batch, p + 1, width + 2 * p, c]) for p, c in zip(pads, in_channels)]
        def class_bias(bias):  # (batch, 2f), or 0 for an unconditional model
            return 0.0 if bias is None else tf.cast(tf.gather(bias.embedding.embeddings, labels), tf.float32)

        vertical_biases = [class_bias(layer.vertical_bias) for layer in self.gated_layers]
        horizontal_biases = [class_bias(layer.horizontal_bias) for layer in self.gated_layers]
        weights = [(_matrix(layer.horizontal), _matrix(layer.horizontal_out)) for layer in self.gated_layers]
        (hidden_kernel, hidden_bias), (out_kernel, out_bias) = _matrix(self.head_hidden), _matrix(self.head_out)

        def vertical_to_horizontal(layer, vertical):  # a 1 x 1 conv on (batch, W, 2f)
            kernel, bias = _float32(layer.vertical_to_horizontal)
            return tf.matmul(vertical, kernel[0]) + bias

        # Before row 0 the shifted vertical stack is zero.
        zero_row = tf.zeros([batch, width, 2 * self.filters])
        from_above = [vertical_to_horizontal(layer, zero_row) for layer in self.gated_layers]

        def params_at(row, col, state):
            horizontal_rows, vertical_rings, from_above = state
            new_rows, horizontal = [], None
            for i, (layer, pad) in enumerate(zip(self.gated_layers, pads)):
                buffer = horizontal_rows[i]
                if i > 0:  # this layer's input at (row, col) is the previous layer's output
                    buffer = tf.tensor_scatter_nd_update(buffer, subpixel_coordinates(batch, col + pad),
                                                         horizontal)
                new_rows.append(buffer)
                (kernel, bias), (out_kernel_i, out_bias_i) = weights[i]
                window = tf.reshape(tf.slice(buffer, [0, col, 0], [-1, 2 * pad + 1, -1]), [batch, -1])
                gates = tf.matmul(window, kernel) + bias + from_above[i][:, col] + horizontal_biases[i]
                gated = gated_activation(gates[:, None, None], layer.color_channels)[:, 0, 0]
                output = tf.matmul(gated, out_kernel_i) + out_bias_i
                horizontal = output if layer.first else buffer[:, col + pad] + output
            head = tf.nn.relu(tf.matmul(tf.nn.relu(horizontal), hidden_kernel) + hidden_bias)
            return tf.matmul(head, out_kernel) + out_bias, (new_rows, vertical_rings, from_above)

        def record(row, col, channel, value, state):
            horizontal_rows, vertical_rings, from_above = state
            where = subpixel_coordinates(batch, col + pads[0], channel)
            image_row = tf.tensor_scatter_nd_update(horizontal_rows[0], where, self._level_to_input(value))
            return [image_row] + horizontal_rows[1:], vertical_rings, from_above

        def end_row(row, state):
            horizontal_rows, vertical_rings, _ = state
            vertical_in = horizontal_rows[0]  # the finished image row, padded like the first layer's kernel
            new_rings, new_from_above = [], []
            for i, (layer, pad) in enumerate(zip(self.gated_layers, pads)):
                if i > 0:
                    vertical_in = tf.pad(vertical_in, [[0, 0], [pad, pad], [0, 0]])
                ring = tf.concat([vertical_rings[i][:, 1:], vertical_in[:, None]], axis=1)
                kernel, bias = _float32(layer.vertical)
                vertical = tf.nn.conv2d(ring, kernel, strides=1, padding="VALID")[:, 0] + bias
                new_rings.append(ring)
                new_from_above.append(vertical_to_horizontal(layer, vertical))
                vertical = vertical + (vertical_biases[i][:, None] if self.num_classes else 0.0)
                vertical_in = gated_activation(vertical[:, None])[:, 0]  # as the layer: no colour groups
            zeroed_rows = [tf.zeros_like(buffer) for buffer in horizontal_rows]
            return zeroed_rows, new_rings, new_from_above

        state = (horizontal_rows, vertical_rings, from_above)
        return self._raster_loop(noise, known, known_mask, state, params_at, record, end_row)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, num_layers=self.num_layers, first_kernel_size=self.first_kernel_size,
                      kernel_size=self.kernel_size, head_filters=self.head_filters)
        return config
