"""Recipes: each zoo folder's recipe.json, and `train --recipe` with its learning-rate schedule."""

import glob
import json
import os
import zipfile

import keras
import numpy as np
import pytest

from keras_gen import (
    callbacks,
    cli,
    data,
    files,
    formats,
    precision,
    recipes,
    runtime,
    training,
    zoo,
)
from keras_gen.models import get
from tests.conftest import FASHION_MNIST, PACKAGE_DATA, REPO, package_data

ZOO = os.path.join(REPO, "saved_models")
NAMES = zoo.names()  # folders with a trained model (a run in progress has only in_training/)
RUNS_IN_PROGRESS = sorted(glob.glob(os.path.join(ZOO, "*", "in_training")))


@pytest.mark.parametrize("name", NAMES)
def test_every_zoo_folder_has_a_recipe_that_builds_its_model(name):
    recipe = recipes.load(os.path.join(ZOO, name))
    assert set(recipe["options"]) <= training.model_options(get(recipe["model"]))
    config = formats.read_manifest(os.path.join(ZOO, name))["config"]  # the zoo model's own
    # A weights-only zoo file may drop what only training reads (a diffusion model's average).
    options = {**recipe["options"], **get(recipe["model"]).weights_only_overrides}
    for option, value in options.items():
        assert config[option] == (list(value) if isinstance(value, tuple) else value), option
    assert recipe["epochs"] >= 1 and recipe["keep"] in recipes.KEEPS
    assert recipe["mixed_precision"] in (None, *precision.PRECISION_CHOICES)
    card = open(os.path.join(ZOO, name, "MODEL_CARD.md")).read()
    assert zoo.recipe_command(name) in card


@pytest.mark.parametrize(
    "folder", RUNS_IN_PROGRESS, ids=[p.split(os.sep)[-2] for p in RUNS_IN_PROGRESS]
)
def test_a_run_in_progress_continues_from_its_recipe(folder):
    """`train --recipe in_training/recipe.json --resume` builds the checkpoint's model, and the
    checkpoint keeps its optimizer state unless its run has reached the recipe's last epoch."""
    recipe = recipes.load(folder)
    checkpoint = os.path.join(folder, "model.keras")
    with zipfile.ZipFile(checkpoint) as archive:
        config = json.loads(archive.read("config.json"))["config"]
    for option, value in recipe["options"].items():
        assert config[option] == value, option
    with open(os.path.join(folder, "history.json")) as file:
        epochs_done = len(next(iter(json.load(file).values())))
    assert 1 <= epochs_done <= recipe["epochs"]
    if epochs_done < recipe["epochs"]:
        assert zoo.has_optimizer_state(checkpoint)
    # A run past its first averaged epoch resumes its mean, which has to reach the checkpoint.
    averaged = os.path.join(folder, "averaged.keras")
    if recipe["keep"] == "averaged" and epochs_done >= recipe["average_weights_from"]:
        with open(averaged + ".json") as file:
            record = json.load(file)
        assert record == {"first_epoch": recipe["average_weights_from"], "last_epoch": epochs_done}
    else:
        assert not os.path.exists(averaged)


def test_the_schedule_sets_the_rate_of_each_epoch():
    steps = callbacks.LearningRateSteps([[1, 1e-3], [16, 3e-4], [23, 1e-4]])
    assert [steps.rate_at(e) for e in (1, 15, 16, 22, 23, 30)] == [
        1e-3,
        1e-3,
        3e-4,
        3e-4,
        1e-4,
        1e-4,
    ]
    for bad in ([], [[2, 1e-3]], [[1, 1e-3], [1, 1e-4]], [[1, 0.0]]):
        with pytest.raises(ValueError, match="learning-rate schedule"):
            callbacks.check_schedule(bad)


def test_train_recipe_runs_two_short_epochs_then_resumes(mock_dataset, tmp_path, capsys):
    recipe = {
        "model": "pixelcnn",
        "options": {"filters": 4, "num_blocks": 1, "head_filters": 4},
        "data": {"dataset": "binarized_mnist", "batch_size": 8},
        "mixed_precision": None,
        "epochs": 3,
        "learning_rate_schedule": [[1, 1e-3], [2, 3e-4], [3, 1e-4]],
        "validation_split": "none",
        "keep": "averaged",
        "average_weights_from": 2,
    }
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    run = tmp_path / "run"
    argv = ["train", "--recipe", str(path), "--manual-dir", mock_dataset, "--steps-per-epoch", "2"]
    assert cli.main(argv + ["--epochs", "2", "--out", str(run)]) == 0
    model = runtime.load_keras(str(run / "model.keras"))
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-4)  # epoch 2's rate
    assert int(model.optimizer.iterations) == 4
    # An epoch recorded ahead of the checkpoint (copied back from another session) is run again.
    times = json.loads((run / "epochs.json").read_text())
    stale = dict(times[-1], epoch=3, cpu_seconds=-1.0)
    (run / "epochs.json").write_text(json.dumps(times + [stale]))
    assert cli.main(argv + ["--resume", "--out", str(run)]) == 0  # on to the recipe's 3 epochs
    model = runtime.load_keras(str(run / "model.keras"))
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)
    assert int(model.optimizer.iterations) == 6
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 3
    times = files.read_epoch_times(str(run / "epochs.json"))  # both sessions' epochs
    assert [entry["epoch"] for entry in times] == [1, 2, 3]
    assert all(entry["cpu_seconds"] > 0 and entry["wall_seconds"] > 0 for entry in times)
    averaged = json.loads((run / "averaged.keras.json").read_text())
    assert averaged == {"first_epoch": 2, "last_epoch": 3}


def test_a_recipe_refuses_other_model_settings_and_bad_files(tmp_path, capsys):
    assert (
        cli.main(["train", "vae", "--recipe", "vae_binarized_mnist", "--out", str(tmp_path / "r")])
        == 2
    )
    assert "drop a model name" in capsys.readouterr().err
    argv = ["train", "--recipe", "vae_binarized_mnist", "--average-weights-from", "2"]
    assert cli.main(argv + ["--out", str(tmp_path / "r")]) == 2
    assert "drop --average-weights-from" in capsys.readouterr().err
    assert cli.main(["train", "--out", str(tmp_path / "r")]) == 2
    assert "needs a model name and --dataset" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "vae", "data": {"dataset": "mnist"}, "learning_rate": 1}))
    with pytest.raises(recipes.RecipeError, match="unknown \\['learning_rate'\\]"):
        recipes.load(str(bad))


class WeightsAfterEachEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append([np.asarray(v) for v in self.model.weights])


def test_averaged_weights_are_the_mean_of_the_last_epochs_across_a_resume(mock_dataset, tmp_path):
    source = data.Source("binarized_mnist", batch_size=8, take=16, manual_dir=mock_dataset)
    run, first_call, second_call = (
        tmp_path / "run",
        WeightsAfterEachEpoch(),
        WeightsAfterEachEpoch(),
    )
    common = dict(average_weights_from=2, validation_split="none", verbose=0)
    tiny = {"filters": 4, "num_blocks": 1, "head_filters": 4}
    training.train(
        "pixelcnn", source, str(run), epochs=2, options=tiny, extra_callbacks=[first_call], **common
    )
    training.train(
        "pixelcnn", source, str(run), epochs=4, resume=True, extra_callbacks=[second_call], **common
    )
    averaged = runtime.load_keras(str(run / "averaged.keras"), compile=False)
    assert not zoo.has_optimizer_state(str(run / "averaged.keras"))
    epochs_2_to_4 = [first_call.seen[1], *second_call.seen]
    for i, variable in enumerate(averaged.weights):
        expected = np.mean([weights[i] for weights in epochs_2_to_4], axis=0)
        np.testing.assert_allclose(np.asarray(variable), expected, rtol=1e-5, atol=1e-7)
    last = runtime.load_keras(str(run / "model.keras"), compile=False)  # training's own weights
    np.testing.assert_array_equal(np.asarray(last.weights[0]), second_call.seen[-1][0])

    def resume_averaging(out, epochs, first_epoch):
        options = common | {"average_weights_from": first_epoch}
        training.train("pixelcnn", source, str(out), epochs=epochs, resume=True, **options)

    with pytest.raises(ValueError, match="averages from epoch 2, not 3"):
        resume_averaging(run, epochs=5, first_epoch=3)
    late = tmp_path / "late"  # a run past its first averaged epoch, with no mean to continue
    training.train("pixelcnn", source, str(late), epochs=1, options=tiny, validation_split="none")
    untouched = (late / "model.keras").read_bytes()
    with pytest.raises(RuntimeError, match="has to start there, but the run is at epoch 2"):
        resume_averaging(late, epochs=2, first_epoch=1)
    assert (late / "model.keras").read_bytes() == untouched


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"keep": "averaged"}, "needs"),
        ({"keep": "newest"}, "is one of"),
        ({"keep": "averaged", "average_weights_from": 9}, "an epoch of the run"),
    ],
)
def test_a_recipe_checks_what_it_keeps(fields, message, tmp_path):
    path = tmp_path / "recipe.json"
    recipe = {"model": "vae", "data": {"dataset": "mnist"}, "epochs": 8}
    path.write_text(json.dumps(recipe | fields))
    with pytest.raises(recipes.RecipeError, match=message):
        recipes.load(str(path))


def test_a_two_stage_recipe_trains_the_vqvae_then_its_prior_and_resumes(mock_dataset, tmp_path):
    stage = {
        "model": "vqvae",
        "options": {"num_codes": 4, "code_dim": 2, "widths": [4, 4]},
        "data": {"dataset": "mnist", "batch_size": 8},
        "epochs": 1,
        "validation_split": "none",
    }
    recipe = {
        "model": "vqvae_prior",
        "options": {"filters": 4, "num_blocks": 1, "head_filters": 4, "embedding_dim": 2},
        "data": {"dataset": "mnist", "batch_size": 8},
        "epochs": 2,
        "validation_split": "none",
        "keep": "last",
        "first_stage": stage,
    }
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    run = tmp_path / "run"
    argv = ["train", "--recipe", str(path), "--manual-dir", mock_dataset, "--steps-per-epoch", "2"]
    assert cli.main(argv + ["--epochs", "1", "--out", str(run)]) == 0
    vqvae = runtime.load_keras(str(run / "first_stage" / "model.keras"))
    prior = runtime.load_keras(str(run / "model.keras"))
    assert int(vqvae.optimizer.iterations) == 2 and int(prior.optimizer.iterations) == 2
    for held, trained in zip(prior.vqvae.weights, vqvae.weights):
        assert (held.numpy() == trained.numpy()).all(), held.path
    assert cli.main(argv + ["--resume", "--out", str(run)]) == 0  # the prior on to 2 epochs
    assert int(runtime.load_keras(str(run / "model.keras")).optimizer.iterations) == 4
    assert (
        int(runtime.load_keras(str(run / "first_stage" / "model.keras")).optimizer.iterations) == 2
    )


def test_train_vqvae_prior_needs_a_matching_vqvae_from(mock_dataset, tmp_path, capsys):
    base = ["--dataset", "mnist", "--manual-dir", mock_dataset, "--steps-per-epoch", "1"]
    base += ["--validation-split", "none", "--epochs", "1"]
    vqvae_run = tmp_path / "vqvae"
    small = ["--set", "widths=[4,4]", "--set", "code_dim=2"]
    assert (
        cli.main(["train", "vqvae", *base, *small, "--set", "num_codes=4", "--out", str(vqvae_run)])
        == 0
    )
    assert cli.main(["train", "vqvae_prior", *base, "--out", str(tmp_path / "p")]) == 2
    assert "pass its model.keras with --from" in capsys.readouterr().err
    prior_run = tmp_path / "prior"
    tiny = ["--set", "filters=4", "--set", "num_blocks=1", "--set", "head_filters=4"]
    from_vqvae = ["--from", str(vqvae_run / "model.keras")]
    assert (
        cli.main(["train", "vqvae_prior", *base, *tiny, *from_vqvae, "--out", str(prior_run)]) == 0
    )
    other = tmp_path / "other"
    assert (
        cli.main(["train", "vqvae", *base, *small, "--set", "num_codes=8", "--out", str(other)])
        == 0
    )
    resumed = ["train", "vqvae_prior", *base, "--epochs", "2", "--resume", "--out", str(prior_run)]
    assert cli.main(resumed + ["--from", str(other / "model.keras")]) == 2
    assert "num_codes 8 vs 4" in capsys.readouterr().err
    assert cli.main(["train", "pixelcnn", *base, *from_vqvae, "--out", str(tmp_path / "x")]) == 2
    assert "does not build on another model" in capsys.readouterr().err


PLANNED = sorted(  # zoo folders with a recipe and no model yet, and runs in progress
    [
        os.path.join(ZOO, name)
        for name in os.listdir(ZOO)
        if os.path.exists(os.path.join(ZOO, name, "recipe.json")) and name not in NAMES
    ]
    + RUNS_IN_PROGRESS
)
PACKAGE_IMAGES = {  # recipe: its images, where the packages put them
    "gated_pixelcnn_emoji": "emoji-datasource-google/img/google/64",
    "gated_pixelcnn_fashion_mnist": FASHION_MNIST,
}


@pytest.mark.parametrize("folder", PLANNED, ids=[os.path.relpath(p, ZOO) for p in PLANNED])
def test_a_planned_run_builds_its_model_and_its_checkpoint_fits_a_zoo_folder(folder):
    recipe = recipes.load(folder)
    settings = recipe["data"]
    # float32, by name, computes alike on any machine when resumed.
    assert recipe["mixed_precision"] == "float32"
    if "images" in settings:
        assert settings["package"].split(":")[0] in ("npm", "debian")
        shape = (*settings.get("image_size", (28, 28)), settings.get("channels", 1))
        model = get(recipe["model"])(image_shape=shape, num_levels=256, **recipe["options"])
    else:
        model = get(recipe["model"])(**recipe["options"])
    # Every weight (a diffusion model's average too) and Adam's two moments of the trainable ones.
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    averaged = model.count_params() if recipe["keep"] == "averaged" else 0  # averaged.keras
    assert 4 * (model.count_params() + 2 * trainable + averaged) < 25e6


@pytest.mark.parametrize("name", sorted(PACKAGE_IMAGES))
def test_a_recipe_reads_the_images_its_package_installs(name, tmp_path):
    images = package_data(PACKAGE_IMAGES[name])
    recipe = recipes.load(os.path.join(ZOO, name))
    source = recipes.data_source(recipe, manual_dir=PACKAGE_DATA, take=32)
    assert source.path == images
    model = recipes.train(
        recipe,
        str(tmp_path / "run"),
        manual_dir=PACKAGE_DATA,
        epochs=1,
        steps_per_epoch=1,
        take=32,
        verbose=0,
    )
    assert model.image_shape == source.image_shape()
    held_out = source.real_images("test", 10_000)
    assert 150 <= len(held_out) <= 10_000 and held_out.dtype == np.uint8


def test_the_softmax_twin_of_the_emoji_model_differs_only_in_its_head():
    twin = recipes.load(
        os.path.join(REPO, "benchmarks", "recipes", "gated_pixelcnn_emoji_softmax.json")
    )
    zoo_recipe = recipes.load(os.path.join(ZOO, "gated_pixelcnn_emoji"))
    heads = ("likelihood", "num_mixtures")
    assert twin["options"]["likelihood"] == "categorical"
    assert {k: v for k, v in twin["options"].items() if k not in heads} == {
        k: v for k, v in zoo_recipe["options"].items() if k not in heads
    }
    assert {k: v for k, v in twin.items() if k not in ("options", "notes")} == {
        k: v for k, v in zoo_recipe.items() if k not in ("options", "notes")
    }


def test_sizing_runs_take_turns_without_changing_what_each_model_learns(monkeypatch):
    """benchmarks/sizing.py trains its configurations in turns on the same batches: each curve is
    the one that configuration gives trained alone."""
    monkeypatch.syspath_prepend(os.path.join(REPO, "benchmarks"))
    import sizing

    from keras_gen.models import PixelCNN

    def build(filters):
        keras.utils.set_random_seed(0)
        model = PixelCNN(image_shape=(5, 5, 1), filters=filters, num_blocks=1, head_filters=4)
        model.compile_for_training()
        return model

    rng = np.random.default_rng(0)
    batches = [(rng.random((4, 5, 5, 1)) < 0.3).astype(np.uint8) for _ in range(4)]
    held_out = (rng.random((6, 5, 5, 1)) < 0.3).astype(np.uint8)

    def score(model):
        return "nll", float(-np.mean(model.log_prob(held_out)))

    together = sizing.train_side_by_side({4: build(4), 8: build(8)}, batches, score, 2)
    for filters in (4, 8):
        alone = sizing.train_side_by_side({filters: build(filters)}, batches, score, 2)
        assert [step for step, _ in together[filters]["curve"]] == [2, 4]
        np.testing.assert_allclose(together[filters]["curve"], alone[filters]["curve"], rtol=1e-6)
        assert len(together[filters]["step_seconds"]) == 4
    assert together[4]["curve"] != together[8]["curve"]
    assert sizing.images_per_second(together[4], 4) > 0
