"""Short runs of a recipe at several sizes, side by side, to size its long run before it starts.

    python benchmarks/sizing.py pixelrnn_row_lstm_binarized_mnist --manual-dir ../shared/data \\
        --config "num_layers=2" --config "num_layers=4" --config "units=64 num_layers=4" --steps 400

RECIPE is a zoo name, a zoo folder or a recipe.json. Each --config changes its model options
(KEY=VALUE pairs, JSON values, as `train --set` takes them; an empty --config "" is the recipe
as it is). Every configuration is built from the recipe's seed, in its precision, and trains on
the same batches of its data at its first learning rate. They take turns, --steps /
--evaluations steps each, so that their speeds are measured under the same load. After each turn
each is scored on the recipe's validation split with Keras' `evaluate` (`nll`, nats per image,
as `train` reports it; a model without one, its `loss`). The table gives parameters, training
images per second (the median step; the first step of each, which traces, left out), the seconds
10,000 training images take at that speed, and the validation figure after each turn. Results
go to --out as JSON and a plot of the validation figure against steps; --samples draws 16
samples of each configuration at the end.
"""

import argparse
import json
import os
import time

import numpy as np
from _plots import save_curves  # noqa: E402  (benchmarks/, beside this script)

import keras_gen  # noqa: F401
from keras_gen import data, plotting, recipes, training
from keras_gen.cli import parse_model_options


def build(recipe, source, options):
    """The recipe's model with `options` over its own, compiled at its first learning rate (the
    family's default without a schedule), as `train --recipe` starts it."""
    schedule = recipe.get("learning_rate_schedule")
    model, _ = training.build_model(
        recipe["model"],
        source,
        {**recipe["options"], **options},
        recipe["mixed_precision"],
        schedule[0][1] if schedule else None,
        recipe["seed"],
    )
    return model


def validation_figure(model, images, batch_size):
    """(name, value): the model's `nll` over `images` (nats per image), else its `loss`."""
    results = model.evaluate(images, batch_size=batch_size, return_dict=True, verbose=0)
    name = "nll" if "nll" in results else "loss"
    return name, float(results[name])


def train_side_by_side(named_models, batches, score, evaluations):
    """Trains every model on the same `batches`, taking turns of len(batches) / `evaluations`
    steps, and scores each after each turn.

    Args:
        named_models: {label: compiled model}.
        batches: a list of uint8 level batches, each (B, H, W, C).
        score: model -> (figure name, value), e.g. the validation NLL in nats per image.
    Returns:
        {label: {"curve": [(steps, value)], "figure", "step_seconds": [...], "parameters"}}.
    """
    rows = {
        label: dict(curve=[], step_seconds=[], parameters=model.count_params())
        for label, model in named_models.items()
    }
    for turn in np.array_split(np.arange(len(batches)), evaluations):
        for label, model in named_models.items():
            for index in turn:
                start = time.perf_counter()
                model.train_on_batch(batches[index])
                rows[label]["step_seconds"].append(time.perf_counter() - start)
            rows[label]["figure"], value = score(model)
            rows[label]["curve"].append((int(turn[-1]) + 1, value))
            print(f"{label}: step {turn[-1] + 1}, {rows[label]['figure']} {value:.3f}", flush=True)
    return rows


def images_per_second(row, batch_size):
    """Training images per second at the median step, the first (tracing) step left out."""
    return batch_size / float(np.median(row["step_seconds"][1:]))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe", help="a zoo name, a zoo folder or a recipe.json")
    parser.add_argument(
        "--config",
        action="append",
        required=True,
        help='model options over the recipe\'s, e.g. "units=64 num_layers=4" ("" for the recipe).',
    )
    parser.add_argument("--steps", type=int, default=400, help="training steps per configuration")
    parser.add_argument("--evaluations", type=int, default=4, help="points on each curve")
    parser.add_argument("--validation", type=int, default=1000, help="validation images scored")
    parser.add_argument("--manual-dir", default=None)
    parser.add_argument("--images", default=None, help="where an images recipe's images are")
    parser.add_argument("--out", default=None, help="path stem for .json and .png")
    parser.add_argument(
        "--samples", default=None, metavar="PNG", help="also draw 16 samples of each, a row each"
    )
    args = parser.parse_args()

    recipe = recipes.load(args.recipe)
    batch_size = recipe["data"].get("batch_size", 128)
    source = recipes.data_source(recipe, manual_dir=args.manual_dir, images=args.images)
    # Passes over the training split, as many as --steps takes (a small folder gives few batches).
    train = source.load("train", shuffle=True).repeat().take(args.steps)
    batches = [np.asarray(batch) for batch in train]
    validation = data.as_numpy(
        source.load(recipe["validation_split"], shuffle=False), limit=args.validation
    )
    named_models = {
        config or "recipe": build(recipe, source, parse_model_options(config.split()))
        for config in args.config
    }
    rows = train_side_by_side(
        named_models,
        batches,
        lambda model: validation_figure(model, validation, batch_size),
        args.evaluations,
    )

    first = next(iter(rows.values()))
    print(
        f"\n{recipe['model']} from {args.recipe} ({recipe['options']}), {args.steps} steps of "
        f"{batch_size} images, {recipe['mixed_precision'] or 'float32'}; {first['figure']} on "
        f"{len(validation)} images of {recipe['validation_split']}\n"
    )
    steps = [step for step, _ in first["curve"]]
    print(
        "| config | parameters | img/s | s per 10k images | "
        + " | ".join(f"step {step}" for step in steps)
        + " |"
    )
    print("|---|---:|---:|---:|" + "---:|" * len(steps))
    for label, row in rows.items():
        speed = images_per_second(row, batch_size)
        print(
            f"| {label} | {row['parameters']:,} | {speed:.1f} | {1e4 / speed:.0f} | "
            + " | ".join(f"{value:.3f}" for _, value in row["curve"])
            + " |"
        )
    if args.samples:
        plotting.save_rows(
            {
                label: model.sample(model.make_noise(16, seed=0))
                for label, model in named_models.items()
            },
            args.samples,
        )
        print(f"wrote {args.samples}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".json", "w") as file:
            json.dump(dict(vars(args), rows=rows), file, indent=1)
        plot(rows, args.out + ".png", f"validation {first['figure']} (nats per image)")
        print(f"\nwrote {args.out}.json and {args.out}.png")


def plot(rows, path, ylabel, labels=None):
    """Each row's curve, [(steps, value)], against training steps; `labels` renames the rows."""
    curves = {(labels or {}).get(label, label): row["curve"] for label, row in rows.items()}
    save_curves(path, curves, "training steps", ylabel)


if __name__ == "__main__":
    main()
