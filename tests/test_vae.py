import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen.models import VAE
from keras_gen.models.vae import hashed_standard_normal_draws
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


def log_likelihood_and_prior_on_grid(model, images, grid):
    """log p(x | z) (images, grid) and log p(z) (grid,) in nats, for a model with a 1-d latent."""
    params = model.decode(grid[:, None])
    log_px_z = np.stack(
        [model.likelihood.log_prob(params, np.repeat(x[None], len(grid), 0)) for x in images]
    )
    return log_px_z, -0.5 * grid**2 - 0.5 * math.log(2 * math.pi)


def test_iwae_matches_exact_log_likelihood_of_a_one_dimensional_latent():
    """With one latent dimension, log p(x) is an integral we can take by quadrature."""
    model = tiny_vae(image_shape=(4, 4, 1), latent_dim=1, widths=(2, 2))
    images = (np.arange(32).reshape(2, 4, 4, 1) % 3 == 0).astype(np.uint8)
    grid = np.linspace(-8, 8, 4001, dtype=np.float32)
    log_px_z, log_prior = log_likelihood_and_prior_on_grid(model, images, grid)
    exact = np.log(np.sum(np.exp(log_px_z + log_prior), axis=1) * (grid[1] - grid[0]))
    estimate = model.log_prob(images, num_samples=20000, seed=3).numpy()
    np.testing.assert_allclose(estimate, exact, atol=0.05)
    single = model.log_prob(np.repeat(images, 2000, axis=0), num_samples=1, seed=3).numpy()
    elbo = single.reshape(2, 2000).mean(axis=1)  # k = 1 is the ELBO, a bound in expectation
    assert np.all(elbo < exact)


def distinct_binary_images(count, shape=(4, 4, 1)):
    """`count` different binary images: the bits of 0, 1, 2, ... spread over the pixels."""
    size = int(np.prod(shape))
    bits = (np.arange(count)[:, None] * 40503 >> np.arange(size)) & 1  # 40503: odd, so distinct
    return bits.reshape((count,) + shape).astype(np.uint8)


def test_export_draws_follow_each_image_in_any_batch_and_differ_between_images():
    images = distinct_binary_images(64, (8, 8, 1))
    draws = hashed_standard_normal_draws(tf.constant(images), 100, 3).numpy()
    assert draws.shape == (100, 64, 3)
    backwards = hashed_standard_normal_draws(tf.constant(images[::-1]), 100, 3).numpy()
    np.testing.assert_array_equal(backwards[:, ::-1], draws)
    np.testing.assert_array_equal(
        hashed_standard_normal_draws(tf.constant(images[5:6]), 100, 3).numpy()[:, 0], draws[:, 5]
    )
    # Two images share a draw only by chance (about 1 in 4,096), not the whole set.
    same = (draws[:, :, None] == draws[:, None, :]).all(-1).mean(0)  # (64, 64)
    assert np.all(np.diag(same) == 1.0)
    assert same[~np.eye(64, dtype=bool)].max() <= 0.05
    assert abs(draws.mean()) < 0.1 and abs(draws.std() - 1.0) < 0.1


def test_exported_log_prob_with_per_image_draws_averages_to_the_elbo_over_images():
    """With k = 1 the exported figure of an image is one ELBO draw; by quadrature over the one
    latent dimension, its mean over many images is the mean ELBO, as with fresh random draws."""
    model = tiny_vae(image_shape=(4, 4, 1), latent_dim=1, widths=(2, 2), eval_num_samples=1)
    images = distinct_binary_images(2000)
    grid = np.linspace(-8, 8, 2001, dtype=np.float32)
    log_px_z, log_prior = log_likelihood_and_prior_on_grid(model, images, grid)
    mean, log_var = (v.numpy()[:, 0] for v in model.encode(images))
    log_q = -0.5 * ((grid - mean[:, None]) ** 2 / np.exp(log_var[:, None]) + log_var[:, None])
    log_q -= 0.5 * math.log(2 * math.pi)
    q = np.exp(log_q) * (grid[1] - grid[0])
    elbo = np.sum(q * (log_px_z + log_prior - log_q), axis=1)
    exported = model._export_log_prob(images, None).numpy()
    spread = np.std(exported - elbo) / math.sqrt(len(images))
    assert abs(np.mean(exported - elbo)) < 4 * spread
    assert model.export_draws == "per_image"


def test_files_saved_before_export_draws_existed_export_one_shared_set_of_draws():
    config = tiny_vae(eval_num_samples=5).get_config()
    del config["export_draws"]
    old = VAE.from_config(config)
    assert old.export_draws == "shared"
    images = tiny_images(3)
    draws = np.random.default_rng(0).standard_normal((5, 1, 2), dtype=np.float32)
    expected = old.importance_weighted_log_prob(images, np.repeat(draws, 3, axis=1))
    np.testing.assert_array_equal(old._export_log_prob(images, None), expected)
    with pytest.raises(ValueError, match="export_draws"):
        tiny_vae(export_draws="fresh")
    with pytest.raises(ValueError, match="32,768 sub-pixels"):
        hashed_standard_normal_draws(tf.zeros((1, 128, 128, 3), tf.uint8), 2, 2)


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
