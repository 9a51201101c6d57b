import os
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_gen import data
from tests.conftest import shared_data


def _grey_dataset(count=64, labels=True):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 28, 28, 1), dtype=np.uint8)
    features = {"image": images, "label": np.arange(count) % 10}
    return tf.data.Dataset.from_tensor_slices(features if labels else {"image": images}), images


def test_quantization_keeps_top_bits():
    images = tf.constant([[0, 1, 127, 128, 255]], tf.uint8)
    np.testing.assert_array_equal(data.to_levels(images, 1), [[0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(data.to_levels(images, 3), [[0, 0, 3, 4, 7]])
    np.testing.assert_array_equal(data.to_levels(images, 8), images)


def test_scaling_ranges():
    levels = tf.constant([0, 1, 2, 3], tf.uint8)
    np.testing.assert_allclose(data.scale(levels, 4, "unit"), [0, 1 / 3, 2 / 3, 1], atol=1e-6)
    np.testing.assert_allclose(
        data.scale(levels, 4, "symmetric"), [-1, -1 / 3, 1 / 3, 1], atol=1e-6
    )
    with pytest.raises(ValueError, match="unit"):
        data.scale(levels, 4, "other")


def test_dynamic_binarization_draws_anew_each_epoch_with_the_right_mean():
    import keras

    keras.utils.set_random_seed(0)  # as `train` does; must not freeze the draws across epochs
    dataset, images = _grey_dataset(labels=False)
    pipeline = data.pipeline(dataset, batch_size=64, preprocessing="dynamic_binarize")
    first, second = (next(iter(pipeline)).numpy() for _ in range(2))
    assert set(np.unique(first)) <= {0, 1}
    assert (first != second).mean() > 0.2  # fresh Bernoulli draws per pass
    expected = images.astype(np.float64).mean() / 255
    assert abs(np.concatenate([first, second]).mean() - expected) < 0.01


def test_threshold_binarization_and_labels():
    dataset, images = _grey_dataset()
    batch_images, batch_labels = next(
        iter(data.pipeline(dataset, 8, "threshold_binarize", labels=True))
    )
    np.testing.assert_array_equal(batch_images, (images[:8] >= 128).astype(np.uint8))
    np.testing.assert_array_equal(batch_labels, np.arange(8))
    assert batch_labels.dtype == tf.int32


def test_load_through_tfds_mock(mock_dataset):
    batches = list(
        data.load("mnist", "train", batch_size=8, bits=4, labels=True, manual_dir=mock_dataset)
    )
    assert len(batches) == 4
    images, labels = batches[0]
    assert images.shape == (8, 28, 28, 1) and images.dtype == tf.uint8
    assert int(tf.reduce_max(images)) <= 15 and labels.dtype == tf.int32


def test_unknown_dataset_is_named():
    with pytest.raises(data.DatasetError, match="no_such_dataset"):
        data.load("no_such_dataset")


def test_missing_files_name_dataset_files_and_flag(tmp_path):
    start = time.time()
    with pytest.raises(data.DatasetError) as error:
        data.load("mnist", manual_dir=str(tmp_path), data_dir=str(tmp_path / "tfds"))
    message = str(error.value)
    for part in ("'mnist'", "train-images-idx3-ubyte.gz", "--manual-dir", data.MANUAL_DIR_ENV):
        assert part in message
    assert time.time() - start < 10


def test_no_files_and_no_network_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv(data.MANUAL_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "_hosts_reachable", lambda builder: False)
    start = time.time()
    with pytest.raises(data.DatasetError, match="cannot be downloaded here.*--manual-dir"):
        data.load("binarized_mnist", data_dir=str(tmp_path / "tfds"))
    assert time.time() - start < 10


def test_corrupt_file_is_reported_and_cleaned_up(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in (
        "binarized_mnist_train.amat",
        "binarized_mnist_valid.amat",
        "binarized_mnist_test.amat",
    ):
        (manual / name).write_text("0 1 0\n")  # truncated
    with pytest.raises(data.DatasetError, match="binarized_mnist.*original, complete files"):
        data.load("binarized_mnist", manual_dir=str(manual), data_dir=str(tmp_path / "tfds"))
    leftovers = [p for p, _, files in os.walk(tmp_path / "tfds") for f in files]
    assert leftovers == []


def test_manual_dir_may_be_a_parent_folder(tmp_path):
    (tmp_path / "mnist").mkdir()
    assert data.resolve_manual_dir("mnist", str(tmp_path)) == str(tmp_path / "mnist")
    assert data.resolve_manual_dir("cifar10", str(tmp_path)) == str(tmp_path)


def test_real_mnist_prepares_offline_from_shared_files(tmp_path, monkeypatch):
    manual = shared_data("mnist")
    monkeypatch.setenv(
        data.MANUAL_DIR_ENV, os.path.dirname(manual)
    )  # parent folder, via the env var
    images, labels = data.as_numpy(
        data.load("mnist", "test", batch_size=100, labels=True, take=200, data_dir=str(tmp_path))
    )
    assert images.shape == (200, 28, 28, 1) and images.max() == 255
    assert len(np.unique(images)) > 200  # real grey levels, not mock or binary data
    assert set(labels.tolist()) == set(range(10))
    with pytest.raises(data.DatasetError, match=r"split 'test\[:0\]' holds no images"):
        data.load("mnist", "test[:0]", data_dir=str(tmp_path))
    with pytest.raises(data.DatasetError, match=r"no split 'tset'.*test, train"):
        data.load("mnist", "tset", data_dir=str(tmp_path))


def test_static_binarized_test_digits_are_read_by_index_from_the_raw_file(tmp_path):
    rows = np.random.default_rng(0).integers(0, 2, (6, 784))
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    (folder / data.STATIC_BINARIZED_TEST_FILE).write_text(
        "\n".join(" ".join(map(str, row)) for row in rows) + "\n"
    )
    digits = data.static_binarized_test_digits([4, 1], str(tmp_path))  # a parent folder works
    assert digits.shape == (2, 28, 28, 1) and digits.dtype == np.uint8
    np.testing.assert_array_equal(digits.reshape(2, -1), rows[[4, 1]])
    with pytest.raises(data.DatasetError, match="--manual-dir"):
        data.static_binarized_test_digits([0], str(tmp_path / "empty"))
