"""Every script in examples/ runs as-is, with tiny settings, offline."""

import os
import runpy
import sys

import keras
import pytest

from keras_gen.models import PixelCNN
from tests.conftest import REPO


def run_example(name, *argv):
    path = os.path.join(REPO, "examples", name)
    saved = sys.argv
    sys.argv = [path, *map(str, argv)]
    try:
        runpy.run_path(path, run_name="__main__")
    finally:
        sys.argv = saved


@pytest.mark.parametrize("model", ["pixelcnn", "pixelvae"])
def test_fit_on_your_dataset(model, mock_dataset, tmp_path):
    run_example(
        "fit_on_your_dataset.py",
        "--model",
        model,
        "--dataset",
        "fashion_mnist",
        "--manual-dir",
        mock_dataset,
        "--epochs",
        "1",
        "--take",
        "32",
        "--out",
        tmp_path / "model.keras",
    )
    assert (tmp_path / "model.keras").is_file()


def test_vae_in_your_code(mock_dataset, tmp_path):
    run_example(
        "vae_in_your_code.py", "--manual-dir", mock_dataset, "--epochs", "1", "--out", tmp_path
    )
    assert (tmp_path / "vae_export" / "model.tflite").is_file()


@pytest.mark.parametrize("script", ["load_savedmodel.py", "litert_on_device.py"])
def test_export_readers_need_only_tensorflow_or_litert(script, tmp_path, capsys):
    export_dir = os.path.join(REPO, "saved_models", "conditional_gan_mnist")
    out = (
        ["--out", tmp_path / "samples.npy", "--num", "2"] if script == "litert_on_device.py" else []
    )
    run_example(script, export_dir, *out)
    assert "keras_gen" not in open(os.path.join(REPO, "examples", script)).read().split('"""')[2]
    printed = capsys.readouterr().out
    assert "sampled (4, 28, 28, 1)" in printed or "2 images" in printed


def test_vae_latent_space(mock_dataset, tmp_path):
    run_example(
        "vae_latent_space.py",
        "--manual-dir",
        mock_dataset,
        "--epochs",
        "1",
        "--take",
        "64",
        "--grid",
        "3",
        "--out",
        tmp_path,
    )
    assert (tmp_path / "interpolation.png").is_file() and (tmp_path / "manifold.png").is_file()


def test_conditional_gan_classes(tmp_path):
    run_example("conditional_gan_classes.py", "--per-class", "2", "--out", tmp_path / "classes.png")
    assert (tmp_path / "classes.png").is_file()


def test_pixelcnn_completion(mock_dataset, tmp_path):
    model = PixelCNN(filters=4, num_blocks=1, head_filters=4, seed=0)
    model.save(tmp_path / "tiny.keras")
    run_example(
        "pixelcnn_completion.py",
        "--model",
        tmp_path / "tiny.keras",
        "--manual-dir",
        mock_dataset,
        "--digits",
        "2",
        "--completions",
        "2",
        "--method",
        "plain",
        "--out",
        tmp_path / "completions.png",
    )
    assert (tmp_path / "completions.png").is_file()


def test_pixelvae(mock_dataset, tmp_path):
    run_example(
        "pixelvae.py",
        "--manual-dir",
        mock_dataset,
        "--epochs",
        "1",
        "--take",
        "64",
        "--importance-samples",
        "2",
        "--out",
        tmp_path,
    )
    assert (tmp_path / "samples_per_z.png").is_file() and (tmp_path / "pixelvae.keras").is_file()


def test_vqvae(mock_dataset, tmp_path):
    run_example(
        "vqvae.py",
        "--dataset",
        "fashion_mnist",
        "--manual-dir",
        mock_dataset,
        "--epochs",
        "1",
        "--prior-epochs",
        "1",
        "--take",
        "32",
        "--out",
        tmp_path,
    )
    assert (tmp_path / "reconstructions_and_samples.png").is_file()


def test_colour_on_your_images(tmp_path):
    from tests.test_image_files import colour_folder

    folder = colour_folder(str(tmp_path / "photos"), count=24)
    out = tmp_path / "out"
    run_example(
        "colour_on_your_images.py",
        folder,
        *("--image-size", 8, "--epochs", 1, "--filters", 6, "--layers", 2, "--out", out),
    )
    assert (out / "samples.png").is_file() and (out / "export" / "model.tflite").is_file()
    model = keras.saving.load_model(out / "model.keras")
    assert model.image_shape == (8, 8, 3) and model.likelihood_name == "logistic_mixture"
