"""Checks that turn bad input into one clear error instead of a deep traceback."""

import numpy as np
import tensorflow as tf


class InputError(ValueError):
    """Raised for inputs of the wrong shape, dtype or range."""


def _describe(x):
    return (
        f"shape {tuple(x.shape)} and dtype {x.dtype.name if hasattr(x.dtype, 'name') else x.dtype}"
    )


def _check_static_shape(x, expected_tail, name, what):
    shape = tuple(x.shape)
    if len(shape) != len(expected_tail) + 1 or any(
        e is not None and s is not None and s != e for s, e in zip(shape[1:], expected_tail)
    ):
        raise InputError(
            f"{name}: expected {what} of shape (batch, {', '.join(map(str, expected_tail))}), "
            f"received {_describe(x)}."
        )


def check_images(images, image_shape, num_levels, name="images"):
    """Checks a batch of integer level images; returns it as a uint8 tensor.

    Args:
        images: (batch, H, W, C) integers in [0, num_levels - 1].
    """
    if not tf.is_tensor(images):
        images = np.asarray(images)
    _check_static_shape(images, image_shape, name, "integer images")
    dtype = tf.as_dtype(images.dtype)
    if not dtype.is_integer:
        raise InputError(
            f"{name}: expected integer level images (uint8, values 0..{num_levels - 1}), "
            f"received {_describe(images)}. Quantize floats first, e.g. with "
            "keras_gen.data.to_levels."
        )
    if tf.executing_eagerly():
        values = np.asarray(images)
        if values.size and (values.min() < 0 or values.max() > num_levels - 1):
            raise InputError(
                f"{name}: expected values in [0, {num_levels - 1}] for a model with "
                f"{num_levels} levels, received values in [{values.min()}, {values.max()}]."
            )
    return tf.cast(images, tf.uint8)


def check_codes(codes, grid_shape, num_codes, name="codes"):
    """Checks a batch of code grids (batch, h, w) of ints in [0, num_codes); returns int32."""
    if not tf.is_tensor(codes):
        codes = np.asarray(codes)
    _check_static_shape(codes, grid_shape, name, "integer codes")
    if not tf.as_dtype(codes.dtype).is_integer:
        raise InputError(f"{name}: expected integer codes, received {_describe(codes)}.")
    if tf.executing_eagerly():
        values = np.asarray(codes)
        if values.size and (values.min() < 0 or values.max() >= num_codes):
            raise InputError(
                f"{name}: expected codes in [0, {num_codes - 1}] for a codebook of {num_codes}, "
                f"received values in [{values.min()}, {values.max()}]."
            )
    return tf.cast(codes, tf.int32)


def check_noise(noise, noise_shape, noise_kind=None, name="noise"):
    """Checks a batch of float noise of shape (batch, *noise_shape); returns float32.

    noise_kind "uniform" (autoregressive models' inverse-CDF noise) also needs values in [0, 1).
    """
    if not tf.is_tensor(noise):
        noise = np.asarray(noise)
    _check_static_shape(noise, noise_shape, name, "float noise")
    if not tf.as_dtype(noise.dtype).is_floating:
        raise InputError(f"{name}: expected float noise, received {_describe(noise)}.")
    if tf.executing_eagerly():
        values = np.asarray(noise)
        if not np.all(np.isfinite(values)):
            raise InputError(f"{name}: contains NaN or infinite values.")
        if noise_kind == "uniform" and values.size and (values.min() < 0 or values.max() >= 1):
            raise InputError(
                f"{name}: expected uniform noise in [0, 1), received values in "
                f"[{values.min():g}, {values.max():g}]. Use model.make_noise."
            )
    return tf.cast(noise, tf.float32)


def check_noise_structure(noise, noise_spec):
    """Checks noise for a model's `noise_spec` ({name: (shape, kind)}): a bare array when it has one
    entry, a dict with exactly its names otherwise; every entry float, with one batch size.
    Returns float32 tensors in the same structure."""
    if len(noise_spec) == 1:
        [(name, (shape, kind))] = noise_spec.items()
        if isinstance(noise, dict):
            if set(noise) != {name}:
                raise InputError(
                    f"noise: expected an array, or {{{name!r}: array}}; got keys {sorted(noise)}."
                )
            noise = noise[name]
        return check_noise(noise, shape, kind)
    if not isinstance(noise, dict) or set(noise) != set(noise_spec):
        got = sorted(noise) if isinstance(noise, dict) else type(noise).__name__
        raise InputError(
            f"noise: expected a dict with {sorted(noise_spec)}, received {got}. "
            "Use model.make_noise."
        )
    checked = {
        name: check_noise(noise[name], shape, kind, name=name)
        for name, (shape, kind) in noise_spec.items()
    }
    sizes = {
        name: int(value.shape[0]) for name, value in checked.items() if value.shape[0] is not None
    }
    if len(set(sizes.values())) > 1:
        raise InputError(f"noise: every entry needs the same batch size, received {sizes}.")
    return checked


def check_labels(labels, num_classes, batch_size, name="labels"):
    """Checks class labels for a conditional model; returns int32 of shape (batch,)."""
    if num_classes is None:
        if labels is not None:
            raise InputError(f"{name}: this model is not class-conditional; pass no labels.")
        return None
    if labels is None:
        raise InputError(
            f"{name}: this model is conditional on {num_classes} classes; pass labels "
            f"of shape ({batch_size},) with values in [0, {num_classes - 1}]."
        )
    if not tf.is_tensor(labels):
        labels = np.asarray(labels)
    if not tf.as_dtype(labels.dtype).is_integer or len(labels.shape) != 1:
        raise InputError(
            f"{name}: expected integer labels of shape (batch,), received {_describe(labels)}."
        )
    if tf.executing_eagerly():
        values = np.asarray(labels)
        if values.shape[0] != batch_size:
            raise InputError(f"{name}: expected {batch_size} labels, received {values.shape[0]}.")
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise InputError(
                f"{name}: expected values in [0, {num_classes - 1}], received values in "
                f"[{values.min()}, {values.max()}]."
            )
    return tf.cast(labels, tf.int32)
