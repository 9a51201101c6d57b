"""Recipes: how a zoo model was trained, as data, so that one command trains it again.

A zoo folder's `recipe.json`:

    {"model": "pixelrnn", "options": {"kind": "diagonal_bilstm", "units": 32, "num_layers": 2},
     "data": {"dataset": "mnist", "preprocessing": "dynamic_binarize", "batch_size": 128},
     "mixed_precision": null, "epochs": 30,
     "learning_rate_schedule": [[1, 0.001], [16, 0.0003], [23, 0.0001]],
     "sample_quality": null, "validation_split": "test[:1000]", "seed": 0, "keep": "last"}

`python -m keras_gen train --recipe pixelrnn_diagonal_bilstm_binarized_mnist --out runs/dbl` runs it,
and the same command with `--resume` continues it where it stopped. "keep" says which checkpoint
the zoo holds: "last" (model.keras), "best" (best.keras, by `sample_quality`) or "averaged"
(averaged.keras: the mean of the weights after each epoch from "average_weights_from" on).
"""

import json
import os

from keras_gen import callbacks, data, training, zoo

RECIPE = zoo.RECIPE
FIELDS = {
    "model",
    "options",
    "data",
    "mixed_precision",
    "epochs",
    "learning_rate_schedule",
    "sample_quality",
    "validation_split",
    "seed",
    "keep",
    "average_weights_from",
    "notes",
    "first_stage",
}
DATA_FIELDS = {"dataset", "preprocessing", "bits", "batch_size"}
KEEPS = ("last", "best", "averaged")


class RecipeError(ValueError):
    """A recipe that cannot be found or read."""


def load(source):
    """The recipe of a zoo name, a zoo folder or a recipe.json path, checked."""
    if source.endswith(".json"):
        path = source
    elif os.path.isdir(source):
        path = os.path.join(source, RECIPE)
    else:
        path = os.path.join(zoo.folder(source), RECIPE)
    if not os.path.exists(path):
        raise RecipeError(f"{path}: no such recipe.")
    with open(path) as file:
        try:
            recipe = json.load(file)
        except json.JSONDecodeError as error:
            raise RecipeError(f"{path}: not JSON ({error}).") from None
    return _checked(recipe, path)


def _checked(recipe, where):
    unknown = sorted(set(recipe) - FIELDS) + sorted(set(recipe.get("data", {})) - DATA_FIELDS)
    if unknown or "model" not in recipe or "dataset" not in recipe.get("data", {}):
        raise RecipeError(
            f"{where}: a recipe needs model and data.dataset, and takes only "
            f"{sorted(FIELDS)}; got unknown {unknown}."
        )
    keep, first = recipe.get("keep", "last"), recipe.get("average_weights_from")
    if keep not in KEEPS or (keep == "averaged" and not first):
        raise RecipeError(
            f'{where}: "keep" is one of {list(KEEPS)}, and "averaged" needs '
            f'"average_weights_from"; got {keep!r} and {first!r}.'
        )
    if first is not None and not 1 <= first <= recipe.get("epochs", 5):
        raise RecipeError(
            f'{where}: "average_weights_from" must be an epoch of the run (1 to "epochs"); '
            f"got {first!r}."
        )
    if recipe.get("learning_rate_schedule"):
        callbacks.check_schedule(recipe["learning_rate_schedule"])
    if "first_stage" in recipe:
        recipe["first_stage"] = _checked(recipe["first_stage"], f"{where}: first_stage")
    return recipe


def train(
    recipe,
    out,
    *,
    resume=False,
    manual_dir=None,
    data_dir=None,
    epochs=None,
    steps_per_epoch=None,
    take=None,
    verbose=2,
):
    """Trains `recipe` (a dict from `load`) into the run folder `out`; returns the model.

    `epochs`, `steps_per_epoch` and `take` shorten a run (tests, trials); the learning-rate
    schedule still counts epochs from 1. A recipe with a "first_stage" (a VQ-VAE prior's VQ-VAE)
    trains that stage first into `out/first_stage`, or, with `resume`, finishes it, then
    builds on it.
    """
    overrides = dict(
        manual_dir=manual_dir,
        data_dir=data_dir,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        take=take,
        verbose=verbose,
    )
    from_model = None
    if "first_stage" in recipe:
        stage, stage_out = recipe["first_stage"], os.path.join(out, "first_stage")
        done = callbacks.epochs_done(
            callbacks.read_history(os.path.join(stage_out, "history.json"))
        )
        if done < (epochs or stage.get("epochs", 5)):
            train(stage, stage_out, resume=resume and done > 0, **overrides)
        from_model = os.path.join(stage_out, "model.keras")
        # A resumed run whose first stage has only just finished starts its second stage.
        resume = resume and os.path.exists(os.path.join(out, "model.keras"))
    settings = recipe["data"]
    source = data.Source(
        settings["dataset"],
        preprocessing=settings.get("preprocessing", "none"),
        bits=settings.get("bits", 8),
        batch_size=settings.get("batch_size", 128),
        take=take,
        manual_dir=manual_dir,
        data_dir=data_dir,
    )
    schedule = recipe.get("learning_rate_schedule")
    return training.train(
        recipe["model"],
        source,
        out,
        epochs=epochs or recipe.get("epochs", 5),
        validation_split=recipe.get("validation_split", "test[:1000]"),
        steps_per_epoch=steps_per_epoch,
        options=None if resume else recipe.get("options", {}),
        mixed_precision=None if resume else recipe.get("mixed_precision"),
        sample_quality=recipe.get("sample_quality"),
        seed=recipe.get("seed", 0),
        resume=resume,
        from_model=from_model,
        average_weights_from=recipe.get("average_weights_from"),
        extra_callbacks=[callbacks.LearningRateSteps(schedule)] if schedule else [],
        verbose=verbose,
    )
