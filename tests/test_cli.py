import json
import os

import keras
import numpy as np
import pytest

from keras_gen import cli
from tests.conftest import shared_data

TINY_VAE = ["--set", "latent_dim=2", "--set", "widths=[4,8]", "--set", "eval_num_samples=4"]


def test_train_sample_export_evaluate_on_mock_data(mock_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "vae",
                "--dataset",
                "mnist",
                "--preprocessing",
                "dynamic_binarize",
                "--epochs",
                "2",
                "--batch-size",
                "16",
                "--validation-split",
                "test",
                "--manual-dir",
                mock_dataset,
                "--out",
                str(run),
            ]
            + TINY_VAE
        )
        == 0
    )
    for name in (
        "model.keras",
        "loss.png",
        "history.json",
        "samples/epoch_001.png",
        "samples/epoch_002.png",
    ):
        assert (run / name).is_file(), name
    assert any((run / "logs").rglob("events.out.tfevents*"))
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == 2 and "val_nll" in history

    export_dir = tmp_path / "export"
    assert (
        cli.main(
            ["export", str(run / "model.keras"), "--out", str(export_dir), "--quantize", "int8"]
        )
        == 0
    )
    assert (export_dir / "model_int8.tflite").is_file() and not (
        export_dir / "model_float16.tflite"
    ).exists()
    assert "saved_model/, model.tflite, model_int8.tflite, export.json" in capsys.readouterr().out
    grids = {}
    for source, runtime in [
        (run / "model.keras", None),
        (export_dir, None),
        (export_dir, "tflite"),
    ]:
        out = tmp_path / f"samples_{runtime}_{source.name}.npy"
        argv = ["sample", str(source), "--num", "5", "--seed", "3", "--out", str(out)]
        assert cli.main(argv + (["--runtime", runtime] if runtime else [])) == 0
        grids[out.name] = np.load(out)
    first = next(iter(grids.values()))
    assert first.shape == (5, 28, 28, 1) and first.dtype == np.uint8
    for value in grids.values():
        assert np.abs(value.astype(int) - first.astype(int)).max() <= 1
    assert (
        cli.main(["sample", str(export_dir), "--num", "4", "--out", str(tmp_path / "grid.png")])
        == 0
    )
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"

    capsys.readouterr()
    assert (
        cli.main(
            [
                "evaluate",
                str(run / "model.keras"),
                "--dataset",
                "mnist",
                "--preprocessing",
                "threshold_binarize",
                "--manual-dir",
                mock_dataset,
                "--num-samples",
                "8",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "nll" in printed and "bits_per_dim" in printed
    for runtime in ("tflite", "tflite-int8"):
        assert (
            cli.main(
                [
                    "evaluate",
                    str(export_dir),
                    "--runtime",
                    runtime,
                    "--dataset",
                    "mnist",
                    "--preprocessing",
                    "threshold_binarize",
                    "--manual-dir",
                    mock_dataset,
                ]
            )
            == 0
        )
        assert "bits_per_dim" in capsys.readouterr().out
    assert (
        cli.main(
            [
                "sample",
                str(export_dir),
                "--runtime",
                "tflite-int8",
                "--num",
                "2",
                "--out",
                str(tmp_path / "int8.npy"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "int8.npy").shape == (2, 28, 28, 1)


def test_train_refuses_to_overwrite_a_run_and_resume_continues_it(mock_dataset, tmp_path, capsys):
    from keras_gen import runtime

    run = tmp_path / "run"
    argv = [
        "train",
        "vae",
        "--dataset",
        "binarized_mnist",
        "--validation-split",
        "none",
        "--batch-size",
        "16",
        "--manual-dir",
        mock_dataset,
        "--out",
        str(run),
    ]
    assert cli.main(argv + ["--epochs", "1"] + TINY_VAE) == 0
    first = runtime.load_keras(str(run / "model.keras"))
    assert cli.main(argv + ["--epochs", "1"] + TINY_VAE) == 2
    assert "already holds" in capsys.readouterr().err

    resume = ["--epochs", "2", "--resume", "--learning-rate", "3e-4", "--average-weights-from", "2"]
    assert cli.main(argv + resume) == 0
    resumed = runtime.load_keras(str(run / "model.keras"))
    averaged = runtime.load_keras(str(run / "averaged.keras"))  # the mean of epoch 2 alone
    for mean, weights in zip(averaged.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(mean, weights)
    assert int(resumed.optimizer.iterations) == 2 * int(first.optimizer.iterations) > 0
    assert float(first.optimizer.learning_rate) == pytest.approx(1e-3)
    assert float(resumed.optimizer.learning_rate) == pytest.approx(
        3e-4
    )  # the new rate, saved with the model
    assert not np.allclose(resumed.get_weights()[0], first.get_weights()[0])
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 2
    assert (run / "samples" / "epoch_002.png").is_file()

    capsys.readouterr()
    for extra, message in [
        (["--epochs", "2"], "trained 2 epochs already"),
        (["--epochs", "3", "--set", "latent_dim=3"], "--set does not apply"),
        (["--epochs", "3", "--out", str(tmp_path / "empty")], "no model.keras"),
    ]:
        assert cli.main(argv + ["--resume"] + extra) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["train", "pixelcnn"] + argv[2:] + ["--epochs", "3", "--resume"]) == 2
    assert "holds a VAE, not a pixelcnn" in capsys.readouterr().err


def test_steps_per_epoch_holds_for_every_epoch_on_a_small_dataset(mock_dataset, tmp_path):
    # 32 mock images in batches of 16 make 2 batches a pass; 3 steps an epoch must still be 3.
    from keras_gen import runtime

    run = tmp_path / "run"
    argv = ["train", "vae", "--dataset", "binarized_mnist", "--validation-split", "none"]
    argv += ["--batch-size", "16", "--steps-per-epoch", "3", "--epochs", "2"]
    assert cli.main(argv + ["--manual-dir", mock_dataset, "--out", str(run)] + TINY_VAE) == 0
    assert int(runtime.load_keras(str(run / "model.keras")).optimizer.iterations) == 6


def test_resume_counts_a_gans_epochs_and_keeps_both_optimizers(mock_dataset, tmp_path, capsys):
    # A GAN's history has d_loss and g_loss but no loss; resume must still count its epochs.
    # A GAN's `optimizer` is None, yet its two optimizers' state must carry over, not restart.
    from keras_gen import runtime

    run = tmp_path / "run"
    argv = [
        "train",
        "dcgan",
        "--dataset",
        "mnist",
        "--validation-split",
        "none",
        "--batch-size",
        "16",
        "--steps-per-epoch",
        "1",
        "--manual-dir",
        mock_dataset,
        "--out",
        str(run),
    ]
    assert cli.main(argv + ["--epochs", "1", "--set", "filters=8", "--set", "latent_dim=4"]) == 0
    first = runtime.load_keras(str(run / "model.keras"))
    assert cli.main(argv + ["--epochs", "2", "--resume"]) == 0
    resumed = runtime.load_keras(str(run / "model.keras"))
    for before, after in zip(first.training_optimizers(), resumed.training_optimizers()):
        assert int(after.iterations) == 2 * int(before.iterations) > 0
    assert "optimizer: fresh" not in capsys.readouterr().out
    history = json.loads((run / "history.json").read_text())
    assert len(history["d_loss"]) == len(history["g_loss"]) == 2
    assert sorted(path.name for path in (run / "samples").iterdir()) == [
        "epoch_001.png",
        "epoch_002.png",
    ]
    capsys.readouterr()
    assert cli.main(argv + ["--epochs", "2", "--resume"]) == 2
    assert "trained 2 epochs already" in capsys.readouterr().err


def test_sample_quality_learning_curve_from_a_resumed_gan_run(mock_dataset, tmp_path, capsys):
    from keras_gen import metrics

    classifier = str(tmp_path / "classifier.keras")
    metrics.MnistClassifier().save(classifier)
    run = tmp_path / "run"
    argv = [
        "train",
        "dcgan",
        "--dataset",
        "mnist",
        "--validation-split",
        "none",
        "--batch-size",
        "16",
        "--steps-per-epoch",
        "1",
        "--manual-dir",
        mock_dataset,
        "--out",
        str(run),
    ]
    assert cli.main(argv + ["--epochs", "1", "--set", "filters=4", "--set", "latent_dim=4"]) == 0
    quality = ["--sample-quality", "24", "--classifier", classifier]
    assert cli.main(argv + ["--epochs", "3", "--resume"] + quality) == 0
    history = json.loads((run / "history.json").read_text())
    assert (
        len(history["d_loss"]) == 3 and len(history["sample_fd_logits"]) == 2
    )  # scored from epoch 2 on
    assert keras.saving.load_model(run / "best.keras", safe_mode=True).latent_dim == 4
    capsys.readouterr()
    assert (
        cli.main(
            [
                "train",
                "vae",
                "--dataset",
                "mnist",
                "--preprocessing",
                "dynamic_binarize",
                "--epochs",
                "1",
                "--manual-dir",
                mock_dataset,
                "--out",
                str(tmp_path / "vae"),
            ]
            + quality
            + TINY_VAE
        )
        == 2
    )
    assert "--sample-quality scores GANs trained on mnist" in capsys.readouterr().err
    assert not (tmp_path / "vae").exists()


def test_train_on_real_binarized_mnist_files(tmp_path):
    manual = shared_data("binarized_mnist")
    run = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "vae",
                "--dataset",
                "binarized_mnist",
                "--take",
                "256",
                "--epochs",
                "1",
                "--validation-split",
                "test[:64]",
                "--manual-dir",
                manual,
                "--data-dir",
                str(tmp_path / "tfds"),
                "--out",
                str(run),
            ]
            + TINY_VAE
        )
        == 0
    )
    history = json.loads((run / "history.json").read_text())
    assert 100 < history["val_nll"][0] < 600  # nats per binary 28x28 image: trained a little
    assert os.path.getsize(run / "samples" / "epoch_001.png") > 1000


def test_gan_trains_and_evaluate_prints_fcd_score_floor_and_label_accuracy(
    mock_dataset, tmp_path, capsys, monkeypatch
):
    from keras_gen import data, metrics, runtime

    classifier = str(tmp_path / "classifier.keras")
    metrics.MnistClassifier().save(
        classifier
    )  # untrained: the numbers are not meaningful, the plumbing is
    run = tmp_path / "cgan"
    assert (
        cli.main(
            [
                "train",
                "conditional_gan",
                "--dataset",
                "mnist",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--validation-split",
                "none",
                "--manual-dir",
                mock_dataset,
                "--out",
                str(run),
                "--set",
                "filters=4",
                "--set",
                "latent_dim=4",
            ]
        )
        == 0
    )
    assert (run / "samples" / "epoch_001.png").is_file()
    capsys.readouterr()
    asked = []
    sample_in_batches = runtime.sample_in_batches
    monkeypatch.setattr(
        runtime,
        "sample_in_batches",
        lambda runner, noise, labels, **kw: (
            asked.append(labels),
            sample_in_batches(runner, noise, labels, **kw),
        )[1],
    )
    assert (
        cli.main(
            [
                "evaluate",
                str(run / "model.keras"),
                "--dataset",
                "mnist",
                "--manual-dir",
                mock_dataset,
                "--classifier",
                classifier,
                "--num-samples",
                "40",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    _, test_labels = data.as_numpy(
        data.load(
            "mnist",
            "test",
            batch_size=40,
            take=40,
            shuffle=False,
            labels=True,
            manual_dir=mock_dataset,
        )
    )
    # The test split's class mix, not a uniform one (its 32 labels repeated up to 40 samples).
    np.testing.assert_array_equal(asked[0], np.resize(test_labels, 40))
    assert len(set(test_labels)) > 1
    for name in (
        "fd_logits",
        "fcd",
        "classifier_score",
        "label_accuracy",
        "fd_logits_real_floor",
        "fcd_real_floor",
    ):
        assert f"{name}:" in printed, name
    assert (
        cli.main(
            [
                "sample",
                str(run / "model.keras"),
                "--labels",
                "7",
                "--num",
                "3",
                "--out",
                str(tmp_path / "sevens.npy"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "sevens.npy").shape == (3, 28, 28, 1)


def test_quickstart_runs_end_to_end(mock_dataset, tmp_path, capsys):
    out = tmp_path / "quickstart"
    assert (
        cli.main(["quickstart", "--manual-dir", mock_dataset, "--epochs", "1", "--out", str(out)])
        == 0
    )
    for name in (
        "vae/model.keras",
        "samples_keras.png",
        "export/model.tflite",
        "samples_tflite.png",
    ):
        assert (out / name).is_file(), name
    assert str(out / "samples_tflite.png") in capsys.readouterr().out


def test_train_a_gan_under_a_strategy_in_float16(mock_dataset, tmp_path):
    from keras_gen import runtime

    run = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "dcgan",
                "--dataset",
                "mnist",
                "--validation-split",
                "none",
                "--batch-size",
                "8",
                "--steps-per-epoch",
                "2",
                "--epochs",
                "1",
                "--strategy",
                "mirrored",
                "--mixed-precision",
                "float16",
                "--set",
                "latent_dim=4",
                "--set",
                "filters=4",
                "--manual-dir",
                mock_dataset,
                "--out",
                str(run),
            ]
        )
        == 0
    )
    model = runtime.load_keras(str(run / "model.keras"))
    assert model.dtype_policy.name == "mixed_float16"
    assert all(
        isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.training_optimizers()
    )
    assert (
        int(model.d_optimizer.iterations) == 2 and not (run / "backup").exists()
    )  # removed after a good fit
