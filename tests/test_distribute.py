"""tf.distribute and mixed precision, for every model: 2 replicas step exactly like 1 device."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import models
from tests.conftest import REPO


def vqvae_prior_config(**options):
    """A callable: its frozen VQ-VAE is built when the prior is, inside the strategy's scope."""
    return lambda: dict(
        vqvae=models.VQVAE(image_shape=(8, 8, 1), num_codes=5, code_dim=3, widths=(4,)),
        filters=4,
        num_blocks=2,
        embedding_dim=3,
        head_filters=4,
        num_classes=3,
        **options,
    )


# Tiny configurations of the zoo's models (both VQ-VAE codebook updates, both prior networks). WGAN-GP takes 2 critic steps per batch, so its critic and
# generator steps are both compared, and has a categorical latent code.
PIXELVAE = dict(
    image_shape=(8, 8, 1),
    latent_dim=3,
    widths=(4,),
    map_channels=2,
    filters=4,
    num_blocks=1,
    head_filters=4,
    eval_num_samples=3,
    free_bits=0.1,
)
CONFIGS = {
    "vae": ("vae", dict(image_shape=(8, 8, 1), latent_dim=4, widths=(4, 8), eval_num_samples=3)),
    "dcgan": ("dcgan", dict(image_shape=(8, 8, 1), latent_dim=4, filters=4)),
    "dcgan_r1": ("dcgan", dict(image_shape=(8, 8, 1), latent_dim=4, filters=4, r1_weight=10.0)),
    "wgan_gp": (
        "wgan_gp",
        dict(
            image_shape=(8, 8, 1), latent_dim=4, filters=4, discriminator_steps=2, code_categories=3
        ),
    ),
    "conditional_gan": (
        "conditional_gan",
        dict(image_shape=(8, 8, 1), latent_dim=4, filters=4, num_classes=3, ema_decay=0.5),
    ),
    "pixelcnn": ("pixelcnn", dict(image_shape=(6, 6, 1), filters=4, num_blocks=1, head_filters=4)),
    "gated_pixelcnn": ("gated_pixelcnn", dict(image_shape=(6, 6, 1), filters=4, num_layers=2)),
    "row_lstm": ("pixelrnn", dict(kind="row_lstm", image_shape=(6, 6, 1), units=4, num_layers=1)),
    "diagonal_bilstm": (
        "pixelrnn",
        dict(kind="diagonal_bilstm", image_shape=(6, 6, 1), units=4, num_layers=1),
    ),
    "pixelvae": ("pixelvae", PIXELVAE),
    "pixelvae_gated": (
        "pixelvae",
        # Free bits for the first of its 2 steps only: the switch reads the replicated step count.
        dict(
            PIXELVAE,
            map_channels=None,
            decoder_network="gated_pixelcnn",
            num_blocks=2,
            free_bits_steps=1,
        ),
    ),
    "vqvae": ("vqvae", dict(image_shape=(8, 8, 1), num_codes=5, code_dim=3, widths=(4,))),
    "vqvae_loss": (
        "vqvae",
        dict(image_shape=(8, 8, 1), num_codes=5, code_dim=3, widths=(4,), codebook_update="loss"),
    ),
    "vqvae_prior": ("vqvae_prior", vqvae_prior_config()),
    "vqvae_prior_gated": ("vqvae_prior", vqvae_prior_config(prior_network="gated_pixelcnn")),
    # No dropout: each replica's Dropout layer would draw the same mask (keras#20612).
    "diffusion": (
        "diffusion",
        dict(
            image_shape=(8, 8, 1),
            widths=(8, 16),
            blocks_per_level=1,
            attention_levels=(1,),
            dropout=0.0,
            num_timesteps=20,
            sampling_steps=3,
            bound_timesteps=4,
            num_classes=3,
        ),
    ),
}
GLOBAL_BATCH = 8


def make_model(name, **options):
    registered, config = CONFIGS[name]
    keras.utils.set_random_seed(1)
    config = config() if callable(config) else config
    model = models.get(registered)(seed=3, **config, **options)
    model.compile_for_training()
    return model


def make_data(model, steps=2):
    """`steps` global batches of deterministic uint8 levels (and labels), as data.load yields them."""
    count = steps * GLOBAL_BATCH
    images = (
        np.arange(count * model.num_subpixels).reshape((count,) + model.image_shape)
        * 37
        % model.num_levels
    ).astype(np.uint8)
    features = (images, (np.arange(count) % 3).astype(np.int32)) if model.num_classes else images
    return tf.data.Dataset.from_tensor_slices(features).batch(GLOBAL_BATCH)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_replicas_train_and_evaluate_exactly_like_one_device(name, two_replicas):
    single = make_model(name)
    with two_replicas.scope():
        mirrored = make_model(name)
    mirrored.set_weights(single.get_weights())

    history = single.fit(make_data(single), epochs=1, verbose=0).history
    mirrored_history = mirrored.fit(make_data(mirrored), epochs=1, verbose=0).history

    # Every network, batch-norm statistics, optimizer slots and the seed state.
    for before, after in zip(single.weights, mirrored.weights):
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6, err_msg=before.path)
    for optimizer, mirrored_optimizer in zip(
        single.training_optimizers(), mirrored.training_optimizers()
    ):
        assert int(optimizer.iterations.numpy()) == int(mirrored_optimizer.iterations.numpy()) > 0
        for before, after in zip(optimizer.variables, mirrored_optimizer.variables):
            np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6, err_msg=before.path)
    assert history.keys() == mirrored_history.keys()
    for metric, values in history.items():  # aggregated over the replicas
        np.testing.assert_allclose(mirrored_history[metric], values, rtol=1e-5, err_msg=metric)
    scores = single.evaluate(make_data(single, steps=1), return_dict=True, verbose=0)
    mirrored_scores = mirrored.evaluate(make_data(mirrored, steps=1), return_dict=True, verbose=0)
    for metric, value in scores.items():
        np.testing.assert_allclose(mirrored_scores[metric], value, rtol=1e-5, err_msg=metric)


def test_replicas_draw_different_noise(two_replicas):
    with two_replicas.scope():
        model = make_model("vae")

    @tf.function
    def draw():
        return two_replicas.run(lambda: model.replica_random(keras.random.normal, (4, 3)))

    per_replica = [value.numpy() for value in two_replicas.experimental_local_results(draw())]
    assert per_replica[0].shape == (4, 3) and np.abs(per_replica[0] - per_replica[1]).min() > 0


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_training(name, policy):
    model = make_model(name, dtype=policy)
    history = model.fit(make_data(model), epochs=1, verbose=0).history
    assert all(np.isfinite(values).all() for values in history.values()), history
    for optimizer in model.training_optimizers():  # both of a GAN's
        if (
            policy == "mixed_float16"
        ):  # a step that overflows float16 is skipped and halves the scale
            assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            assert int(optimizer.iterations) > 0 or float(optimizer.dynamic_scale) < 2.0**15
        else:
            assert int(optimizer.iterations) > 0
    images = next(iter(make_data(model)))
    images, labels = images if model.num_classes else (images, None)
    if model.has_log_prob:
        log_prob = model.log_prob(images, labels)
        assert log_prob.dtype == tf.float32 and np.isfinite(log_prob).all()
    samples = model.sample(model.make_noise(2, seed=0), None if labels is None else labels[:2])
    assert samples.dtype == tf.uint8 and samples.shape == (2,) + model.image_shape


def test_float16_loss_scaling_gives_the_float32_update(tmp_path):
    # Plain SGD, so an unscaled or doubly scaled gradient would show in the update (Adam would hide it).
    updates = {}
    for policy in ("float32", "mixed_float16"):
        model = make_model("pixelcnn", dtype=policy)
        # A small initial scale: the default 2**15 overflows float16 on the first steps, which are skipped.
        model.compile(
            optimizer=model.with_loss_scaling(keras.optimizers.SGD(0.1))
            if policy == "float32"
            else keras.optimizers.LossScaleOptimizer(
                keras.optimizers.SGD(0.1), initial_scale=2.0**8
            )
        )
        before = [w.numpy() for w in model.trainable_weights]
        model.fit(make_data(model, steps=1), epochs=1, verbose=0)
        updates[policy] = np.concatenate(
            [(w.numpy() - b).ravel() for w, b in zip(model.trainable_weights, before)]
        )
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert (
        float(model.optimizer.dynamic_scale) == 2.0**8 and int(model.optimizer.iterations) == 1
    )  # not skipped
    np.testing.assert_allclose(updates["mixed_float16"], updates["float32"], rtol=0.05, atol=2e-4)
    # The loss scale and its optimizer survive a .keras round trip.
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert isinstance(loaded.optimizer, keras.optimizers.LossScaleOptimizer)
    assert float(loaded.optimizer.dynamic_scale) == float(model.optimizer.dynamic_scale)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_worker_processes_end_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes, outputs = [], []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config), CUDA_VISIBLE_DEVICES="")
        outputs.append(tmp_path / f"worker_{index}.json")
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    os.path.join(REPO, "tests", "multi_worker_job.py"),
                    str(outputs[-1]),
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [process.communicate(timeout=600)[0] for process in processes]
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    chief, worker = (json.loads(path.read_text()) for path in outputs)
    assert set(chief) == {"pixelcnn", "vae", "dcgan", "wgan_gp"}
    # 3 batches of 17 images, the last of 1 image (repeated to one per worker), 5 critic steps each.
    assert chief["wgan_gp"]["optimizer_steps"] == worker["wgan_gp"]["optimizer_steps"] == [15, 3]
    for family in chief:
        for mine, theirs, initial in zip(
            chief[family]["after"], worker[family]["after"], chief[family]["before"]
        ):
            np.testing.assert_array_equal(np.array(mine), np.array(theirs), err_msg=family)
        changed = [
            not np.array_equal(a, b)
            for a, b in zip(chief[family]["after"], chief[family]["before"])
        ]
        assert any(changed), family  # they trained
        assert all(np.isfinite(v).all() for v in chief[family]["history"].values()), family


def test_cli_trains_with_two_workers_and_worker_0_writes_the_run(tmp_path):
    from tests.conftest import shared_data

    manual = shared_data("binarized_mnist")
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    run = tmp_path / "run"
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config), CUDA_VISIBLE_DEVICES="")
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "keras_gen",
                    "train",
                    "pixelcnn",
                    "--dataset",
                    "binarized_mnist",
                    "--manual-dir",
                    manual,
                    "--data-dir",
                    str(tmp_path / f"data_{index}"),
                    "--take",
                    "32",
                    "--batch-size",
                    "8",
                    "--epochs",
                    "1",
                    "--validation-split",
                    "none",
                    "--strategy",
                    "multi_worker",
                    "--set",
                    "filters=4",
                    "--set",
                    "num_blocks=1",
                    "--set",
                    "head_filters=4",
                    "--out",
                    str(run),
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [process.communicate(timeout=600)[0] for process in processes]
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    assert (run / "model.keras").is_file() and (run / "history.json").is_file()
    assert not (run / "backup").exists()
