import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen.models import VAE
from tests.helpers import assert_keras_round_trip


def tiny_vae(**options):
    options = {"image_shape": (8, 8, 1), "latent_dim": 2, "widths": (4, 8), "seed": 1, **options}
    return VAE(**options)


def tiny_images(count=8):
    images = np.zeros((count, 8, 8, 1), np.uint8)
    for i in range(count):
        images[i, :, i] = 1
    return images


def test_config_round_trip_is_complete():
    model = tiny_vae(beta=2.0, kl_warmup_steps=10, eval_num_samples=7)
    clone = VAE.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    images = tiny_images()
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(images), model(images))


def test_fit_lowers_the_loss_and_reports_epoch_means():
    keras.utils.set_random_seed(0)
    model = tiny_vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(tiny_images(), epochs=15, batch_size=8, verbose=0).history
    assert set(history) == {"loss", "reconstruction", "kl"}
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    results = model.evaluate(tiny_images(), batch_size=8, verbose=0, return_dict=True)
    assert {"loss", "reconstruction", "kl", "nll"} <= set(results)
    assert results["nll"] <= results["loss"] + 1e-3  # IWAE bound is tighter than the ELBO


def test_kl_warmup_is_linear_up_to_beta():
    model = tiny_vae(beta=0.5, kl_warmup_steps=4)
    model.compile(optimizer="adam")
    weights = []
    for step in range(6):
        model.optimizer.iterations.assign(step)
        weights.append(float(model.kl_weight()))
    np.testing.assert_allclose(weights, [0, 0.125, 0.25, 0.375, 0.5, 0.5])


@pytest.mark.parametrize("free_bits_steps", [None, 2])
def test_free_bits_hold_for_their_steps_then_training_charges_the_whole_kl(free_bits_steps):
    # Free bits far above any KL here: while they hold, the loss charges exactly 50 a dimension.
    keras.utils.set_random_seed(0)
    model = tiny_vae(free_bits=50.0, free_bits_steps=free_bits_steps)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    history = model.fit(tiny_images(), epochs=4, batch_size=8, verbose=0).history  # 1 step each
    charged = np.array(history["loss"]) - np.array(history["reconstruction"])
    freed = [True] * 4 if free_bits_steps is None else [True, True, False, False]
    expected = np.where(freed, 2 * 50.0, history["kl"])
    np.testing.assert_allclose(charged, expected, rtol=1e-5, atol=1e-4)
    assert max(history["kl"]) < 10.0
    assert VAE.from_config(model.get_config()).free_bits_steps == free_bits_steps


def test_iwae_matches_exact_log_likelihood_of_a_one_dimensional_latent():
    """With one latent dimension, log p(x) is an integral we can take by quadrature."""
    model = tiny_vae(image_shape=(4, 4, 1), latent_dim=1, widths=(2, 2))
    images = (np.arange(32).reshape(2, 4, 4, 1) % 3 == 0).astype(np.uint8)
    grid = np.linspace(-8, 8, 4001, dtype=np.float32)
    params = model.decode(grid[:, None])
    log_px_z = np.stack(
        [model.likelihood.log_prob(params, np.repeat(x[None], len(grid), 0)) for x in images]
    )
    log_prior = -0.5 * grid**2 - 0.5 * math.log(2 * math.pi)
    exact = np.log(np.sum(np.exp(log_px_z + log_prior), axis=1) * (grid[1] - grid[0]))
    estimate = model.log_prob(images, num_samples=20000, seed=3).numpy()
    np.testing.assert_allclose(estimate, exact, atol=0.05)
    single = model.log_prob(np.repeat(images, 2000, axis=0), num_samples=1, seed=3).numpy()
    elbo = single.reshape(2, 2000).mean(axis=1)  # k = 1 is the ELBO, a bound in expectation
    assert np.all(elbo < exact)


def test_sample_and_decode_are_deterministic_given_z():
    model = tiny_vae()
    z = model.make_noise(5, seed=0)
    first, second = model.sample(z), model.sample(z)
    assert first.dtype == tf.uint8 and first.shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(first, second)
    mean = model.decode_mean(z).numpy()
    assert 0 <= mean.min() and mean.max() <= 1
    np.testing.assert_array_equal(first, np.round(mean * 255).astype(np.uint8))
    means, log_vars = model.encode(tiny_images())
    assert means.shape == log_vars.shape == (8, 2)


def test_grey_images_use_a_discretized_logistic_that_normalises():
    model = tiny_vae(num_levels=4)
    assert model.likelihood.name == "logistic"
    params = model.decode(model.make_noise(1, seed=0))
    total = sum(
        np.exp(
            model.likelihood.log_prob_per_subpixel(params, np.full((1, 8, 8, 1), level, np.uint8))
        )
        for level in range(4)
    )
    np.testing.assert_allclose(total, 1.0, atol=1e-4)


def test_keras_round_trip_restores_optimizer_and_training_continues(tmp_path):
    model = tiny_vae()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert_keras_round_trip(model, tiny_images(), str(tmp_path / "vae.keras"))


def test_image_size_must_suit_the_strides():
    with pytest.raises(ValueError, match="divisible by 4"):
        VAE(image_shape=(30, 30, 1))
