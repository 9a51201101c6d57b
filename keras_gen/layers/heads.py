"""The output head that every autoregressive network shares."""

import keras
import tensorflow as tf
from keras import ops

from keras_gen.layers.incremental import dense, float32_matrix
from keras_gen.layers.masked_conv import MaskedConv2D
from keras_gen.registry import register


@register
class AutoregressiveHead(keras.layers.Layer):
    """Features to likelihood parameters at every sub-pixel: ReLU, a 1 x 1 mask-B conv with ReLU,
    then a 1 x 1 mask-B conv, so each colour group reads only its own and earlier groups.

    `call` maps (batch, H, W, features) to (batch, H, W, output_channels); `stepper()` gives the
    same map for one position, (batch, features) -> (batch, output_channels) in float32, which
    every fast sampler calls once per position.

    Args:
        hidden_filters: channels of the hidden 1 x 1 layer, a multiple of `color_channels`.
        output_channels: C * (parameters per sub-pixel), grouped by colour.
        color_channels: colour groups (3 for RGB, 1 for grey).

    Example:

    ```python
    head = AutoregressiveHead(hidden_filters=64, output_channels=1, color_channels=1)
    logits = head(keras.ops.zeros((2, 28, 28, 32)))            # (2, 28, 28, 1)
    step = head.stepper()
    logits_at_one_position = step(tf.zeros((2, 32)))          # (2, 1), float32
    ```
    """

    def __init__(self, hidden_filters, output_channels, color_channels=1, **kwargs):
        super().__init__(**kwargs)
        self.hidden_filters, self.output_channels = int(hidden_filters), int(output_channels)
        self.color_channels = int(color_channels)
        self.hidden = MaskedConv2D(
            self.hidden_filters,
            1,
            "B",
            self.color_channels,
            activation="relu",
            name="head_hidden",
            dtype=self.dtype_policy,
        )
        self.out = MaskedConv2D(
            self.output_channels,
            1,
            "B",
            self.color_channels,
            name="head_out",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.out.build(tuple(input_shape[:-1]) + (self.hidden_filters,))
        self.built = True

    def call(self, features):
        return self.out(self.hidden(ops.relu(features)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_channels,)

    def stepper(self):
        """A function (batch, features) float32 -> (batch, output_channels) float32: `call` at one
        position. Its matrices are read once, here, not per step."""
        (hidden_kernel, hidden_bias), (out_kernel, out_bias) = (
            float32_matrix(self.hidden),
            float32_matrix(self.out),
        )

        def step(features):
            return dense(
                dense(tf.nn.relu(features), hidden_kernel, hidden_bias, tf.nn.relu),
                out_kernel,
                out_bias,
            )

        return step

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_filters=self.hidden_filters,
            output_channels=self.output_channels,
            color_channels=self.color_channels,
        )
        return config
