"""Gated PixelCNN layers (van den Oord et al. 2016b, "Conditional Image Generation with PixelCNN Decoders")."""

import keras
from keras import ops

from keras_gen.layers.conditioning import ConditionBias
from keras_gen.layers.masked_conv import ClassBias, MaskedConv2D, channel_groups
from keras_gen.registry import register


def gated_activation(inputs, groups=1):
    """tanh(a) * sigmoid(b), splitting each colour group's channels into halves a | b.

    (batch, ..., 2f) -> (batch, ..., f), any rank; colour groups stay contiguous.
    """
    if groups == 1:
        first, second = ops.split(inputs, 2, axis=-1)
        return ops.tanh(first) * ops.sigmoid(second)
    inner, channels = tuple(inputs.shape[1:-1]), inputs.shape[-1]
    split = ops.reshape(inputs, (-1,) + inner + (groups, 2, channels // (2 * groups)))
    gated = ops.tanh(split[..., 0, :]) * ops.sigmoid(split[..., 1, :])
    return ops.reshape(gated, (-1,) + inner + (channels // 2,))


def shift_down(inputs):
    """Moves every row down by one (zeros enter at the top), so row r sees only rows < r."""
    # ops.slice, not [:, :-1]: a strided slice's gradient (StridedSliceGrad) is slow on CPU.
    above = ops.slice(inputs, [0, 0, 0, 0], [-1, inputs.shape[1] - 1, -1, -1])
    return ops.pad(above, [[0, 0], [1, 0], [0, 0], [0, 0]])


def _plus_bias(stack, class_bias, condition_bias, labels):
    """`stack` plus whichever bias the layer has for its labels or condition (at most one)."""
    for bias in (class_bias, condition_bias):
        if bias is not None:
            stack = stack + ops.cast(bias(labels), stack.dtype)
    return stack


@register
class GatedBlock(keras.layers.Layer):
    """One gated layer with a vertical and a horizontal stack.

    The vertical stack sees the rows above and the current row; its output is
    shifted down one row before it feeds the horizontal stack, which sees the
    pixels to the left (and, after the first layer, the current one). Together
    they cover every earlier pixel: no blind spot.

    Args:
        filters: channels of each stack (a multiple of color_channels).
        kernel_size: odd k; the vertical kernel is (k//2 + 1, k), the horizontal (1, k) masked.
        first: the first layer hides the current sub-pixel (mask A) and has no residual.
        last: the network's last layer, whose vertical output nothing reads: its vertical
            stack gets no class or condition bias (one would get no gradient).
        num_classes: adds a learned class bias to both stacks.
        condition_kind, condition_size: or a bias of a vector ("vector") or map ("spatial").

    Example:

    ```python
    block = GatedBlock(filters=4, kernel_size=3, first=True)
    images = np.zeros((2, 6, 6, 1), "float32")
    vertical, horizontal = block((images, images))           # each (2, 6, 6, 4)
    ```
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        color_channels=1,
        first=False,
        last=False,
        num_classes=None,
        condition_kind=None,
        condition_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.condition_kind = condition_kind
        self.condition_size = None if condition_size is None else int(condition_size)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.color_channels, self.first, self.last, self.num_classes = (
            int(color_channels),
            bool(first),
            bool(last),
            num_classes,
        )
        channel_groups(self.filters, self.color_channels)
        k, policy = self.kernel_size, self.dtype_policy  # sublayers compute as their parent does
        self.vertical = keras.layers.Conv2D(
            2 * self.filters, (k // 2 + 1, k), name="vertical", dtype=policy
        )
        self.vertical_to_horizontal = keras.layers.Conv2D(
            2 * self.filters, 1, name="vertical_to_horizontal", dtype=policy
        )
        self.horizontal = MaskedConv2D(
            2 * self.filters,
            (1, k),
            "A" if first else "B",
            color_channels,
            name="horizontal",
            dtype=policy,
        )
        self.horizontal_out = MaskedConv2D(
            self.filters, 1, "B", color_channels, name="horizontal_out", dtype=policy
        )
        # The last layer's vertical output is never read, so it owns no bias to train.
        stacks = ("horizontal",) if self.last else ("vertical", "horizontal")
        self.vertical_bias, self.horizontal_bias = (
            (
                ClassBias(num_classes, 2 * self.filters, name=f"{name}_bias", dtype=policy)
                if num_classes and name in stacks
                else None
            )
            for name in ("vertical", "horizontal")
        )
        # A vector (such as a latent z) or a spatial map; class labels keep the biases above.
        self.vertical_condition = self.horizontal_condition = None
        if condition_kind is not None:
            if num_classes:
                raise ValueError("A gated layer takes num_classes or condition_kind, not both.")
            self.vertical_condition, self.horizontal_condition = (
                ConditionBias(
                    condition_kind,
                    condition_size,
                    2 * self.filters,
                    name=f"{name}_condition",
                    dtype=policy,
                )
                if name in stacks
                else None
                for name in ("vertical", "horizontal")
            )

    def build(self, input_shape):
        vertical_shape, horizontal_shape = input_shape[0], input_shape[1]
        batch, height, width, channels = vertical_shape
        k = self.kernel_size
        self.vertical.build((batch, height + k // 2, width + 2 * (k // 2), channels))
        wide = tuple(vertical_shape[:-1]) + (2 * self.filters,)
        self.vertical_to_horizontal.build(wide)
        self.horizontal.build(horizontal_shape)
        self.horizontal_out.build(tuple(horizontal_shape[:-1]) + (self.filters,))
        for bias in (self.vertical_bias, self.horizontal_bias):
            if bias is not None:
                bias.build((None,))
        for bias in (self.vertical_condition, self.horizontal_condition):
            if bias is not None:
                bias.build()

    def call(self, inputs, labels=None):
        vertical_in, horizontal_in = inputs
        k = self.kernel_size
        vertical = self.vertical(
            ops.pad(vertical_in, [[0, 0], [k // 2, 0], [k // 2, k // 2], [0, 0]])
        )
        horizontal = self.horizontal(horizontal_in) + self.vertical_to_horizontal(
            shift_down(vertical)
        )
        # `labels`: class labels, or the vector or map a conditioned layer is given.
        vertical = _plus_bias(vertical, self.vertical_bias, self.vertical_condition, labels)
        horizontal = _plus_bias(horizontal, self.horizontal_bias, self.horizontal_condition, labels)
        horizontal_out = self.horizontal_out(gated_activation(horizontal, self.color_channels))
        if not self.first:
            horizontal_out = horizontal_in + horizontal_out
        return gated_activation(vertical), horizontal_out

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            color_channels=self.color_channels,
            first=self.first,
            last=self.last,
            num_classes=self.num_classes,
            condition_kind=self.condition_kind,
            condition_size=self.condition_size,
        )
        return config
