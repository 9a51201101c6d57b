"""Keras callbacks that draw what training is doing."""

import datetime
import json
import os
import platform
import time

import keras
import numpy as np

from keras_gen import plotting
from keras_gen.files import atomic_path, epochs_done, read_epoch_times, read_history  # noqa: F401  (epochs_done: callbacks' API)


class SampleGrid(keras.callbacks.Callback):
    """Writes `directory/epoch_NNN.png`: samples from fixed noise after each epoch.

    Args:
        noise: (N, *noise_shape) float32, fixed so epochs are comparable.
        labels: (N,) int labels for conditional models.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    model.compile_for_training()
    images = np.zeros((8, 8, 8, 1), "uint8")
    grid = SampleGrid(tempfile.mkdtemp(), model.make_noise(4, seed=0))
    model.fit(images, batch_size=4, epochs=1, verbose=0, callbacks=[grid])   # writes epoch_001.png
    ```
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
    `history_path`, a JSON file of them; a run that resumes continues the history found there.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    model.compile_for_training()
    folder = tempfile.mkdtemp()
    curves = LossCurves(f"{folder}/loss.png", "vae", history_path=f"{folder}/history.json")
    model.fit(np.zeros((8, 8, 8, 1), "uint8"), batch_size=4, epochs=2, verbose=0, callbacks=[curves])
    ```
    """

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


def cpu_name():
    """The CPU's model name ("AMD EPYC", say), from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class EpochTimes(keras.callbacks.Callback):
    """Records each epoch's wall-clock and CPU seconds in a JSON list at `path`, so that a
    run's cost survives its sessions; a resumed run continues the list (an epoch run again
    replaces its entry).

    Each entry: {"epoch": n (from 1), "wall_seconds", "cpu_seconds" (the process's, all its
    threads), "cpu" (model name), "cores", "finished" (UTC, ISO 8601)}. CPU seconds, unlike wall
    seconds, hardly change when other processes share the cores.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    model.compile_for_training()
    path = f"{tempfile.mkdtemp()}/epochs.json"
    model.fit(np.zeros((8, 8, 8, 1), "uint8"), batch_size=4, epochs=2, verbose=0,
              callbacks=[EpochTimes(path)])  # two entries
    ```
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.started = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = (time.time(), time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        wall, cpu = time.time() - self.started[0], time.process_time() - self.started[1]
        entries = [e for e in read_epoch_times(self.path) if e["epoch"] != epoch + 1]
        entries.append(
            {
                "epoch": epoch + 1,
                "wall_seconds": round(wall, 1),
                "cpu_seconds": round(cpu, 1),
                "cpu": cpu_name(),
                "cores": os.cpu_count(),
                "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"
                ),
            }
        )
        with atomic_path(self.path) as temporary, open(temporary, "w") as file:
            json.dump(sorted(entries, key=lambda e: e["epoch"]), file, indent=1)


class SaveEachEpoch(keras.callbacks.Callback):
    """Saves the model (with optimizer state) to `path` after each epoch, never leaving a partial file.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    model.compile_for_training()
    path = f"{tempfile.mkdtemp()}/model.keras"
    model.fit(np.zeros((8, 8, 8, 1), "uint8"), batch_size=4, verbose=0, callbacks=[SaveEachEpoch(path)])
    ```
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        with atomic_path(self.path) as temporary:
            self.model.save(temporary)


class AverageWeights(keras.callbacks.Callback):
    """Averages the model's weights over the epochs from `first_epoch` on (stochastic weight
    averaging, Izmailov et al. 2018) and writes the mean after each of them to `path`: a
    weights-only .keras file that samples, scores and exports like any other.

    The mean is taken at the end of each epoch, usually at a low, constant learning rate. A
    resumed run continues the mean it finds at `path`; `path` + ".json" records its epochs.
    Layers with moving statistics (batch norm) get the mean of those too, not fresh statistics.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    model.compile_for_training()
    path = f"{tempfile.mkdtemp()}/averaged.keras"
    model.fit(np.zeros((8, 8, 8, 1), "uint8"), batch_size=4, epochs=3, verbose=0,
              callbacks=[AverageWeights(path, first_epoch=2)])  # the mean of epochs 2 and 3
    ```
    """

    def __init__(self, path, first_epoch):
        super().__init__()
        if int(first_epoch) < 1:
            raise ValueError(f"AverageWeights: first_epoch counts from 1; got {first_epoch}.")
        self.path, self.first_epoch = path, int(first_epoch)
        self.record_path = path + ".json"
        self.mean, self.last_epoch = None, None

    def on_train_begin(self, logs=None):
        if not os.path.exists(self.record_path):
            return
        with open(self.record_path) as file:
            record = json.load(file)
        if record["first_epoch"] != self.first_epoch:
            raise ValueError(
                f"{self.path} averages from epoch {record['first_epoch']}, not {self.first_epoch}."
            )
        averaged = keras.saving.load_model(self.path, compile=False)
        self.mean = [np.asarray(v) for v in averaged.weights]
        self.last_epoch = record["last_epoch"]

    def on_epoch_begin(self, epoch, logs=None):
        epoch += 1  # Keras counts from 0
        # Before the epoch trains, so that a refused run leaves its files as they were.
        if self.mean is None and epoch > self.first_epoch:  # its mean would weigh epochs wrongly
            raise RuntimeError(
                f"{self.path}: averaging from epoch {self.first_epoch} has to start there, "
                f"but the run is at epoch {epoch} and has no mean yet."
            )

    def on_epoch_end(self, epoch, logs=None):
        epoch += 1
        if epoch < self.first_epoch:
            return
        current = [np.asarray(v) for v in self.model.weights]
        if self.mean is None:
            self.mean = current
        else:
            if self.last_epoch != epoch - 1:
                raise RuntimeError(
                    f"{self.path} holds the mean up to epoch {self.last_epoch}, "
                    f"so it cannot take in epoch {epoch}."
                )
            count = epoch - self.first_epoch + 1
            self.mean = [m + (c - m) / count for m, c in zip(self.mean, current)]
        self.last_epoch = epoch
        self._write(current)

    def _write(self, current):
        """Writes the mean, then puts the model's `current` weights back."""
        from keras_gen import zoo  # the zoo's own weights-only writer

        for variable, value in zip(self.model.weights, self.mean):
            variable.assign(value)
        try:
            with atomic_path(self.path + ".full.keras") as temporary:
                self.model.save(temporary)
        finally:
            for variable, value in zip(self.model.weights, current):
                variable.assign(value)
        zoo.write_weights_only(self.path + ".full.keras", self.path)
        os.remove(self.path + ".full.keras")
        with atomic_path(self.record_path) as temporary, open(temporary, "w") as file:
            json.dump({"first_epoch": self.first_epoch, "last_epoch": self.last_epoch}, file)


class SampleQuality(keras.callbacks.Callback):
    """After each epoch, scores samples from fixed noise with an MNIST classifier and logs the figures.

    Adds `sample_fd_logits`, `sample_fcd`, `sample_classifier_score` (and, for a conditional model,
    `sample_label_accuracy`) to the epoch's logs, so history.json, loss.png and TensorBoard get a
    learning curve of sample quality (see `metrics.evaluate_samples`). GAN figures swing from
    epoch to epoch, so with `best_path` it also saves the model whenever `sample_fd_logits` is the
    lowest so far.

    Args:
        classifier: an `metrics.MnistClassifier`.
        reference_pixels: (n, H, W, C) uint8 real images to compare with; keep the test split out
            of them, so choosing the best epoch does not tune on the test figure.
        reference_labels: (n,) int labels of those images; a conditional model is asked for them.
        best_so_far: the lowest `sample_fd_logits` of the epochs before (a resumed run's history).
        seed: noise seed; each epoch draws from the same noise.

    Example:

    ```python
    classifier = MnistClassifier()
    classifier.build((None, 28, 28, 1))                      # the zoo's: metrics.load_classifier()
    model = DCGAN(latent_dim=4, filters=4)
    model.compile_for_training()
    real = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1)).astype("uint8")
    quality = SampleQuality(classifier, real, best_path=f"{tempfile.mkdtemp()}/best.keras")
    model.fit(real[:8], batch_size=4, verbose=0, callbacks=[quality])   # logs sample_fd_logits, ...
    ```
    """

    def __init__(
        self,
        classifier,
        reference_pixels,
        reference_labels=None,
        best_path=None,
        best_so_far=float("inf"),
        batch_size=500,
        seed=0,
    ):
        super().__init__()
        from keras_gen import metrics

        self.classifier, self.labels = classifier, reference_labels
        self.reference_outputs = metrics.classifier_outputs(classifier, reference_pixels)
        self.count, self.batch_size, self.seed = len(reference_pixels), batch_size, seed
        self.best_path, self.best = best_path, best_so_far

    def on_epoch_end(self, epoch, logs=None):
        from keras_gen import metrics, runtime

        noise = self.model.make_noise(self.count, seed=self.seed)
        pixels = runtime.sample_in_batches(
            self.model, noise, self.labels, self.batch_size, progress=False
        )
        results = metrics.evaluate_samples(
            self.classifier, pixels, labels=self.labels, real_outputs=self.reference_outputs
        )
        if logs is not None:
            logs.update({f"sample_{name}": value for name, value in results.items()})
        if self.best_path and results["fd_logits"] < self.best:
            self.best = results["fd_logits"]
            with atomic_path(self.best_path) as temporary:
                self.model.save(temporary)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit` at the first batch whose logged loss is NaN or infinite, raising `NonFiniteLossError`.

    It raises before the epoch ends, so no end-of-epoch checkpoint of the broken weights is written.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    model.compile_for_training()
    model.fit(np.zeros((8, 8, 8, 1), "uint8"), batch_size=4, verbose=0, callbacks=[StopOnNonFiniteLoss()])
    ```
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
                    "training stopped. Try a lower --learning-rate, or float32 instead of mixed precision."
                )


class LearningRateSteps(keras.callbacks.Callback):
    """Sets every optimizer's learning rate at the start of each epoch from a schedule.

    Args:
        schedule: [[first epoch, rate], ...], epochs counted from 1 and in increasing order;
            e.g. [[1, 1e-3], [16, 3e-4], [23, 1e-4]]. A resumed run starts at its own epoch.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    model.compile_for_training()
    steps = LearningRateSteps([[1, 1e-3], [2, 3e-4]])
    model.fit(np.zeros((8, 8, 8, 1), "uint8"), batch_size=4, epochs=2, verbose=0, callbacks=[steps])
    float(model.optimizer.learning_rate)                     # 3e-4, epoch 2's rate
    ```
    """

    def __init__(self, schedule):
        super().__init__()
        self.schedule = check_schedule(schedule)

    def rate_at(self, epoch):
        """The rate of 1-based `epoch`."""
        return [rate for first, rate in self.schedule if first <= epoch][-1]

    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_learning_rate(self.rate_at(epoch + 1))


def check_schedule(schedule):
    """[[first epoch, rate], ...] checked: starts at epoch 1, epochs increase, rates positive."""
    pairs = [(int(first), float(rate)) for first, rate in schedule]
    firsts = [first for first, _ in pairs]
    if (
        not pairs
        or firsts[0] != 1
        or firsts != sorted(set(firsts))
        or min(r for _, r in pairs) <= 0
    ):
        raise ValueError(
            "A learning-rate schedule is [[first epoch, rate], ...] from epoch 1, epochs increasing "
            f"and rates above 0; got {schedule!r}."
        )
    return pairs
