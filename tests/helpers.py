"""Checks shared by the tests of every model family."""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_gen import export, runtime
from keras_gen.conventions import parity_failures

LOG_PROB_TOLERANCE = dict(rtol=1e-4, atol=1e-3)  # nats


def assert_export_parity(model, directory, images=None, labels=None, batch=None, parity=None):
    """Exports `model`, then checks Keras, the reloaded SavedModel and LiteRT agree: samples to
    `parity` (default the model's `sample_parity`), log_prob to float tolerance."""
    parity = parity or model.sample_parity
    export.export(model, directory, verbose=False)
    runners = {
        "keras": runtime.KerasRunner(model),
        "savedmodel": runtime.open_artifact(directory),
        "tflite": runtime.open_artifact(os.path.join(directory, "model.tflite")),
    }
    batch = batch or (len(labels) if labels is not None else 3)
    noise = model.make_noise(batch, seed=0)
    samples = {name: r.sample(noise, labels) for name, r in runners.items()}
    for name, value in samples.items():
        # Exactly the same images for discrete samplers; float decoders within their stated rounding.
        assert value.dtype == np.uint8 and value.shape == (batch,) + model.image_shape, name
        assert not parity_failures(samples["keras"], value, parity), (
            name,
            parity_failures(samples["keras"], value, parity),
        )
    if images is not None:
        log_probs = {name: r.log_prob(images, labels) for name, r in runners.items()}
        for name, value in log_probs.items():
            np.testing.assert_allclose(
                value, log_probs["keras"], **LOG_PROB_TOLERANCE, err_msg=name
            )
    return samples


def assert_keras_round_trip(model, dataset, path):
    """Save after some training; the reload matches outputs and optimizer state, and trains on identically.

    `dataset` is images, or a tuple (images, labels) for conditional models.
    """
    images, labels = dataset if isinstance(dataset, tuple) else (dataset, None)
    model.fit(images, labels, epochs=2, batch_size=4, shuffle=False, verbose=0)
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_config() == model.get_config()
    noise = model.make_noise(len(images), seed=0)
    np.testing.assert_array_equal(loaded.sample(noise, labels), model.sample(noise, labels))
    if model.has_log_prob:
        np.testing.assert_array_equal(loaded(images, labels), model(images, labels))
    names = [
        n
        for n in ("optimizer", "d_optimizer", "g_optimizer")
        if getattr(model, n, None) is not None
    ]
    assert names
    for name in names:
        saved, restored = getattr(model, name), getattr(loaded, name)
        assert int(restored.iterations) == int(saved.iterations) > 0, name
        assert len(restored.variables) == len(saved.variables) > 2, name  # slots, not just counters
        for before, after in zip(saved.variables, restored.variables):
            np.testing.assert_array_equal(before, after)
    model.fit(images, labels, epochs=1, batch_size=4, shuffle=False, verbose=0)
    loaded.fit(images, labels, epochs=1, batch_size=4, shuffle=False, verbose=0)
    for original, resumed in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(original, resumed, rtol=1e-5, atol=1e-6)
    return loaded


def subpixel_jacobian(function, image_shape, num_levels=2, seed=0, num_images=1):
    """J[i, j] = d(sum of the outputs of sub-pixel i) / d(input sub-pixel j), raster then channel order.

    `function` maps (N, H, W, C) float levels to (N, H, W, C * k) outputs whose channels are
    grouped by colour, each image on its own (a condition must be repeated to N). The input is
    float, so gradients reach it. One backward pass gives every row: the image is repeated once
    per sub-pixel, and copy i backpropagates sub-pixel i's outputs alone. With `num_images` > 1,
    |J| is summed over that many random images, so a ReLU dead for one image hides no reach.
    """
    height, width, channels = image_shape
    count = height * width * channels
    rng = np.random.default_rng(seed)
    total = np.zeros((count, count), np.float32)
    for _ in range(num_images):
        image = rng.integers(0, num_levels, (1,) + image_shape).astype(np.float32)
        copies = tf.constant(np.repeat(image, count, axis=0))
        with tf.GradientTape() as tape:
            tape.watch(copies)
            params = function(copies)
            per_subpixel = tf.reduce_sum(tf.reshape(params, (count, count, -1)), axis=-1)
            own = tf.reduce_sum(tf.linalg.diag_part(per_subpixel))
        total += np.abs(tf.reshape(tape.gradient(own, copies), (count, count)).numpy())
    return total


def assert_causal(model, image_shape, labels=None):
    """Sub-pixel i never depends on sub-pixel j >= i."""

    def outputs(images):
        repeated = None if labels is None else tf.repeat(labels, images.shape[0], axis=0)
        return model(images, repeated)

    jacobian = subpixel_jacobian(outputs, image_shape, model.num_levels)
    forbidden = np.triu(np.ones_like(jacobian, dtype=bool))
    assert jacobian[forbidden].max() == 0.0, np.argwhere(forbidden & (jacobian > 0))[:5]
    return jacobian
