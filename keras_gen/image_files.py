"""Your own images as a data source: a folder of image files, or an array file.

`ImageSource(path, image_size=(32, 32), channels=3)` reads
- a folder of PNG, JPEG, BMP or GIF files, nested in sub-folders if you like; when every image is
  in a sub-folder, the first sub-folder is its class (sorted names: 0, 1, ...), as Keras'
  `image_dataset_from_directory` infers labels;
- a `.npy` array of uint8 images, (N, H, W) or (N, H, W, C), or an `.npz` with "images" (or "x")
  and optional int "labels" (or "y");
- a folder of an MNIST-format dataset's IDX files (`train-images-idx3-ubyte.gz`,
  `train-labels-idx1-ubyte.gz`, `t10k-...`, gzipped or not), such as Debian's dataset-fashion-mnist
  in /usr/share/datasets/fashion-mnist: its own train and test sets are the splits.

It is what `train`, `evaluate` and the CLI's `--images PATH` take in place of a tfds name (the same
interface as `keras_gen.data.Source`). Files are decoded by TensorFlow (`tf.io.decode_image`) in a
streaming tf.data pipeline; each image is composited on white where it has alpha, converted to
`channels`, cut to the target's aspect ratio about its centre and resized (area averaging) to
`image_size`, then quantized to `bits` like any dataset. A fraction of the images
(`validation_fraction`; an IDX folder keeps its own test set), picked by a hash of each file's relative path (of each array row's index),
is held out as the "test" split: a rerun, or a folder that grows, keeps the same held-out images.
Before the first read, every file is decoded once to check it: a bad file is an error that names
it, or with `skip_bad_images=True` is left out and counted.
"""

import dataclasses
import gzip
import hashlib
import os

import numpy as np
import tensorflow as tf

from keras_gen import data, quiet, validation

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
ARRAY_EXTENSIONS = (".npy", ".npz")
# An MNIST-format dataset: its splits' image and label files, by the names LeCun's site gave them.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_MAGIC = {"images": 0x803, "labels": 0x801}  # unsigned bytes, 3 or 1 dimensions


class ImageFilesError(data.DatasetError):
    """A folder or array file that cannot give images."""


def list_image_files(folder):
    """Sorted paths of the image files below `folder`, relative to it."""
    found = []
    for root, directories, files in os.walk(folder):
        directories.sort()
        for name in sorted(files):
            if name.lower().endswith(EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return found


def idx_path(folder, name):
    """The path of IDX file `name` in `folder`, gzipped or not, or None."""
    for path in (os.path.join(folder, name + ".gz"), os.path.join(folder, name)):
        if os.path.isfile(path):
            return path
    return None


def read_idx(path, kind):
    """An IDX file of uint8 `kind` ("images": (N, H, W), "labels": (N,)) as a NumPy array."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as file:
        try:
            content = file.read()
        except (OSError, EOFError) as error:
            raise ImageFilesError(f"{path}: not a readable gzip file ({error}).") from None
    rank = 3 if kind == "images" else 1
    header = 4 + 4 * rank
    magic = int.from_bytes(content[:4], "big") if len(content) >= header else None
    shape = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    if magic != IDX_MAGIC[kind] or len(content) != header + int(np.prod(shape)):
        raise ImageFilesError(
            f"{path}: not an IDX file of uint8 {kind} (magic {IDX_MAGIC[kind]:#x}, "
            f"{rank} dimensions) of the length its header gives."
        )
    return np.frombuffer(content, np.uint8, offset=header).reshape(shape)


def held_out(keys, fraction):
    """(N,) bool: which of `keys` (strings) fall in the held-out fraction, by an MD5 of each key,
    so the choice depends on the key alone."""
    hashes = [int(hashlib.md5(key.encode()).hexdigest()[:8], 16) / 2**32 for key in keys]
    return np.array(hashes) < fraction


def to_channels(image, channels):
    """A decoded uint8 image (H, W, 1..4) -> float32 in [0, 1] with `channels` (1 or 3): alpha
    composited on white, grey repeated to RGB or RGB averaged to grey (ITU-R 601 weights)."""
    image = tf.cast(image, tf.float32) / 255.0
    count = tf.shape(image)[-1]
    has_alpha = tf.equal(count % 2, 0)  # grey + alpha, or RGBA
    colour = tf.cond(has_alpha, lambda: image[..., :-1], lambda: image)
    alpha = tf.cond(has_alpha, lambda: image[..., -1:], lambda: tf.ones_like(image[..., :1]))
    colour = colour * alpha + (1.0 - alpha)
    grey = tf.equal(tf.shape(colour)[-1], 1)
    if channels == 3:
        colour = tf.cond(grey, lambda: tf.tile(colour, [1, 1, 3]), lambda: colour)
    else:
        colour = tf.cond(grey, lambda: colour, lambda: tf.image.rgb_to_grayscale(colour))
    return tf.ensure_shape(colour, [None, None, channels])


def fit_to_size(image, size):
    """A float image (H, W, C) cut to `size`'s aspect ratio about its centre, then resized to
    `size` (area averaging): (height, width, C) float32."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    target_height, target_width = size
    # The largest centred crop with the target's aspect ratio.
    crop_height = tf.minimum(height, (width * target_height) // target_width)
    crop_width = tf.minimum(width, (height * target_width) // target_height)
    crop_height, crop_width = tf.maximum(crop_height, 1), tf.maximum(crop_width, 1)
    image = tf.image.crop_to_bounding_box(
        image, (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width
    )
    return tf.image.resize(image, size, method="area")


def to_pixels(image):
    """float32 in [0, 1] -> uint8 pixels."""
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)


@dataclasses.dataclass
class ImageSource:
    """Your own images, as `train` and `evaluate` take a dataset (`keras_gen.data.Source`).

    Args:
        path: a folder of images or a .npy / .npz array file.
        image_size: (H, W) of the model's images; default: an array's own size (a folder needs it).
        channels: 1 or 3; default: an array's own, 3 for a folder.
        preprocessing, bits, batch_size, take: as in `keras_gen.data.Source`.
        validation_fraction: the held-out share, split "test" (or "validation"); the rest is
            "train". Both take tfds-style slices, e.g. "test[:1000]".
        skip_bad_images: leave out (and count) files that do not decode, instead of an error.

    Example:

    ```python
    source = ImageSource("my_photos/", image_size=(32, 32), channels=3)
    model = GatedPixelCNN(image_shape=source.image_shape(), num_levels=source.num_levels())
    model.compile_for_training()
    model.fit(source.load("train"), epochs=10)
    ```
    """

    path: str
    image_size: tuple = None
    channels: int = None
    preprocessing: str = "none"
    bits: int = 8
    batch_size: int = 128
    take: int = None
    validation_fraction: float = 0.05
    skip_bad_images: bool = False

    def __post_init__(self):
        self.path = os.path.abspath(os.path.expanduser(str(self.path)))
        if self.channels is not None and self.channels not in (1, 3):
            raise validation.InputError(f"channels must be 1 or 3, got {self.channels}.")
        if self.image_size is not None:
            self.image_size = tuple(int(d) for d in self.image_size)
            if len(self.image_size) != 2 or min(self.image_size) < 1:
                raise validation.InputError(
                    f"image_size must be (H, W) with positive sizes, got {self.image_size}."
                )
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise validation.InputError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}."
            )
        if not 1 <= int(self.bits) <= 8:
            raise validation.InputError(f"bits must be in [1, 8], got {self.bits}.")
        self._items = None

    @property
    def dataset(self):
        """A name for messages and run folders, as a tfds name is."""
        return os.path.basename(self.path.rstrip(os.sep))

    # -- reading --------------------------------------------------------------
    def _is_array(self):
        return self.path.lower().endswith(ARRAY_EXTENSIONS)

    def _read(self):
        """{"images" or "files", "labels" or None, "keys", "class_names"}, read and checked once."""
        if self._items is None:
            if not os.path.exists(self.path):
                raise ImageFilesError(f"{self.path}: no such folder or file.")
            if self._is_array():
                self._items = self._read_array()
            elif idx_path(self.path, IDX_FILES["train"][0]):
                self._items = self._read_idx_folder()
            else:
                self._items = self._read_folder()
        return self._items

    def _read_idx_folder(self):
        images, labels, splits = [], [], {}
        for split, (image_name, label_name) in IDX_FILES.items():
            image_path, label_path = (
                idx_path(self.path, name) for name in (image_name, label_name)
            )
            if image_path is None or label_path is None:
                raise ImageFilesError(
                    f"{self.path}: an IDX dataset folder needs {image_name}[.gz] and "
                    f"{label_name}[.gz] beside train-images-idx3-ubyte; one is missing."
                )
            images.append(read_idx(image_path, "images"))
            labels.append(read_idx(label_path, "labels"))
            if len(labels[-1]) != len(images[-1]):
                raise ImageFilesError(
                    f"{label_path}: {len(labels[-1]):,} labels for {len(images[-1]):,} images."
                )
            start = sum(len(part) for part in images[:-1])
            splits[split] = np.arange(start, start + len(images[-1]))
        print(f"read {', '.join(f'{len(rows):,} {name}' for name, rows in splits.items())} images")
        images, labels = np.concatenate(images)[..., None], np.concatenate(labels).astype(np.int32)
        keys = [str(i) for i in range(len(images))]
        return dict(
            images=images,
            files=None,
            labels=labels,
            keys=keys,
            num_classes=int(labels.max()) + 1,
            splits=splits,
        )

    def _read_array(self):
        try:
            loaded = np.load(self.path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ImageFilesError(f"{self.path}: not a readable NumPy file ({error}).") from None
        labels = None
        if isinstance(loaded, np.lib.npyio.NpzFile):
            keys = set(loaded.files)
            image_key = next((k for k in ("images", "x") if k in keys), None)
            if image_key is None:
                raise ImageFilesError(
                    f"{self.path}: an .npz needs an 'images' (or 'x') array; it holds "
                    f"{sorted(keys)}."
                )
            images = loaded[image_key]
            label_key = next((k for k in ("labels", "y") if k in keys), None)
            labels = None if label_key is None else loaded[label_key]
        else:
            images = loaded
        if images.dtype != np.uint8:
            raise ImageFilesError(
                f"{self.path}: images must be uint8 pixels in 0..255; got dtype {images.dtype}."
            )
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
            raise ImageFilesError(
                f"{self.path}: images must be (N, H, W) or (N, H, W, C) with C 1 or 3 and N > 0; "
                f"got shape {images.shape}."
            )
        if labels is not None:
            if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
                raise ImageFilesError(
                    f"{self.path}: labels must be {len(images)} integers, one per image; got "
                    f"shape {labels.shape} and dtype {labels.dtype}."
                )
            if labels.min() < 0:
                raise ImageFilesError(f"{self.path}: labels must be >= 0; got {labels.min()}.")
        keys = [str(i) for i in range(len(images))]
        classes = None if labels is None else int(labels.max()) + 1
        return dict(images=images, files=None, labels=labels, keys=keys, num_classes=classes)

    def _read_folder(self):
        if not os.path.isdir(self.path):
            raise ImageFilesError(
                f"{self.path}: --images takes a folder or a {' or '.join(ARRAY_EXTENSIONS)} file."
            )
        files = list_image_files(self.path)
        if not files:
            raise ImageFilesError(
                f"{self.path}: no images ({', '.join(EXTENSIONS)}) in this folder or below it."
            )
        good, bad, converted = [], [], 0
        channels = self.channels or 3
        live = quiet.live_progress()  # a log gets the last count alone, not a run-on line
        for index, relative in enumerate(files):
            try:
                image = tf.io.decode_image(
                    tf.io.read_file(os.path.join(self.path, relative)), expand_animations=False
                )
            except (tf.errors.InvalidArgumentError, tf.errors.OpError):
                if not self.skip_bad_images:
                    raise ImageFilesError(
                        f"{os.path.join(self.path, relative)}: not a readable image (truncated or "
                        "not an image file); pass --skip-bad-images to leave such files out."
                    ) from None
                bad.append(relative)
                continue
            colour_channels = int(image.shape[-1]) - (1 - int(image.shape[-1]) % 2)
            converted += colour_channels != channels
            good.append(relative)
            if (live and (index + 1) % 1000 == 0) or index + 1 == len(files):
                print(f"\rchecked {index + 1:,} of {len(files):,} images", end="", flush=True)
        print()
        if bad:
            print(f"skipped {len(bad):,} unreadable files (--skip-bad-images), e.g. {bad[0]}")
        if converted:
            print(f"converted {converted:,} images to {'RGB' if channels == 3 else 'grey'}")
        if not good:
            raise ImageFilesError(
                f"{self.path}: none of its {len(files):,} files is a readable image."
            )
        nested = all(os.sep in relative for relative in good)
        class_names = sorted({relative.split(os.sep)[0] for relative in good}) if nested else None
        labels = (
            np.array([class_names.index(r.split(os.sep)[0]) for r in good], np.int32)
            if nested
            else None
        )
        classes = None if class_names is None else len(class_names)
        return dict(images=None, files=good, labels=labels, keys=good, num_classes=classes)

    # -- the Source interface ----------------------------------------------------
    def image_shape(self):
        """(H, W, C) of the images this source yields."""
        items = self._read()
        if self.image_size is None and items["images"] is None:
            raise validation.InputError(
                f"{self.path}: give the images' size for a folder (--image-size H[xW])."
            )
        size = self.image_size or items["images"].shape[1:3]
        channels = self.channels or (
            items["images"].shape[-1] if items["images"] is not None else 3
        )
        return (int(size[0]), int(size[1]), int(channels))

    def num_levels(self):
        return 2 if self.preprocessing != "none" else 2**self.bits

    @property
    def num_classes(self):
        return self._read()["num_classes"]

    def _split_rows(self, split):
        """Row indices of a split ("train", "test" or "validation", with an optional [a:b])."""
        name, _, rest = split.partition("[")
        items = self._read()
        held = held_out(items["keys"], self.validation_fraction)
        splits = items.get("splits")  # an IDX folder's own
        if name == "train":
            rows = splits["train"] if splits else np.flatnonzero(~held)
        elif name in ("test", "validation"):
            rows = splits["test"] if splits else np.flatnonzero(held)
        else:
            raise ImageFilesError(
                f"{self.dataset}: splits are 'train' and 'test' (the held-out "
                f"{self.validation_fraction:.0%}), with slices like 'test[:100]'; got {split!r}."
            )
        if rest:
            start, _, stop = rest.rstrip("]").partition(":")
            rows = rows[slice(int(start) if start else None, int(stop) if stop else None)]
        if len(rows) == 0:
            raise ImageFilesError(f"{self.dataset}, split {split!r} holds no images.")
        return rows

    def count(self, split):
        """How many images `split` holds (e.g. "train", "test[:100]")."""
        return len(self._split_rows(split))

    def _examples(self, rows, labels):
        """A tf.data dataset of {"image": uint8 (H, W, C)[, "label"]} for `rows`."""
        items = self._read()
        if labels and items["labels"] is None:
            raise ImageFilesError(
                f"{self.path} has no labels (a folder needs every image in a class sub-folder, an "
                ".npz a 'labels' array); it cannot feed a conditional model."
            )
        height, width, channels = self.image_shape()
        if items["images"] is not None:
            source = tf.data.Dataset.from_tensor_slices(items["images"][rows])
        else:
            paths = [os.path.join(self.path, items["files"][i]) for i in rows]
            source = tf.data.Dataset.from_tensor_slices(paths).map(
                lambda path: tf.io.decode_image(tf.io.read_file(path), expand_animations=False),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        images = source.map(
            lambda image: to_pixels(fit_to_size(to_channels(image, channels), (height, width))),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        if labels:
            label_data = tf.data.Dataset.from_tensor_slices(items["labels"][rows].astype(np.int32))
            return tf.data.Dataset.zip(images, label_data).map(
                lambda image, label: {"image": image, "label": label}
            )
        return images.map(lambda image: {"image": image})

    def load(self, split, labels=False, shuffle=None):
        """Batches of uint8 levels (and int32 labels) of `split`, as `keras_gen.data.load`."""
        if self.preprocessing not in data.PREPROCESSING:
            raise validation.InputError(
                f"Unknown preprocessing {self.preprocessing!r}; choose one of {data.PREPROCESSING}."
            )
        return data.pipeline(
            self._examples(self._split_rows(split), labels),
            self.batch_size,
            self.preprocessing,
            self.bits,
            labels,
            shuffle=split.startswith("train") if shuffle is None else shuffle,
            take=self.take,
        )

    def real_images(self, split, count, labels=False):
        """The first `count` images of `split` as uint8 pixels (and their labels), unshuffled."""
        pixels = data.pipeline(
            self._examples(self._split_rows(split)[:count], labels), 1000, labels=labels
        )
        return data.as_numpy(pixels, count)

    def check_matches(self, image_shape, num_levels, what):
        """Refuses this source for a model whose images differ from it in shape or levels."""
        shape, levels = self.image_shape(), self.num_levels()
        if shape != tuple(image_shape) or levels != num_levels:
            raise ImageFilesError(
                f"{what} takes {'x'.join(map(str, image_shape))} images with {num_levels} levels; "
                f"{self.path} gives {'x'.join(map(str, shape))} images with {levels} levels "
                "(set --image-size, --channels and --bits to match)."
            )
