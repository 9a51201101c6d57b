"""VQ-VAE and its PixelCNN prior: the codebook, a causal prior over codes, fast = plain codes,
one `sample` graph through every runtime, and clear errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen.layers import VectorQuantizer
from keras_gen.models import VQVAE, VQVAEPrior, vqvae
from keras_gen.models.vqvae import PRIOR_NETWORKS
from keras_gen.validation import InputError
from tests.helpers import assert_export_parity, assert_keras_round_trip


def grey_images(count, seed=0):
    """Smooth 8 x 8 blobs: easy to reconstruct, so a few steps move the codebook."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:8, :8]
    centres = rng.uniform(1, 7, (count, 2))
    blobs = np.exp(
        -((rows[None] - centres[:, :1, None]) ** 2 + (cols[None] - centres[:, 1:, None]) ** 2) / 4
    )
    return (blobs[..., None] * 255).astype(np.uint8)


def tiny_vqvae(codebook_update="ema", num_codes=6):
    keras.utils.set_random_seed(0)
    return VQVAE(
        image_shape=(8, 8, 1),
        num_levels=256,
        num_codes=num_codes,
        code_dim=3,
        widths=(4,),
        codebook_update=codebook_update,
        seed=0,
    )


def tiny_prior(model=None, **options):
    model = model or tiny_vqvae()
    prior = VQVAEPrior(
        model, filters=6, num_blocks=2, embedding_dim=3, head_filters=6, seed=0, **options
    )
    rng = np.random.default_rng(1)  # a prior that is far from uniform before any training
    for weight in prior.prior.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    return prior


def test_quantizer_snaps_to_the_nearest_code_and_passes_gradients_straight_through():
    quantizer = VectorQuantizer(num_codes=4, code_dim=2)
    quantizer.build()
    quantizer.codebook.assign(np.array([[0, 0], [1, 0], [0, 1], [5, 5]], np.float32))
    latents = keras.ops.convert_to_tensor(np.array([[[0.9, 0.2], [0.1, 0.1], [4, 6]]], "float32"))
    quantized, codes = quantizer(latents)
    np.testing.assert_array_equal(codes, [[1, 0, 3]])
    np.testing.assert_allclose(quantized, [[[1, 0], [0, 0], [5, 5]]])
    with tf.GradientTape() as tape:
        tape.watch(latents)
        quantized, _ = quantizer(latents)
        total = tf.reduce_sum(quantized * 3.0)
    np.testing.assert_allclose(tape.gradient(total, latents), np.full((1, 3, 2), 3.0))


def test_ema_codebook_moves_to_the_mean_of_its_latents_and_unused_codes_stay():
    quantizer = VectorQuantizer(num_codes=3, code_dim=1, decay=0.5, dead_fraction=0)
    quantizer.build()
    quantizer.codebook.assign([[0.0], [10.0], [100.0]])
    quantizer.ema_sums.assign([[0.0], [10.0], [100.0]])
    latents = np.array([[1.0], [3.0], [9.0]], np.float32)  # codes 0, 0, 1
    _, codes = quantizer(latents)
    quantizer.update(latents, codes)
    # code 0: (0.5 * 0 + 0.5 * 4) / (0.5 * 1 + 0.5 * 2) = 4 / 3; code 1: (5 + 4.5) / 1 = 9.5
    np.testing.assert_allclose(quantizer.codebook.numpy()[:, 0], [4 / 3, 9.5, 100.0], rtol=1e-6)


@pytest.mark.parametrize("codebook_update", ["ema", "loss"])
def test_vqvae_fit_lowers_the_reconstruction_error(codebook_update):
    model = tiny_vqvae(codebook_update)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = grey_images(64)
    history = model.fit(images, batch_size=16, epochs=20, verbose=0).history
    assert {"loss", "reconstruction_mse", "commitment", "perplexity"} <= set(history)
    assert history["reconstruction_mse"][-1] < 0.5 * history["reconstruction_mse"][0]
    perplexity, dead = vqvae.code_usage(model.encode_codes(images), model.num_codes)
    assert 1.0 <= perplexity <= model.num_codes and 0 <= dead < model.num_codes


def test_code_usage_counts_perplexity_and_dead_codes():
    assert vqvae.code_usage([0, 1, 2, 3], 4) == pytest.approx((4.0, 0))
    assert vqvae.code_usage([[2, 2], [2, 2]], 5) == pytest.approx((1.0, 4))


@pytest.mark.parametrize("prior_network", sorted(PRIOR_NETWORKS))
def test_prior_is_causal_over_the_code_grid(prior_network):
    prior = tiny_prior(prior_network=prior_network).prior
    codes = np.random.default_rng(0).integers(0, 6, (1, 4, 4, 1))
    logits = prior(codes).numpy()
    for position in range(16):
        changed = codes.copy()
        changed.reshape(-1)[position] = (changed.reshape(-1)[position] + 1) % 6
        moved = np.abs(prior(changed).numpy() - logits).reshape(16, -1).max(axis=1)
        assert moved[: position + 1].max() == 0.0, position  # the code itself and all before
        if position < 15:
            assert moved[position + 1 :].max() > 0.0  # the embedding reaches later codes


@pytest.mark.parametrize("prior_network", sorted(PRIOR_NETWORKS))
@pytest.mark.parametrize("num_classes", [None, 3])
def test_fast_prior_sampler_equals_plain_loop(num_classes, prior_network):
    prior = tiny_prior(num_classes=num_classes, prior_network=prior_network)
    noise = prior.make_noise(6, seed=3)
    labels = np.arange(6) % 3 if num_classes else None
    fast = prior.sample_codes(noise, labels, method="fast").numpy()
    plain = prior.sample_codes(noise, labels, method="plain").numpy()
    np.testing.assert_array_equal(fast, plain)
    assert len(np.unique(fast)) > 2
    pixels = prior.sample(noise, labels).numpy()
    np.testing.assert_array_equal(pixels, prior.vqvae.decode_codes(fast).numpy())


def test_prior_trains_on_the_frozen_vqvae_codes():
    model = tiny_vqvae()
    model.compile_for_training()
    images = grey_images(32)
    model.fit(images, batch_size=16, epochs=1, verbose=0)
    prior = VQVAEPrior(model, filters=6, num_blocks=1, embedding_dim=3, head_filters=6)
    prior.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [w.numpy().copy() for w in prior.vqvae.weights]
    history = prior.fit(images, batch_size=16, epochs=6, verbose=0).history
    assert history["nll"][-1] < history["nll"][0]
    for old, new in zip(before, prior.vqvae.weights):
        np.testing.assert_array_equal(old, new.numpy())  # stage 1 stays as it was
    np.testing.assert_array_equal(prior.codes_of(images)[..., 0], model.encode_codes(images))


def test_round_trips_with_optimizer_state(tmp_path):
    model = tiny_vqvae()
    model.compile_for_training()
    assert_keras_round_trip(model, grey_images(8), str(tmp_path / "vqvae.keras"))
    for prior_network in PRIOR_NETWORKS:
        prior = tiny_prior(model, prior_network=prior_network)
        prior.compile_for_training()
        assert_keras_round_trip(prior, grey_images(8), str(tmp_path / f"{prior_network}.keras"))
        assert keras.saving.load_model(tmp_path / f"{prior_network}.keras").prior_network == (
            prior_network
        )


@pytest.mark.parametrize(
    "num_classes, prior_network", [(None, "pixelcnn"), (3, "pixelcnn"), (3, "gated_pixelcnn")]
)
def test_export_parity_of_the_one_sample_graph(num_classes, prior_network, tmp_path):
    prior = tiny_prior(num_classes=num_classes, prior_network=prior_network)
    labels = np.array([0, 1, 2]) if num_classes else None
    samples = assert_export_parity(prior, str(tmp_path / "export"), labels=labels)
    assert samples["keras"].std() > 0


def test_vqvae_alone_exports_its_uniform_code_sampler(tmp_path):
    assert_export_parity(tiny_vqvae(), str(tmp_path / "export"))


def test_bad_input_gets_clear_errors():
    model = tiny_vqvae()
    with pytest.raises(
        InputError, match=r"codes in \[0, 5\] for a codebook of 6, received values in \[6, 6\]"
    ):
        model.decode_codes(np.full((1, 4, 4), 6))
    with pytest.raises(InputError, match=r"\(batch, 4, 4\)"):
        model.decode_codes(np.zeros((1, 3, 3), int))
    with pytest.raises(InputError, match="needs a trained VQVAE"):
        VQVAEPrior(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="prior_network must be one of"):
        VQVAEPrior(model, prior_network="transformer")
    with pytest.raises(ValueError, match="give num_classes to its VQVAEPrior"):
        VQVAE(image_shape=(8, 8, 1), widths=(4,), num_classes=3)


def test_evaluate_reports_samples_reconstruction_codes_and_prior(mock_dataset, tmp_path):
    from keras_gen import data, evaluation

    model = VQVAE(image_shape=(28, 28, 1), num_codes=4, code_dim=2, widths=(4, 4), seed=0)
    prior = VQVAEPrior(model, filters=4, num_blocks=1, embedding_dim=2, head_filters=4, seed=0)
    prior.save(tmp_path / "prior.keras")
    source = data.Source("mnist", batch_size=16, manual_dir=mock_dataset)
    results = evaluation.evaluate(str(tmp_path / "prior.keras"), source, num_samples=32)
    assert {"fd_logits", "reconstruction_mse", "code_perplexity", "dead_codes"} <= set(results)
    assert 1.0 <= results["code_perplexity"] <= 4 and 0 <= results["dead_codes"] <= 3
    assert results["prior_nll"] == pytest.approx(results["prior_bits_per_code"] * 49 * np.log(2))


def test_dead_codes_restart_at_latents_of_the_batch():
    quantizer = VectorQuantizer(num_codes=4, code_dim=1, decay=0.5, dead_fraction=0.5)
    quantizer.build()
    quantizer.codebook.assign([[0.0], [100.0], [200.0], [300.0]])
    quantizer.ema_sums.assign([[0.0], [100.0], [200.0], [300.0]])
    latents = np.array([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]], np.float32)  # all code 0
    _, codes = quantizer(latents)
    quantizer.update(latents, codes, step=0)
    codebook = quantizer.codebook.numpy()[:, 0]
    assert set(codebook[1:]) <= set(latents[:, 0])  # restarted at the batch's latents
    _, codes = quantizer(latents)
    assert len(np.unique(codes)) > 1
