"""The diffusion family (issue O): the schedule, a tiny fit, deterministic DDIM and DDPM sampling,
completion, the variational bound, exact resume after a .keras round trip, export parity and bad
inputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import export, formats, likelihoods, models, runtime
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
    bound_timesteps=6,
)


def tiny(**options):
    keras.utils.set_random_seed(0)
    model = models.Diffusion(**{**TINY, **options}, seed=0)
    model.compile_for_training()
    return model


def tiny_mnist(**options):
    """A tiny diffusion model of 28x28 grey images (the zoo's shape): for evaluate and the page."""
    keras.utils.set_random_seed(0)
    config = dict(
        image_shape=(28, 28, 1),
        widths=(8, 8, 8),
        blocks_per_level=1,
        attention_levels=(2,),
        num_timesteps=20,
        sampling_steps=2,
        bound_timesteps=2,
        seed=0,
    )
    return models.Diffusion(**{**config, **options})


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
    # One image a call, the on-device case, samples as in a batch (floats summed in another
    # order at most); so does completion.
    one = model.sample(noise[:1])
    assert not parity_failures(first[:1], one, model.sample_parity)
    mask = np.zeros((1, 8, 8, 1), bool)
    mask[:, :4] = True
    assert model.complete(images(1), mask, noise[:1]).shape == (1, 8, 8, 1)


def test_a_keras_round_trip_resumes_exactly(tmp_path):
    model = tiny(dropout=0.1)  # dropout: the model's seed generator must resume too
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


def test_the_zoo_copy_keeps_the_average_alone_and_samples_and_scores_the_same(tmp_path):
    from keras_gen import zoo

    model = tiny(ema_decay=0.9, num_classes=3)
    data = (images(), np.arange(8) % 3)
    model.fit(data, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "full.keras")
    before, after = zoo.write_weights_only(str(tmp_path / "full.keras"), str(tmp_path / "w.keras"))
    copy = zoo.load(str(tmp_path / "w.keras"))
    assert copy.ema_network is None and copy.ema_decay == 0.0 and after < before / 2
    noise, labels = model.make_noise(3, seed=1), np.array([0, 1, 2])
    np.testing.assert_array_equal(copy.sample(noise, labels), model.sample(noise, labels))
    np.testing.assert_array_equal(
        copy.log_prob(images(3), labels), model.log_prob(images(3), labels)
    )
    copy.compile_for_training()  # a zoo file has no optimizer
    loss = copy.evaluate(data, batch_size=4, verbose=0)
    assert loss == model.evaluate(data, batch_size=4, verbose=0)


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


def trained(**options):
    model = tiny(**options)
    data = images() if model.num_classes is None else (images(), np.arange(8) % model.num_classes)
    model.fit(data, epochs=1, batch_size=4, verbose=0)
    return model


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_export_samples_completes_and_scores_as_keras_does_in_every_runtime(tmp_path, sampler):
    from keras_gen import cli

    # T = 1000, as in the zoo: its alpha-bar_0 rounds to 1.0 in float16.
    model = trained(
        sampler=sampler, num_classes=3, sampling_steps=2, bound_timesteps=3, num_timesteps=1000
    )
    folder = str(tmp_path / "export")
    if sampler == "ddim":  # through the CLI, whose --sampling-steps the export keeps
        model.configure_sampling(sampling_steps=3).save(tmp_path / "model.keras")
        argv = ["export", str(tmp_path / "model.keras"), "--out", folder, "--sampling-steps", "2"]
        assert cli.main(argv + ["--quantize", "int8,float16"]) == 0
        model.configure_sampling(sampling_steps=2)
        manifest = formats.read_manifest(folder)
        assert manifest["config"]["sampling_steps"] == 2
        # An export's settings are fixed.
        argv = ["sample", folder, "--num", "2", "--out", str(tmp_path / "x.npy")]
        assert cli.main(argv + ["--sampling-steps", "3"]) == 2
    else:
        manifest = export.export(model, folder, verbose=False)
    assert set(manifest["signatures"]) == {"sample", "log_prob", "complete", "denoise"}
    assert manifest["saved_model_sample"] == "xla"
    noise, labels = model.make_noise(20, seed=2), np.arange(20) % 3
    known, mask = images(20), np.arange(20 * 64).reshape(20, 8, 8, 1) % 3 == 0
    expected = np.asarray(model.sample(noise, labels))
    completed = np.asarray(model.complete(known, mask, noise, labels))
    nats = np.asarray(model.log_prob(known, labels))
    for name in ("savedmodel", "tflite"):
        runner = runtime.open_artifact(folder, name)
        assert not parity_failures(
            expected, runner.sample(noise, labels), manifest["sample_parity"]
        )
        got = runner.complete(known, mask, noise, labels)
        assert not parity_failures(completed, got, manifest["sample_parity"]), name
        np.testing.assert_array_equal(got[mask], completed[mask])  # known pixels kept exactly
        np.testing.assert_allclose(runner.log_prob(known, labels), nats, rtol=1e-5)
    for name in manifest["quantized"]:  # built-in ops only: Python LiteRT runs them
        assert {"same_pixels_fraction", "log_prob_mean_abs_diff_nats"} <= set(
            manifest["quantized"][name]
        )
        runner = runtime.open_artifact(folder, f"tflite-{name}")
        assert runner.sample(noise, labels).shape == expected.shape
        assert np.isfinite(runner.log_prob(known, labels)).all()
    assert sorted(manifest["quantized"]) == ([] if sampler == "ddpm" else ["float16", "int8"])
    if sampler == "ddim":  # float16 weights, and a schedule that survives their rounding
        float16 = manifest["quantized"]["float16"]
        assert float16["same_pixels_fraction"] > 0.99, float16
        assert float16["log_prob_mean_abs_diff_nats"] < 0.5, float16
    denoise = tf.saved_model.load(folder + "/saved_model").signatures["denoise"]
    noised = (noise["noise"] if isinstance(noise, dict) else noise)[:4]
    timesteps = tf.constant([0, 10, 50, 99])
    epsilon, x0 = model.guided_prediction(
        tf.constant(noised), timesteps, tf.constant(labels[:4]), 0.0
    )
    out = denoise(noised=noised, timesteps=timesteps, labels=tf.constant(labels[:4], tf.int32))
    np.testing.assert_allclose(out["epsilon"], epsilon, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["x0"], np.clip(x0, -1, 1), rtol=1e-4, atol=1e-5)


def test_ddpm_sampling_takes_its_step_noise_as_an_input():
    model = trained()
    noise = model.make_noise(3, seed=1, sampler="ddpm")
    assert noise["step_noise"].shape == (3, 4, 8, 8, 1)
    first = np.asarray(model.sample(noise))
    np.testing.assert_array_equal(first, model.sample(noise))
    other = {**noise, "step_noise": model.make_noise(3, seed=9, sampler="ddpm")["step_noise"]}
    assert not np.array_equal(first, model.sample(other))
    # One step goes straight from x_T to the x_0 estimate, so both samplers agree there.
    one = model.make_noise(3, seed=1, sampler="ddpm", sampling_steps=1)
    np.testing.assert_array_equal(model.sample(one), model.sample(one["noise"], sampling_steps=1))
    with pytest.raises(InputError, match="step_noise"):
        model.sample(noise, sampling_steps=3)


def test_completion_keeps_the_known_pixels_and_samples_the_rest():
    model = trained()
    noise, known = model.make_noise(4, seed=3), images(4)
    everything = np.ones((4, 8, 8, 1), bool)
    np.testing.assert_array_equal(model.complete(known, everything, noise), known)
    np.testing.assert_array_equal(model.complete(known, ~everything, noise), model.sample(noise))
    top = np.zeros((4, 8, 8, 1), bool)
    top[:, :4] = True
    completed = np.asarray(model.complete(known, top, noise))
    np.testing.assert_array_equal(completed[top], known[top])
    with pytest.raises(InputError, match="known_mask"):
        model.complete(known, top[:2], noise)


def test_the_discretized_decoder_is_normalised():
    levels = np.arange(256).reshape(1, 1, 1, 256)
    for mean, scale in [(0.3, 0.01), (-0.99, 0.2), (1.0, 0.005), (0.0, 1.0)]:
        means = np.full((1, 1, 1, 256), mean, np.float32)
        total = np.exp(likelihoods.discretized_gaussian_log_prob(levels, means, scale, 256)).sum()
        assert abs(total - 1.0) < 1e-4, (mean, scale, total)


def test_the_bound_is_fixed_per_image_and_covers_every_timestep():
    model = trained()
    batch = images(6)
    nats = np.asarray(model.log_prob(batch))
    assert np.all(np.isfinite(nats)) and np.all(nats < 0)
    for i in (0, 3, 5):  # the same in any batch
        np.testing.assert_allclose(model.log_prob(batch[i : i + 1]), nats[i : i + 1], rtol=1e-5)
    np.testing.assert_allclose(model.bits_per_dim(batch), -nats / (64 * np.log(2.0)), rtol=1e-6)
    timesteps, weights, _ = model._bound_draws(tf.constant(batch))
    assert float(tf.reduce_sum(weights)) == 99  # the strata cover t = 1 .. T - 1 once
    assert tf.reduce_min(timesteps) >= 1 and tf.reduce_max(timesteps) <= 99
    every = tiny(bound_timesteps=99)
    timesteps, weights, _ = every._bound_draws(tf.constant(batch))
    np.testing.assert_array_equal(timesteps[:, 0], np.arange(1, 100))
    np.testing.assert_array_equal(weights, np.ones(99))
    terms = model.variational_bound_terms(tf.constant(batch))
    assert set(terms) == {"prior", "denoising", "decoder"}
    assert all(np.all(np.asarray(value) >= 0) for value in terms.values())


def test_wrong_noise_is_refused():
    with pytest.raises(InputError):
        tiny().sample(np.zeros((2, 6, 6, 1), np.float32))


def test_bad_sampler_settings_are_refused():
    with pytest.raises(ValueError, match="sampler must be one of"):
        tiny(sampler="euler")
    with pytest.raises(ValueError, match="bound_timesteps must be in"):
        tiny(bound_timesteps=100)
    with pytest.raises(InputError, match="sampler must be one of"):
        tiny().make_noise(2, sampler="euler")


def test_the_cli_samples_with_other_sampling_settings(tmp_path):
    from keras_gen import cli

    model = trained()
    model.save(tmp_path / "model.keras")
    out = tmp_path / "samples.npy"
    argv = ["sample", str(tmp_path / "model.keras"), "--num", "3", "--out", str(out)]
    assert cli.main(argv + ["--sampling-steps", "2"]) == 0
    expected = model.configure_sampling(sampling_steps=2).sample(model.make_noise(3, seed=0))
    np.testing.assert_array_equal(np.load(out), expected)
    assert cli.main(argv + ["--sampler", "ddpm"]) == 0  # in the saved model's 4 steps
    model.configure_sampling(sampling_steps=4)
    np.testing.assert_array_equal(
        np.load(out), model.sample(model.make_noise(3, seed=0, sampler="ddpm"))
    )
    # Guidance needs a class-conditional model. (Exports with other settings: the export test.)
    assert cli.main(argv + ["--guidance-scale", "1.0"]) == 2
    assert cli.main(argv + ["--sampling-steps", "101"]) == 2


def test_evaluate_reports_sample_figures_and_the_bound(mock_dataset, tmp_path, capsys, monkeypatch):
    from keras_gen import cli, data, evaluation

    model = tiny_mnist()
    model.save(tmp_path / "model.keras")
    export.export(model, str(tmp_path / "export"), verbose=False)
    source = data.Source("mnist", batch_size=16, manual_dir=mock_dataset)
    figures = {
        where: evaluation.evaluate(str(tmp_path / where), source, split="test[:16]", num_samples=32)
        for where in ("model.keras", "export")
    }
    for results in figures.values():
        assert {"fd_logits", "classifier_score", "nll_bound", "bits_per_dim_bound"} <= set(results)
        assert "nll" not in results  # a bound is not labelled as the likelihood
        assert results["nll_bound"] == pytest.approx(
            results["bits_per_dim_bound"] * 784 * np.log(2)
        )
    assert figures["export"]["nll_bound"] == pytest.approx(
        figures["model.keras"]["nll_bound"], rel=1e-5
    )
    # Other sampling steps without retraining: the CLI flag scores the model so configured.
    sampled_with = []
    figures_of = evaluation.generator_figures
    monkeypatch.setattr(
        evaluation,
        "generator_figures",
        lambda runner, *args, **kwargs: (
            sampled_with.append(runner.model.sampling_steps),
            figures_of(runner, *args, **kwargs),
        )[1],
    )
    argv = ["evaluate", str(tmp_path / "model.keras"), "--dataset", "mnist", "--split", "test[:16]"]
    argv += ["--manual-dir", mock_dataset, "--batch-size", "16", "--num-samples", "32"]
    capsys.readouterr()
    assert cli.main(argv + ["--sampling-steps", "1"]) == 0
    assert sampled_with == [1]
    printed = capsys.readouterr().out
    assert "fd_logits:" in printed and "bits_per_dim_bound:" in printed
    assert cli.main(argv + ["--sampling-steps", "1", "--runtime", "tflite"]) == 2
