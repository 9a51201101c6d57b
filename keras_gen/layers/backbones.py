"""Networks of the autoregressive families as layers, to reuse in any model."""

import keras
from keras import ops

from keras_gen.layers.conditioning import ConditionBias
from keras_gen.layers.gated import GatedBlock
from keras_gen.layers.masked_conv import MaskedConv2D, MaskedResidualBlock
from keras_gen.layers.recurrent import DiagonalBiLSTM, RowLSTM
from keras_gen.registry import register


class _ConditionedBackbone(keras.layers.Layer):
    """What the conditioned backbones share: colour groups, the condition and its config."""

    def __init__(
        self,
        filters,
        color_channels=1,
        num_classes=None,
        condition_kind=None,
        condition_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters, self.color_channels = int(filters), int(color_channels)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.condition_kind = condition_kind
        self.condition_size = None if condition_size is None else int(condition_size)

    def compute_output_shape(self, images_shape, condition_shape=None):
        return tuple(images_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            color_channels=self.color_channels,
            num_classes=self.num_classes,
            condition_kind=self.condition_kind,
            condition_size=self.condition_size,
        )
        return config


@register
class PixelCNNBackbone(_ConditionedBackbone):
    """PixelCNN's network (van den Oord et al. 2016a): a mask-A convolution, then residual mask-B
    blocks. Causal: the features at a sub-pixel depend only on earlier sub-pixels.

    `call(images, condition=None)` maps float images (batch, H, W, C), levels scaled to [-1, 1],
    to features (batch, H, W, filters). With a condition, every block adds a learned bias of it
    (zero at first): class labels (batch,) with `num_classes`, or with `condition_kind` a vector
    (batch, condition_size) such as a latent z, or a map (batch, H, W, condition_size).
    An `AutoregressiveHead` turns the features into likelihood parameters.

    Args:
        filters: channels of the residual stream, a multiple of 2 * color_channels.
        num_blocks: residual blocks.
        first_kernel_size, kernel_size: of the mask-A layer and of each block's spatial conv.
        color_channels: colour groups (3 for RGB: R -> G -> B within a pixel).
        num_classes: condition on class labels.
        condition_kind, condition_size: "vector" or "spatial", and its size (channels).

    Example:

    ```python
    images = keras.Input((28, 28, 1))
    z = keras.Input((16,))
    features = PixelCNNBackbone(filters=32, num_blocks=3, condition_kind="vector",
                                condition_size=16)(images, z)
    logits = AutoregressiveHead(hidden_filters=32, output_channels=1)(features)
    decoder = keras.Model([images, z], logits)          # a PixelVAE's decoder, p(x | z)
    ```
    """

    def __init__(
        self,
        filters=64,
        num_blocks=5,
        first_kernel_size=7,
        kernel_size=3,
        color_channels=1,
        num_classes=None,
        condition_kind=None,
        condition_size=None,
        **kwargs,
    ):
        super().__init__(
            filters, color_channels, num_classes, condition_kind, condition_size, **kwargs
        )
        self.num_blocks = int(num_blocks)
        self.first_kernel_size, self.kernel_size = int(first_kernel_size), int(kernel_size)
        policy = self.dtype_policy  # sublayers compute as their parent does
        self.input_conv = MaskedConv2D(
            self.filters,
            self.first_kernel_size,
            "A",
            self.color_channels,
            name="input_conv",
            dtype=policy,
        )
        self.blocks = [
            MaskedResidualBlock(
                self.filters,
                self.kernel_size,
                self.color_channels,
                self.num_classes,
                condition_kind,
                condition_size,
                name=f"block_{i}",
                dtype=policy,
            )
            for i in range(self.num_blocks)
        ]

    @property
    def conditioned(self):
        return self.num_classes is not None or self.condition_kind is not None

    def build(self, images_shape, condition_shape=None):
        self.input_conv.build(images_shape)
        for block in self.blocks:
            block.build(tuple(images_shape[:-1]) + (self.filters,))
        self.built = True

    def call(self, images, condition=None):
        hidden = self.input_conv(images)
        for block in self.blocks:
            hidden = block(hidden, condition)
        return hidden

    def get_config(self):
        config = super().get_config()
        config.update(
            num_blocks=self.num_blocks,
            first_kernel_size=self.first_kernel_size,
            kernel_size=self.kernel_size,
        )
        return config


@register
class GatedPixelCNNBackbone(_ConditionedBackbone):
    """Gated PixelCNN's network (van den Oord et al. 2016b): gated layers with a vertical and a
    horizontal stack, so no blind spot. Causal, like `PixelCNNBackbone`, and conditioned the same
    way (class labels, a vector or a map, as a bias of both stacks in every layer).

    `call(images, condition=None)` maps float images (batch, H, W, C) in [-1, 1] to the
    horizontal stack's features (batch, H, W, filters).

    Args:
        filters: channels of each stack, a multiple of color_channels.
        num_layers: gated layers; the first uses `first_kernel_size` and hides the current sub-pixel.
        kernel_size: of the later layers.
        color_channels, num_classes, condition_kind, condition_size: as for `PixelCNNBackbone`.

    Example:

    ```python
    backbone = GatedPixelCNNBackbone(filters=8, num_layers=2, num_classes=10)
    images, labels = np.zeros((2, 6, 6, 1), "float32"), np.array([3, 7])
    features = backbone(images, labels)                       # (2, 6, 6, 8)
    ```
    """

    def __init__(
        self,
        filters=64,
        num_layers=6,
        first_kernel_size=7,
        kernel_size=3,
        color_channels=1,
        num_classes=None,
        condition_kind=None,
        condition_size=None,
        **kwargs,
    ):
        super().__init__(
            filters, color_channels, num_classes, condition_kind, condition_size, **kwargs
        )
        self.num_layers = int(num_layers)
        self.first_kernel_size, self.kernel_size = int(first_kernel_size), int(kernel_size)
        self.gated_layers = [
            GatedBlock(
                self.filters,
                self.first_kernel_size if i == 0 else self.kernel_size,
                self.color_channels,
                first=i == 0,
                last=i == self.num_layers - 1,
                num_classes=self.num_classes,
                condition_kind=condition_kind,
                condition_size=condition_size,
                name=f"gated_{i}",
                dtype=self.dtype_policy,
            )
            for i in range(self.num_layers)
        ]

    def build(self, images_shape, condition_shape=None):
        features_shape = tuple(images_shape[:-1]) + (self.filters,)
        for i, layer in enumerate(self.gated_layers):
            shape = tuple(images_shape) if i == 0 else features_shape
            layer.build((shape, shape))
        self.built = True

    def call(self, images, condition=None):
        vertical = horizontal = images
        for layer in self.gated_layers:
            vertical, horizontal = layer((vertical, horizontal), condition)
        return horizontal

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            first_kernel_size=self.first_kernel_size,
            kernel_size=self.kernel_size,
        )
        return config


@register
class PixelRNNBackbone(keras.layers.Layer):
    """PixelRNN's network (van den Oord et al. 2016a): a 7 x 7 mask-A convolution, then Row LSTM or
    Diagonal BiLSTM layers, each with a residual 1 x 1 mask-B convolution. Causal.

    `call(images, condition=None)` maps float images (batch, H, W, C) in [-1, 1] to features
    (batch, H, W, units). With a condition (class labels, a vector or a map, as for
    `PixelCNNBackbone`), a learned bias of it joins the residual stream after the first
    convolution and after every layer.

    Args:
        kind: "row_lstm" or "diagonal_bilstm".
        units: channels of every layer, a multiple of color_channels.
        num_layers: recurrent layers.
        kernel_size: the Row LSTM's input-to-state and state-to-state kernel width.
        color_channels: colour groups.
        complete_context: the Diagonal BiLSTM's right-to-left pass also reads the image row
            (see `DiagonalBiLSTM`).
        num_classes, condition_kind, condition_size: the condition, as for `PixelCNNBackbone`.

    Example:

    ```python
    backbone = PixelRNNBackbone("diagonal_bilstm", units=4, num_layers=1, complete_context=True)
    features = backbone(np.zeros((2, 5, 6, 1), "float32"))    # (2, 5, 6, 4)
    ```
    """

    def __init__(
        self,
        kind="row_lstm",
        units=32,
        num_layers=2,
        kernel_size=3,
        color_channels=1,
        complete_context=False,
        num_classes=None,
        condition_kind=None,
        condition_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_classes and condition_kind:
            raise ValueError("PixelRNNBackbone takes num_classes or condition_kind, not both.")
        self.num_classes = None if num_classes is None else int(num_classes)
        self.condition_kind = condition_kind
        self.condition_size = None if condition_size is None else int(condition_size)
        if kind not in ("row_lstm", "diagonal_bilstm"):
            raise ValueError(f"kind must be 'row_lstm' or 'diagonal_bilstm', got {kind!r}.")
        self.kind, self.units, self.num_layers = kind, int(units), int(num_layers)
        self.kernel_size, self.color_channels = int(kernel_size), int(color_channels)
        self.complete_context = bool(complete_context)
        policy = self.dtype_policy
        colors = self.color_channels
        self.input_conv = MaskedConv2D(self.units, 7, "A", colors, name="input_conv", dtype=policy)
        self.recurrent_layers = [
            RowLSTM(self.units, self.kernel_size, colors, name=f"row_lstm_{i}", dtype=policy)
            if kind == "row_lstm"
            else DiagonalBiLSTM(
                self.units, colors, self.complete_context, name=f"diagonal_bilstm_{i}", dtype=policy
            )
            for i in range(self.num_layers)
        ]
        self.residual_convs = [
            MaskedConv2D(self.units, 1, "B", colors, name=f"residual_{i}", dtype=policy)
            for i in range(self.num_layers)
        ]
        # One bias after the first convolution and one after each layer; none without a condition.
        kind_of_condition = "labels" if self.num_classes else condition_kind
        size = self.num_classes or self.condition_size
        self.condition_biases = [
            ConditionBias(kind_of_condition, size, self.units, name=f"condition_{i}", dtype=policy)
            for i in range(self.num_layers + 1)
            if kind_of_condition
        ]

    def build(self, images_shape, condition_shape=None):
        features = tuple(images_shape[:-1]) + (self.units,)
        self.input_conv.build(images_shape)
        for recurrent, residual in zip(self.recurrent_layers, self.residual_convs):
            recurrent.build(features)
            residual.build(features)
        for bias in self.condition_biases:
            bias.build()
        self.built = True

    def _with_condition(self, features, index, condition):
        if not self.condition_biases:
            return features
        return features + ops.cast(self.condition_biases[index](condition), features.dtype)

    def call(self, images, condition=None):
        features = self._with_condition(self.input_conv(images), 0, condition)
        for i, (recurrent, residual) in enumerate(zip(self.recurrent_layers, self.residual_convs)):
            outputs = recurrent(features, images) if self.complete_context else recurrent(features)
            features = self._with_condition(features + residual(outputs), i + 1, condition)
        return features

    def compute_output_shape(self, images_shape, condition_shape=None):
        return tuple(images_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            kind=self.kind,
            units=self.units,
            num_layers=self.num_layers,
            kernel_size=self.kernel_size,
            color_channels=self.color_channels,
            complete_context=self.complete_context,
            num_classes=self.num_classes,
            condition_kind=self.condition_kind,
            condition_size=self.condition_size,
        )
        return config
