"""Training runs from Python: what `python -m keras_gen train` does, without the command line.

A run lives in one folder: `model.keras`, `history.json` and `epochs.json` (each epoch's wall and
CPU seconds) after every epoch, a sample grid per epoch, `loss.png`, TensorBoard logs and, while it
runs, a `backup/` for `BackupAndRestore`.
`train(..., resume=True)` continues a run from its last finished epoch, optimizer state included.
Under a multi-worker strategy every worker calls `train` alike; only the chief writes the folder.
"""

import inspect
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_gen import callbacks, files, metrics, models, precision, runtime


class TrainingError(ValueError):
    """A run that cannot start as asked: a bad option, a folder in the way, nothing to resume."""


def make_strategy(name):
    """The `tf.distribute` strategy called `name`: "default" (one device), "mirrored" (every local GPU,
    or the CPU) or "multi_worker" (the cluster comes from $TF_CONFIG)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise TrainingError(
                "--strategy multi_worker needs $TF_CONFIG naming the cluster and this task "
                "(see the README's distributed training section)."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name != "default":
        raise TrainingError(f"Unknown strategy {name!r}; choose default, mirrored or multi_worker.")
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """True for the one process that writes the run's files: the chief, or worker 0 without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


def model_options(model_class):
    """The keyword arguments a model class and its bases take."""
    names = set()
    for cls in model_class.__mro__:
        if "__init__" in vars(cls) and cls.__module__.startswith("keras_gen"):
            names |= {
                name
                for name, parameter in inspect.signature(cls.__init__).parameters.items()
                if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and name != "self"
            }
    return names | {"dtype", "name"}


def _first_stage(model_class, from_model):
    """{constructor argument: the loaded first-stage model} for a second-stage model such as
    a VQ-VAE prior (`builds_on`), checked; {} for others."""
    builds_on = getattr(model_class, "builds_on", None)
    if builds_on is None:
        if from_model:
            raise TrainingError(f"--from: {model_class.__name__} does not build on another model.")
        return {}
    if not from_model:
        raise TrainingError(
            f"{model_class.__name__} builds on a trained {builds_on}: pass its model.keras with "
            f"--from (e.g. --from runs/{builds_on}/model.keras)."
        )
    first = runtime.load_keras(from_model)
    expected = models.get(builds_on)
    if not isinstance(first, expected):
        raise TrainingError(
            f"--from: {from_model} holds a {type(first).__name__}, not a {expected.__name__}."
        )
    return {builds_on: first}


def build_model(
    name, source, options=None, mixed_precision=None, learning_rate=None, seed=0, from_model=None
):
    """(model, precision decision): model `name` for `source`'s images with `options` (a
    `--set` dict), its weights drawn from `seed`, compiled at `learning_rate` (the family's default
    when None), as `train` starts a run.

    Args:
        from_model: a trained first stage (e.g. a VQ-VAE's path for its prior), or None.
    """
    model_class = models.get(name)
    options = dict(options or {})
    unknown = sorted(set(options) - model_options(model_class))
    if unknown:
        raise TrainingError(
            f"--set: {name} has no option {', '.join(unknown)}; its options are "
            f"{', '.join(sorted(model_options(model_class)))}."
        )
    first_stage = _first_stage(model_class, from_model)
    for first in first_stage.values():  # the first stage fixes the images
        source.check_matches(first.image_shape, first.num_levels, f"--from {from_model}")
    options.update(first_stage)
    options.setdefault("image_shape", source.image_shape())
    options.setdefault("num_levels", source.num_levels())
    policy, decision = precision.resolve(mixed_precision, model_class.float32_reason(options))
    if policy:
        options.setdefault("dtype", policy)
    keras.utils.set_random_seed(seed)
    model = model_class(**options)
    model.compile_for_training(learning_rate)
    return model, decision


def _new_model(
    name, source, saved, history_path, options, mixed_precision, learning_rate, seed, from_model
):
    if os.path.exists(saved):
        raise FileExistsError(
            f"{os.path.dirname(saved)} already holds a trained model; choose another --out, "
            "or pass --resume to continue training it."
        )
    if os.path.exists(history_path):  # left by a run that stopped before its first epoch was saved
        os.remove(history_path)
    model, decision = build_model(
        name, source, options, mixed_precision, learning_rate, seed, from_model
    )
    print(decision)
    return model


def _resumed_model(
    name,
    source,
    saved,
    done_epochs,
    epochs,
    options,
    mixed_precision,
    learning_rate,
    seed,
    from_model,
):
    for flag, value in (("--set", options), ("--mixed-precision", mixed_precision)):
        if value:
            raise TrainingError(
                f"{flag} does not apply with --resume: the model and its precision come from "
                f"{saved}."
            )
    if not os.path.exists(saved):
        raise FileNotFoundError(
            f"--resume: {os.path.dirname(saved)} holds no model.keras to continue from."
        )
    if done_epochs >= epochs:
        raise TrainingError(
            f"--resume: {os.path.dirname(saved)} has trained {done_epochs} epochs already; "
            f"--epochs is the total to reach, so pass more than {done_epochs}."
        )
    model = runtime.load_keras(saved)
    if not isinstance(model, models.get(name)):
        raise TrainingError(f"--resume: {saved} holds a {type(model).__name__}, not a {name}.")
    source.check_matches(model.image_shape, model.num_levels, f"--resume: {saved}")
    for argument, first in _first_stage(type(model), from_model).items():
        difference = _config_difference(first, getattr(model, argument))
        if difference:
            raise TrainingError(
                f"--from {from_model}: a {type(first).__name__} unlike the one {saved} was "
                f"trained on ({difference}); a prior cannot move to another first stage. "
                "Resume without --from, or start a new run."
            )
    print(f"precision: {model.dtype_policy.name} (from {saved})")
    if any(optimizer is None for optimizer in model.training_optimizers()):
        # a weights-only file, such as a zoo model's (a GAN's `optimizer` is always None)
        print(f"optimizer: fresh ({saved} holds weights only)")
        model.compile_for_training()
    if learning_rate:
        model.set_learning_rate(learning_rate)
    keras.utils.set_random_seed(seed + done_epochs)  # shuffle afresh, not replay the first epochs
    return model


def _config_difference(first, second):
    """The config entries where two models differ, e.g. "num_codes 64 vs 32"."""
    one, two = first.get_config(), second.get_config()
    keys = sorted(k for k in set(one) | set(two) if k != "trainable")  # a held copy is frozen
    return ", ".join(f"{k} {one.get(k)} vs {two.get(k)}" for k in keys if one.get(k) != two.get(k))


def _sample_quality_callbacks(name, model, source, count, classifier, out, history_path, resume):
    """[callbacks.SampleQuality] against the first `count` train images, or [] for count None."""
    if not count:
        return []
    if model.has_log_prob or source.dataset != "mnist":
        raise TrainingError(
            f"--sample-quality scores GANs trained on mnist with the MNIST classifier, not "
            f"{name} on {source.dataset}."
        )
    conditional = model.num_classes is not None
    reference = source.real_images("train", count, labels=conditional)
    pixels, labels = reference if conditional else (reference, None)
    earlier = callbacks.read_history(history_path).get("sample_fd_logits", []) if resume else []
    return [
        callbacks.SampleQuality(
            metrics.load_classifier(classifier),
            pixels,
            labels,
            best_path=os.path.join(out, "best.keras"),
            best_so_far=min(earlier, default=float("inf")),
        )
    ]


def _drop_stale_backup(backup_dir, done_epochs):
    """Removes a BackupAndRestore backup older than model.keras (a crash between the two saves)."""
    metadata = os.path.join(backup_dir, "training_metadata.json")
    if os.path.exists(metadata):
        with open(metadata) as file:
            if json.load(file).get("epoch", 0) != done_epochs:
                shutil.rmtree(backup_dir)


def train(
    name,
    source,
    out,
    *,
    epochs=5,
    split="train",
    validation_split="test[:1000]",
    steps_per_epoch=None,
    learning_rate=None,
    options=None,
    mixed_precision=None,
    strategy="default",
    sample_quality=None,
    classifier=None,
    seed=0,
    resume=False,
    from_model=None,
    average_weights_from=None,
    extra_callbacks=(),
    verbose=2,
):
    """Trains model `name` on `source` into the run folder `out`; returns the trained model.

    Args:
        name: a model name of `keras_gen.models.get`, e.g. "pixelcnn".
        source: a `keras_gen.data.Source` (dataset, preprocessing, batch size, ...).
        out: the run folder; must not hold a model unless `resume`.
        epochs: the total to reach (with `resume`, counting the epochs already done).
        validation_split: evaluated after each epoch, or "none".
        learning_rate: the model's default when None; with `resume`, a new rate from here on.
        options: model options, e.g. {"filters": 32}.
        mixed_precision: None (float32), "auto", "float32", "bfloat16" or "float16"
            (`keras_gen.precision`).
        strategy: "default", "mirrored" or "multi_worker" (`make_strategy`).
        sample_quality: for GANs on mnist, score this many samples after each epoch against as
            many train images and keep the best epoch in best.keras.
        classifier: the MNIST classifier's .keras file for `sample_quality` (default: the zoo's).
        resume: continue the run in `out` from its model.keras and history.json.
        from_model: the first stage's model.keras, for a model that builds on one (a
            `VQVAEPrior` on its trained `VQVAE`).
        average_weights_from: from this epoch (counting from 1) on, also keep the mean of the
            weights after each epoch in averaged.keras (`callbacks.AverageWeights`).
        extra_callbacks: more Keras callbacks, run first (e.g. `callbacks.LearningRateSteps`).
        verbose: Keras' verbosity (1: progress bar, 2: a line per epoch).

    Example:

    ```python
    from keras_gen import data, training

    source = data.Source("binarized_mnist", batch_size=64, manual_dir="../shared/data")
    model = training.train("pixelcnn", source, "runs/pixelcnn", epochs=2, options={"num_blocks": 3})
    model = training.train("pixelcnn", source, "runs/pixelcnn", epochs=4, resume=True)   # 2 more
    ```
    """
    models.get(name)  # a wrong name fails before anything is written
    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
    out, scratch = os.path.abspath(out), None
    if not is_chief(
        strategy
    ):  # other workers run the same callbacks, into a scratch folder removed at the end
        out = scratch = tempfile.mkdtemp(prefix="keras_gen_worker_")
    saved, history_path = os.path.join(out, "model.keras"), os.path.join(out, "history.json")
    done_epochs = callbacks.epochs_done(callbacks.read_history(history_path)) if resume else 0
    with strategy.scope():
        if resume:
            model = _resumed_model(
                name,
                source,
                saved,
                done_epochs,
                epochs,
                options,
                mixed_precision,
                learning_rate,
                seed,
                from_model,
            )
        else:
            model = _new_model(
                name,
                source,
                saved,
                history_path,
                options,
                mixed_precision,
                learning_rate,
                seed,
                from_model,
            )
    conditional = model.num_classes is not None
    train_data = source.load(split, labels=conditional)
    if steps_per_epoch:  # else Keras carries one pass over into the next epoch and runs out
        train_data = train_data.repeat()
    validation_data = None
    if validation_split != "none":
        validation_data = source.load(validation_split, labels=conditional, shuffle=False)
    noise = model.make_noise(64, seed=seed)
    labels = np.arange(64) % model.num_classes if conditional else None
    quality = _sample_quality_callbacks(
        name, model, source, sample_quality, classifier, out, history_path, resume
    )
    averaging = []
    if average_weights_from:
        path = os.path.join(out, "averaged.keras")
        averaging = [callbacks.AverageWeights(path, average_weights_from)]
    backup_dir = os.path.join(out, "backup")
    _drop_stale_backup(backup_dir, done_epochs)
    new_folder = not os.path.exists(out)
    try:
        model.fit(
            train_data,
            epochs=epochs,
            initial_epoch=done_epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation_data,
            verbose=verbose,
            callbacks=[
                *extra_callbacks,
                callbacks.StopOnNonFiniteLoss(),
                callbacks.SampleGrid(os.path.join(out, "samples"), noise, labels),
                callbacks.SaveEachEpoch(
                    saved
                ),  # before the history, so the history never runs ahead of it
                *averaging,
                callbacks.EpochTimes(os.path.join(out, files.EPOCH_TIMES)),
                *quality,  # before the history and TensorBoard, which log its figures
                callbacks.LossCurves(
                    os.path.join(out, "loss.png"), f"{name} on {source.dataset}", history_path
                ),
                keras.callbacks.TensorBoard(os.path.join(out, "logs")),
                # Last, so its backup never runs ahead of model.keras; deleted when fit ends well.
                keras.callbacks.BackupAndRestore(backup_dir),
            ],
        )
    except BaseException as error:
        if new_folder and not os.path.exists(saved):  # nothing worth keeping was written
            shutil.rmtree(out, ignore_errors=True)
        if isinstance(error, callbacks.NonFiniteLossError):
            kept = (
                f"{saved} keeps the last good epoch"
                if os.path.exists(saved)
                else "no epoch finished"
            )
            raise callbacks.NonFiniteLossError(f"{error} {kept}.") from None
        raise
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return model
