import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so that tests can run MirroredStrategy on one machine.
# This must happen before TensorFlow creates its devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_gen  # noqa: E402,F401

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("KERAS_GEN_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))


def shared_data(name):
    """Path of ../shared/data/<name>, or skip the test when it is absent (as on a user's machine)."""
    path = os.path.abspath(os.path.join(SHARED_DATA, name))
    if not os.path.isdir(path):
        pytest.skip(f"{path} is absent")
    return path


# Image sets that packages ship (issue N), where .ci/run installs them; a user's machine may not.
PACKAGE_DATA = os.environ.get("KERAS_GEN_PACKAGE_DATA", os.path.join(REPO, ".data"))
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist


def package_data(relative):
    """Path of an npm package's files under PACKAGE_DATA/node_modules (or an absolute path, such as
    FASHION_MNIST), or skip the test when they are absent."""
    path = os.path.join(PACKAGE_DATA, "node_modules", relative)
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent (.ci/run installs it)")
    return path


@pytest.fixture(autouse=True)
def same_global_seed():
    """Every test starts from global seed 0. Unseeded initializers then give the same weights
    whatever ran before in this pytest-xdist worker (order once decided a test's outcome)."""
    import keras

    keras.utils.set_random_seed(0)


@pytest.fixture
def binary_images():
    """16 deterministic 28x28 binary images: bars at different offsets."""
    images = np.zeros((16, 28, 28, 1), np.uint8)
    for i in range(16):
        images[i, :, i : i + 8] = 1
    return images


@pytest.fixture
def mock_dataset(tmp_path):
    """Runs tfds in mock mode for any builder; yields the manual dir to pass."""
    import tensorflow_datasets as tfds

    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("mnist", "binarized_mnist", "fashion_mnist", "cifar10"):
        from keras_gen.data import required_files

        for file in required_files(tfds.builder(name)):
            (manual / file).write_bytes(b"")
    with tfds.testing.mock_data(num_examples=32):
        yield str(manual)


@pytest.fixture(scope="session")
def two_replicas():
    """MirroredStrategy over the 2 logical CPU devices."""
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, "conftest splits the CPU into 2 logical devices"
    # Reduction through one device, not collective ops: those number their instances per process,
    # so another MirroredStrategy earlier in the same pytest process would collide with this one.
    return tf.distribute.MirroredStrategy(
        [d.name for d in devices[:2]], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
