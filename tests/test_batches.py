"""Small, ragged and empty batches: every model trains on any batch of at least one image per
replica, and empty data is refused with one clear error."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import cli
from keras_gen.models import DCGAN, WGANGP
from keras_gen.validation import InputError
from tests.conftest import shared_data
from tests.test_distribute import CONFIGS, make_data, make_model


def tiny_wgan(**options):
    keras.utils.set_random_seed(0)
    model = WGANGP(image_shape=(8, 8, 1), latent_dim=4, filters=4, seed=0, **options)
    model.compile_for_training()
    return model


def grey_images(count):
    return (np.arange(count * 64).reshape(count, 8, 8, 1) * 37 % 256).astype(np.uint8)


def test_critic_rows_split_a_batch_and_wrap_round_when_it_is_small():
    model = tiny_wgan()  # 5 critic steps
    rows = {
        batch: [model.critic_rows(step, batch).numpy().tolist() for step in range(5)]
        for batch in (10, 3, 7)
    }
    assert rows[10] == [[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]]  # each row once, as before
    assert rows[3] == [[0], [1], [2], [0], [1]]
    assert rows[7] == [[0, 5], [1, 6], [2, 0], [3, 1], [4, 2]]
    assert all(set(sum(steps, [])) == set(range(batch)) for batch, steps in rows.items())


def test_wgan_gp_trains_on_batches_of_three():
    model = tiny_wgan()
    history = model.fit(grey_images(9), batch_size=3, epochs=1, shuffle=False, verbose=0).history
    assert np.isfinite(history["d_loss"]).all() and np.isfinite(history["g_loss"]).all()
    assert int(model.d_optimizer.iterations) == 3 * 5 and int(model.g_optimizer.iterations) == 3


def test_wgan_gp_includes_the_last_partial_batch():
    model = tiny_wgan()
    model.fit(tf.data.Dataset.from_tensor_slices(grey_images(65)).batch(64), epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations) == 2 * 5 and int(model.g_optimizer.iterations) == 2


def test_wgan_gp_trains_with_4_images_per_replica_on_2_devices(two_replicas):
    with two_replicas.scope():
        model = tiny_wgan(code_categories=3)
    history = model.fit(
        tf.data.Dataset.from_tensor_slices(grey_images(17)).batch(8), epochs=1, verbose=0
    ).history
    assert np.isfinite(history["d_loss"]).all()
    assert int(model.d_optimizer.iterations.numpy()) == 3 * 5  # the last batch of 1 image included


@pytest.mark.parametrize("name", ["pixelcnn", "dcgan", "vae"])
def test_a_last_batch_smaller_than_the_replicas_trains_on_2_devices(name, two_replicas):
    with two_replicas.scope():
        model = make_model(name)
    # 17 images in batches of 8: the last batch has 1 image for 2 replicas. (With an unknown
    # cardinality Keras counts one optimizer iteration too many, without a step.)
    dataset = (
        make_data(model, steps=3)
        .unbatch()
        .take(17)
        .batch(8)
        .apply(tf.data.experimental.assert_cardinality(3))
    )
    history = model.fit(dataset, validation_data=dataset, epochs=1, verbose=0).history
    assert all(np.isfinite(values).all() for values in history.values()), history
    assert sum(int(o.iterations.numpy()) for o in model.training_optimizers()) == 3 * len(
        model.training_optimizers()
    )


def test_a_global_batch_below_the_replicas_is_refused_before_training(two_replicas):
    with two_replicas.scope():
        model = make_model("dcgan")
    with pytest.raises(
        InputError,
        match=r"DCGAN: a global batch of 1 on 2 replicas .* smallest global batch "
        r"that works is 2",
    ):
        model.fit(make_data(model).unbatch().batch(1), epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations.numpy()) == 0


@pytest.mark.parametrize("name", list(CONFIGS))
def test_empty_data_is_refused_by_every_model(name):
    model = make_model(name)
    empty = make_data(model).take(0)
    for method in (model.fit, model.evaluate):
        with pytest.raises(
            InputError, match=f"{type(model).__name__}.{method.__name__}: the data holds no images"
        ):
            method(empty, verbose=0)
    # A size only known by reading it: a filter that keeps nothing.
    with pytest.raises(InputError, match="holds no images"):
        model.fit(make_data(model).filter(lambda *batch: False), verbose=0)
    with pytest.raises(InputError, match="holds no images"):
        model.fit(np.zeros((0,) + model.image_shape, np.uint8), verbose=0)
    assert sum(int(o.iterations) for o in model.training_optimizers()) == 0


def test_train_refuses_an_empty_split_and_leaves_no_file(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "dcgan",
                "--dataset",
                "mnist",
                "--split",
                "train[:0]",
                "--validation-split",
                "none",
                "--manual-dir",
                shared_data("mnist"),
                "--set",
                "filters=4",
                "--set",
                "latent_dim=4",
                "--out",
                str(run),
            ]
        )
        == 2
    )
    assert "split 'train[:0]' holds no images" in capsys.readouterr().err
    assert not run.exists()


def test_dcgan_trains_on_a_batch_of_one():
    keras.utils.set_random_seed(0)
    model = DCGAN(image_shape=(8, 8, 1), latent_dim=4, filters=4)
    model.compile_for_training()
    model.fit(grey_images(2), batch_size=1, epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations) == 2
