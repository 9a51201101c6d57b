"""Recipes: how a zoo model was trained, as data, so that one command trains it again.

A zoo folder's `recipe.json`:

    {"model": "pixelrnn", "options": {"kind": "diagonal_bilstm", "units": 32, "num_layers": 2},
     "data": {"dataset": "mnist", "preprocessing": "dynamic_binarize", "batch_size": 128},
     "mixed_precision": null, "epochs": 30,
     "learning_rate_schedule": [[1, 0.001], [16, 0.0003], [23, 0.0001]],
     "sample_quality": null, "validation_split": "test[:1000]", "seed": 0, "keep": "last"}

A recipe's data is a tfds name ("dataset") or image files ("images": a folder or an array file, with
"image_size", "channels", "validation_fraction", "skip_bad_images" as `ImageSource` takes them, and
"package": where the files come from, "npm:emoji-datasource-google@16.0.0" or
"debian:dataset-fashion-mnist"). A relative
"images" path is looked for under the manual dir (--manual-dir or $KERAS_GEN_MANUAL_DIR), then its
node_modules/, then the working folder; `--images PATH` says where it is instead.

`python -m keras_gen train --recipe pixelrnn_diagonal_bilstm_binarized_mnist --out runs/dbl` runs it,
and the same command with `--resume` continues it where it stopped. "keep" says which checkpoint
the zoo holds: "last" (model.keras), "best" (best.keras, by `sample_quality`) or "averaged"
(averaged.keras: the mean of the weights after each epoch from "average_weights_from" on).
"""

import json
import os

from keras_gen import callbacks, data, image_files, training, zoo

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
IMAGE_FIELDS = {"images", "image_size", "channels", "validation_fraction", "skip_bad_images"}
DATA_FIELDS |= IMAGE_FIELDS | {"package"}
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
    settings = recipe.get("data", {})
    unknown = sorted(set(recipe) - FIELDS) + sorted(set(settings) - DATA_FIELDS)
    if unknown or "model" not in recipe or ("dataset" in settings) == ("images" in settings):
        raise RecipeError(
            f"{where}: a recipe needs model and one of data.dataset and data.images, and takes "
            f"only {sorted(FIELDS)} (data: {sorted(DATA_FIELDS)}); got unknown {unknown}."
        )
    if "dataset" in settings and set(settings) & IMAGE_FIELDS:
        raise RecipeError(f"{where}: {sorted(set(settings) & IMAGE_FIELDS)} go with data.images.")
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
    images=None,
    verbose=2,
):
    """Trains `recipe` (a dict from `load`) into the run folder `out`; returns the model.

    `epochs`, `steps_per_epoch` and `take` shorten a run (tests, trials); the learning-rate
    schedule still counts epochs from 1. `images` is where a recipe's image files are, when they
    are not where `images_path` looks. A recipe with a "first_stage" (a VQ-VAE prior's VQ-VAE)
    trains that stage first into `out/first_stage`, or, with `resume`, finishes it, then
    builds on it.
    """
    overrides = dict(
        manual_dir=manual_dir,
        data_dir=data_dir,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        take=take,
        images=images,
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
    source = data_source(recipe, manual_dir=manual_dir, data_dir=data_dir, take=take, images=images)
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


def images_path(settings, manual_dir=None):
    """Where a recipe's "images" are: absolute, or under the manual dir (or its node_modules/, where
    `npm install --prefix DIR` puts a package), or the working folder; else a RecipeError that says
    how to get them."""
    relative = os.path.expanduser(settings["images"])
    roots = [manual_dir or os.environ.get(data.MANUAL_DIR_ENV)]
    roots = [os.path.join(root, sub) for root in roots if root for sub in ("", "node_modules")]
    for root in roots + [os.getcwd()]:
        path = os.path.join(root, relative)
        if os.path.exists(path):
            return path
    registry, _, package = settings.get("package", "").partition(":")
    how = {
        "npm": f"install them with `npm install --prefix DIR {package}` and pass --manual-dir DIR, or ",
        "debian": f"install them with `apt-get install {package}`, or ",
    }.get(registry, "")
    raise RecipeError(
        f"The recipe's images {relative!r} are not under {', '.join(roots) or 'a manual dir'} "
        f"nor the working folder; {how}pass --images PATH."
    )


def data_source(recipe, manual_dir=None, data_dir=None, take=None, images=None):
    """The data source a recipe names: a `keras_gen.data.Source`, or an `ImageSource` for "images"
    (at `images` if given, else at `images_path`)."""
    settings = recipe["data"]
    common = dict(
        preprocessing=settings.get("preprocessing", "none"),
        bits=settings.get("bits", 8),
        batch_size=settings.get("batch_size", 128),
        take=take,
    )
    if "images" not in settings:
        if images:
            raise RecipeError("--images replaces a recipe's data.images; this one reads a dataset.")
        return data.Source(settings["dataset"], manual_dir=manual_dir, data_dir=data_dir, **common)
    options = {key: settings[key] for key in IMAGE_FIELDS - {"images"} if key in settings}
    return image_files.ImageSource(images or images_path(settings, manual_dir), **options, **common)
