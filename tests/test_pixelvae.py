"""PixelVAE: a causal decoder given z, z in use, fast = plain sampling, the ELBO and IWAE bounds."""

import keras
import numpy as np
import pytest

from keras_gen.models import PixelVAE
from keras_gen.models.pixelcnn import PIXELCNN_NETWORKS, pixelcnn_network
from keras_gen.validation import InputError
from tests.helpers import assert_causal, assert_export_parity, assert_keras_round_trip

# The decoders: a PixelCNN reading a map z is upsampled to, a Gated PixelCNN reading z itself,
# and one reading the map (a bias that varies by row and column in its cached sampler) with a
# deeper encoder.
DECODERS = {
    "pixelcnn_map": dict(decoder_network="pixelcnn", map_channels=2),
    "gated_vector": dict(decoder_network="gated_pixelcnn", map_channels=None),
    "gated_map": dict(decoder_network="gated_pixelcnn", map_channels=2, encoder_depth=2),
}


def tiny(channels=1, num_levels=2, decoder="pixelcnn_map", **options):
    keras.utils.set_random_seed(0)
    model = PixelVAE(
        image_shape=(6, 6, channels),
        num_levels=num_levels,
        latent_dim=3,
        widths=(4,),
        filters=6 * channels,
        num_blocks=2,
        head_filters=3 * channels,
        eval_num_samples=4,
        seed=0,
        **DECODERS[decoder],
        **options,
    )
    # The condition biases start at zero; random ones, fed from a map or a z that varies, make
    # z matter before any training.
    rng = np.random.default_rng(1)
    for weight in model.weights:
        if "condition" in weight.path or "latent_to_map" in weight.path:
            weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    return model


def binary_images(count, shape=(6, 6, 1), seed=0):
    return (np.random.default_rng(seed).random((count,) + shape) < 0.3).astype(np.uint8)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("channels, num_levels", [(1, 2), (3, 4)])
def test_decoder_is_causal_given_z(channels, num_levels, decoder):
    model = tiny(channels, num_levels, decoder)
    z = model.make_noise(1, seed=0)["z"]
    assert_causal(model.decoder, model.image_shape, labels=model.condition_map(z))


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_decoder_reads_z(decoder):
    model = tiny(decoder=decoder)
    images = binary_images(2)
    z = model.make_noise(2, seed=0)["z"]
    first = model.decode(images, z).numpy()
    second = model.decode(images, z + 1.0).numpy()
    assert np.abs(first - second).max() > 1e-3


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("channels, num_levels", [(1, 2), (3, 4)])
def test_fast_sampler_equals_plain_loop(channels, num_levels, decoder):
    model = tiny(channels, num_levels, decoder)
    noise = model.make_noise(5, seed=2)
    fast = model.sample_levels(noise, method="fast").numpy()
    plain = model.sample_levels(noise, method="plain").numpy()
    np.testing.assert_array_equal(fast, plain)
    assert 0 < fast.mean() < num_levels - 1  # not a constant image
    # The same pixel noise under another z gives other images: the samples depend on z.
    other = dict(noise, z=noise["z"][::-1] + 2.0)
    assert not np.array_equal(model.sample_levels(other).numpy(), fast)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_completion_keeps_known_subpixels_and_matches_across_samplers(decoder):
    model = tiny(decoder=decoder)
    images = binary_images(3, seed=4)
    mask = np.zeros(images.shape, bool)
    mask[:, :3] = True  # keep the top half
    noise = model.make_noise(3, seed=5)
    fast = model.sample_levels(noise, images, mask, method="fast").numpy()
    plain = model.sample_levels(noise, images, mask, method="plain").numpy()
    np.testing.assert_array_equal(fast, plain)
    np.testing.assert_array_equal(fast[mask], images[mask])
    pixels = model.complete(images, mask, noise)
    np.testing.assert_array_equal(pixels.numpy(), fast * 255)


def test_iwae_bound_tightens_on_the_elbo_and_is_reproducible():
    model = tiny()
    images = binary_images(4)
    reconstruction, kl_dims = model.negative_elbo_terms(images)
    elbo = -(reconstruction + keras.ops.sum(kl_dims, -1)).numpy()
    iwae = model.log_prob(images, num_samples=64, seed=0).numpy()
    np.testing.assert_array_equal(iwae, model.log_prob(images, num_samples=64, seed=0).numpy())
    one_draw = model.log_prob(images, num_samples=1, seed=0).numpy()
    # IWAE with k = 64 bounds log p(x) more tightly than k = 1 (an ELBO draw), on average.
    assert iwae.mean() > one_draw.mean()
    assert np.all(np.isfinite(elbo)) and iwae.mean() > elbo.mean() - 1.0


def test_fit_lowers_the_loss_and_free_bits_hold_the_charged_kl_up():
    images = np.tile(np.eye(6, dtype=np.uint8)[None, :, :, None], (16, 1, 1, 1))
    model = tiny(free_bits=0.5, kl_warmup_steps=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(images, epochs=12, batch_size=8, verbose=0).history
    assert {"loss", "reconstruction", "kl"} <= set(history)
    assert history["reconstruction"][-1] < 0.7 * history["reconstruction"][0]
    # The loss charges at least free_bits per dimension once warm-up is over.
    assert history["loss"][-1] >= history["reconstruction"][-1] + 3 * 0.5 - 1e-4
    results = model.evaluate(images, batch_size=8, verbose=0, return_dict=True)
    assert {"nll", "kl", "reconstruction"} <= set(results)


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_keras_round_trip_with_optimizer_state(decoder, tmp_path):
    model = tiny(decoder=decoder)
    model.compile_for_training()
    path = str(tmp_path / "pixelvae.keras")
    assert_keras_round_trip(model, binary_images(8), path)
    loaded = keras.saving.load_model(path)
    options = {"encoder_depth": 1, **DECODERS[decoder]}
    assert loaded.get_config().items() >= options.items()


@pytest.mark.parametrize("decoder", sorted(DECODERS))
def test_export_parity_with_named_noise(decoder, tmp_path):
    model = tiny(decoder=decoder)
    samples = assert_export_parity(model, str(tmp_path / "export"), binary_images(3))
    assert samples["keras"].std() > 0


def test_bad_input_gets_clear_errors():
    model = tiny()
    noise = model.make_noise(2, seed=0)
    with pytest.raises(InputError, match=r"z: .*\(batch, 3\)"):
        model.sample(dict(noise, z=np.zeros((2, 4), np.float32)))
    with pytest.raises(InputError, match="expected a dict with"):
        model.sample(noise["pixels"])
    with pytest.raises(InputError, match="same batch size"):
        model.sample(dict(noise, z=noise["z"][:1]))
    with pytest.raises(ValueError, match="num_blocks >= 1"):
        PixelVAE(image_shape=(6, 6, 1), widths=(4,), num_blocks=0)
    with pytest.raises(ValueError, match="divisible by 4"):
        PixelVAE(image_shape=(6, 6, 1), widths=(4, 8))
    with pytest.raises(ValueError, match="encoder_depth >= 1"):
        PixelVAE(image_shape=(6, 6, 1), widths=(4,), encoder_depth=0)
    with pytest.raises(ValueError, match="decoder_network must be one of"):
        PixelVAE(image_shape=(6, 6, 1), widths=(4,), decoder_network="transformer")


@pytest.mark.parametrize("network", sorted(PIXELCNN_NETWORKS))
def test_a_network_conditioned_on_a_vector_checks_its_condition_and_refuses_export(network):
    model = pixelcnn_network(
        network,
        1,
        image_shape=(5, 5, 1),
        filters=4,
        head_filters=4,
        condition_kind="vector",
        condition_size=3,
    )
    noise = model.make_noise(2, seed=0)
    condition = np.ones((2, 3), np.float32)
    fast = model.sample_levels(noise, condition, method="fast")
    np.testing.assert_array_equal(fast, model.sample_levels(noise, condition, method="plain"))
    with pytest.raises(InputError, match=r"condition: .*\(batch, 3\)"):
        model.sample(noise, np.ones((2, 4), np.float32))
    with pytest.raises(NotImplementedError, match="no export signature"):
        model.export_endpoints()
