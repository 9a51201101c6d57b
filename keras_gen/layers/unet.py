"""The diffusion family's network: a U-Net with a time embedding (Ho et al. 2020), as layers.

Residual blocks read a sinusoidal embedding of the timestep (and of a class label, for class
conditioning with classifier-free guidance); self-attention runs at the low resolutions. Everything
is plain convolution, dense, group-norm, resize and matmul ops, so exports run in LiteRT with
built-in ops only.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_gen.registry import register


def sinusoidal_embedding(timesteps, dim, max_period=10_000.0):
    """Transformer-style embedding of timesteps: (batch,) numbers -> (batch, dim) float32.

    Half the channels are sines, half cosines, at frequencies from 1 to 1 / max_period.
    """
    half = dim // 2
    frequencies = np.exp(-math.log(max_period) * np.arange(half) / half)
    # Each frequency as a float16 number plus a small remainder: a float16 LiteRT file rounds
    # these constants to float16, which would move the angle at t = 999 by up to 0.24 rad; the
    # product of an integer t < 2048 and a float16 number is exact in float32.
    leading = frequencies.astype(np.float16).astype(np.float32)
    remainder = (frequencies - leading).astype(np.float32)
    timesteps = ops.cast(timesteps, "float32")[:, None]
    angles = timesteps * leading[None, :] + timesteps * remainder[None, :]
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


@register
class UNetResidualBlock(keras.layers.Layer):
    """GroupNorm -> swish -> 3x3 conv, plus a projection of the time embedding, then GroupNorm ->
    swish -> dropout -> 3x3 conv (zero at first), added to the input (1x1 conv where the widths
    differ).

    `call(features, embedding)`: (batch, H, W, C_in), (batch, E) -> (batch, H, W, filters).

    Example:

    ```python
    block = UNetResidualBlock(16)
    out = block(np.zeros((2, 8, 8, 8), "float32"), np.zeros((2, 32), "float32"))  # (2, 8, 8, 16)
    ```
    """

    def __init__(self, filters, dropout=0.0, groups=8, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.dropout, self.groups = int(filters), float(dropout), int(groups)
        policy = self.dtype_policy
        self.norm_in = keras.layers.GroupNormalization(self.groups, name="norm_in", dtype=policy)
        self.conv_in = keras.layers.Conv2D(filters, 3, padding="same", name="conv_in", dtype=policy)
        self.embedding_projection = keras.layers.Dense(filters, name="embedding", dtype=policy)
        self.norm_out = keras.layers.GroupNormalization(self.groups, name="norm_out", dtype=policy)
        self.drop = keras.layers.Dropout(self.dropout, dtype=policy)
        self.conv_out = keras.layers.Conv2D(
            filters, 3, padding="same", kernel_initializer="zeros", name="conv_out", dtype=policy
        )
        self.skip = None

    def build(self, features_shape, embedding_shape):
        if features_shape[-1] != self.filters:
            self.skip = keras.layers.Conv2D(self.filters, 1, name="skip", dtype=self.dtype_policy)
            self.skip.build(features_shape)
        out_shape = tuple(features_shape[:-1]) + (self.filters,)
        self.norm_in.build(features_shape)
        self.conv_in.build(features_shape)
        self.embedding_projection.build(embedding_shape)
        self.norm_out.build(out_shape)
        self.conv_out.build(out_shape)
        self.built = True

    def call(self, features, embedding, training=False):
        hidden = self.conv_in(ops.silu(self.norm_in(features)))
        hidden = hidden + self.embedding_projection(ops.silu(embedding))[:, None, None, :]
        hidden = self.drop(ops.silu(self.norm_out(hidden)), training=training)
        hidden = self.conv_out(hidden)
        return hidden + (features if self.skip is None else self.skip(features))

    def compute_output_shape(self, features_shape, embedding_shape):
        return tuple(features_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, dropout=self.dropout, groups=self.groups)
        return config


@register
class UNetAttention(keras.layers.Layer):
    """Single-head self-attention over all positions of a feature map, added to its input
    (its output projection is zero at first). Attention logits and softmax in float32.

    `call(features)`: (batch, H, W, C) -> (batch, H, W, C).

    Example:

    ```python
    attention = UNetAttention()
    out = attention(np.zeros((2, 7, 7, 16), "float32"))   # (2, 7, 7, 16)
    ```
    """

    def __init__(self, groups=8, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)
        policy = self.dtype_policy
        self.norm = keras.layers.GroupNormalization(self.groups, name="norm", dtype=policy)
        self.qkv = None
        self.projection = None

    def build(self, features_shape):
        channels = int(features_shape[-1])
        policy = self.dtype_policy
        self.qkv = keras.layers.Dense(3 * channels, name="qkv", dtype=policy)
        self.projection = keras.layers.Dense(
            channels, kernel_initializer="zeros", name="projection", dtype=policy
        )
        self.norm.build(features_shape)
        self.qkv.build(features_shape)
        self.projection.build(features_shape)
        self.built = True

    def call(self, features):
        shape = ops.shape(features)
        channels = features.shape[-1]
        query, key, value = ops.split(self.qkv(self.norm(features)), 3, axis=-1)
        flat = (shape[0], shape[1] * shape[2], channels)
        query, key, value = (ops.reshape(x, flat) for x in (query, key, value))
        logits = ops.matmul(
            ops.cast(query, "float32"), ops.transpose(ops.cast(key, "float32"), (0, 2, 1))
        )
        weights = ops.softmax(logits / math.sqrt(channels), axis=-1)
        attended = ops.matmul(ops.cast(weights, value.dtype), value)
        return features + self.projection(ops.reshape(attended, shape))

    def compute_output_shape(self, features_shape):
        return features_shape

    def get_config(self):
        config = super().get_config()
        config.update(groups=self.groups)
        return config


@register
class UNetBackbone(keras.layers.Layer):
    """A denoising U-Net: predicts the noise (or velocity) of noised images at a timestep.

    `call(images, timesteps, labels=None)` maps noised float images (batch, H, W, C), timesteps
    (batch,) in [0, num_timesteps) and, with `num_classes`, labels (batch,) in [0, num_classes]
    (the value `num_classes` is the "no label" of classifier-free guidance) to a float prediction
    (batch, H, W, output_channels), zero at first.

    The levels: `widths[i]` channels at resolution H / 2^i, `blocks_per_level` residual blocks each
    on the way down and one more on the way up, attention after each block of the levels in
    `attention_levels`, and a middle of block, attention, block at the lowest resolution. H and W
    must divide by 2^(len(widths) - 1): 28x28 and 32x32 take three levels (down to 7x7 or 8x8).

    Args:
        output_channels: channels of the prediction (the image's).
        widths: channels per level.
        blocks_per_level: residual blocks per level on the way down.
        attention_levels: indices of the levels with self-attention.
        num_classes: class conditioning (an embedding added to the time embedding), or None.
        dropout: in every residual block, during training.
        groups: of every group norm; each width must divide by it.

    Example:

    ```python
    unet = UNetBackbone(output_channels=1, widths=(8, 16), blocks_per_level=1, attention_levels=(1,))
    noise_prediction = unet(np.zeros((2, 8, 8, 1), "float32"), np.array([0, 999]))  # (2, 8, 8, 1)
    ```
    """

    def __init__(
        self,
        output_channels=1,
        widths=(32, 64, 128),
        blocks_per_level=2,
        attention_levels=(2,),
        num_classes=None,
        dropout=0.0,
        groups=8,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_channels = int(output_channels)
        self.widths = tuple(int(w) for w in widths)
        self.blocks_per_level = int(blocks_per_level)
        self.attention_levels = tuple(int(i) for i in attention_levels)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.dropout, self.groups = float(dropout), int(groups)
        if any(width % self.groups for width in self.widths):
            raise ValueError(f"Every width must divide by groups={groups}, got {self.widths}.")
        if any(not 0 <= level < len(self.widths) for level in self.attention_levels):
            raise ValueError(
                f"attention_levels must index widths {self.widths}, got {self.attention_levels}."
            )
        self.embedding_dim = 4 * self.widths[0]
        policy = self.dtype_policy

        def block(width, name):
            return UNetResidualBlock(width, self.dropout, self.groups, name=name, dtype=policy)

        def attention(name):
            return UNetAttention(self.groups, name=name, dtype=policy)

        def conv(width, name, **options):
            return keras.layers.Conv2D(width, 3, padding="same", name=name, dtype=policy, **options)

        self.time_hidden = keras.layers.Dense(
            self.embedding_dim, activation="silu", name="time_hidden", dtype=policy
        )
        self.time_out = keras.layers.Dense(self.embedding_dim, name="time_out", dtype=policy)
        self.label_embedding = (
            keras.layers.Embedding(
                self.num_classes + 1, self.embedding_dim, name="label_embedding", dtype=policy
            )
            if self.num_classes
            else None
        )
        self.input_conv = conv(self.widths[0], "input_conv")
        self.down, self.up = [], []
        for level, width in enumerate(self.widths):
            stage = {
                "blocks": [block(width, f"down_{level}_{i}") for i in range(self.blocks_per_level)],
                "attention": [
                    attention(f"down_attention_{level}_{i}")
                    for i in range(self.blocks_per_level)
                    if level in self.attention_levels
                ],
                "downsample": (
                    conv(width, f"downsample_{level}", strides=2)
                    if level < len(self.widths) - 1
                    else None
                ),
            }
            self.down.append(stage)
        self.middle = [
            block(self.widths[-1], "middle_0"),
            attention("middle_attention"),
            block(self.widths[-1], "middle_1"),
        ]
        for level in reversed(range(len(self.widths))):
            width = self.widths[level]
            stage = {
                "blocks": [
                    block(width, f"up_{level}_{i}") for i in range(self.blocks_per_level + 1)
                ],
                "attention": [
                    attention(f"up_attention_{level}_{i}")
                    for i in range(self.blocks_per_level + 1)
                    if level in self.attention_levels
                ],
                "upsample": conv(width, f"upsample_{level}") if level > 0 else None,
            }
            self.up.append(stage)
        self.output_norm = keras.layers.GroupNormalization(
            self.groups, name="output_norm", dtype=policy
        )
        self.output_conv = conv(self.output_channels, "output_conv", kernel_initializer="zeros")

    def check_image_size(self, height, width):
        """Raises ValueError unless the levels can halve an image of this size."""
        factor = 2 ** (len(self.widths) - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"A U-Net of {len(self.widths)} levels halves the image {len(self.widths) - 1} "
                f"times, so H and W must divide by {factor}; got {height}x{width}. Use fewer "
                "widths, or another image size."
            )

    def build(self, images_shape, timesteps_shape=None, labels_shape=None):
        self.check_image_size(images_shape[1], images_shape[2])
        batch = images_shape[0]
        self.time_hidden.build((batch, self.embedding_dim))
        self.time_out.build((batch, self.embedding_dim))
        if self.label_embedding is not None:
            self.label_embedding.build((batch,))
        embedding = (batch, self.embedding_dim)
        height, width = images_shape[1], images_shape[2]

        def at(size, channels):
            return (batch, size[0], size[1], channels)

        self.input_conv.build(images_shape)
        size, channels = (height, width), self.widths[0]
        skips = [channels]
        for level, stage in enumerate(self.down):
            for i, block in enumerate(stage["blocks"]):
                block.build(at(size, channels), embedding)
                channels = self.widths[level]
                if stage["attention"]:
                    stage["attention"][i].build(at(size, channels))
                skips.append(channels)
            if stage["downsample"] is not None:
                stage["downsample"].build(at(size, channels))
                size = (size[0] // 2, size[1] // 2)
                skips.append(channels)
        self.middle[0].build(at(size, channels), embedding)
        self.middle[1].build(at(size, channels))
        self.middle[2].build(at(size, channels), embedding)
        for stage, level in zip(self.up, reversed(range(len(self.widths)))):
            for i, block in enumerate(stage["blocks"]):
                block.build(at(size, channels + skips.pop()), embedding)
                channels = self.widths[level]
                if stage["attention"]:
                    stage["attention"][i].build(at(size, channels))
            if stage["upsample"] is not None:
                size = (size[0] * 2, size[1] * 2)
                stage["upsample"].build(at(size, channels))
        self.output_norm.build(at(size, channels))
        self.output_conv.build(at(size, channels))
        self.built = True

    def embed(self, timesteps, labels=None):
        """The embedding every residual block reads: (batch,) timesteps [, labels] -> (batch, E)."""
        embedding = ops.cast(
            sinusoidal_embedding(timesteps, self.embedding_dim), self.compute_dtype
        )
        embedding = self.time_out(self.time_hidden(embedding))
        if self.label_embedding is not None:
            if labels is None:
                labels = ops.full((ops.shape(timesteps)[0],), self.num_classes, "int32")
            embedding = embedding + self.label_embedding(labels)
        return embedding

    def call(self, images, timesteps, labels=None, training=False):
        embedding = self.embed(timesteps, labels)
        hidden = self.input_conv(images)
        skips = [hidden]
        for stage in self.down:
            for i, block in enumerate(stage["blocks"]):
                hidden = block(hidden, embedding, training=training)
                if stage["attention"]:
                    hidden = stage["attention"][i](hidden)
                skips.append(hidden)
            if stage["downsample"] is not None:
                hidden = stage["downsample"](hidden)
                skips.append(hidden)
        hidden = self.middle[0](hidden, embedding, training=training)
        hidden = self.middle[1](hidden)
        hidden = self.middle[2](hidden, embedding, training=training)
        for stage in self.up:
            for i, block in enumerate(stage["blocks"]):
                hidden = block(
                    ops.concatenate([hidden, skips.pop()], axis=-1), embedding, training=training
                )
                if stage["attention"]:
                    hidden = stage["attention"][i](hidden)
            if stage["upsample"] is not None:
                hidden = stage["upsample"](ops.repeat(ops.repeat(hidden, 2, axis=1), 2, axis=2))
        return self.output_conv(ops.silu(self.output_norm(hidden)))

    def compute_output_shape(self, images_shape, timesteps_shape=None, labels_shape=None):
        return tuple(images_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            output_channels=self.output_channels,
            widths=list(self.widths),
            blocks_per_level=self.blocks_per_level,
            attention_levels=list(self.attention_levels),
            num_classes=self.num_classes,
            dropout=self.dropout,
            groups=self.groups,
        )
        return config
