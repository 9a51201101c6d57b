"""Conventions at every boundary of keras_gen: noise, levels and pixels.

- Data images (what `fit` and `log_prob` take) are uint8 **levels** in [0, num_levels - 1].
- Sampled images (what `sample` returns) are uint8 **pixels** in [0, 255].
- Noise is an input, drawn with NumPy from a seed, so the same noise gives the same images in
  Keras, SavedModel and LiteRT: standard normal (VAE, GANs) or uniform in [0, 1) (one value per
  sub-pixel, for the autoregressive models' inverse-CDF sampling).

This module imports nothing from keras_gen, so every other module may use it.
"""

import numpy as np
import tensorflow as tf


def draw_noise(batch_size, noise_shape, noise_kind, seed=None):
    """(batch_size, *noise_shape) float32: standard normal, or uniform in [0, 1) for noise_kind="uniform"."""
    return _draw(np.random.default_rng(seed), batch_size, noise_shape, noise_kind)


def _draw(rng, batch_size, noise_shape, noise_kind):
    shape = (int(batch_size),) + tuple(noise_shape)
    if noise_kind == "uniform":
        return rng.random(shape, dtype=np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


def unit_to_pixels(images):
    """Float images in [0, 1] -> uint8 pixels in [0, 255]."""
    return tf.cast(
        tf.round(tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0) * 255.0), tf.uint8
    )


def pixels_to_levels(pixels, num_levels):
    """uint8 pixels in [0, 255] -> uint8 levels in [0, num_levels - 1]; inverts levels -> pixels. NumPy."""
    return np.round(np.asarray(pixels, np.float32) * (num_levels - 1) / 255.0).astype(np.uint8)


def draw_noise_structure(batch_size, noise_spec, seed=None):
    """Noise for a model's `noise_spec` ({name: (shape, kind)}), drawn from one seed.

    One entry gives a bare (batch_size, *shape) float32 array, as `draw_noise` does; several give
    {name: array}, drawn in the order of the names, so the same seed gives the same noise.
    """
    if len(noise_spec) == 1:
        [(shape, kind)] = noise_spec.values()
        return draw_noise(batch_size, shape, kind, seed)
    rng = np.random.default_rng(seed)
    return {name: _draw(rng, batch_size, *noise_spec[name]) for name in sorted(noise_spec)}


def noise_batch_size(noise):
    """The batch size of noise: an array, or a dict of arrays."""
    first = next(iter(noise.values())) if isinstance(noise, dict) else noise
    return int(first.shape[0])


def slice_noise(noise, start, stop):
    """Rows start:stop of noise, an array or a dict of arrays."""
    if isinstance(noise, dict):
        return {name: value[start:stop] for name, value in noise.items()}
    return noise[start:stop]


# How closely an export's `sample` follows the Keras model's for the same noise (issue P).
# Discrete sampling (autoregressive pixels and codes) gives the same images exactly. A float
# decoder whose output is rounded to uint8 pixels (VAE, GANs, VQ-VAE) may round a pixel that sits
# on a .5 boundary the other way in another runtime's kernels.
EXACT_PIXELS = {"max_pixel_difference": 0, "max_differing_fraction": 0.0}
ROUNDED_PIXELS = {"max_pixel_difference": 1, "max_differing_fraction": 0.001}


def describe_parity(parity):
    """One sentence for cards and the README: what "the same images" means for a model."""
    if parity["max_pixel_difference"] == 0:
        return "Keras, SavedModel and LiteRT give exactly the same images for the same noise."
    return (
        "Keras, SavedModel and LiteRT give the same images for the same noise up to the float "
        f"decoder's rounding: a pixel may differ by at most {parity['max_pixel_difference']} "
        f"of 255, in at most {100 * parity['max_differing_fraction']:g} % of pixels."
    )


def parity_failures(reference, other, parity):
    """What breaks `parity` between two uint8 image batches of one shape: a list of sentences,
    empty when it holds. At least one differing pixel is allowed where any are (small batches)."""
    difference = np.abs(np.asarray(reference, np.int32) - np.asarray(other, np.int32))
    differing = int(np.count_nonzero(difference))
    allowed = (
        0
        if parity["max_pixel_difference"] == 0
        else max(1, int(parity["max_differing_fraction"] * difference.size))
    )
    failures = []
    if difference.max(initial=0) > parity["max_pixel_difference"]:
        failures.append(
            f"a pixel differs by {difference.max()} (at most {parity['max_pixel_difference']})"
        )
    if differing > allowed:
        failures.append(f"{differing} of {difference.size} pixels differ (at most {allowed})")
    return failures


# A prime near 2**16: pixel hashes are taken modulo it, so int32 arithmetic never overflows.
HASH_PRIME = 65521


def image_hashes(images, num_draws, rng):
    """`num_draws` hashes of each image's pixels, for draws that depend on the image alone.

    A universal hash per draw, ((a * key + b) mod p), of a key that weighs every sub-pixel; the
    weights a, b come from `rng`, a NumPy Generator that the caller seeds. Integer arithmetic
    only, so SavedModel and LiteRT (built-in ops) compute the same hashes, and an image hashes
    the same in any batch.

    Args:
        images: (batch, H, W, C) integer levels, at most 32,768 sub-pixels each.
        num_draws: hashes per image.
        rng: `np.random.Generator`; draws H * W * C + 2 * num_draws integers from it.
    Returns:
        (num_draws, batch) int32 in [0, HASH_PRIME).
    """
    if np.prod(images.shape[1:]) > 2**15:
        raise ValueError(
            f"Per-image draws hash at most 32,768 sub-pixels an image, got {images.shape[1:]}."
        )
    pixel_weights = rng.integers(1, HASH_PRIME, size=images.shape[1:], dtype=np.int32)
    # a, b < 2**15 keep a * key + b < 2**31.
    scales = rng.integers(1, 2**15, size=(num_draws, 1), dtype=np.int32)
    offsets = rng.integers(0, 2**15, size=(num_draws, 1), dtype=np.int32)
    # Each product is < 2**24 and each reduced term < 2**16, so 2**15 terms sum below 2**31.
    terms = tf.math.floormod(tf.cast(images, tf.int32) * pixel_weights, HASH_PRIME)
    keys = tf.math.floormod(tf.reduce_sum(terms, axis=[1, 2, 3]), HASH_PRIME)  # (batch,)
    return tf.math.floormod(scales * keys[None, :] + offsets, HASH_PRIME)
