"""Latent-code layers for the GANs."""

import keras
import tensorflow as tf

from keras_gen.registry import register


@register
class CategoricalCode(keras.layers.Layer):
    """The index of the largest of the first `categories` latents: (batch, latent_dim) -> (batch,) int32.

    The argmax of independent standard normals is uniform over their indices, so a Gaussian z
    carries a uniform categorical code (InfoGAN's discrete code) without a second noise input.

    Example:

    ```python
    code = CategoricalCode(categories=10)
    codes = code(np.random.default_rng(0).standard_normal((4, 64)).astype("float32"))  # (4,) in 0..9
    ```
    """

    def __init__(self, categories, **kwargs):
        super().__init__(**kwargs)
        self.categories = int(categories)

    def call(self, latents):
        # tf.argmax: keras.ops.argmax adds bitwise ops (for -0.0) that LiteRT's built-ins lack.
        return tf.argmax(latents[:, : self.categories], axis=-1, output_type=tf.int32)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def get_config(self):
        config = super().get_config()
        config.update(categories=self.categories)
        return config
