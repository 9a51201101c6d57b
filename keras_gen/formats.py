"""The export format: an export directory's file names, its manifest and checksums.

Layout of an export directory:
    saved_model/   signatures "sample" (noise [, labels] -> uint8 images) and, for models with a
                   likelihood, "log_prob" (images -> nats per image)
    model.tflite   the same signatures for LiteRT, built-in ops only
    model_int8.tflite, model_float16.tflite
                   optional quantized copies
    export.json    the manifest: shapes, dtypes, the model's config, each file's sha256 and size

The writer (`keras_gen.export`) and the readers (`keras_gen.runtime`, `keras_gen.zoo`) both import
this module, which imports nothing from keras_gen.
"""

import hashlib
import json
import os

FORMAT_VERSION = 1
MANIFEST = "export.json"
SAVED_MODEL = "saved_model"
TFLITE = "model.tflite"
QUANTIZED_TFLITE = {"int8": "model_int8.tflite", "float16": "model_float16.tflite"}


def sha256(path):
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_below(directory):
    """Paths of every file below `directory`, relative to it, in a fixed order."""
    return sorted(
        os.path.relpath(os.path.join(root, f), directory)
        for root, _, files in os.walk(directory)
        for f in files
    )


def read_manifest(export_dir):
    """export.json of `export_dir` as a dict; raises FileNotFoundError or ValueError (corrupt)."""
    path = os.path.join(export_dir, MANIFEST)
    with open(path) as file:
        return json.load(file)


def noise_spec_json(noise_spec):
    """{name: {"shape", "kind"}}: a `noise_spec` as export.json holds it."""
    return {
        name: {"shape": list(shape), "kind": kind} for name, (shape, kind) in noise_spec.items()
    }


def noise_spec_of(spec):
    """{name: (shape, kind)} from a manifest: its "noise", or, in exports made before the noise
    became a named structure, its one "noise" input of `noise_shape` and `noise_kind`."""
    if "noise" in spec:
        return {
            name: (tuple(entry["shape"]), entry["kind"]) for name, entry in spec["noise"].items()
        }
    return {"noise": (tuple(spec["noise_shape"]), spec["noise_kind"])}
