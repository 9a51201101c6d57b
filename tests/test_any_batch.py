"""Exports take any batch in one call (issue P): every signature runs in chunks inside its graph,
so 500 images in one call give what 7 at a time give, in the SavedModel and in LiteRT."""

import numpy as np
import pytest
import tensorflow as tf

from keras_gen import export, runtime
from keras_gen.models.base import in_chunks
from tests.test_distribute import make_model

BATCH = 500
SMALL_BATCH = 7
# One model of every family: latent-variable, hybrid (both), adversarial, autoregressive, diffusion.
FAMILIES = [
    "vae",
    "pixelvae",
    "conditional_gan",
    "pixelcnn",
    "diagonal_bilstm",
    "vqvae_prior",
    "diffusion",
]
OUTPUTS = {"log_prob": ["log_prob"], "denoise": ["epsilon", "x0"]}


@pytest.mark.parametrize("batch", [1, 3, 4, 5, 9])
def test_in_chunks_gives_the_whole_batch_outputs(batch):
    def function(images, labels):
        return {
            "total": tf.reduce_sum(tf.cast(images, tf.float32), [1, 2])
            + tf.cast(labels, tf.float32),
            "images": images * 2,
        }

    signature = [
        tf.TensorSpec((None, 2, 3), tf.uint8, name="images"),
        tf.TensorSpec((None,), tf.int32, name="labels"),
    ]
    images = (np.arange(batch * 6).reshape(batch, 2, 3) % 50).astype(np.uint8)
    labels = np.arange(batch, dtype=np.int32)
    chunked = tf.function(in_chunks(function, signature, chunk_size=4), input_signature=signature)
    got, expected = chunked(images, labels), function(images, labels)
    for name in expected:
        assert got[name].dtype == expected[name].dtype
        np.testing.assert_array_equal(got[name], expected[name])


def signature_inputs(model, signature, count):
    """Deterministic inputs of `count` images for one export signature (as runners pass them)."""
    rng = np.random.default_rng(0)
    inputs = {}
    if signature in ("sample", "complete"):
        noise = model.make_noise(count, seed=1)
        inputs.update(noise if isinstance(noise, dict) else {"noise": noise})
    if signature in ("log_prob", "complete"):
        images = rng.integers(0, model.num_levels, (count,) + model.image_shape).astype(np.uint8)
        inputs["images" if signature == "log_prob" else "known"] = images
    if signature == "complete":
        inputs["known_mask"] = (rng.random((count,) + model.image_shape) < 0.5).astype(np.uint8)
    if signature == "denoise":
        inputs["noised"] = rng.standard_normal((count,) + model.image_shape).astype(np.float32)
        inputs["timesteps"] = (np.arange(count) * 7 % model.num_timesteps).astype(np.int32)
    if model.num_classes:
        inputs["labels"] = (np.arange(count) % model.num_classes).astype(np.int32)
    return inputs


@pytest.mark.parametrize("name", FAMILIES)
def test_every_signature_takes_500_images_in_one_call_and_gives_each_image_its_own_output(
    name, tmp_path
):
    model = make_model(name)
    if name == "diffusion":
        model.configure_sampling(sampling_steps=1)  # chunking does not depend on the steps
    folder = str(tmp_path / "export")
    manifest = export.export(model, folder, verbose=False)
    runners = {
        "savedmodel": runtime.open_artifact(folder, "savedmodel"),
        "tflite": runtime.open_artifact(folder, "tflite"),
    }
    for signature in manifest["signatures"]:
        inputs = signature_inputs(model, signature, BATCH)
        for runtime_name, runner in runners.items():
            # The signature itself, as a user calls it: no chunking by the runner.
            whole = runner._call(signature, inputs)
            pieces = [
                runner._call(
                    signature,
                    {key: value[start : start + SMALL_BATCH] for key, value in inputs.items()},
                )
                for start in range(0, BATCH, SMALL_BATCH)
            ]
            ones = [  # and one image a call, the on-device case
                runner._call(signature, {key: value[i : i + 1] for key, value in inputs.items()})
                for i in range(3)
            ]
            for output in OUTPUTS.get(signature, ["images"]):
                got = np.asarray(whole[output])
                chunks = np.concatenate([np.asarray(piece[output]) for piece in pieces])
                firsts = np.concatenate([np.asarray(one[output]) for one in ones])
                expected = np.concatenate([firsts, chunks[len(ones) :]])
                where = f"{name} {runtime_name} {signature} {output}"
                assert got.shape[0] == BATCH, where
                if got.dtype.kind == "f":  # float sums in another order at most
                    # The diffusion bound weighs each of its network's outputs by up to T / S
                    # times its posterior's precision, so float32's batch-size-dependent kernels
                    # show more.
                    rtol = 2e-5 if signature == "log_prob" and name == "diffusion" else 1e-6
                    np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-5, err_msg=where)
                else:
                    np.testing.assert_array_equal(got, expected, err_msg=where)


def test_parity_is_exact_for_discrete_samplers_and_stated_for_float_decoders():
    from keras_gen import models
    from keras_gen.conventions import EXACT_PIXELS, ROUNDED_PIXELS, parity_failures

    for exact in (models.PixelCNN, models.GatedPixelCNN, models.PixelRNN, models.PixelVAE):
        assert exact.sample_parity == EXACT_PIXELS, exact
    for rounded in (models.VAE, models.DCGAN, models.WGANGP, models.VQVAE, models.VQVAEPrior):
        assert rounded.sample_parity == ROUNDED_PIXELS, rounded
    images = np.zeros((4, 50, 50, 1), np.uint8)  # 10,000 pixels: 10 may differ by one level
    off_by_one = images.copy()
    off_by_one.flat[:10] = 1
    assert parity_failures(images, off_by_one, ROUNDED_PIXELS) == []
    assert parity_failures(images, off_by_one, EXACT_PIXELS)
    off_by_one.flat[10] = 1
    assert parity_failures(images, off_by_one, ROUNDED_PIXELS) == [
        "11 of 10000 pixels differ (at most 10)"
    ]
    off_by_one.flat[0] = 2
    assert "a pixel differs by 2 (at most 1)" in parity_failures(images, off_by_one, ROUNDED_PIXELS)


def test_every_zoo_card_says_which_parity_applies():
    from keras_gen import zoo
    from keras_gen.conventions import describe_parity

    for name in zoo.names():
        text = open(f"{zoo.folder(name)}/MODEL_CARD.md").read()
        assert describe_parity(zoo.sample_parity(name)) in text, name
