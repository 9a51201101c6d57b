import hashlib
import json
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf

from keras_gen import export, runtime
from keras_gen.conventions import pixels_to_levels
from keras_gen.models import VAE
from tests.helpers import assert_export_parity


@pytest.fixture(scope="module")
def exported_vae(tmp_path_factory):
    model = VAE(image_shape=(8, 8, 1), latent_dim=3, widths=(4, 8), eval_num_samples=16, seed=0)
    directory = str(tmp_path_factory.mktemp("export") / "vae")
    images = (np.arange(4 * 64).reshape(4, 8, 8, 1) % 5 == 0).astype(np.uint8)
    assert_export_parity(model, directory, images)  # Keras, SavedModel and LiteRT agree
    with open(os.path.join(directory, "export.json")) as file:
        return model, directory, json.load(file)


def test_vae_parity_across_keras_savedmodel_and_litert(exported_vae):
    model, directory, _ = exported_vae
    assert os.path.exists(os.path.join(directory, "model.tflite"))


def test_litert_scores_a_large_batch_in_pieces_with_the_same_figures(exported_vae):
    _, directory, _ = exported_vae
    images = (np.arange(19 * 64).reshape(19, 8, 8, 1) % 7 == 0).astype(np.uint8)
    litert = runtime.open_artifact(directory, runtime="tflite")
    assert litert.log_prob_batch < len(images)  # three calls: 8, 8 and 3 images
    expected = runtime.open_artifact(directory).log_prob(images)  # SavedModel, one call
    np.testing.assert_allclose(litert.log_prob(images), expected, rtol=1e-5)
    assert litert.log_prob(images[:1]).shape == (1,)


def test_manifest_describes_the_export(exported_vae):
    model, directory, manifest = exported_vae
    assert manifest["signatures"]["sample"]["inputs"]["noise"] == {
        "shape": [None, 3],
        "dtype": "float32",
    }
    assert manifest["signatures"]["log_prob"]["inputs"]["images"]["dtype"] == "uint8"
    assert manifest["config"]["latent_dim"] == 3 and manifest["noise_kind"] == "normal"
    for relative, digest in manifest["files"].items():
        with open(os.path.join(directory, relative), "rb") as file:
            assert hashlib.sha256(file.read()).hexdigest() == digest
    assert "model.tflite" in manifest["files"]


def test_existing_directory_is_refused_unless_overwrite(exported_vae):
    model, directory, _ = exported_vae
    with pytest.raises(FileExistsError, match="overwrite"):
        export.export(model, directory, verbose=False)
    export.export(model, directory, overwrite=True, verbose=False)
    assert sorted(os.listdir(os.path.dirname(directory))) == ["vae"]


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise export.ExportError("conversion failed")

    model = VAE(image_shape=(8, 8, 1), widths=(4, 8))
    to_tflite = export.to_tflite
    monkeypatch.setattr(export, "to_tflite", broken)
    with pytest.raises(export.ExportError):
        export.export(model, str(tmp_path / "out"), verbose=False)
    assert os.listdir(tmp_path) == []

    # Over an earlier export: the crash leaves it whole, and it still opens (its sha256 sums match).
    monkeypatch.setattr(export, "to_tflite", to_tflite)
    export.export(model, str(tmp_path / "out"), verbose=False)
    manifest = (tmp_path / "out" / "export.json").read_text()
    monkeypatch.setattr(export, "to_tflite", broken)
    with pytest.raises(export.ExportError):
        export.export(model, str(tmp_path / "out"), overwrite=True, verbose=False)
    assert (
        os.listdir(tmp_path) == ["out"]
        and (tmp_path / "out" / "export.json").read_text() == manifest
    )
    runtime.open_artifact(str(tmp_path / "out" / "model.tflite")).sample(model.make_noise(1))


def test_mixed_precision_model_exports_as_float32(tmp_path):
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = VAE(image_shape=(8, 8, 1), latent_dim=3, widths=(4, 8), seed=0)
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.compute_dtype == "bfloat16"
    directory = str(tmp_path / "mixed")
    export.export(model, directory, verbose=False)
    noise = model.make_noise(4, seed=1)
    exported = runtime.open_artifact(directory, "tflite").sample(noise)
    # bfloat16 keeps ~3 significant digits, so compare against the float32 twin loosely.
    assert np.abs(exported.astype(int) - np.asarray(model.sample(noise), int)).max() <= 8


def test_a_mixed_precision_keras_file_samples_like_its_export(tmp_path):
    import keras

    from keras_gen.models import PixelRNN

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = PixelRNN(image_shape=(6, 6, 1), num_levels=16, units=8, head_filters=8, seed=0)
    finally:
        keras.config.set_dtype_policy("float32")
    model.set_weights(
        [3.0 * w for w in model.get_weights()]
    )  # peaked logits, where bfloat16 rounding shows
    saved, directory = str(tmp_path / "mixed.keras"), str(tmp_path / "export")
    model.save(saved)
    export.export(model, directory, verbose=False)
    noise = model.make_noise(16, seed=2)
    exported = runtime.open_artifact(directory, "tflite").sample(noise)
    # The network in bfloat16 draws some other levels (the fast samplers compute in float32, as exports do).
    assert not np.array_equal(
        exported, model.levels_to_pixels(model.sample_levels(noise, method="plain"))
    )
    np.testing.assert_array_equal(model.sample(noise), exported)
    np.testing.assert_array_equal(runtime.open_artifact(saved).sample(noise), exported)


def test_quantized_copies_have_the_same_signatures_and_report_their_quality(tmp_path):
    from keras_gen import cli
    from keras_gen.models import PixelCNN

    # Widths large enough that dynamic-range quantization quantizes the kernels (over 1024 weights).
    model = PixelCNN(image_shape=(6, 6, 1), filters=64, num_blocks=2, seed=0)
    directory = str(tmp_path / "export")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # copies that keep the likelihood export without a warning
        manifest = export.export(model, directory, verbose=False, quantize="int8,float16")
    sizes = manifest["file_sizes"]
    assert sizes["model_int8.tflite"] < 0.5 * sizes["model.tflite"]
    assert sizes["model_float16.tflite"] < 0.75 * sizes["model.tflite"]
    images = np.random.default_rng(0).integers(0, 2, (4, 6, 6, 1)).astype(np.uint8)
    noise = model.make_noise(export.QUALITY_BATCH, seed=0)
    float_runner = runtime.open_artifact(directory, "tflite")
    for name in ("int8", "float16"):
        quality = manifest["quantized"][name]
        assert (
            quality["file"] == f"model_{name}.tflite" and quality["batch"] == export.QUALITY_BATCH
        )
        runner = runtime.open_artifact(directory, f"tflite-{name}")
        same = np.mean(runner.sample(noise) == float_runner.sample(noise))
        assert quality["same_pixels_fraction"] == pytest.approx(same) and same > 0.5
        difference = np.abs(runner.log_prob(images) - float_runner.log_prob(images))
        assert 0.0 < quality["log_prob_mean_abs_diff_nats"] < 1.0 and difference.max() < 1.0
        checked = pixels_to_levels(float_runner.sample(noise), model.num_levels)
        scale = np.mean(np.abs(float_runner.log_prob(checked)))
        assert quality["log_prob_relative_diff"] == pytest.approx(
            quality["log_prob_mean_abs_diff_nats"] / scale
        )
    assert cli.RUNTIMES == runtime.RUNTIMES


def test_a_quantized_copy_that_loses_the_likelihood_is_exported_with_a_warning(
    tmp_path, monkeypatch
):
    from keras_gen.models import PixelCNN

    model = PixelCNN(image_shape=(6, 6, 1), filters=64, num_blocks=1, seed=0)
    drifted = {"same_pixels_fraction": 0.3, "log_prob_mean_abs_diff_nats": 9.0}
    monkeypatch.setattr(
        export,
        "quantization_quality",
        lambda *args: dict(drifted, log_prob_relative_diff=0.25),
    )
    with pytest.warns(RuntimeWarning, match=r"model_int8.tflite moves log_prob by 9.0 nats .*25%"):
        export.export(model, str(tmp_path / "export"), verbose=False, quantize="int8")


def test_bad_quantization_names_and_missing_quantized_files_get_clear_errors(exported_vae):
    model, directory, _ = exported_vae
    with pytest.raises(
        ValueError, match=r"Unknown quantization int4; choose from \['float16', 'int8'\]"
    ):
        export.export(model, directory + "_q", verbose=False, quantize="int4")
    with pytest.raises(
        runtime.ArtifactError, match="has no model_int8.tflite; export it with --quantize int8"
    ):
        runtime.open_artifact(directory, "tflite-int8")


def _graph_size(model):
    """Ops in the traced fast sampler, its loop bodies included."""
    noise = tf.TensorSpec((None,) + model.noise_shape, tf.float32)
    graph_def = (
        model._compiled_sampler("fast")
        .get_concrete_function(noise, None, None, None)
        .graph.as_graph_def()
    )
    return len(graph_def.node) + sum(
        len(function.node_def) for function in graph_def.library.function
    )


@pytest.mark.parametrize(
    "name, options",
    [
        ("pixelcnn", {}),
        ("gated_pixelcnn", {}),
        ("pixelrnn", {"kind": "row_lstm"}),
        ("pixelrnn", {"kind": "diagonal_bilstm"}),
    ],
)
def test_fast_samplers_hold_one_columns_ops_whatever_the_width(name, options):
    # Graph loops over rows and columns keep exports (LiteRT op tables) from growing with the image.
    from keras_gen import models

    sizes = [
        _graph_size(models.get(name)(image_shape=(4, width, 3), num_levels=4, seed=0, **options))
        for width in (5, 9)
    ]
    assert sizes[0] == sizes[1], sizes


@pytest.mark.parametrize(
    "name, options",
    [
        (
            "pixelcnn",
            dict(
                image_shape=(6, 5, 3),
                num_levels=4,
                filters=6,
                num_blocks=1,
                head_filters=6,
                num_classes=3,
            ),
        ),
        ("pixelrnn", dict(kind="diagonal_bilstm", image_shape=(5, 4, 1), units=4, num_layers=1)),
    ],
)
def test_savedmodel_sample_is_xla_compiled_and_equals_the_plain_loop(name, options, tmp_path):
    from keras_gen import models

    model = models.get(name)(seed=0, **options)
    manifest = export.export(model, tmp_path / "export", verbose=False)
    assert manifest["saved_model_sample"] == "xla"
    graph = (tmp_path / "export" / "saved_model" / "saved_model.pb").read_bytes()
    assert b"_XlaMustCompile" in graph
    labels = np.arange(4, dtype=np.int32) % 3 if model.num_classes else None
    noise = model.make_noise(4, seed=1)
    plain = model.levels_to_pixels(model.sample_levels(noise, labels, method="plain")).numpy()
    for source in ("export", "export/model.tflite"):
        runner = runtime.open_artifact(str(tmp_path / source))
        np.testing.assert_array_equal(runner.sample(noise, labels), plain, err_msg=source)
    # A model without a fast sampler's loop keeps a plain graph.
    assert VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8)).xla_served_sample is False
