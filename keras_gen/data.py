"""Image datasets from tensorflow-datasets, ready for `model.fit`.

Offline use: point `manual_dir` (CLI `--manual-dir`, or the environment
variable KERAS_GEN_MANUAL_DIR) at a folder of the dataset's raw files, either
the folder itself or a parent holding a sub-folder named after the dataset.
"""

import contextlib
import dataclasses
import io
import itertools
import os
import shutil
import socket
import urllib.parse

import numpy as np
import tensorflow as tf

from keras_gen import quiet

MANUAL_DIR_ENV = "KERAS_GEN_MANUAL_DIR"
DATA_DIR_ENV = "KERAS_GEN_DATA_DIR"
PREPROCESSING = ("none", "dynamic_binarize", "threshold_binarize")


class DatasetError(RuntimeError):
    """A dataset cannot be found, fetched or read."""


def _tfds():
    import tensorflow_datasets as tfds  # slow to import; only loading data needs it

    return tfds


def resolve_manual_dir(name, manual_dir=None):
    """The folder of raw files for `name`: the argument, else $KERAS_GEN_MANUAL_DIR, else None."""
    manual_dir = manual_dir or os.environ.get(MANUAL_DIR_ENV)
    if not manual_dir:
        return None
    manual_dir = os.path.abspath(os.path.expanduser(manual_dir))
    nested = os.path.join(manual_dir, name)
    return nested if os.path.isdir(nested) else manual_dir


def required_files(builder):
    """Names of the raw files a builder downloads (what a manual dir must hold)."""
    return sorted(
        {urllib.parse.urlparse(url).path.rsplit("/", 1)[-1] for url in builder.url_infos or {}}
    )


def _hosts_reachable(builder, timeout=3.0):
    hosts = {urllib.parse.urlparse(url).hostname for url in builder.url_infos or {}}
    for host in hosts:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
        except OSError:
            return False
    return bool(hosts)


def _builder(name, data_dir):
    tfds = _tfds()
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DatasetError(
            f"Unknown dataset {name!r}: tensorflow-datasets has no builder of that name "
            "(e.g. mnist, binarized_mnist, fashion_mnist, cifar10)."
        ) from None


def quiet_tfds():
    """tfds' progress bars off (the quiet CLI; `prepare` also hides tfds' own lines then)."""
    _tfds().disable_progress_bar()


def prepare(name, manual_dir=None, data_dir=None):
    """Makes sure tfds has prepared dataset `name`; returns its builder.

    Fails fast, naming the dataset, its raw files and the --manual-dir flag,
    when the files are neither prepared, nor in `manual_dir`, nor downloadable.
    """
    tfds = _tfds()
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    builder = _builder(name, data_dir)
    if builder.is_prepared():
        return builder
    files = required_files(builder)
    manual_dir = resolve_manual_dir(name, manual_dir)
    hint = (
        f"Put {', '.join(files) or 'its raw files'} in a folder and pass it with "
        f"--manual-dir DIR (or set {MANUAL_DIR_ENV}=DIR)."
    )
    if manual_dir is not None:
        missing = [f for f in files if not os.path.exists(os.path.join(manual_dir, f))]
        if missing:
            raise DatasetError(
                f"Dataset {name!r}: the manual dir {manual_dir} lacks {', '.join(missing)}. {hint}"
            )
    elif not _hosts_reachable(builder):
        raise DatasetError(
            f"Dataset {name!r} is not prepared and cannot be downloaded here. {hint}"
        )
    config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
    print(
        f"preparing {name} for tensorflow-datasets from {manual_dir or 'the network'} "
        f"(once; kept in {builder.data_dir_root})",
        flush=True,
    )
    try:
        # keras_gen's line above says what happens; the quiet CLI drops tfds' own.
        tfds_output = (
            contextlib.redirect_stdout(io.StringIO())
            if quiet.active()
            else contextlib.nullcontext()
        )
        with tfds_output:
            builder.download_and_prepare(download_config=config)
    except Exception as error:  # tfds raises many kinds; all mean the same to a user
        shutil.rmtree(os.path.join(builder.data_dir_root, name, "downloads"), ignore_errors=True)
        for leftover in tf.io.gfile.glob(
            os.path.join(os.path.dirname(builder.data_dir), "incomplete*")
        ):
            shutil.rmtree(leftover, ignore_errors=True)
        raise DatasetError(
            f"Dataset {name!r}: preparing it from {manual_dir or 'the network'} failed: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
            f"Check that {', '.join(files)} are the original, complete files."
        ) from None
    return builder


STATIC_BINARIZED_TEST_FILE = "binarized_mnist_test.amat"


def static_binarized_test_digits(indices, manual_dir=None):
    """Static binarized MNIST test digits by index, read from the raw .amat file (no tfds
    preparation, so it is quick): uint8 levels {0, 1}, shape (len(indices), 28, 28, 1).

    The file holds the 10,000 test digits ordered by class, so evenly spaced indices give
    every class. `manual_dir` (else $KERAS_GEN_MANUAL_DIR) is the folder of `binarized_mnist`'s
    files, or its parent. Raises DatasetError when the file is not there.
    """
    folder = resolve_manual_dir("binarized_mnist", manual_dir)
    path = os.path.join(folder or "", STATIC_BINARIZED_TEST_FILE)
    if folder is None or not os.path.isfile(path):
        raise DatasetError(
            f"No {STATIC_BINARIZED_TEST_FILE} in {folder or 'any folder'}: pass the folder of "
            f"binarized_mnist's files with --manual-dir DIR (or set {MANUAL_DIR_ENV}=DIR)."
        )
    wanted = set(indices)
    with open(path) as file:  # up to the last wanted line only
        lines = itertools.islice(file, max(wanted) + 1)
        rows = {i: line.split() for i, line in enumerate(lines) if i in wanted}
    return np.array([rows[i] for i in indices], np.uint8).reshape(len(indices), 28, 28, 1)


def to_levels(images, bits=8):
    """uint8 images in [0, 255] -> uint8 levels in [0, 2**bits - 1] (quantization to n bits)."""
    return tf.bitwise.right_shift(tf.cast(images, tf.uint8), tf.constant(8 - bits, tf.uint8))


def scale(levels, num_levels, to="unit"):
    """Integer levels -> float32 in [0, 1] ("unit") or [-1, 1] ("symmetric")."""
    unit = tf.cast(levels, tf.float32) / float(num_levels - 1)
    if to == "unit":
        return unit
    if to == "symmetric":
        return 2.0 * unit - 1.0
    raise ValueError(f"scale: `to` must be 'unit' or 'symmetric', got {to!r}.")


def dynamic_binarize(images, seed=None):
    """uint8 [0, 255] -> 0/1 uint8, each pixel a Bernoulli(x / 255) draw.

    seed: a shape (2,) int seed for a stateless draw; the pipeline passes a new one per example and epoch.
    """
    probs = tf.cast(images, tf.float32) / 255.0
    uniform = (
        tf.random.uniform(tf.shape(probs))
        if seed is None
        else tf.random.stateless_uniform(tf.shape(probs), seed=seed)
    )
    return tf.cast(uniform < probs, tf.uint8)


def preprocess(images, preprocessing="none", bits=8, seed=None):
    """Raw uint8 images -> integer levels, as the models take them.

    preprocessing: "none" (quantize to `bits`), "dynamic_binarize" (a Bernoulli
    draw; see `dynamic_binarize` for `seed`) or "threshold_binarize" (x >= 128).
    """
    if preprocessing == "dynamic_binarize":
        return dynamic_binarize(images, seed)
    if preprocessing == "threshold_binarize":
        return tf.cast(images >= 128, tf.uint8)
    if preprocessing == "none":
        return to_levels(images, bits)
    raise ValueError(f"Unknown preprocessing {preprocessing!r}; choose one of {PREPROCESSING}.")


def num_levels_for(name, preprocessing="none", bits=8):
    """How many levels the images of a dataset take after preprocessing."""
    if name == "binarized_mnist" or preprocessing != "none":
        return 2
    return 2**bits


def load(
    name,
    split="train",
    batch_size=128,
    preprocessing="none",
    bits=8,
    labels=False,
    shuffle=None,
    take=None,
    manual_dir=None,
    data_dir=None,
):
    """Loads a tfds image dataset as a batched, prefetched tf.data.Dataset.

    Yields uint8 level images (batch, H, W, C), or (images, labels) with
    `labels=True`. `binarized_mnist` is already 0/1 (static binarization).

    Args:
        name: any tfds image dataset: mnist, binarized_mnist, fashion_mnist, cifar10, ...
        split: a tfds split such as "train", "test" or "train[:10%]".
        preprocessing: see `preprocess`.
        bits: quantize to this many bits (with preprocessing="none").
        labels: also yield int32 labels (for conditional models).
        shuffle: shuffle before batching; defaults to True for "train" splits.
        take: keep only the first `take` examples (small runs and tests).
        manual_dir: folder of raw files for offline preparation (see module doc).
    """
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"Unknown preprocessing {preprocessing!r}; choose one of {PREPROCESSING}.")
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in [1, 8], got {bits}.")
    builder = prepare(name, manual_dir=manual_dir, data_dir=data_dir)
    if labels and "label" not in builder.info.features:
        raise DatasetError(f"Dataset {name!r} has no labels; it cannot feed a conditional model.")
    if builder.info.splits:  # (tfds' mock mode has no split sizes)
        try:
            count = builder.info.splits[split].num_examples
        except (KeyError, ValueError) as error:
            raise DatasetError(
                f"Dataset {name!r} has no split {split!r} ({error}); its splits: "
                f"{', '.join(sorted(builder.info.splits))}, with slices like 'train[:10%]'."
            ) from None
        if count == 0:
            raise DatasetError(f"Dataset {name!r}, split {split!r} holds no images.")
    dataset = builder.as_dataset(split=split)
    return pipeline(
        dataset,
        batch_size,
        preprocessing,
        bits,
        labels,
        shuffle=split.startswith("train") if shuffle is None else shuffle,
        take=take,
        already_binary=name == "binarized_mnist",
    )


def pipeline(
    dataset,
    batch_size,
    preprocessing="none",
    bits=8,
    labels=False,
    shuffle=False,
    take=None,
    already_binary=False,
):
    """Turns a dataset of {"image", "label"} dicts into model-ready batches."""
    if take is not None:
        dataset = dataset.take(take)
    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(10_000, reshuffle_each_iteration=True)

    # Seeds that differ on every pass, even under a global seed (which would make a stateful
    # random op repeat its draws each epoch); preprocessing after the cache uses them.
    seeds = tf.data.Dataset.random(rerandomize_each_iteration=True).batch(2)

    def convert(example, seed):
        image = example["image"]
        image = (
            tf.cast(image, tf.uint8)
            if already_binary
            else preprocess(image, preprocessing, bits, seed)
        )
        if labels:
            return image, tf.cast(example["label"], tf.int32)
        return image

    dataset = tf.data.Dataset.zip((dataset, seeds))
    dataset = (
        dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    # Multi-worker training shards by file by default, and a tfds split is often one file.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def image_shape_of(name, manual_dir=None, data_dir=None):
    """(H, W, C) of a dataset's images."""
    builder = prepare(name, manual_dir=manual_dir, data_dir=data_dir)
    return tuple(builder.info.features["image"].shape)


def as_numpy(dataset, limit=None):
    """Concatenates a batched dataset's images (and labels) into NumPy arrays."""
    images, labels = [], []
    count = 0
    for batch in dataset:
        if isinstance(batch, tuple):
            images.append(batch[0].numpy())
            labels.append(batch[1].numpy())
        else:
            images.append(batch.numpy())
        count += len(images[-1])
        if limit is not None and count >= limit:
            break
    images = np.concatenate(images)[:limit]
    return (images, np.concatenate(labels)[:limit]) if labels else images


@dataclasses.dataclass
class Source:
    """A tfds image dataset and how to read it: what `keras_gen.training.train` and
    `keras_gen.evaluation.evaluate` take (the CLI's data flags).

    Example:

    ```python
    source = Source("mnist", preprocessing="dynamic_binarize", batch_size=64)
    source.num_levels()                                      # 2
    # source.load("train") yields batches of uint8 levels; image_shape() reads the prepared dataset
    ```
    """

    dataset: str
    preprocessing: str = "none"
    bits: int = 8
    batch_size: int = 128
    take: int = None
    manual_dir: str = None
    data_dir: str = None

    def load(self, split, labels=False, shuffle=None):
        """`load` of `split` with this source's settings."""
        return load(
            self.dataset,
            split=split,
            batch_size=self.batch_size,
            preprocessing=self.preprocessing,
            bits=self.bits,
            labels=labels,
            take=self.take,
            shuffle=shuffle,
            manual_dir=self.manual_dir,
            data_dir=self.data_dir,
        )

    def image_shape(self):
        return tuple(image_shape_of(self.dataset, self.manual_dir, self.data_dir))

    def num_levels(self):
        return num_levels_for(self.dataset, self.preprocessing, self.bits)

    def real_images(self, split, count, labels=False):
        """The first `count` images of `split` as uint8 pixels (and their labels), unshuffled."""
        return as_numpy(
            load(
                self.dataset,
                split,
                batch_size=1000,
                take=count,
                shuffle=False,
                labels=labels,
                manual_dir=self.manual_dir,
                data_dir=self.data_dir,
            )
        )

    def check_matches(self, image_shape, num_levels, what):
        """Refuses this source for a model whose images differ from it in shape or levels."""
        data_shape, data_levels = self.image_shape(), self.num_levels()
        if data_shape != tuple(image_shape) or data_levels != num_levels:
            preprocessing = (
                ""
                if self.dataset == "binarized_mnist"
                else f" with --preprocessing {self.preprocessing}"
            )
            raise DatasetError(
                f"{what} takes {'x'.join(map(str, image_shape))} images with {num_levels} levels; "
                f"{self.dataset}{preprocessing} gives {'x'.join(map(str, data_shape))} images with "
                f"{data_levels} levels."
                + (
                    " Pass --preprocessing dynamic_binarize (or threshold_binarize) for a binary model."
                    if num_levels == 2 and data_levels != 2
                    else ""
                )
            )
