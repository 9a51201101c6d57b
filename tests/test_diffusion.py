"""The diffusion family (issue O): the schedule, a tiny fit, deterministic DDIM sampling, exact
resume after a .keras round trip, export parity and bad inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import export, models, runtime
from keras_gen.conventions import parity_failures
from keras_gen.layers import UNetBackbone
from keras_gen.models.diffusion import ddim_timesteps, signal_fractions
from keras_gen.validation import InputError

TINY = dict(
    image_shape=(8, 8, 1),
    num_levels=256,
    widths=(8, 16),
    blocks_per_level=1,
    attention_levels=(1,),
    num_timesteps=100,
    sampling_steps=4,
)


def tiny(**options):
    keras.utils.set_random_seed(0)
    model = models.Diffusion(**{**TINY, **options}, seed=0)
    model.compile_for_training()
    return model


def images(count=8):
    return (np.arange(count * 64).reshape(count, 8, 8, 1) * 37 % 256).astype(np.uint8)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_schedules_fall_from_signal_to_noise(schedule):
    alpha_bar = signal_fractions(schedule, 1000)
    assert alpha_bar.shape == (1000,) and np.all(np.diff(alpha_bar) < 0)
    assert alpha_bar[0] > 0.99 and alpha_bar[-1] < 1e-3


def test_ddim_visits_evenly_spaced_timesteps_and_refuses_impossible_counts():
    np.testing.assert_array_equal(ddim_timesteps(100, 4), [99, 66, 33, 0])
    assert list(ddim_timesteps(100, 1)) == [99]
    for bad in (0, 101):
        with pytest.raises(InputError, match="sampling_steps must be in \\[1, 100\\]"):
            ddim_timesteps(100, bad)


def test_the_unet_refuses_an_image_its_levels_cannot_halve():
    with pytest.raises(ValueError, match="must divide by 4"):
        models.Diffusion(**{**TINY, "image_shape": (6, 6, 1), "widths": (8, 16, 16)})
    assert UNetBackbone(widths=(8, 16), attention_levels=(1,)).get_config()["widths"] == [8, 16]


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_a_tiny_fit_lowers_the_loss_and_sampling_is_deterministic(prediction):
    model = tiny(prediction=prediction)
    model.compile_for_training(3e-3)
    losses = model.fit(images(16), epochs=15, batch_size=8, verbose=0).history["loss"]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses  # timesteps are random
    noise = model.make_noise(3, seed=1)
    first = np.asarray(model.sample(noise))
    assert first.dtype == np.uint8 and first.shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(first, model.sample(noise))
    assert not np.array_equal(first, model.sample(noise, sampling_steps=2))


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_a_keras_round_trip_resumes_exactly(tmp_path, dropout):
    model = tiny(dropout=dropout)
    model.fit(images(), epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    noise = model.make_noise(2, seed=0)
    np.testing.assert_array_equal(loaded.sample(noise), model.sample(noise))
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    model.fit(images(), epochs=1, batch_size=4, verbose=0, shuffle=False)
    loaded.fit(images(), epochs=1, batch_size=4, verbose=0, shuffle=False)
    for a, b in zip(
        model.network.weights + model.ema_network.weights,
        loaded.network.weights + loaded.ema_network.weights,
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_sampling_uses_the_weight_average():
    model = tiny(ema_decay=0.9)
    model.fit(images(), epochs=2, batch_size=4, verbose=0)
    assert model.sampling_network is model.ema_network
    assert not all(
        np.array_equal(a.numpy(), b.numpy())
        for a, b in zip(model.network.weights, model.ema_network.weights)
    )
    assert tiny(ema_decay=0.0).sampling_network.name == "network"


def test_class_conditioning_and_guidance():
    model = tiny(num_classes=3, guidance_scale=1.0, ema_decay=0.0)
    model.compile_for_training(1e-2)
    labels = np.array([0, 1, 2, 0], np.int32)
    model.fit((images(4), labels), epochs=5, batch_size=2, verbose=0)
    noised = tf.constant(model.make_noise(4, seed=0))
    timesteps = tf.constant([10, 40, 70, 99])
    conditional, _ = model.predict_noise(model.network, noised, timesteps, labels)
    unconditional, _ = model.predict_noise(model.network, noised, timesteps, np.full(4, 3))
    guided, _ = model.guided_prediction(noised, timesteps, tf.constant(labels), 2.0)
    assert np.abs(conditional - unconditional).max() > 1e-4  # the label matters
    np.testing.assert_allclose(guided, 3.0 * conditional - 2.0 * unconditional, atol=1e-5)
    noise = model.make_noise(4, seed=0)
    assert model.sample(noise, labels).shape == (4, 8, 8, 1)
    with pytest.raises(InputError, match="guidance_scale=2.0: classifier-free guidance needs"):
        tiny(guidance_scale=2.0)
    with pytest.raises(InputError, match="guidance_scale=1.0"):
        tiny().sample(noise, guidance_scale=1.0)
    with pytest.raises(InputError, match="labels"):
        model.sample(noise, np.array([0, 1, 2, 3]))


def test_export_samples_as_keras_does_in_every_runtime(tmp_path):
    model = tiny()
    model.fit(images(), epochs=1, batch_size=4, verbose=0)
    folder = str(tmp_path / "export")
    manifest = export.export(model, folder, verbose=False)
    noise = model.make_noise(20, seed=2)
    expected = np.asarray(model.sample(noise))
    for name in ("savedmodel", "tflite"):
        got = runtime.open_artifact(folder, name).sample(noise)
        assert not parity_failures(expected, got, manifest["sample_parity"]), name
    assert manifest["sample_parity"] == model.sample_parity


def test_wrong_noise_is_refused():
    with pytest.raises(InputError):
        tiny().sample(np.zeros((2, 6, 6, 1), np.float32))
