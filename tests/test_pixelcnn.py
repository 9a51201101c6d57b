import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen.layers import MaskedConv2D, causal_mask
from keras_gen.models import GatedPixelCNN, PixelCNN
from keras_gen.validation import InputError
from tests.helpers import (
    assert_causal,
    assert_export_parity,
    assert_keras_round_trip,
    subpixel_jacobian,
)

MIXTURE = dict(likelihood="logistic_mixture", num_mixtures=3)
LIKELIHOODS = [{}, MIXTURE]  # the default head, and the mixture head


def tiny(cls, channels=1, num_levels=2, **options):
    size = {"num_blocks": 2} if issubclass(cls, PixelCNN) else {"num_layers": 3}
    return cls(
        image_shape=(5, 5, channels),
        num_levels=num_levels,
        filters=6,
        head_filters=6,
        seed=0,
        **size,
        **options,
    )


def test_mask_centre_follows_rgb_grouping():
    a = causal_mask((3, 3), 3, 6, "A", color_channels=3)[1, 1]
    b = causal_mask((3, 3), 6, 6, "B", color_channels=3)[1, 1]
    # inputs R, G, B -> outputs (R, R, G, G, B, B): A sees strictly earlier colours
    np.testing.assert_array_equal(a, [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]])
    groups = np.repeat(np.arange(3), 2)
    np.testing.assert_array_equal(b, groups[:, None] <= groups[None, :])
    full = causal_mask((3, 3), 1, 1, "B")[..., 0, 0]
    np.testing.assert_array_equal(full, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


def test_mask_is_applied_in_the_forward_pass_not_written_into_weights():
    layer = MaskedConv2D(2, 3, "A")
    layer.build((None, 4, 4, 1))
    layer.kernel.assign(np.ones(layer.kernel.shape, np.float32))
    assert np.all(layer.kernel.numpy() == 1.0)  # weights keep their values
    output = layer(np.ones((1, 4, 4, 1), np.float32)).numpy()
    assert output[0, 2, 2, 0] == 4.0  # 3 above + 1 left; centre and later are masked
    clone = MaskedConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
@pytest.mark.parametrize("channels, num_levels", [(1, 2), (3, 4)])
@pytest.mark.parametrize("head", LIKELIHOODS)
def test_logits_depend_only_on_earlier_subpixels(cls, channels, num_levels, head):
    model = tiny(cls, channels, num_levels, **head)
    assert_causal(model, model.image_shape)


@pytest.mark.parametrize("channels", [1, 3])
def test_masked_conv_stack_is_causal(channels):
    stack = keras.Sequential(
        [
            keras.Input((5, 5, channels)),
            MaskedConv2D(6, 3, "A", channels, activation="relu"),
            MaskedConv2D(6, 3, "B", channels, activation="relu"),
            MaskedConv2D(channels, 1, "B", channels),
        ]
    )
    jacobian = subpixel_jacobian(stack, (5, 5, channels))
    assert jacobian[np.triu(np.ones_like(jacobian, dtype=bool))].max() == 0.0
    assert jacobian[np.tril(np.ones_like(jacobian, dtype=bool), -1)].max() > 0.0


@pytest.mark.parametrize("channels", [1, 3])
def test_gated_pixelcnn_has_no_blind_spot(channels):
    model = tiny(GatedPixelCNN, channels, num_levels=4 if channels == 3 else 2)
    assert_causal(model, model.image_shape)

    # The 1x1 head adds no spatial reach; its ReLUs only hide gradients where units are dead.
    jacobian = subpixel_jacobian(model.features, model.image_shape, model.num_levels, num_images=4)
    assert jacobian[np.triu(np.ones_like(jacobian, dtype=bool))].max() == 0.0
    earlier = np.tril(np.ones_like(jacobian, dtype=bool), -1)
    assert np.all(jacobian[earlier] > 0.0), "some earlier sub-pixel is unseen"


def test_plain_pixelcnn_has_the_blind_spot_gated_removes():
    model = PixelCNN(
        image_shape=(7, 7, 1), filters=6, head_filters=6, num_blocks=1, first_kernel_size=3, seed=0
    )
    jacobian = subpixel_jacobian(model, (7, 7, 1), num_images=8)
    assert jacobian[3 * 7 + 3, 2 * 7 + 4] > 0.0  # inside the cone: seen
    # Pixel (3, 3) cannot see (2, 6): up-right beyond the growing cone of masked 3x3 kernels.
    assert jacobian[3 * 7 + 3, 2 * 7 + 6] == 0.0


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
@pytest.mark.parametrize(
    "image_shape, num_levels", [((2, 2, 1), 2), ((1, 2, 3), 2), ((1, 1, 2), 3)]
)
@pytest.mark.parametrize("head", LIKELIHOODS)
def test_probabilities_of_all_images_sum_to_one(cls, image_shape, num_levels, head):
    size = {"num_blocks": 1} if cls is PixelCNN else {"num_layers": 2}
    model = cls(
        image_shape=image_shape,
        num_levels=num_levels,
        filters=image_shape[-1] * 2,
        head_filters=image_shape[-1] * 2,
        seed=0,
        **size,
        **head,
    )
    subpixels = int(np.prod(image_shape))
    every_image = np.array(list(itertools.product(range(num_levels), repeat=subpixels)), np.uint8)
    log_probs = model.log_prob(every_image.reshape((-1,) + image_shape)).numpy()
    np.testing.assert_allclose(np.exp(log_probs).sum(), 1.0, rtol=1e-5)
    bits = model.bits_per_dim(every_image.reshape((-1,) + image_shape)).numpy()
    np.testing.assert_allclose(bits, -log_probs / (subpixels * np.log(2)), rtol=1e-6)


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
@pytest.mark.parametrize("channels, num_levels, num_classes", [(1, 2, None), (1, 2, 3), (3, 4, 3)])
@pytest.mark.parametrize("head", LIKELIHOODS)
def test_fast_sampler_equals_plain_loop(cls, channels, num_levels, num_classes, head):
    model = tiny(cls, channels, num_levels, num_classes=num_classes, **head)
    noise = model.make_noise(4, seed=1)
    labels = np.array([0, 1, 2, 0]) if num_classes else None
    plain = model.sample_levels(noise, labels, method="plain").numpy()
    fast = model.sample_levels(noise, labels, method="fast").numpy()
    np.testing.assert_array_equal(fast, plain)
    assert len(np.unique(plain)) > 1


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
@pytest.mark.parametrize("method", ["plain", "fast"])
def test_completion_keeps_known_subpixels_and_matches_across_samplers(cls, method):
    model = tiny(cls, 3, 4)
    noise = model.make_noise(2, seed=2)
    known = np.full((2, 5, 5, 3), 3, np.uint8)
    known_mask = np.zeros((2, 5, 5, 3), bool)
    known_mask[:, :2] = True  # keep the top two rows
    known_mask[:, 2, 1, 1] = True  # and a half-known pixel: its green only
    completed = model.sample_levels(
        noise, known=known, known_mask=known_mask, method=method
    ).numpy()
    assert np.all(completed[known_mask] == 3)
    reference = model.sample_levels(
        noise, known=known, known_mask=known_mask, method="plain"
    ).numpy()
    np.testing.assert_array_equal(completed, reference)
    pixels = model.complete(known, known_mask, noise).numpy()
    np.testing.assert_array_equal(pixels, completed * 85)


def test_sampling_is_deterministic_given_noise_and_follows_the_inverse_cdf():
    model = tiny(GatedPixelCNN, 1, 2)
    zeros = model.sample_levels(np.zeros((1, 5, 5, 1), np.float32)).numpy()
    ones = model.sample_levels(np.full((1, 5, 5, 1), 0.999999, np.float32)).numpy()
    assert zeros.max() == 0 and ones.min() == 1  # u -> 0 takes the lowest level, u -> 1 the highest
    noise = model.make_noise(2, seed=5)
    np.testing.assert_array_equal(model.sample(noise), model.sample(noise))


def test_conditional_model_obeys_its_labels():
    model = tiny(GatedPixelCNN, 1, 2, num_classes=3)
    images = np.zeros((3, 5, 5, 1), np.uint8)
    for layer in model.gated_layers:
        layer.horizontal_bias.embedding.embeddings.assign(
            np.random.default_rng(0).normal(size=(3, 12))
        )
    log_probs = model.log_prob(images, np.array([0, 1, 2])).numpy()
    assert len(set(np.round(log_probs, 4))) == 3


@pytest.mark.parametrize(
    "condition",
    [
        dict(num_classes=3),
        dict(condition_kind="vector", condition_size=2),
        dict(condition_kind="spatial", condition_size=2),
    ],
    ids=["classes", "vector", "map"],
)
def test_every_weight_of_a_conditional_gated_pixelcnn_gets_a_gradient(condition):
    # The last layer's vertical output is unused, so it must not own a bias that never learns.
    model = tiny(GatedPixelCNN, 1, 2, **condition)
    images = (np.arange(2 * 25).reshape(2, 5, 5, 1) % 3 == 0).astype(np.uint8)
    if "num_classes" in condition:
        labels = np.array([0, 2])
    else:
        labels = np.ones((2, 2) if condition["condition_kind"] == "vector" else (2, 5, 5, 2))
        labels = (labels * np.arange(1, 3)).astype("float32")
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model.log_prob(images, labels))
    gradients = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, gradients) if g is None]
    assert not missing


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
def test_keras_round_trip(cls, tmp_path):
    model = tiny(cls, 1, 2, num_classes=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = (np.arange(8 * 25).reshape(8, 5, 5, 1) % 3 == 0).astype(np.uint8)
    assert_keras_round_trip(model, (images, np.arange(8) % 2), str(tmp_path / "model.keras"))


def test_fit_lowers_the_nll():
    model = tiny(PixelCNN, 1, 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = np.tile(np.eye(5, dtype=np.uint8)[None, :, :, None], (16, 1, 1, 1))
    history = model.fit(images, epochs=20, batch_size=8, verbose=0).history
    assert {"loss", "nll", "bits_per_dim"} <= set(history)
    assert history["nll"][-1] < 0.5 * history["nll"][0]
    results = model.evaluate(images, verbose=0, return_dict=True)
    np.testing.assert_allclose(results["nll"], -model.log_prob(images).numpy().mean(), rtol=1e-4)


@pytest.mark.parametrize(
    "cls, channels, num_levels, num_classes",
    [(PixelCNN, 1, 2, None), (PixelCNN, 3, 4, 3), (GatedPixelCNN, 1, 2, 2)],
)
@pytest.mark.parametrize("head", LIKELIHOODS)
def test_export_parity(cls, channels, num_levels, num_classes, head, tmp_path):
    model = tiny(cls, channels, num_levels, num_classes=num_classes, **head)
    images = (
        np.random.default_rng(0).integers(0, num_levels, (3,) + model.image_shape).astype(np.uint8)
    )
    labels = np.array([0, 1, 2])[:3] % num_classes if num_classes else None
    assert_export_parity(model, str(tmp_path / "export"), images, labels)


def test_bad_input_gets_clear_errors():
    model = tiny(PixelCNN, 1, 2, num_classes=3)
    noise = model.make_noise(2, seed=0)
    with pytest.raises(InputError, match=r"\(batch, 5, 5, 1\), received shape \(2, 5, 5, 3\)"):
        model.sample(np.zeros((2, 5, 5, 3), np.float32), [0, 1])
    with pytest.raises(InputError, match=r"values in \[0, 2\].*\[0, 3\]"):
        model.sample(noise, [0, 3])
    with pytest.raises(InputError, match="conditional on 3 classes"):
        model.sample(noise)
    with pytest.raises(InputError, match=r"values in \[0, 1\]"):
        model.log_prob(np.full((2, 5, 5, 1), 7, np.uint8), [0, 1])
    with pytest.raises(InputError, match="known_mask: expected bool"):
        model.sample_levels(
            noise,
            [0, 1],
            known=np.zeros((2, 5, 5, 1), np.uint8),
            known_mask=np.zeros((2, 5, 5, 1), np.uint8),
        )
    with pytest.raises(ValueError, match="multiple of 6"):
        PixelCNN(image_shape=(5, 5, 3), filters=8)

    class WithoutFastSampler(PixelCNN):
        has_fast_sampler = False

    with pytest.raises(ValueError, match="no fast sampler"):
        tiny(WithoutFastSampler).sample_levels(model.make_noise(1), method="fast")


@pytest.mark.parametrize("cls, num_classes", [(PixelCNN, None), (GatedPixelCNN, 2)])
def test_exported_completion_keeps_known_subpixels_in_every_runtime(cls, num_classes, tmp_path):
    import os

    from keras_gen import export, runtime

    model = tiny(cls, 1, 2, num_classes=num_classes)
    export.export(model, str(tmp_path / "export"), verbose=False, quantize=["int8"])
    images = (np.random.default_rng(3).random((3, 5, 5, 1)) < 0.5).astype(np.uint8)
    mask = np.zeros(images.shape, bool)
    mask[:, :2] = True  # the top two rows
    noise = model.make_noise(3, seed=4)
    labels = np.array([0, 1, 1]) if num_classes else None
    expected = model.complete(images, mask, noise, labels).numpy()
    np.testing.assert_array_equal(expected[mask], images[mask] * 255)
    for path in ("export", os.path.join("export", "model.tflite")):
        runner = runtime.open_artifact(str(tmp_path / path))
        np.testing.assert_array_equal(runner.complete(images, mask, noise, labels), expected)
    assert "complete" in runtime.KerasRunner(model).signatures
    int8 = runtime.open_artifact(str(tmp_path / "export"), "tflite-int8")  # sample and log_prob
    with pytest.raises(runtime.ArtifactError, match="no complete signature"):
        int8.complete(images, mask, noise, labels)


def test_the_mixture_head_is_normalised_over_256_levels_and_samples_by_its_cdf():
    from keras_gen.likelihoods import DiscretizedLogisticMixture

    likelihood = DiscretizedLogisticMixture(num_levels=256, num_mixtures=4)
    params = tf.random.stateless_normal((2, 3, 1, 2 * 12), seed=(1, 2)) * 2.0  # 2 channels
    levels = np.arange(256, dtype=np.uint8)
    every = np.stack(
        [
            likelihood.log_prob_per_subpixel(params, np.full((2, 3, 1, 2), v, np.uint8))
            for v in levels
        ],
        axis=-1,
    )  # (2, 3, 1, 2, 256)
    np.testing.assert_allclose(np.exp(every).sum(-1), 1.0, rtol=1e-4)
    cdf = likelihood.cdf_at_bin_tops(params, 2).numpy()
    np.testing.assert_allclose(cdf, np.cumsum(np.exp(every), -1)[..., :-1], atol=1e-4)
    uniform = np.full((2, 3, 1, 2), 0.5, np.float32)
    median = likelihood.inverse_cdf(params, uniform, 2).numpy()
    np.testing.assert_array_equal(median, (cdf <= 0.5).sum(-1))
