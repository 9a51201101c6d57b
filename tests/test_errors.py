"""Every bad input gets one clear error naming what was expected and what came."""

import os

import keras
import numpy as np
import pytest

from keras_gen import cli, export, runtime
from keras_gen.models import VAE
from keras_gen.validation import InputError


@pytest.fixture(scope="module")
def model():
    return VAE(image_shape=(8, 8, 1), latent_dim=3, widths=(4, 8), seed=0)


@pytest.mark.parametrize(
    "images, match",
    [
        (
            np.zeros((2, 8, 7, 1), np.uint8),
            r"shape \(batch, 8, 8, 1\), received shape \(2, 8, 7, 1\)",
        ),
        (np.zeros((8, 8, 1), np.uint8), r"received shape \(8, 8, 1\)"),
        (np.zeros((2, 8, 8, 1), np.float32), "integer level images.*float32"),
        (np.full((2, 8, 8, 1), 2, np.uint8), r"values in \[0, 1\].*received values in \[2, 2\]"),
    ],
)
def test_bad_images_to_log_prob(model, images, match):
    with pytest.raises(InputError, match=match):
        model.log_prob(images)


@pytest.mark.parametrize(
    "noise, match",
    [
        (np.zeros((2, 4), np.float32), r"shape \(batch, 3\), received shape \(2, 4\)"),
        (np.zeros((2, 3), np.int32), "float noise"),
        (np.full((2, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_noise_to_sample(model, noise, match):
    with pytest.raises(InputError, match=match):
        model.sample(noise)


def test_labels_to_an_unconditional_model(model):
    with pytest.raises(InputError, match="not class-conditional"):
        model.sample(model.make_noise(2), labels=[0, 1])


def test_exported_runners_check_inputs_the_same_way(model, tmp_path):
    directory = str(tmp_path / "export")
    export.export(model, directory, verbose=False)
    for runner in (runtime.open_artifact(directory), runtime.open_artifact(directory, "tflite")):
        with pytest.raises(InputError, match=r"\(batch, 3\)"):
            runner.sample(np.zeros((1, 5), np.float32))
        with pytest.raises(InputError, match="values in"):
            runner.log_prob(np.full((1, 8, 8, 1), 9, np.uint8))


def test_unknown_model_name():
    from keras_gen import models

    with pytest.raises(ValueError, match=r"Unknown model 'nope'.*vae"):
        models.get("nope")


def _save_foreign(path):
    foreign = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    foreign.save(path)


@pytest.mark.parametrize("kind", ["missing", "truncated", "foreign", "not_zip"])
def test_bad_keras_files(model, tmp_path, kind):
    path = str(tmp_path / "model.keras")
    if kind == "truncated":
        model.save(path)
        with open(path, "rb") as file:
            content = file.read()
        with open(path, "wb") as file:
            file.write(content[: len(content) // 2])
    elif kind == "foreign":
        _save_foreign(path)
    elif kind == "not_zip":
        with open(path, "w") as file:
            file.write("hello")
    with pytest.raises(runtime.ArtifactError, match=path.replace("\\", "\\\\")) as error:
        runtime.load_keras(path)
    assert {
        "missing": "no such file",
        "truncated": "truncated",
        "foreign": "not a keras_gen",
        "not_zip": "not a .keras",
    }[kind] in str(error.value)


def test_cli_reports_errors_without_traceback(model, tmp_path, capsys):
    path = str(tmp_path / "model.keras")
    model.save(path)
    out = str(tmp_path / "export")
    assert cli.main(["export", path, "--out", out]) == 0
    assert cli.main(["export", path, "--out", out]) == 2
    assert "exists" in capsys.readouterr().err
    assert (
        cli.main(["sample", str(tmp_path / "absent.keras"), "--out", str(tmp_path / "x.png")]) == 2
    )
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["sample", path, "--out", str(tmp_path / "x.jpg")]) == 2
    assert ".png or .npy" in capsys.readouterr().err
    assert cli.main(["train", "nope", "--dataset", "mnist", "--out", str(tmp_path / "r")]) == 2
    assert "Unknown model" in capsys.readouterr().err
    assert cli.main(["evaluate", path, "--dataset", "no_such_dataset"]) == 2
    assert "no_such_dataset" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.png")
