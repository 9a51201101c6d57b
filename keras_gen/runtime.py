"""Run a model from any artifact: a `.keras` file, a SavedModel or a `.tflite` file.

All runners share one interface: `sample(noise, labels=None)` -> uint8 levels
and `log_prob(images, labels=None)` -> nats per image, with the same input checks.
"""

import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf

from keras_gen import conventions, formats, precision, quiet, validation


class ArtifactError(ValueError):
    """A model file is missing, truncated or not a keras_gen artifact."""


def load_keras(path, compile=True):
    """Loads a keras_gen `.keras` file with safe_mode=True, with clear errors; `compile=False`
    leaves out its optimizer state."""
    if not os.path.exists(path):
        raise ArtifactError(f"{path}: no such file.")
    if not zipfile.is_zipfile(path):
        raise ArtifactError(f"{path}: not a .keras archive (not a zip file; truncated or foreign).")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            if archive.testzip() is not None:
                raise zipfile.BadZipFile("a member fails its CRC check")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, EOFError, OSError) as error:
        raise ArtifactError(f"{path}: not a readable .keras archive ({error}).") from None
    registered = str(config.get("registered_name", ""))
    if not registered.startswith("keras_gen>"):
        raise ArtifactError(
            f"{path}: holds a {config.get('class_name', 'unknown')!r} model, not a keras_gen model."
        )
    import keras_gen.models  # noqa: F401  registers the classes

    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:
        raise ArtifactError(
            f"{path}: could not be loaded: {type(error).__name__}: {error}"
        ) from None


class Runner:
    """Common checks around one runtime's `sample` and `log_prob`.

    Example:

    ```python
    runner = KerasRunner(PixelCNN(image_shape=(6, 6, 1), filters=4, num_blocks=1, head_filters=4))
    images = runner.sample(runner.make_noise(2, seed=0))     # (2, 6, 6, 1) uint8, checked inputs
    nats = runner.log_prob(np.zeros((2, 6, 6, 1), "uint8"))  # (2,)
    ```
    """

    def __init__(self, spec):
        self.image_shape = tuple(spec["image_shape"])
        self.num_levels = int(spec["num_levels"])
        self.num_classes = spec.get("num_classes")
        self.has_log_prob = bool(spec["has_log_prob"])
        self.signatures = set(spec.get("signatures") or ("sample",))
        self.noise_spec = formats.noise_spec_of(spec)
        single = len(self.noise_spec) == 1
        # One noise input: its shape and kind, as before the noise became a named structure.
        self.noise_shape, self.noise_kind = (
            next(iter(self.noise_spec.values())) if single else (None, None)
        )

    def make_noise(self, batch_size, seed=None):
        """The noise the model's own `make_noise` would draw for the same seed."""
        return conventions.draw_noise_structure(batch_size, self.noise_spec, seed)

    def sample(self, noise, labels=None):
        """Images (batch, H, W, C) uint8 for noise: an array, or {name: array} (`noise_spec`)."""
        noise = validation.check_noise_structure(noise, self.noise_spec)
        labels = validation.check_labels(
            labels, self.num_classes, conventions.noise_batch_size(noise)
        )
        return np.asarray(self._run("sample", self._noise_inputs(noise), labels, "images"))

    # Images per log_prob call: a latent-variable model's bound decodes k images per image (a
    # PixelVAE's k = 100 bound on 1,000 images in one SavedModel call crashed TensorFlow).
    log_prob_batch = 64

    def log_prob(self, images, labels=None):
        """log p(images) in nats, (batch,) float32, for (batch, H, W, C) uint8 levels."""
        if not self.has_log_prob:
            raise ArtifactError("This model has no log_prob signature.")
        images = np.asarray(validation.check_images(images, self.image_shape, self.num_levels))
        labels = validation.check_labels(labels, self.num_classes, images.shape[0])
        step = self.log_prob_batch
        return np.concatenate(
            [
                np.asarray(
                    self._run(
                        "log_prob",
                        {"images": images[start : start + step]},
                        None if labels is None else labels[start : start + step],
                        "log_prob",
                    )
                )
                for start in range(0, max(1, len(images)), step)
            ]
        )

    def complete(self, images, known_mask, noise, labels=None):
        """A completion (autoregressive and diffusion models): keeps the sub-pixels of `images`
        (uint8 levels) where `known_mask` (bool or 0/1) is set and samples the rest from `noise`
        (as `sample` takes it). Returns (batch, H, W, C) uint8 pixels."""
        if "complete" not in self.signatures:
            raise ArtifactError(
                "This export has no complete signature (exported before it existed, or a model "
                "that cannot complete images)."
            )
        noise = validation.check_noise_structure(noise, self.noise_spec)
        images = np.asarray(validation.check_images(images, self.image_shape, self.num_levels))
        mask = np.asarray(known_mask)
        if mask.shape != images.shape:
            raise validation.InputError(
                f"known_mask: expected shape {images.shape}, received {mask.shape}."
            )
        labels = validation.check_labels(labels, self.num_classes, images.shape[0])
        inputs = {**self._noise_inputs(noise), "known": images, "known_mask": mask.astype(np.uint8)}
        return np.asarray(self._run("complete", inputs, labels, "images"))

    def _noise_inputs(self, noise):
        """{signature input name: array} of checked noise."""
        if isinstance(noise, dict):
            return {name: np.asarray(value) for name, value in noise.items()}
        return {next(iter(self.noise_spec)): np.asarray(noise)}

    def _run(self, signature, inputs, labels, output):
        if labels is not None:
            inputs["labels"] = np.asarray(labels, np.int32)
        return self._call(signature, inputs)[output]


class KerasRunner(Runner):
    """A Keras model behind the runners' checked `sample` / `log_prob`, with the exports' log_prob.

    Example:

    ```python
    runner = KerasRunner(VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8)))
    images = runner.sample(runner.make_noise(2, seed=0))     # as the exports would sample
    ```
    """

    def __init__(self, model):
        self.model = model
        super().__init__(
            dict(
                image_shape=model.image_shape,
                noise=formats.noise_spec_json(model.noise_spec),
                num_levels=model.num_levels,
                num_classes=model.num_classes,
                has_log_prob=model.has_log_prob,
                signatures=["sample"]
                + (["log_prob"] if model.has_log_prob else [])
                + (["complete"] if hasattr(model, "complete") else []),
            )
        )

    def _call(self, signature, inputs):
        noise = {name: inputs[name] for name in self.noise_spec if name in inputs}
        if len(noise) == 1:
            [noise] = noise.values()
        if signature == "complete":
            return {
                "images": self.model.complete(
                    inputs["known"], inputs["known_mask"] != 0, noise, inputs.get("labels")
                )
            }
        if signature == "sample":
            return {"images": self.model.sample(noise, inputs.get("labels"))}
        return {
            "log_prob": self.model._export_log_prob(
                tf.constant(inputs["images"]), inputs.get("labels")
            )
        }


class SavedModelRunner(Runner):
    """An export's SavedModel, loaded with `tf.saved_model.load`, run through its signatures.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    folder = f"{tempfile.mkdtemp()}/export"
    manifest = export.export(model, folder, verbose=False)
    runner = SavedModelRunner(f"{folder}/saved_model", manifest)   # or runtime.open_artifact(folder)
    images = runner.sample(runner.make_noise(2, seed=0))
    ```
    """

    def __init__(self, path, manifest):
        super().__init__(_spec_from_manifest(manifest))
        self.loaded = tf.saved_model.load(path)

    def _call(self, signature, inputs):
        return self.loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})


class LiteRTRunner(Runner):
    """Runs a .tflite file with LiteRT; `num_threads` None lets LiteRT choose.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    folder = f"{tempfile.mkdtemp()}/export"
    manifest = export.export(model, folder, verbose=False)
    runner = LiteRTRunner(f"{folder}/model.tflite", manifest, num_threads=1)
    images = runner.sample(runner.make_noise(2, seed=0))     # the same images as Keras
    ```
    """

    # LiteRT holds every intermediate of a call at once: a PixelVAE's k = 100 bound on 200 images
    # took over 21 GB here; 8 at a time, 1.8 GB.
    log_prob_batch = 8

    def __init__(self, path, manifest, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(_spec_from_manifest(manifest))
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.signatures = set(self.interpreter.get_signature_list())  # a quantized copy has fewer

    def _call(self, signature, inputs):
        return self.interpreter.get_signature_runner(signature)(**inputs)


def _spec_from_manifest(manifest):
    return dict(manifest, has_log_prob="log_prob" in manifest["signatures"])


def _read_manifest(export_dir):
    path = os.path.join(export_dir, formats.MANIFEST)
    if not os.path.exists(path):
        raise ArtifactError(
            f"{export_dir}: no {formats.MANIFEST}; not a keras_gen export directory."
        )
    try:
        return formats.read_manifest(export_dir)
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}: corrupt ({error}).") from None


def verify_files(export_dir, manifest, relative):
    """Checks the sha256 of `relative` (a file, or a folder's files) against export.json.

    Raises ArtifactError for a file that is changed, missing or not listed, so a
    tampered or half-copied export is refused before it runs.
    """
    listed = manifest.get("files", {})
    wanted = {
        name: digest
        for name, digest in listed.items()
        if name == relative or name.startswith(relative.rstrip("/") + "/")
    }
    if not wanted:
        raise ArtifactError(
            f"{export_dir}: {formats.MANIFEST} lists no sha256 for {relative}; re-export the model."
        )
    for name, digest in wanted.items():
        path = os.path.join(export_dir, name)
        if not os.path.exists(path):
            raise ArtifactError(
                f"{path}: missing; {formats.MANIFEST} lists it. The export is incomplete."
            )
        if formats.sha256(path) != digest:
            raise ArtifactError(
                f"{path}: its sha256 does not match {formats.MANIFEST}; the file was changed "
                "or damaged after export. Re-export or copy the export again."
            )


def _verified_manifest(path):
    """The export.json beside `path` (a file or folder of an export), after checking `path`'s sha256 sums."""
    export_dir = os.path.dirname(path)
    manifest = _read_manifest(export_dir)
    verify_files(export_dir, manifest, os.path.basename(path))
    return manifest


RUNTIMES = ("savedmodel", "tflite") + tuple(f"tflite-{name}" for name in formats.QUANTIZED_TFLITE)


def _tflite_file(runtime):
    """The file in an export directory that a "tflite[-quantization]" runtime runs."""
    return formats.QUANTIZED_TFLITE[runtime.split("-", 1)[1]] if "-" in runtime else formats.TFLITE


def open_artifact(path, runtime=None, num_threads=None):
    """Opens a `.keras` file, an export directory, its saved_model/ or its model.tflite.

    A `.keras` model runs in float32 even if it trained in bfloat16, as its
    exports do, so the same noise gives the same images in every runtime.

    Args:
        runtime: for an export directory, "savedmodel" (default), "tflite",
            or a quantized copy: "tflite-int8", "tflite-float16".
        num_threads: LiteRT's threads (default: LiteRT's choice).
    """
    path = os.path.abspath(path)
    if path.endswith(".keras"):
        return KerasRunner(precision.float32_twin(load_keras(path)))
    if path.endswith(".tflite"):
        if not os.path.exists(path):
            raise ArtifactError(f"{path}: no such file.")
        return LiteRTRunner(path, _verified_manifest(path), num_threads)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb")):
        return SavedModelRunner(path, _verified_manifest(path))
    if os.path.isdir(path):
        manifest = _read_manifest(path)
        if runtime in (None, "savedmodel"):
            verify_files(path, manifest, formats.SAVED_MODEL)
            return SavedModelRunner(os.path.join(path, formats.SAVED_MODEL), manifest)
        if runtime not in RUNTIMES:
            raise ArtifactError(
                f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}."
            )
        tflite = _tflite_file(runtime)
        if tflite != formats.TFLITE and not os.path.exists(os.path.join(path, tflite)):
            raise ArtifactError(
                f"{path} has no {tflite}; export it with --quantize "
                f"{runtime.split('-', 1)[1]} (python -m keras_gen export ... --quantize)."
            )
        verify_files(path, manifest, tflite)  # also says when model.tflite is missing
        return LiteRTRunner(os.path.join(path, tflite), manifest, num_threads)
    raise ArtifactError(
        f"{path}: not a .keras file, a .tflite file or an export directory (missing or unknown)."
    )


def sample_in_batches(runner, noise, labels=None, batch_size=64, progress=True):
    """Samples `noise` in chunks with a progress bar; returns (N, H, W, C) uint8."""
    count = conventions.noise_batch_size(noise)
    # On a terminal the bar updates in place; a log gets one line at the end.
    verbose = 1 if quiet.live_progress() else 2
    bar = keras.utils.Progbar(count, unit_name="image", verbose=verbose) if progress else None
    chunks = []
    for start in range(0, count, batch_size):
        chunk_labels = None if labels is None else labels[start : start + batch_size]
        chunks.append(
            runner.sample(conventions.slice_noise(noise, start, start + batch_size), chunk_labels)
        )
        if bar:
            bar.add(len(chunks[-1]))
    return np.concatenate(chunks)
