"""Fault tolerance: resuming an interrupted fit, non-finite losses, crashes while writing files."""

import os

import keras
import numpy as np
import pytest

from tests.test_distribute import make_data, make_model


class Interrupt(keras.callbacks.Callback):
    """Raises in the middle of `epoch`, as a preempted machine would stop."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current_epoch = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current_epoch, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt("preempted")


@pytest.mark.parametrize("name", ["vae", "wgan_gp"])  # seed state; both GAN optimizers
def test_backup_and_restore_resumes_exactly(name, tmp_path):
    epochs, backup = 3, keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    uninterrupted = make_model(name)
    uninterrupted.fit(make_data(uninterrupted), epochs=epochs, verbose=0)

    interrupted = make_model(name)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(
            make_data(interrupted), epochs=epochs, verbose=0, callbacks=[backup, Interrupt(1, 0)]
        )
    assert int(interrupted.training_optimizers()[0].iterations) > 2  # it got past epoch 0's backup

    keras.utils.set_random_seed(
        99
    )  # a new process: other initial weights, restored from the backup
    resumed = make_model(name)
    resumed.set_weights([np.zeros_like(w) for w in resumed.get_weights()])
    resumed.fit(
        make_data(resumed),
        epochs=epochs,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))],
    )
    for expected, actual in zip(uninterrupted.weights, resumed.weights):
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7, err_msg=expected.path)
    np.testing.assert_array_equal(resumed.seed_generator.state, uninterrupted.seed_generator.state)
    for expected, actual in zip(uninterrupted.training_optimizers(), resumed.training_optimizers()):
        assert int(actual.iterations) == int(expected.iterations)
        for before, after in zip(expected.variables, actual.variables):
            np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-7, err_msg=before.path)


def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(
    mock_dataset, tmp_path, capsys, monkeypatch
):
    from keras_gen import cli, runtime
    from tests.test_cli import TINY_VAE

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
    checkpoint = (run / "model.keras").read_bytes()
    history = (run / "history.json").read_text()

    load_keras = runtime.load_keras

    def poisoned(path):  # a weight gone bad, as after an exploding step
        model = load_keras(path)
        model.set_weights([np.full(w.shape, np.nan, np.float32) for w in model.get_weights()])
        return model

    monkeypatch.setattr(runtime, "load_keras", poisoned)
    capsys.readouterr()
    assert cli.main(argv + ["--epochs", "2", "--resume"]) == 2
    error = capsys.readouterr().err
    assert "loss became nan at epoch 2, step 1" in error and "keeps the last good epoch" in error, (
        error
    )
    assert (run / "model.keras").read_bytes() == checkpoint and (
        run / "history.json"
    ).read_text() == history
    assert sorted(os.listdir(run)) == sorted(
        ["model.keras", "history.json", "epochs.json", "loss.png", "samples", "logs"]
    )


def test_a_crash_while_saving_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    from keras_gen.callbacks import SaveEachEpoch

    model = make_model("pixelcnn")
    path = tmp_path / "model.keras"
    saver = SaveEachEpoch(str(path))
    saver.set_model(model)
    saver.on_epoch_end(0)
    good = path.read_bytes()

    def crash(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as file:
            file.write(b"half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(type(model), "save", crash)
    with pytest.raises(OSError, match="disk full"):
        saver.on_epoch_end(1)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["model.keras"]
