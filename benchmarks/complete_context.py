"""The Diagonal BiLSTM with the paper's context against the complete context, on an equal budget.

    python benchmarks/complete_context.py --steps 600 --manual-dir ../shared/data

Both variants start from the same seed and train on the same batches of static
binarized MNIST for --steps steps (same optimizer, batch size and precision), taking
turns (`sizing.train_side_by_side`); each is scored on the first --test images of the
test split after each turn. The complete context lets the right-to-left pass read its
own row (see `keras_gen.layers.DiagonalBiLSTM`), so every earlier pixel is in view.
Results go to --out as JSON and a plot of the test NLL against steps.
"""

import argparse
import json
import os

import keras_gen  # noqa: F401  (first: it hides TensorFlow's start-up lines)

# isort: split
import keras
import numpy as np
from sizing import plot, train_side_by_side  # noqa: E402  (benchmarks/, beside this script)

from keras_gen import data
from keras_gen.models import PixelRNN


def build(complete_context, args):
    keras.utils.set_random_seed(0)
    model = PixelRNN(
        kind="diagonal_bilstm",
        units=args.units,
        num_layers=args.layers,
        seed=0,
        complete_context=complete_context,
        dtype=args.policy,
    )
    model.compile_for_training()
    return model


def held_out_nll(model, test_images):
    """("nll", mean negative log-likelihood of `test_images` in nats per image)."""
    log_prob = np.concatenate([model.log_prob(images) for images in np.array_split(test_images, 4)])
    return "nll", float(-np.mean(log_prob))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--policy", default="mixed_bfloat16")
    parser.add_argument("--test", type=int, default=1000, help="test images scored")
    parser.add_argument("--evaluations", type=int, default=4, help="points on the learning curve")
    parser.add_argument("--manual-dir", default=None)
    parser.add_argument(
        "--out", default="benchmarks/results/complete_context", help="path stem for .json, .png"
    )
    args = parser.parse_args()
    train = data.load(
        "binarized_mnist",
        "train",
        batch_size=args.batch_size,
        shuffle=True,
        take=args.batch_size * args.steps,
        manual_dir=args.manual_dir,
    )
    batches = [batch.numpy() for batch in train]
    test_images = data.as_numpy(
        data.load(
            "binarized_mnist", "test", batch_size=500, take=args.test, manual_dir=args.manual_dir
        )
    )
    trained = train_side_by_side(
        {complete: build(complete, args) for complete in (False, True)},
        batches,
        lambda model: held_out_nll(model, test_images),
        args.evaluations,
    )
    rows = [
        dict(
            complete_context=complete,
            curve=row["curve"],
            seconds=sum(row["step_seconds"]),
            parameters=row["parameters"],
        )
        for complete, row in trained.items()
    ]

    print(
        f"\nDiagonal BiLSTM, {args.units} units x {args.layers} layers, {args.steps} steps of {args.batch_size} "
        f"static binarized MNIST images, {args.policy}; test NLL on {args.test} test images (nats)\n"
    )
    print(
        "| context | parameters | "
        + " | ".join(f"step {step}" for step, _ in rows[0]["curve"])
        + " | seconds |"
    )
    print("|---|---:|" + "---:|" * len(rows[0]["curve"]) + "---:|")
    for row in rows:
        name = "complete" if row["complete_context"] else "paper"
        print(
            f"| {name} | {row['parameters']} | "
            + " | ".join(f"{nll:.2f}" for _, nll in row["curve"])
            + f" | {row['seconds']:.0f} |"
        )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as file:
        json.dump(dict(vars(args), rows=rows), file, indent=1)
    plot(
        {row["complete_context"]: row for row in rows},
        args.out + ".png",
        "test NLL (nats)",
        labels={False: "paper's context", True: "complete context"},
    )


if __name__ == "__main__":
    main()
