"""PixelCNN completing the bottom half of test digits.

    python examples/pixelcnn_completion.py --manual-dir ../shared/data --out completions.png

Keeps the top half of each (thresholded) MNIST test digit and samples the bottom half,
several times each; every row of the picture is one digit: the original, its
top half, then the completions.
"""

import argparse

import numpy as np

import keras_gen  # noqa: F401  selects the TensorFlow backend
from keras_gen import data, plotting
from keras_gen.models import PixelCNN

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument(
    "--model", default="pixelcnn_binarized_mnist", help="a zoo name or a .keras file"
)
parser.add_argument("--manual-dir", help="folder with MNIST's raw files, for offline use")
parser.add_argument("--digits", type=int, default=6)
parser.add_argument("--completions", type=int, default=5, help="completions of each digit")
parser.add_argument(
    "--method",
    default="auto",
    choices=["auto", "fast", "plain"],
    help="sampler: fast (cached; the default where the model has one) or plain (a full pass a step)",
)
parser.add_argument("--out", default="completions.png")
args = parser.parse_args()

model = PixelCNN.from_preset(args.model)
digits = data.as_numpy(
    data.load(
        "mnist",
        "test",
        batch_size=args.digits,
        take=args.digits,
        shuffle=False,
        preprocessing="threshold_binarize",
        manual_dir=args.manual_dir,
    )
)
height = model.image_shape[0]
known = np.repeat(digits, args.completions, axis=0)
known_mask = np.zeros(known.shape, bool)
known_mask[:, : height // 2] = True  # keep the top half
noise = model.make_noise(len(known), seed=0)
completed = (
    model.complete(known, known_mask, noise, method=args.method)
    .numpy()
    .reshape((args.digits, args.completions) + model.image_shape)
)

originals = model.levels_to_pixels(digits).numpy()
top_halves = originals * known_mask[:: args.completions]
rows = np.concatenate([originals[:, None], top_halves[:, None], completed], axis=1)
plotting.save_grid(
    rows.reshape((-1,) + model.image_shape),
    args.out,
    columns=args.completions + 2,
    title="original | top half | completions",
)
print(f"{args.digits} digits x {args.completions} completions -> {args.out}")
