"""Pictures: sample grids and loss curves (matplotlib, no display needed)."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_gen.files import atomic_path  # noqa: E402


def grid(images, columns=None):
    """(N, H, W, C) uint8 pixels -> one float image in [0, 1], the images a grey line apart
    (which both black and white backgrounds show)."""
    images = np.asarray(images, np.float32) / 255.0
    count, height, width, channels = images.shape
    columns = columns or int(math.ceil(math.sqrt(count)))
    rows = int(math.ceil(count / columns))
    canvas = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1, channels), np.float32)
    canvas[height :: height + 1] = 0.5
    canvas[:, width :: width + 1] = 0.5
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        canvas[
            row * (height + 1) : row * (height + 1) + height,
            column * (width + 1) : column * (width + 1) + width,
        ] = image
    return canvas


def save_grid(images, path, title=None, columns=None):
    """Writes a grid of uint8 pixel images (N, H, W, C) to a PNG; `columns` images a row (default: square)."""
    canvas = grid(images, columns)
    figure, axis = plt.subplots(figsize=(6, 6 * canvas.shape[0] / canvas.shape[1] + 0.3))
    _show(axis, canvas)
    axis.axis("off")
    if title:
        axis.set_title(title)
    _write_png(figure, path, bbox_inches="tight")


def _show(axis, canvas):
    """Draws a `grid` canvas: grey when it has one channel, else as RGB."""
    if canvas.shape[-1] == 1:
        axis.imshow(canvas[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        axis.imshow(canvas, interpolation="nearest")


def _write_png(figure, path, **savefig_options):
    """Saves `figure` to `path` as a PNG without ever leaving a partial file, then closes it."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100, **savefig_options)
    plt.close(figure)


def save_curves(history, path, title="training"):
    """Writes one panel per metric ({name: [value per epoch]}) to a PNG; val_ pairs share a panel.

    A series shorter than the longest (a metric added when a run was resumed) ends at the last epoch.
    """
    epochs = max((len(values) for values in history.values()), default=0)
    names = list(dict.fromkeys(n[4:] if n.startswith("val_") else n for n in history))
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for axis, name in zip(axes[0], names):
        for key, label, color in ((name, "train", "C0"), (f"val_{name}", "validation", "C1")):
            if key in history:
                first = epochs - len(history[key]) + 1
                axis.plot(
                    np.arange(first, epochs + 1), history[key], marker="o", label=label, color=color
                )
        axis.legend()
        axis.set_title(
            f"{name} (nats)" if name in ("loss", "reconstruction", "kl", "nll") else name
        )
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    _write_png(figure, path)


def save_rows(rows, path, title=None):
    """Writes one labelled row of images per entry of `rows` ({label: (N, H, W, C) uint8 pixels}) to a PNG.

    Rows may differ in size and channels; each is drawn in its own panel.
    """
    figure, axes = plt.subplots(len(rows), 1, figsize=(8, 1.1 * len(rows) + 0.4), squeeze=False)
    for axis, (label, images) in zip(axes[:, 0], rows.items()):
        _show(axis, grid(images, columns=len(images)))
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    _write_png(figure, path)
