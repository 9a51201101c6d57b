"""Noise as a named structure: a model with a latent z and pixel noise, in every runtime."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import export, runtime
from keras_gen.conventions import unit_to_pixels
from keras_gen.models import GenerativeModel, PixelCNN
from keras_gen.validation import InputError


@keras.saving.register_keras_serializable(package="keras_gen_tests")
class TwoNoises(GenerativeModel):
    """Pixels on where their uniform noise is below sigmoid(dense(z)): two noise inputs, as a
    PixelVAE has (a latent z, then one uniform per sub-pixel)."""

    def __init__(self, image_shape=(4, 4, 1), latent_dim=3, **kwargs):
        super().__init__(image_shape=image_shape, num_levels=2, **kwargs)
        self.latent_dim = latent_dim
        self.dense = keras.layers.Dense(16)
        self.dense.build((None, latent_dim))
        self.built = True

    @property
    def noise_spec(self):
        return {"z": ((self.latent_dim,), "normal"), "pixels": (self.image_shape, "uniform")}

    def _sample(self, noise, labels):
        probabilities = tf.sigmoid(tf.reshape(self.dense(noise["z"]), (-1,) + self.image_shape))
        return unit_to_pixels(tf.cast(noise["pixels"] < probabilities, tf.float32))

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}


def test_make_noise_draws_each_named_input_from_one_seed():
    model = TwoNoises(seed=0)
    noise = model.make_noise(5, seed=1)
    assert sorted(noise) == ["pixels", "z"]
    assert noise["z"].shape == (5, 3) and noise["pixels"].shape == (5, 4, 4, 1)
    assert 0 <= noise["pixels"].min() and noise["pixels"].max() < 1
    again = model.make_noise(5, seed=1)
    assert all(np.array_equal(noise[name], again[name]) for name in noise)
    # A model with one noise input keeps its bare array, as before.
    single = PixelCNN(image_shape=(4, 4, 1), filters=2, num_blocks=1, head_filters=2)
    assert isinstance(single.make_noise(2, seed=0), np.ndarray)


def test_named_noise_is_the_exports_signature_inputs_in_every_runtime(tmp_path):
    model = TwoNoises(seed=0)
    manifest = export.export(model, tmp_path / "export", verbose=False)
    assert manifest["noise"] == {
        "pixels": {"shape": [4, 4, 1], "kind": "uniform"},
        "z": {"shape": [3], "kind": "normal"},
    }
    assert set(manifest["signatures"]["sample"]["inputs"]) == {"z", "pixels"}
    assert "noise_shape" not in manifest
    loaded = tf.saved_model.load(str(tmp_path / "export" / "saved_model"))
    assert set(loaded.signatures["sample"].structured_input_signature[1]) == {"z", "pixels"}
    noise = model.make_noise(6, seed=2)
    expected = np.asarray(model.sample(noise))
    assert 0 < expected.mean() < 255
    for source in ("export", "export/model.tflite"):
        runner = runtime.open_artifact(str(tmp_path / source))
        assert runner.noise_spec == model.noise_spec
        np.testing.assert_array_equal(runner.sample(noise), expected, err_msg=source)
        np.testing.assert_array_equal(runner.sample(runner.make_noise(6, seed=2)), expected)
        np.testing.assert_array_equal(
            runtime.sample_in_batches(runner, noise, batch_size=4, progress=False), expected
        )


def test_wrong_noise_structures_get_clear_errors():
    model = TwoNoises(seed=0)
    noise = model.make_noise(2, seed=0)
    with pytest.raises(
        InputError, match=r"expected a dict with \['pixels', 'z'\], received ndarray"
    ):
        model.sample(noise["z"])
    with pytest.raises(InputError, match=r"received \['z'\]"):
        model.sample({"z": noise["z"]})
    with pytest.raises(InputError, match="the same batch size"):
        model.sample({"z": noise["z"][:1], "pixels": noise["pixels"]})
    with pytest.raises(InputError, match="pixels: expected uniform noise"):
        model.sample({"z": noise["z"], "pixels": noise["pixels"] + 1})


def test_an_export_from_before_the_named_noise_still_opens(tmp_path):
    model = PixelCNN(image_shape=(4, 4, 1), filters=2, num_blocks=1, head_filters=2, seed=0)
    export.export(model, tmp_path / "export", verbose=False)
    path = tmp_path / "export" / "export.json"
    manifest = json.loads(path.read_text())
    del manifest["noise"]  # as exports wrote it before: noise_shape and noise_kind only
    path.write_text(json.dumps(manifest))
    runner = runtime.LiteRTRunner(str(tmp_path / "export" / "model.tflite"), manifest)
    noise = model.make_noise(2, seed=0)
    np.testing.assert_array_equal(runner.sample(noise), model.sample(noise))


def test_the_cli_samples_an_export_with_named_noise(tmp_path):
    from keras_gen import cli

    model = TwoNoises(seed=0)
    export.export(model, tmp_path / "export", verbose=False)
    out = tmp_path / "samples.npy"
    assert (
        cli.main(
            [
                "sample",
                str(tmp_path / "export"),
                "--num",
                "5",
                "--seed",
                "3",
                "--batch-size",
                "2",
                "--runtime",
                "tflite",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(np.load(out), model.sample(model.make_noise(5, seed=3)))
