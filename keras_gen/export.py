"""Export any keras_gen model to a SavedModel and a TFLite (LiteRT) model.

Layout of an export directory:
    saved_model/   signatures "sample" (noise [, labels] -> uint8 images) and,
                   for models with a likelihood, "log_prob" (images -> nats per image)
    model.tflite   the same signatures, built-in ops only
    export.json    shapes, dtypes, the model's config and each file's sha256
"""

import hashlib
import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_gen.files import give_default_permissions

FORMAT_VERSION = 1
MANIFEST = "export.json"
SAVED_MODEL = "saved_model"
TFLITE = "model.tflite"


class ExportError(RuntimeError):
    """An export could not be written."""


def float32_twin(model):
    """The model itself if it computes in float32, else a float32 copy with the same weights.

    TFLite has no bfloat16 kernels, so mixed-precision models export as float32.
    """
    if model.dtype_policy.compute_dtype == "float32":
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        config = {**model.get_config(), "dtype": "float32"}
        twin = type(model).from_config(config)
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights(model.get_weights())
    return twin


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _spec_json(spec):
    return {"shape": [None if d is None else int(d) for d in spec.shape], "dtype": spec.dtype.name}


def to_tflite(saved_model_dir, signature_keys):
    """Converts signatures of a SavedModel to TFLite bytes with built-in ops only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=signature_keys)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as error:
        raise ExportError(
            "TFLite conversion with built-in ops only failed (an op would need Flex, "
            f"which LiteRT's Python runtime cannot run): {str(error)[:2000]}"
        ) from None


def export(model, directory, overwrite=False, verbose=True):
    """Writes `model` to `directory` as SavedModel + TFLite + export.json.

    The export is assembled in a temporary sibling folder and renamed into
    place at the end, so a failure leaves nothing behind. An existing
    `directory` is replaced only with `overwrite=True`.

    Returns:
        The manifest written to export.json, as a dict.
    """
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not overwrite:
        raise FileExistsError(f"Export directory {directory} exists; pass overwrite=True (CLI: --overwrite).")
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.partial-", dir=parent)
    give_default_permissions(staging, directory=True)
    try:
        exported = float32_twin(model)
        endpoints = exported.export_endpoints()
        archive = keras.export.ExportArchive()
        archive.track(exported)
        for name, (function, signature) in endpoints.items():
            archive.add_endpoint(name, function, input_signature=signature)
        saved_model_dir = os.path.join(staging, SAVED_MODEL)
        archive.write_out(saved_model_dir, verbose=False)
        with open(os.path.join(staging, TFLITE), "wb") as file:
            file.write(to_tflite(saved_model_dir, list(endpoints)))
        manifest = {
            "format_version": FORMAT_VERSION,
            "class_name": type(model).__name__,
            "config": keras.saving.serialize_keras_object(model)["config"],
            "image_shape": list(model.image_shape),
            "num_levels": model.num_levels,
            "num_classes": model.num_classes,
            "noise_shape": list(model.noise_shape),
            "noise_kind": model.noise_kind,
            "signatures": {
                name: {"inputs": {spec.name: _spec_json(spec) for spec in signature}}
                for name, (_, signature) in endpoints.items()
            },
            "files": {
                os.path.relpath(os.path.join(root, f), staging): _sha256(os.path.join(root, f))
                for root, _, files in os.walk(staging)
                for f in sorted(files)
            },
        }
        with open(os.path.join(staging, MANIFEST), "w") as file:
            json.dump(manifest, file, indent=2, default=str)
        if os.path.exists(directory):
            retired = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.old-", dir=parent)
            os.rename(directory, os.path.join(retired, "old"))
            os.rename(staging, directory)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if verbose:
        print(f"Exported {type(model).__name__} to {directory}: {SAVED_MODEL}/, {TFLITE}, {MANIFEST}")
    return manifest
