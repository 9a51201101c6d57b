"""What a network is conditioned on, turned into a bias that any layer can add to its features."""

import keras
from keras import layers

from keras_gen.registry import register
from keras_gen.validation import InputError

CONDITION_KINDS = ("labels", "vector", "spatial")


@register
class ConditionBias(keras.layers.Layer):
    """A learned bias of `channels` from a conditioning input, zero at initialization.

    Kinds:
        "labels": (batch,) int class labels in [0, size) -> (batch, 1, 1, channels), an embedding;
        "vector": (batch, size) floats, such as a latent z -> (batch, 1, 1, channels), a dense layer;
        "spatial": (batch, H, W, size) a map at the features' size -> (batch, H, W, channels), a
            1 x 1 convolution. It is added as it is, so it must not depend on the image it
            conditions, or causality breaks.

    Example:

    ```python
    bias = ConditionBias("vector", size=32, channels=16)
    features, z = np.zeros((2, 6, 6, 16), "float32"), np.ones((2, 32), "float32")
    features = features + bias(z)                             # (2, 6, 6, 16) + (2, 1, 1, 16)
    ```
    """

    def __init__(self, kind, size, channels, **kwargs):
        super().__init__(**kwargs)
        if kind not in CONDITION_KINDS:
            raise ValueError(f"condition kind must be one of {CONDITION_KINDS}, got {kind!r}.")
        self.kind, self.size, self.channels = kind, int(size), int(channels)
        policy = self.dtype_policy
        if kind == "labels":
            self.transform = layers.Embedding(
                self.size, self.channels, embeddings_initializer="zeros", dtype=policy
            )
        elif kind == "vector":
            self.transform = layers.Dense(self.channels, kernel_initializer="zeros", dtype=policy)
        else:
            self.transform = layers.Conv2D(
                self.channels, 1, kernel_initializer="zeros", dtype=policy
            )

    def build(self, input_shape=None):
        shapes = {
            "labels": (None,),
            "vector": (None, self.size),
            "spatial": (None, None, None, self.size),
        }
        self.transform.build(shapes[self.kind])
        self.built = True

    def call(self, condition):
        if condition is None:
            raise InputError(
                f"This network is conditioned on {self.kind} ({self.size}); pass its condition."
            )
        if self.kind == "spatial":
            return self.transform(condition)
        return self.transform(condition)[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, size=self.size, channels=self.channels)
        return config
