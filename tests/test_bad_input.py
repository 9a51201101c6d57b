"""The bad-input table: each bad input, through the CLI or the Python API, gets one clear error
saying what was expected and what was received; no traceback, and no file left behind."""

import os
import re
import shutil

import numpy as np
import pytest

from keras_gen import cli, export, runtime, zoo
from keras_gen.models import VAE, ConditionalGAN, GatedPixelCNN, PixelCNN, PixelRNN
from keras_gen.validation import InputError

# (case, argv; {placeholders} are filled from the `artifacts` fixture, what stderr must say)
CLI_CASES = [
    (
        "batch size 0",
        "train vae --dataset mnist --batch-size 0 --out {out}",
        r"--batch-size: expected a whole number >= 1, received 0",
    ),
    (
        "epochs 0",
        "train vae --dataset mnist --epochs 0 --out {out}",
        r"--epochs: expected a whole number >= 1, received 0",
    ),
    (
        "epochs not a number",
        "train vae --dataset mnist --epochs five --out {out}",
        r"received 'five'",
    ),
    (
        "steps per epoch 0",
        "train vae --dataset mnist --steps-per-epoch 0 --out {out}",
        r">= 1, received 0",
    ),
    (
        "negative learning rate",
        "train vae --dataset mnist --learning-rate -1 --out {out}",
        r"finite number > 0, received -1",
    ),
    (
        "NaN learning rate",
        "train vae --dataset mnist --learning-rate nan --out {out}",
        r"finite number > 0, received nan",
    ),
    (
        "take 0",
        "train vae --dataset mnist --take 0 --out {out}",
        r"--take: expected a whole number >= 1",
    ),
    ("bits 9", "train vae --dataset mnist --bits 9 --out {out}", r"--bits: invalid choice: 9"),
    (
        "unknown preprocessing",
        "train vae --dataset mnist --preprocessing blur --out {out}",
        r"invalid choice: 'blur'",
    ),
    (
        "unknown strategy",
        "train vae --dataset mnist --strategy tpu --out {out}",
        r"invalid choice: 'tpu'",
    ),
    (
        "unknown precision",
        "train vae --dataset mnist --mixed-precision float8 --out {out}",
        r"invalid choice: 'float8'",
    ),
    (
        "multi-worker without TF_CONFIG",
        "train vae --dataset mnist --strategy multi_worker --manual-dir {manual} --out {out}",
        r"needs \$TF_CONFIG",
    ),
    ("unknown model", "train nope --dataset mnist --out {out}", r"Unknown model 'nope'.*vae"),
    (
        "unknown dataset",
        "train vae --dataset no_such_dataset --out {out}",
        r"Unknown dataset 'no_such_dataset'",
    ),
    (
        "negative width",
        "train pixelcnn --dataset mnist --set filters=-4 --manual-dir {manual} --out {out}",
        r"filters must be a positive whole number, got -4",
    ),
    (
        "odd width for RGB groups",
        "train pixelcnn --dataset mnist --set filters=5 --manual-dir {manual} --out {out}",
        r"filters=5 cannot be split into colour groups",
    ),
    (
        "unknown option",
        "train vae --dataset mnist --set latent_size=3 --manual-dir {manual} --out {out}",
        r"has no option latent_size.*latent_dim",
    ),
    (
        "option without value",
        "train vae --dataset mnist --set latent_dim --manual-dir {manual} --out {out}",
        r"--set takes key=value",
    ),
    (
        "conditional model on unlabelled data",
        "train conditional_gan --dataset binarized_mnist --manual-dir {manual} --out {out}",
        r"has no labels",
    ),
    (
        "resume with --set",
        "train vae --dataset mnist --resume --set latent_dim=3 --out {out}",
        r"--set does not apply with --resume",
    ),
    (
        "resume of nothing",
        "train vae --dataset mnist --resume --out {out}",
        r"holds no model.keras",
    ),
    (
        "sample 0 images",
        "sample {vae} --num 0 --out {out}/grid.png",
        r"--num: expected a whole number >= 1, received 0",
    ),
    ("sample to .jpg", "sample {vae} --out {out}/grid.jpg", r"\.png or \.npy"),
    ("sample a missing file", "sample {out}/absent.keras --out {out}/grid.png", r"no such file"),
    (
        "sample with an unknown runtime",
        "sample {export} --runtime onnx --out {out}/grid.png",
        r"invalid choice: 'onnx'",
    ),
    (
        "sample a missing quantized copy",
        "sample {export} --runtime tflite-int8 --out {out}/grid.png",
        r"has no model_int8.tflite",
    ),
    (
        "labels for an unconditional model",
        "sample {vae} --labels 1 --out {out}/grid.png",
        r"not class-conditional",
    ),
    (
        "no labels for a conditional model",
        "sample {cgan} --num 2 --out {out}/grid.png",
        r"conditional on 3 classes; pass labels",
    ),
    (
        "label out of range",
        "sample {cgan} --num 2 --labels 7 --out {out}/grid.png",
        r"values in \[0, 2\], received values in \[7, 7\]",
    ),
    (
        "labels not numbers",
        "sample {cgan} --num 2 --labels a,b --out {out}/grid.png",
        r"--labels takes one class or a comma list.*'a,b'",
    ),
    (
        "labels of the wrong count",
        "sample {cgan} --num 3 --labels 0,1 --out {out}/grid.png",
        r"expected 1 or 3 classes.*received 2",
    ),
    (
        "unwritable output",
        "sample {vae} --num 2 --out {vae}/grid.png",
        r"--out .*vae.keras is a file, not a folder",
    ),
    (
        "zoo name misspelt",
        "sample pixelcnn_binarised_mnist --out {out}/grid.png",
        r"pixelcnn_binarized_mnist",
    ),
    ("export over an existing export", "export {vae} --out {export}", r"exists"),
    ("unknown quantization", "export {vae} --out {out}/export --quantize int4", r"int4"),
    (
        "export of a file that is not .keras",
        "export {export}/export.json --out {out}/export",
        r"not a \.keras archive",
    ),
    (
        "tampered export",
        "sample {tampered} --runtime tflite --out {out}/grid.png",
        r"sha256 does not match",
    ),
    (
        "GAN evaluated on binarized_mnist",
        "evaluate {gan} --dataset binarized_mnist --manual-dir {manual}",
        r"256 levels; binarized_mnist gives 28x28x1 images with 2 levels",
    ),
    (
        "binary model on 8-bit data",
        "evaluate {vae28} --dataset mnist --manual-dir {manual}",
        r"2 levels; mnist with --preprocessing none gives 28x28x1 images with 256 levels.*dynamic_binarize",
    ),
    (
        "model and data of other shapes",
        "evaluate {vae} --dataset mnist --preprocessing dynamic_binarize --manual-dir {manual}",
        r"takes 8x8x1 images.*gives 28x28x1",
    ),
    (
        "evaluate with 0 samples",
        "evaluate {vae} --dataset mnist --num-samples 0",
        r">= 1, received 0",
    ),
    ("classifier with 0 epochs", "train-classifier --epochs 0", r">= 1, received 0"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    paths = {
        "vae": str(root / "vae.keras"),
        "export": str(root / "export"),
        "cgan": str(root / "cgan.keras"),
        "gan": str(root / "gan.keras"),
        "vae28": str(root / "vae28.keras"),
        "tampered": str(root / "tampered"),
    }
    vae = VAE(image_shape=(8, 8, 1), latent_dim=3, widths=(4, 8), seed=0)
    vae.save(paths["vae"])
    export.export(vae, paths["export"], verbose=False)
    shutil.copytree(paths["export"], paths["tampered"])
    with open(os.path.join(paths["tampered"], "model.tflite"), "r+b") as file:
        file.seek(-8, os.SEEK_END)
        file.write(b"tampered")
    ConditionalGAN(image_shape=(8, 8, 1), latent_dim=4, filters=4, num_classes=3, seed=0).save(
        paths["cgan"]
    )
    ConditionalGAN(image_shape=(28, 28, 1), latent_dim=4, filters=4, num_classes=3, seed=0).save(
        paths["gan"]
    )
    VAE(image_shape=(28, 28, 1), latent_dim=3, widths=(4, 8), seed=0).save(paths["vae28"])
    return paths


@pytest.mark.parametrize(
    "argv, message", [case[1:] for case in CLI_CASES], ids=[case[0] for case in CLI_CASES]
)
def test_cli_bad_input(argv, message, artifacts, mock_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    before = sorted(os.listdir(tmp_path))
    argv = argv.format(out=out, manual=mock_dataset, **artifacts).split()
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert captured.err.startswith("error: ") and len(captured.err.splitlines()) <= 3, captured.err
    assert re.search(message, captured.err), captured.err
    assert sorted(os.listdir(tmp_path)) == before  # nothing left behind


def _tiny_pixelcnn(**options):
    return PixelCNN(
        image_shape=(6, 6, 1), filters=4, num_blocks=1, head_filters=4, seed=0, **options
    )


# (case, call, what the error must say)
API_CASES = [
    (
        "negative width",
        lambda: PixelCNN(filters=-4),
        r"filters must be a positive whole number, got -4",
    ),
    (
        "width not a whole number",
        lambda: GatedPixelCNN(filters=4.5),
        r"positive whole number, got 4.5",
    ),
    (
        "image shape without channels",
        lambda: PixelCNN(image_shape=(28, 28)),
        r"image_shape must be \(H, W, C\)",
    ),
    ("one level", lambda: VAE(num_levels=1), r"num_levels must be in \[2, 256\], got 1"),
    ("one class", lambda: PixelCNN(num_classes=1), r"num_classes must be at least 2"),
    ("unknown PixelRNN kind", lambda: PixelRNN(kind="gru"), r"gru"),
    ("GAN of odd size", lambda: ConditionalGAN(image_shape=(27, 27, 1)), r"square images"),
    (
        "conditional PixelCNN without labels",
        lambda: _tiny_pixelcnn(num_classes=3)(np.zeros((2, 6, 6, 1), np.uint8)),
        r"conditional on 3 classes",
    ),
    (
        "uniform noise above 1",
        lambda: _tiny_pixelcnn().sample(np.full((1, 6, 6, 1), 1.5, np.float32)),
        r"uniform noise in \[0, 1\), received values in \[1.5, 1.5\]",
    ),
    (
        "negative uniform noise",
        lambda: _tiny_pixelcnn().sample_levels(np.full((1, 6, 6, 1), -0.1, np.float32)),
        r"\[0, 1\)",
    ),
    (
        "NaN noise",
        lambda: _tiny_pixelcnn().sample(np.full((1, 6, 6, 1), np.nan, np.float32)),
        r"NaN",
    ),
    (
        "noise of the wrong shape",
        lambda: _tiny_pixelcnn().sample(np.zeros((1, 6, 6), np.float32)),
        r"shape \(batch, 6, 6, 1\), received shape \(1, 6, 6\)",
    ),
    (
        "integer noise",
        lambda: _tiny_pixelcnn().sample(np.zeros((1, 6, 6, 1), np.int32)),
        r"expected float noise",
    ),
    (
        "float images",
        lambda: _tiny_pixelcnn().log_prob(np.zeros((1, 6, 6, 1), np.float32)),
        r"integer level images",
    ),
    (
        "images above the levels",
        lambda: _tiny_pixelcnn().log_prob(np.full((1, 6, 6, 1), 3, np.uint8)),
        r"values in \[0, 1\].*\[3, 3\]",
    ),
    (
        "float labels",
        lambda: _tiny_pixelcnn(num_classes=3).log_prob(
            np.zeros((2, 6, 6, 1), np.uint8), [0.5, 1.0]
        ),
        r"integer labels",
    ),
    (
        "labels of the wrong count",
        lambda: _tiny_pixelcnn(num_classes=3).log_prob(np.zeros((2, 6, 6, 1), np.uint8), [0]),
        r"expected 2 labels, received 1",
    ),
    (
        "completion without a mask",
        lambda: _tiny_pixelcnn().sample_levels(
            np.zeros((1, 6, 6, 1), np.float32), known=np.zeros((1, 6, 6, 1), np.uint8)
        ),
        r"needs both",
    ),
    (
        "completion mask not bool",
        lambda: _tiny_pixelcnn().sample_levels(
            np.zeros((1, 6, 6, 1), np.float32),
            known=np.zeros((1, 6, 6, 1), np.uint8),
            known_mask=np.zeros((1, 6, 6, 1), np.int32),
        ),
        r"known_mask: expected bool",
    ),
    (
        "unknown sampling method",
        lambda: _tiny_pixelcnn().sample_levels(
            np.zeros((1, 6, 6, 1), np.float32), method="fastest"
        ),
        r"'fastest'",
    ),
    (
        "fit on images of another shape",
        lambda: _compiled_vae().fit(np.zeros((4, 9, 9, 1), np.uint8), verbose=0),
        r"shape \(batch, 8, 8, 1\).*gives shape \(\w+, 9, 9, 1\)",
    ),
    (
        "zoo name misspelt",
        lambda: PixelCNN.from_preset("pixelcnn_binarised_mnist"),
        r"pixelcnn_binarized_mnist",
    ),
    (
        "preset of another model",
        lambda: VAE.from_preset("pixelcnn_binarized_mnist"),
        r"holds a PixelCNN.*PixelCNN.from_preset",
    ),
    (
        "wrong TFLite input size",
        lambda: runtime.open_artifact(
            os.path.join(zoo.folder("vae_binarized_mnist"), "model.tflite")
        ).sample(np.zeros((1, 31), np.float32)),
        r"\(batch, 32\), received shape \(1, 31\)",
    ),
]


def _compiled_vae():
    model = VAE(image_shape=(8, 8, 1), latent_dim=3, widths=(4, 8), seed=0)
    model.compile_for_training()
    return model


@pytest.mark.parametrize(
    "call, message", [case[1:] for case in API_CASES], ids=[case[0] for case in API_CASES]
)
def test_api_bad_input(call, message):
    with pytest.raises(
        (InputError, ValueError, zoo.ZooError, runtime.ArtifactError), match=message
    ):
        call()


def test_the_table_covers_at_least_40_bad_inputs():
    assert len(CLI_CASES) + len(API_CASES) >= 40
