"""Masked convolutions for autoregressive image models (van den Oord et al. 2016)."""

import keras
import numpy as np
from keras import ops

from keras_gen.layers.conditioning import ConditionBias
from keras_gen.registry import register
from keras_gen.validation import InputError


def channel_groups(num_channels, color_channels):
    """Colour group (0 = R, 1 = G, 2 = B) of each of `num_channels` feature channels."""
    if num_channels % color_channels:
        raise ValueError(
            f"{num_channels} channels cannot be split into {color_channels} colour groups; "
            f"use a multiple of {color_channels}."
        )
    return np.arange(num_channels) // (num_channels // color_channels)


def causal_mask(kernel_size, in_channels, out_channels, mask_type, color_channels=1):
    """(kh, kw, in, out) 0/1 mask letting each output see only earlier sub-pixels.

    Rows above the centre and pixels left of it are visible. At the centre,
    mask "A" lets colour group g see input groups < g, mask "B" groups <= g.
    Mask None hides nothing: an ordinary convolution, for inputs that are all
    earlier anyway (a row that is used only by the rows below it).
    """
    if mask_type not in ("A", "B", None):
        raise ValueError(f"mask_type must be 'A', 'B' or None, got {mask_type!r}.")
    kernel_height, kernel_width = kernel_size
    if mask_type is None:
        return np.ones((kernel_height, kernel_width, in_channels, out_channels), np.float32)
    mask = np.zeros((kernel_height, kernel_width, in_channels, out_channels), np.float32)
    centre_row, centre_col = kernel_height // 2, kernel_width // 2
    mask[:centre_row] = 1.0
    mask[centre_row, :centre_col] = 1.0
    source = channel_groups(in_channels, color_channels)[:, None]
    target = channel_groups(out_channels, color_channels)[None, :]
    mask[centre_row, centre_col] = (source < target) if mask_type == "A" else (source <= target)
    return mask


@register
class MaskedConv2D(keras.layers.Layer):
    """A "same"-padded convolution whose kernel is multiplied by a constant causal mask.

    Args:
        filters: output channels (a multiple of color_channels).
        kernel_size: int or (kh, kw), odd sizes.
        mask_type: "A" (first layer: the centre sub-pixel is hidden), "B", or None (no mask).
        color_channels: colour groups for R->G->B ordering (3 for RGB, 1 for grey).

    Example:

    ```python
    conv = MaskedConv2D(filters=8, kernel_size=3, mask_type="A", color_channels=1)
    features = conv(np.zeros((2, 6, 6, 1), "float32"))      # (2, 6, 6, 8); (r, c) sees only earlier pixels
    ```
    """

    def __init__(
        self,
        filters,
        kernel_size,
        mask_type="B",
        color_channels=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = (
            (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        )
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}.")
        self.mask_type = mask_type
        self.color_channels = int(color_channels)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        channel_groups(self.filters, self.color_channels)  # fail early on a bad split

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        # uint8: a quarter of a float32 mask's bytes in every exported graph that traces it.
        self.mask = causal_mask(
            self.kernel_size, in_channels, self.filters, self.mask_type, self.color_channels
        ).astype(np.uint8)
        self.kernel = self.add_weight(
            name="kernel", shape=self.mask.shape, initializer=self.kernel_initializer
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            if self.use_bias
            else None
        )

    def masked_kernel(self):
        """The kernel as applied: kernel * mask, shape (kh, kw, in, filters)."""
        if self.mask_type is None:  # the mask hides nothing
            return self.kernel
        return self.kernel * ops.cast(ops.convert_to_tensor(self.mask), self.kernel.dtype)

    def call(self, inputs):
        kernel = ops.cast(self.masked_kernel(), inputs.dtype)
        outputs = ops.conv(inputs, kernel, strides=1, padding="same")
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=list(self.kernel_size),
            mask_type=self.mask_type,
            color_channels=self.color_channels,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


@register
class ClassBias(keras.layers.Layer):
    """A learned per-class bias, broadcast over height and width (conditional models).

    Example:

    ```python
    bias = ClassBias(num_classes=10, channels=4)
    bias(np.array([3, 7]))                                    # (2, 1, 1, 4), zeros until trained
    ```
    """

    def __init__(self, num_classes, channels, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.channels = int(num_classes), int(channels)
        self.embedding = keras.layers.Embedding(
            self.num_classes, self.channels, embeddings_initializer="zeros", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.embedding.build(input_shape)

    def call(self, labels):
        """(batch,) int labels -> (batch, 1, 1, channels)."""
        if labels is None:
            raise InputError(
                f"labels: the model is conditional on {self.num_classes} classes; call it with "
                "labels of shape (batch,), e.g. model(images, labels)."
            )
        return self.embedding(labels)[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, channels=self.channels)
        return config


@register
class MaskedResidualBlock(keras.layers.Layer):
    """PixelCNN residual block: 1x1 (2h -> h), kxk, 1x1 (h -> 2h), all mask B, ReLU between.

    Example:

    ```python
    block = MaskedResidualBlock(filters=8, kernel_size=3, num_classes=10)
    features = block(np.zeros((2, 6, 6, 8), "float32"), np.array([3, 7]))   # (2, 6, 6, 8)
    ```
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        color_channels=1,
        num_classes=None,
        condition_kind=None,
        condition_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.color_channels = int(color_channels)
        self.num_classes = num_classes
        self.condition_kind = condition_kind
        self.condition_size = None if condition_size is None else int(condition_size)
        half = self.filters // 2
        policy = self.dtype_policy  # sublayers compute as their parent does
        self.reduce = MaskedConv2D(
            half, 1, "B", color_channels, activation="relu", name="reduce", dtype=policy
        )
        self.spatial = MaskedConv2D(
            half, self.kernel_size, "B", color_channels, name="spatial", dtype=policy
        )
        self.expand = MaskedConv2D(
            self.filters, 1, "B", color_channels, name="expand", dtype=policy
        )
        self.class_bias = (
            ClassBias(num_classes, half, name="class_bias", dtype=policy) if num_classes else None
        )
        # A vector (such as a latent z) or a spatial map; class labels keep `class_bias`.
        self.condition_bias = None
        if condition_kind is not None:
            if num_classes:
                raise ValueError("A block takes num_classes or condition_kind, not both.")
            self.condition_bias = ConditionBias(
                condition_kind, condition_size, half, name="condition_bias", dtype=policy
            )

    def build(self, input_shape):
        self.reduce.build(input_shape)
        half_shape = tuple(input_shape[:-1]) + (self.filters // 2,)
        self.spatial.build(half_shape)
        self.expand.build(half_shape)
        if self.class_bias is not None:
            self.class_bias.build((None,))
        if self.condition_bias is not None:
            self.condition_bias.build()

    def call(self, inputs, labels=None):
        """`labels` is the block's condition: class labels, or the vector or map of `condition_kind`."""
        hidden = self.reduce(ops.relu(inputs))
        hidden = self.spatial(hidden)
        bias = self.class_bias if self.class_bias is not None else self.condition_bias
        if bias is not None:
            hidden = hidden + ops.cast(bias(labels), hidden.dtype)
        return inputs + self.expand(ops.relu(hidden))

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            color_channels=self.color_channels,
            num_classes=self.num_classes,
            condition_kind=self.condition_kind,
            condition_size=self.condition_size,
        )
        return config
