"""Export any keras_gen model to a SavedModel and a TFLite (LiteRT) model.

Layout of an export directory:
    saved_model/   signatures "sample" (noise [, labels] -> uint8 images),
                   for models with a likelihood, "log_prob" (images -> nats per image), and
                   for autoregressive models, "complete" (noise, known levels, known_mask
                   [, labels] -> uint8 images that keep the known sub-pixels; a plain graph);
                   an autoregressive model's "sample" is XLA-compiled (`jit_compile`), so
                   TensorFlow clients (TF Serving, tf.saved_model.load) run its fast
                   sampler as one fused loop
    model.tflite   the same signatures, built-in ops only, converted from the plain graph
    model_int8.tflite, model_float16.tflite
                   optional quantized copies (`quantize=`): int8 weights with
                   float activations (dynamic range), or float16 weights; sample and
                   log_prob only
    export.json    shapes, dtypes, the model's config, each file's sha256 and
                   size, and how closely each quantized copy follows the float model
"""

import json
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_gen import formats
from keras_gen.conventions import pixels_to_levels
from keras_gen.files import give_default_permissions
from keras_gen.formats import (  # noqa: F401
    FORMAT_VERSION,
    MANIFEST,
    QUANTIZED_TFLITE,
    SAVED_MODEL,
    TFLITE,
    sha256,
)
from keras_gen.layers.recurrent import unrolled_loops
from keras_gen.precision import float32_twin

QUALITY_BATCH = 8  # images in the fixed batch on which quantized copies are compared
# A quantized copy whose log_prob moves by more than this share of the float file's does not keep
# the model's likelihood (the colour Gated PixelCNN's int8 file: 18 %; MNIST models': under 0.1 %).
LIKELIHOOD_DRIFT_WARNING = 0.01


class ExportError(RuntimeError):
    """An export could not be written."""


def _spec_json(spec):
    return {"shape": [None if d is None else int(d) for d in spec.shape], "dtype": spec.dtype.name}


def to_tflite(saved_model_dir, signature_keys, quantize=None):
    """Converts signatures of a SavedModel to TFLite bytes with built-in ops only.

    Args:
        quantize: None (float32), "int8" (dynamic-range: int8 weights, float
            activations) or "float16" (float16 weights).
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=signature_keys
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as error:
        raise ExportError(
            "TFLite conversion with built-in ops only failed (an op would need Flex, "
            f"which LiteRT's Python runtime cannot run): {str(error)[:2000]}"
        ) from None


def check_quantize(quantize):
    """["int8", "float16"] or a comma-separated string -> a checked list of quantization names."""
    if isinstance(quantize, str):
        quantize = [name.strip() for name in quantize.split(",") if name.strip()]
    quantize = list(quantize or [])
    unknown = sorted(set(quantize) - set(QUANTIZED_TFLITE))
    if unknown:
        raise ValueError(
            f"Unknown quantization {', '.join(unknown)}; choose from {sorted(QUANTIZED_TFLITE)}."
        )
    return quantize


def quantization_quality(model, manifest, float_path, quantized_path):
    """How closely a quantized TFLite file follows the float one, on a fixed batch.

    The batch is the float model's own samples from `make_noise(QUALITY_BATCH, seed=0)`
    (and labels 0, 1, ... for conditional models), so no dataset is needed.
    Returns {"same_pixels_fraction", and with a likelihood "log_prob_mean_abs_diff_nats" and
    "log_prob_relative_diff" (that mean over the float file's mean |log_prob|)}.
    """
    from keras_gen import runtime

    reference, quantized = (
        runtime.LiteRTRunner(float_path, manifest),
        runtime.LiteRTRunner(quantized_path, manifest),
    )
    noise = model.make_noise(QUALITY_BATCH, seed=0)
    labels = np.arange(QUALITY_BATCH) % model.num_classes if model.num_classes else None
    pixels = reference.sample(noise, labels)
    quality = {"same_pixels_fraction": float(np.mean(quantized.sample(noise, labels) == pixels))}
    if model.has_log_prob:
        levels = pixels_to_levels(pixels, model.num_levels)
        reference_log_prob = reference.log_prob(levels, labels)
        difference = quantized.log_prob(levels, labels) - reference_log_prob
        quality["log_prob_mean_abs_diff_nats"] = float(np.mean(np.abs(difference)))
        quality["log_prob_relative_diff"] = quality["log_prob_mean_abs_diff_nats"] / float(
            np.mean(np.abs(reference_log_prob))
        )
    return quality


def _traced_endpoints(endpoints, loops_unrolled_for=None):
    """{name: tf.function} for `endpoints` ({name: (function, input signature)}), each traced once.

    Endpoints in `loops_unrolled_for` (default: all) are traced with the recurrent layers' loops
    unrolled, as LiteRT's built-in ops need; the others keep their graph loops and are traced when
    first written.
    """
    unrolled = set(endpoints) if loops_unrolled_for is None else loops_unrolled_for
    traced = {}
    for name, (function, signature) in endpoints.items():
        traced[name] = tf.function(function, input_signature=signature, autograph=False)
        if name in unrolled:
            with unrolled_loops():  # graph loops would need TFLite's Flex ops
                traced[name].get_concrete_function()  # traced now, in the context; reused after
    return traced


def _write_saved_model(traced, directory):
    """Writes `traced` ({name: tf.function}) as a SavedModel's signatures, for inference only.

    Signatures only: saving the functions as attributes too (as `keras.export.ExportArchive`
    does) stores every graph twice, half of saved_model.pb. Only the variables the signatures
    read are saved, once (tracking the model would save each again through its Keras wrapper).
    """
    concrete = {name: function.get_concrete_function() for name, function in traced.items()}
    holder = tf.Module()
    read = {id(variable): variable for c in concrete.values() for variable in c.variables}
    holder.read_variables = list(read.values())
    # Exports serve inference: tracing every op's gradient function only costs time.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(holder, directory, signatures=concrete, options=options)


def export(model, directory, overwrite=False, verbose=True, quantize=()):
    """Writes `model` to `directory` as SavedModel + TFLite + export.json.

    The export is assembled in a temporary sibling folder and renamed into
    place at the end, so a failure leaves nothing behind. An existing
    `directory` is replaced only with `overwrite=True`.

    Args:
        quantize: also write quantized TFLite copies: any of "int8" and
            "float16" (a list, or a comma-separated string).
    Returns:
        The manifest written to export.json, as a dict.
    """
    quantize = check_quantize(quantize)
    directory = os.path.abspath(directory)
    if os.path.exists(directory) and not overwrite:
        raise FileExistsError(
            f"Export directory {directory} exists; pass overwrite=True (CLI: --overwrite)."
        )
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.partial-", dir=parent)
    give_default_permissions(staging, directory=True)
    try:
        exported = float32_twin(model)
        endpoints = exported.chunked_export_endpoints()
        saved_model_dir = os.path.join(staging, SAVED_MODEL)
        # LiteRT converts a plain graph; TensorFlow clients get an XLA-compiled `sample` where the
        # model asks for one, in a SavedModel of its own (the plain one is removed after converting).
        compile_sample = exported.xla_served_sample
        plain_dir = (
            os.path.join(staging, ".plain_saved_model") if compile_sample else saved_model_dir
        )
        traced = _traced_endpoints(endpoints)
        _write_saved_model(traced, plain_dir)
        with open(os.path.join(staging, TFLITE), "wb") as file:
            file.write(to_tflite(plain_dir, list(endpoints)))
        if compile_sample:
            function, signature = endpoints["sample"]
            compiled = {"sample": (tf.function(function, jit_compile=True), signature)}
            _write_saved_model(
                {**traced, **_traced_endpoints(compiled, loops_unrolled_for=set())},
                saved_model_dir,
            )
        manifest = {
            "format_version": FORMAT_VERSION,
            "class_name": type(model).__name__,
            "config": keras.saving.serialize_keras_object(model)["config"],
            "image_shape": list(model.image_shape),
            "num_levels": model.num_levels,
            "num_classes": model.num_classes,
            "noise": formats.noise_spec_json(model.noise_spec),
            "signatures": {
                name: {"inputs": {spec.name: _spec_json(spec) for spec in signature}}
                for name, (_, signature) in endpoints.items()
            },
        }
        if len(model.noise_spec) == 1:  # what readers of exports before the named noise look for
            [(shape, kind)] = model.noise_spec.values()
            manifest.update(noise_shape=list(shape), noise_kind=kind)
        manifest["saved_model_sample"] = "xla" if compile_sample else "graph"
        # How closely every runtime's samples agree, and how many images a signature computes at
        # once (its batch is cut into chunks of that size inside the graph).
        manifest["sample_parity"] = dict(model.sample_parity)
        manifest["chunk_size"] = model.export_chunk_size
        manifest["quantized"] = {}
        # Quantized copies are for small deployments: sampling and scoring, not completion.
        quantized_signatures = [name for name in endpoints if name != "complete"]
        for name in quantize:
            path = os.path.join(staging, QUANTIZED_TFLITE[name])
            with open(path, "wb") as file:
                file.write(to_tflite(plain_dir, quantized_signatures, quantize=name))
            quality = quantization_quality(exported, manifest, os.path.join(staging, TFLITE), path)
            if quality.get("log_prob_relative_diff", 0.0) > LIKELIHOOD_DRIFT_WARNING:
                warnings.warn(
                    f"{QUANTIZED_TFLITE[name]} moves log_prob by "
                    f"{quality['log_prob_mean_abs_diff_nats']:,.1f} nats an image "
                    f"({quality['log_prob_relative_diff']:.0%} of the float file's) on its check "
                    "batch: it does not keep this model's likelihood; score with model.tflite.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            manifest["quantized"][name] = dict(
                file=QUANTIZED_TFLITE[name],
                batch=QUALITY_BATCH,
                signatures=quantized_signatures,
                **quality,
            )
        if compile_sample:
            shutil.rmtree(plain_dir)
        files = formats.files_below(staging)
        manifest["files"] = {
            relative: sha256(os.path.join(staging, relative)) for relative in files
        }
        manifest["file_sizes"] = {
            relative: os.path.getsize(os.path.join(staging, relative)) for relative in files
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
        written = [f"{SAVED_MODEL}/", TFLITE, *(QUANTIZED_TFLITE[name] for name in quantize)]
        print(f"Exported {type(model).__name__} to {directory}: {', '.join(written)}, {MANIFEST}")
    return manifest
