"""Keras callbacks that draw what training is doing."""

import json
import os

import keras
import numpy as np

from keras_gen import plotting
from keras_gen.files import atomic_path


class SampleGrid(keras.callbacks.Callback):
    """Writes `directory/epoch_NNN.png`: samples from fixed noise after each epoch.

    Args:
        noise: (N, *noise_shape) float32, fixed so epochs are comparable.
        labels: (N,) int labels for conditional models.
    """

    def __init__(self, directory, noise, labels=None):
        super().__init__()
        self.directory, self.noise, self.labels = directory, noise, labels

    def on_epoch_end(self, epoch, logs=None):
        images = self.model.sample(self.noise, self.labels)
        path = os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png")
        plotting.save_grid(images, path, title=f"epoch {epoch + 1}")


class LossCurves(keras.callbacks.Callback):
    """After each epoch, rewrites a PNG of every logged metric against epochs and, given
    `history_path`, a JSON file of them; a run that resumes continues the history found there."""

    def __init__(self, path, title="training", history_path=None):
        super().__init__()
        self.path, self.title, self.history_path = path, title, history_path
        self.history = read_history(history_path) if history_path else {}

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        plotting.save_curves(self.history, self.path, self.title)
        if self.history_path:
            with atomic_path(self.history_path) as temporary, open(temporary, "w") as file:
                json.dump(self.history, file, indent=1)


def read_history(path):
    """{metric: [value per epoch]} from a history.json, or {} when there is none yet."""
    if not os.path.exists(path):
        return {}
    with open(path) as file:
        return json.load(file)


def epochs_done(history):
    """Epochs recorded in a history dict: its longest series (GANs log d_loss and g_loss, not loss)."""
    return max((len(values) for values in history.values()), default=0)


class SaveEachEpoch(keras.callbacks.Callback):
    """Saves the model (with optimizer state) to `path` after each epoch, never leaving a partial file."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        with atomic_path(self.path) as temporary:
            self.model.save(temporary)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit` at the first batch whose logged loss is NaN or infinite, raising `NonFiniteLossError`.

    It raises before the epoch ends, so no end-of-epoch checkpoint of the broken weights is written.
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            if "loss" in name and not np.all(np.isfinite(np.asarray(value))):
                raise NonFiniteLossError(
                    f"{name} became {float(np.mean(value))} at epoch {self.epoch + 1}, step {batch + 1}; "
                    "training stopped. Try a lower --learning-rate, or float32 instead of mixed precision.")
