import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import metrics
from keras_gen.layers import CategoricalCode
from keras_gen.models import DCGAN, WGANGP, ConditionalGAN
from keras_gen.validation import InputError
from tests.helpers import assert_export_parity, assert_keras_round_trip


def tiny(cls, **options):
    return cls(image_shape=(8, 8, 1), latent_dim=4, filters=4, seed=0, **options)


def tiny_images(count=8):
    return (np.arange(count * 64).reshape(count, 8, 8, 1) * 37 % 256).astype(np.uint8)


def test_gradient_penalty_matches_an_independent_computation():
    model = tiny(WGANGP)
    weights_vector = np.random.default_rng(0).normal(size=64).astype(np.float32)

    def critic(images, labels=None, training=False):  # tanh(<w, x>), gradient known in closed form
        return tf.tanh(tf.reduce_sum(tf.reshape(images, (-1, 64)) * weights_vector, axis=1))

    model.discriminate = critic
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (5, 8, 8, 1)).astype(np.float32)
    fake = rng.uniform(-1, 1, (5, 8, 8, 1)).astype(np.float32)
    alpha = rng.uniform(0, 1, (5, 1, 1, 1)).astype(np.float32)
    penalty = model.gradient_penalty(real, fake, None, alpha).numpy()
    mixed = (real + alpha * (fake - real)).reshape(5, 64)
    gradient_norms = (1 - np.tanh(mixed @ weights_vector) ** 2) * np.linalg.norm(weights_vector)
    np.testing.assert_allclose(penalty, (gradient_norms - 1) ** 2, rtol=1e-4)


def test_r1_penalty_matches_an_independent_computation_and_adds_to_the_dcgan_loss():
    # Small weights keep tanh off its flat tails, where the gradient vanishes.
    weights_vector = 0.1 * np.random.default_rng(0).normal(size=64).astype(np.float32)

    def critic(images, labels=None, training=False):  # tanh(<w, x>), gradient known in closed form
        return tf.tanh(tf.reduce_sum(tf.reshape(images, (-1, 64)) * weights_vector, axis=1))

    plain, penalized = tiny(DCGAN), tiny(DCGAN, r1_weight=10.0)
    plain.discriminate = penalized.discriminate = critic
    rng = np.random.default_rng(1)
    real, fake = (rng.uniform(-1, 1, (5, 8, 8, 1)).astype(np.float32) for _ in range(2))
    norms = (1 - np.tanh(real.reshape(5, 64) @ weights_vector) ** 2) * np.linalg.norm(
        weights_vector
    )
    np.testing.assert_allclose(penalized.r1_penalty(real, None), norms**2 / 2, rtol=1e-4)
    real_logits, fake_logits = critic(real), critic(fake)
    losses = [
        model.discriminator_loss(real, fake, None, real_logits, fake_logits).numpy()
        for model in (plain, penalized)
    ]
    np.testing.assert_allclose(losses[1] - losses[0], 10.0 * norms**2 / 2, rtol=1e-4)
    assert DCGAN.from_config(penalized.get_config()).r1_weight == 10.0
    assert DCGAN.from_config({k: v for k, v in plain.get_config().items() if k != "r1_weight"})


def test_without_batch_norm_each_images_logit_and_r1_penalty_are_its_own():
    plain, unnormalized = (
        DCGAN(image_shape=(16, 16, 1), latent_dim=4, filters=4, discriminator_batch_norm=norm)
        for norm in (True, False)
    )

    def has_batch_norm(model):
        layers = model.discriminator.layers
        return any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers)

    assert has_batch_norm(plain) and not has_batch_norm(unnormalized)
    rng = np.random.default_rng(0)
    batch = rng.uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32)
    other = np.concatenate([batch[:1], rng.uniform(-1, 1, (3, 16, 16, 1)).astype(np.float32)])

    def first_image(model, images):  # in training mode, where batch norm uses the batch
        logits = model.discriminate(images, training=True)
        return logits[0].numpy(), model.r1_penalty(images, None)[0].numpy()

    np.testing.assert_allclose(
        first_image(unnormalized, batch), first_image(unnormalized, other), rtol=1e-5
    )
    assert not np.allclose(first_image(plain, batch), first_image(plain, other), rtol=1e-3)
    config = unnormalized.get_config()
    assert DCGAN.from_config(config).discriminator_batch_norm is False
    assert ConditionalGAN.from_config(
        {k: v for k, v in config.items() if k != "discriminator_batch_norm"} | {"num_classes": 3}
    ).discriminator_batch_norm


def test_interpolation_weights_are_uniform_one_per_example():
    weights = tiny(WGANGP).interpolation_weights(20000).numpy()
    assert weights.shape == (20000, 1, 1, 1)
    assert weights.min() >= 0 and weights.max() < 1
    assert (
        abs(weights.mean() - 0.5) < 0.01 and abs(weights.std() - (1 / 12) ** 0.5) < 0.01
    )  # not N(0, 1)


def test_wgan_gp_defaults_follow_the_paper():
    model = tiny(WGANGP)
    model.compile_for_training()
    assert model.gradient_penalty_weight == 10 and model.discriminator_steps == 5
    config = model.d_optimizer.get_config()
    assert (
        np.isclose(config["learning_rate"], 1e-4)
        and config["beta_1"] == 0.5
        and config["beta_2"] == 0.9
    )
    assert not any("batch_normalization" in layer.name for layer in model.discriminator.layers)


def test_n_critic_steps_per_generator_step_each_on_its_own_slice_of_the_batch():
    model = tiny(WGANGP)
    model.compile_for_training(run_eagerly=True)
    critic_batches = []
    critic_step = model._discriminator_step
    model._discriminator_step = lambda real, labels: (
        critic_batches.append(real.numpy()),
        critic_step(real, labels),
    )
    model.fit(tiny_images(20), batch_size=10, epochs=1, shuffle=False, verbose=0)
    assert int(model.d_optimizer.iterations) == 10 and int(model.g_optimizer.iterations) == 2
    assert [len(batch) for batch in critic_batches] == [2] * 10
    first_batch = np.concatenate(critic_batches[:5])  # every real image of the batch, each once
    expected = model._real(tiny_images(20)[:10]).numpy()
    assert sorted(map(bytes, first_batch)) == sorted(map(bytes, expected))
    dcgan = tiny(DCGAN)
    dcgan.compile_for_training()
    dcgan.fit(tiny_images(20), batch_size=2, epochs=1, verbose=0)
    assert int(dcgan.d_optimizer.iterations) == int(dcgan.g_optimizer.iterations) == 10


def test_generator_average_follows_each_generator_step_and_is_what_samples():
    model = tiny(DCGAN, ema_decay=0.75)
    model.compile_for_training()
    for average, weight in zip(model.ema_generator.weights, model.generator.weights):
        np.testing.assert_array_equal(average, weight)
    trained = [not w.trainable for w in model.generator.weights]  # batch-norm statistics
    averages = model.ema_generator.get_weights()
    model._discriminator_step = lambda real, labels: (
        None
    )  # only generator steps, so each is visible
    for step in (1, 2):
        model.fit(tiny_images(4), batch_size=4, epochs=1, verbose=0)
        decay = min(0.75, (1 + step) / (10 + step))  # warm-up
        averages = [
            a if statistics else decay * a + (1 - decay) * w
            for a, w, statistics in zip(averages, model.generator.get_weights(), trained)
        ]
        for average, expected, statistics in zip(
            model.ema_generator.get_weights(), averages, trained
        ):
            if not statistics:
                np.testing.assert_allclose(average, expected, rtol=1e-6, atol=1e-7)
    assert not model.ema_generator.trainable_weights and len(model.trainable_weights) == len(
        model.generator.trainable_weights + model.discriminator.trainable_weights
    )
    z = model.make_noise(3, seed=0)
    averaged = np.round((model.ema_generator(z).numpy() + 1) / 2 * 255)
    np.testing.assert_array_equal(model.sample(z), averaged.astype(np.uint8))
    assert np.abs(model.generate(z).numpy() - model.generate(z, average=True).numpy()).max() > 1e-4
    model.sample_from_average = False
    trained = DCGAN.from_config(model.get_config())
    trained.set_weights(model.get_weights())
    np.testing.assert_array_equal(
        trained.sample(z), np.round((model.generator(z).numpy() + 1) / 2 * 255)
    )
    with pytest.raises(ValueError, match="ema_decay"):
        tiny(DCGAN, ema_decay=1.0)


def test_generator_average_keeps_batch_norm_statistics_of_its_own_activations():
    model = tiny(DCGAN, ema_decay=0.5)
    model.compile_for_training()
    dense, norm = (
        model.ema_generator.layers[1],
        model.ema_generator.layers[2],
    )  # z -> Dense -> BatchNorm
    assert "dense" in dense.name and "batch_normalization" in norm.name
    dense.kernel.assign(dense.kernel * 3.0)  # the average's activations differ from the generator's
    generator_statistics = model.generator.layers[2].moving_mean.numpy()
    z = model.make_noise(16, seed=1)
    before = norm.moving_mean.numpy()
    model._update_ema_generator(z, None)
    batch_mean = (z @ dense.kernel.numpy()).mean(axis=0)
    np.testing.assert_allclose(
        norm.moving_mean, 0.99 * before + 0.01 * batch_mean, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(model.generator.layers[2].moving_mean, generator_statistics)


@pytest.mark.parametrize("cls", [DCGAN, WGANGP, ConditionalGAN])
def test_keras_round_trip_restores_both_optimizers(cls, tmp_path):
    options = {
        DCGAN: {"discriminator_batch_norm": False, "r1_weight": 1.0},
        ConditionalGAN: {"num_classes": 3, "ema_decay": 0.9},
        WGANGP: {"discriminator_steps": 2, "code_categories": 3},
    }.get(cls, {})
    model = tiny(cls, **options)
    model.compile_for_training()
    images = tiny_images(20)  # 5 batches of 4
    data = (images, np.arange(20) % 3) if model.num_classes else images
    assert_keras_round_trip(model, data, str(tmp_path / "gan.keras"))


def test_dcgan_training_moves_both_losses_and_label_smoothing_is_serialized():
    model = tiny(DCGAN, label_smoothing=0.1)
    assert DCGAN.from_config(model.get_config()).label_smoothing == 0.1
    model.compile_for_training()
    history = model.fit(tiny_images(16), batch_size=4, epochs=2, verbose=0).history
    assert set(history) == {"d_loss", "g_loss"} and np.isfinite(history["d_loss"]).all()


def test_categorical_code_is_uniform_and_read_from_the_noise():
    latents = np.random.default_rng(0).standard_normal((30000, 5)).astype(np.float32)
    codes = CategoricalCode(3)(latents).numpy()
    np.testing.assert_array_equal(codes, np.argmax(latents[:, :3], axis=1))
    np.testing.assert_allclose(np.bincount(codes) / len(codes), [1 / 3] * 3, atol=0.01)
    model = tiny(DCGAN, code_categories=3)
    # Same z but the largest of the first 3 entries moved: a different code, a different image.
    z = np.array([[2.0, 0.0, 0.0, 0.5], [0.0, 2.0, 0.0, 0.5]], np.float32)
    other = z.copy()
    other[:, 3] = 0.6
    images = model.generate(z).numpy()
    assert (
        np.abs(images[0] - images[1]).max()
        > 10 * np.abs(images[1] - model.generate(other).numpy()[1]).max()
    )


def test_code_loss_is_the_cross_entropy_of_the_latents_code_and_training_learns_it():
    model = tiny(DCGAN, code_categories=3)
    latents = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    code_logits = np.random.default_rng(2).standard_normal((6, 3)).astype(np.float32)
    codes = np.argmax(latents[:, :3], axis=1)
    log_softmax = code_logits - np.log(np.exp(code_logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(
        model.code_loss(latents, code_logits), -log_softmax[np.arange(6), codes], rtol=1e-5
    )
    np.testing.assert_array_equal(tiny(DCGAN).code_loss(latents, None), np.zeros(6))

    model.compile_for_training(learning_rate=2e-3)
    history = model.fit(tiny_images(64), batch_size=16, epochs=12, verbose=0).history
    assert set(history) == {"d_loss", "g_loss", "code_loss"}
    # Chance is log 3 = 1.10 nats: the discriminator's head reads the code back from the images.
    assert history["code_loss"][0] > 0.9 and history["code_loss"][-1] < 0.5, history["code_loss"]
    with pytest.raises(ValueError, match=r"code_categories must be 0 or in \[2, latent_dim = 4\]"):
        tiny(DCGAN, code_categories=5)


def test_conditional_generator_obeys_its_labels():
    model = tiny(ConditionalGAN, num_classes=3)
    z = np.repeat(model.make_noise(1, seed=0), 3, axis=0)
    images = model.generate(z, np.array([0, 1, 2])).numpy()
    assert np.abs(images[0] - images[1]).max() > 1e-3 and np.abs(images[1] - images[2]).max() > 1e-3
    np.testing.assert_array_equal(
        model.sample(z, [0, 1, 2]), model.sample(z, [0, 1, 2])
    )  # deterministic


def test_bad_input_gets_clear_errors():
    model = tiny(ConditionalGAN, num_classes=3)
    with pytest.raises(InputError, match=r"\(batch, 4\), received shape \(2, 5\)"):
        model.sample(np.zeros((2, 5), np.float32), [0, 1])
    with pytest.raises(InputError, match=r"values in \[0, 2\].*\[0, 7\]"):
        model.sample(model.make_noise(2), [0, 7])
    model.compile_for_training()
    with pytest.raises(InputError, match=r"shape \(batch, 8, 8, 1\).*gives shape \(\w+, 9, 9, 1\)"):
        model.fit(np.zeros((4, 9, 9, 1), np.uint8), np.zeros(4, np.int32), batch_size=2, verbose=0)
    with pytest.raises(InputError, match="conditional on 3 classes"):
        model.fit(np.zeros((4, 8, 8, 1), np.uint8), batch_size=2, verbose=0)
    with pytest.raises(ValueError, match="square images"):
        DCGAN(image_shape=(27, 27, 1))


@pytest.mark.parametrize("cls", [DCGAN, WGANGP, ConditionalGAN])
def test_export_parity(cls, tmp_path):
    options = {
        ConditionalGAN: {"num_classes": 10, "ema_decay": 0.9},
        WGANGP: {"code_categories": 3},
    }
    model = cls(image_shape=(28, 28, 1), latent_dim=4, filters=4, seed=0, **options.get(cls, {}))
    labels = np.array([0, 5, 9]) if model.num_classes else None
    assert_export_parity(model, str(tmp_path / "export"), labels=labels)
    # Only the sampling generator's variables are saved, not the discriminator's or the other generator's.
    sampler = model.ema_generator if model.ema_generator is not None else model.generator
    saved = tf.train.load_checkpoint(
        str(tmp_path / "export" / "saved_model" / "variables" / "variables")
    )
    shapes = [
        tuple(shape)
        for name, shape in saved.get_variable_to_shape_map().items()
        if "VARIABLE_VALUE" in name
    ]
    assert sorted(shapes) == sorted(tuple(v.shape) for v in sampler.weights)


def test_frechet_distance_and_classifier_score():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 2.0 + np.array([1.0, 0.0, 0.0])
    # Closed form for Gaussians: |mu|^2 + sum (1 + 4 - 2 * 2) = 1 + 3.
    assert abs(metrics.frechet_distance(a, b) - 4.0) < 0.15
    assert metrics.frechet_distance(a, a) < 1e-6
    sharp = np.eye(10)[np.arange(1000) % 10] * 50.0
    assert abs(metrics.classifier_score(sharp) - 10.0) < 1e-3
    assert abs(metrics.classifier_score(np.zeros((100, 10))) - 1.0) < 1e-6


def test_evaluate_samples_reports_label_accuracy():
    classifier = metrics.MnistClassifier()
    pixels = np.random.default_rng(0).integers(0, 256, (50, 28, 28, 1)).astype(np.uint8)
    predicted = np.argmax(classifier(pixels).numpy(), axis=1)
    results = metrics.evaluate_samples(classifier, pixels, pixels, labels=predicted)
    assert (
        results["label_accuracy"] == 1.0
        and abs(results["fcd"]) < 1e-3
        and abs(results["fd_logits"]) < 1e-3
    )
    assert 1.0 <= results["classifier_score"] <= 10.0


@pytest.mark.parametrize(
    "image_shape, stages", [((28, 28, 1), 2), ((32, 32, 3), 3), ((64, 64, 3), 4)]
)
def test_dcgan_sizes(image_shape, stages):
    model = DCGAN(image_shape=image_shape, latent_dim=4, filters=4, seed=0)
    assert model.stages == stages
    assert model.sample(model.make_noise(2, seed=0)).shape == (2,) + image_shape
    assert model.discriminate(np.zeros((2,) + image_shape, np.float32)).shape == (2,)


def test_set_learning_rate_reaches_both_optimizers():
    model = tiny(WGANGP)
    model.compile_for_training()
    model.set_learning_rate(2e-5)
    assert [
        float(o.learning_rate) for o in (model.d_optimizer, model.g_optimizer)
    ] == pytest.approx([2e-5] * 2)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_gradient_penalty_is_float32_under_mixed_precision(policy):
    exact, mixed = tiny(WGANGP), tiny(WGANGP, dtype=policy)
    mixed.set_weights(exact.get_weights())
    rng = np.random.default_rng(0)
    real, fake = (rng.uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32) for _ in range(2))
    weights = rng.uniform(0, 1, (4, 1, 1, 1)).astype(np.float32)
    penalty = mixed.gradient_penalty(real, fake, None, weights)
    assert penalty.dtype == tf.float32
    np.testing.assert_allclose(
        penalty, exact.gradient_penalty(real, fake, None, weights), rtol=0.05, atol=0.02
    )


def test_sample_quality_logs_the_figures_of_the_models_own_samples_and_keeps_the_best_epoch(
    tmp_path,
):
    from keras_gen import callbacks

    classifier = metrics.MnistClassifier()  # untrained: any fixed features will do
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 256, (40, 28, 28, 1)).astype(np.uint8)
    labels = np.arange(40) % 10
    model = ConditionalGAN(image_shape=(28, 28, 1), latent_dim=4, filters=4, num_classes=10, seed=0)
    model.compile_for_training()
    best = tmp_path / "best.keras"
    quality = callbacks.SampleQuality(
        classifier, reference, labels, best_path=str(best), batch_size=16, seed=3
    )
    history = model.fit(tiny_mnist_batches(), epochs=2, verbose=0, callbacks=[quality]).history
    assert len(history["sample_fd_logits"]) == 2 and len(history["sample_label_accuracy"]) == 2
    # The last epoch's figures are those of the model's own samples from the callback's noise and labels.
    pixels = model.sample(model.make_noise(40, seed=3), labels)
    expected = metrics.evaluate_samples(classifier, np.asarray(pixels), reference, labels=labels)
    for name, value in expected.items():
        np.testing.assert_allclose(history[f"sample_{name}"][-1], value, rtol=1e-5)
    # best.keras is the epoch with the lowest FD.
    best_epoch = int(np.argmin(history["sample_fd_logits"]))
    restored = keras.saving.load_model(best, safe_mode=True)
    fd_of_best = metrics.evaluate_samples(
        classifier,
        np.asarray(restored.sample(model.make_noise(40, seed=3), labels)),
        reference,
        labels=labels,
    )["fd_logits"]
    np.testing.assert_allclose(fd_of_best, history["sample_fd_logits"][best_epoch], rtol=1e-5)

    # A resumed run that scored better before never overwrites that epoch's best.keras.
    best.unlink()
    beaten = callbacks.SampleQuality(
        classifier, reference, labels, best_path=str(best), best_so_far=-1.0
    )
    model.fit(tiny_mnist_batches(), epochs=1, verbose=0, callbacks=[beaten])
    assert not best.exists()


def tiny_mnist_batches():
    images = (np.arange(16 * 784).reshape(16, 28, 28, 1) * 37 % 256).astype(np.uint8)
    return tf.data.Dataset.from_tensor_slices((images, np.arange(16) % 10)).batch(8)


def user_networks(latent_dim=4, code_categories=0):
    """A small generator and discriminator built the keras-io way, for 8x8 grey images."""
    generator = keras.Sequential(
        [
            keras.Input((latent_dim,)),
            keras.layers.Dense(4 * 4 * 8, activation="relu"),
            keras.layers.Reshape((4, 4, 8)),
            keras.layers.Conv2DTranspose(1, 4, 2, "same", activation="tanh"),
        ],
        name="my_generator",
    )
    images = keras.Input((8, 8, 1))
    features = keras.layers.Flatten()(
        keras.layers.LeakyReLU(0.2)(keras.layers.Conv2D(8, 4, 2, "same")(images))
    )
    outputs = keras.layers.Dense(1)(features)
    if code_categories:
        outputs = [outputs, keras.layers.Dense(code_categories)(features)]
    return generator, keras.Model(images, outputs, name="my_discriminator")


@pytest.mark.parametrize(
    "cls, options",
    [(DCGAN, {"ema_decay": 0.9}), (WGANGP, {"code_categories": 3, "discriminator_steps": 2})],
)
def test_gans_take_user_built_networks(cls, options, tmp_path):
    keras.utils.set_random_seed(0)
    generator, discriminator = user_networks(code_categories=options.get("code_categories", 0))
    model = cls(
        image_shape=(8, 8, 1),
        latent_dim=4,
        generator=generator,
        discriminator=discriminator,
        seed=0,
        **options,
    )
    assert model.generator is generator and model.discriminator is discriminator
    model.compile_for_training()
    before = [w.numpy() for w in generator.trainable_weights]
    loaded = assert_keras_round_trip(model, tiny_images(8), str(tmp_path / "model.keras"))
    assert (
        loaded.generator.name == "my_generator"
        and loaded.get_config()["generator"]["class_name"] == "Sequential"
    )
    assert any(np.abs(b - w.numpy()).max() > 0 for b, w in zip(before, generator.trainable_weights))
    if options.get("ema_decay"):
        assert loaded.ema_generator is not None and not loaded.ema_generator.trainable_weights
    assert_export_parity(model, str(tmp_path / "export"))


def test_user_networks_come_in_pairs_and_built():
    generator, discriminator = user_networks()
    with pytest.raises(ValueError, match="both a generator and a discriminator, or neither"):
        DCGAN(image_shape=(8, 8, 1), latent_dim=4, generator=generator)
    with pytest.raises(ValueError, match="is not built; give it an Input"):
        DCGAN(
            image_shape=(8, 8, 1),
            latent_dim=4,
            generator=generator,
            discriminator=keras.Sequential([keras.layers.Dense(1)], name="unbuilt"),
        )
