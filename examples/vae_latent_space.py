"""A VAE's latent space as pictures: interpolation between two test digits, and the 2-D manifold.

    python examples/vae_latent_space.py --manual-dir ../shared/data --epochs 10

Trains a VAE with a 2-D latent space (so the whole space fits in one picture),
then writes interpolation.png (decoded means along the line between the
encodings of test digits) and manifold.png (decoded means on a grid of normal
quantiles, as in Kingma & Welling's Figure 4).
"""

import argparse
import os
from statistics import NormalDist

import keras
import numpy as np

import keras_gen  # noqa: F401  selects the TensorFlow backend
from keras_gen import data, plotting
from keras_gen.conventions import unit_to_pixels
from keras_gen.models import VAE

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--manual-dir", help="folder with MNIST's raw files, for offline use")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--take", type=int, default=None, help="use only the first N training images")
parser.add_argument("--steps", type=int, default=8, help="images per interpolation row")
parser.add_argument("--grid", type=int, default=15, help="manifold grid size")
parser.add_argument("--out", default="runs/vae_latent_space")
args = parser.parse_args()

train = data.load(
    "mnist",
    "train",
    batch_size=128,
    preprocessing="dynamic_binarize",
    take=args.take,
    manual_dir=args.manual_dir,
)
model = VAE(image_shape=(28, 28, 1), num_levels=2, latent_dim=2, widths=(32, 64), seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
model.fit(train, epochs=args.epochs)
os.makedirs(args.out, exist_ok=True)

# Interpolation: 4 pairs of test digits, one row each.
test = data.as_numpy(
    data.load(
        "mnist",
        "test",
        batch_size=8,
        preprocessing="threshold_binarize",
        take=8,
        shuffle=False,
        manual_dir=args.manual_dir,
    )
)
means, _ = model.encode(test)
means = means.numpy()
weights = np.linspace(0.0, 1.0, args.steps, dtype=np.float32)[:, None]
rows = [
    (1 - weights) * means[2 * pair] + weights * means[2 * pair + 1]
    for pair in range(len(means) // 2)
]
decoded = unit_to_pixels(model.decode_mean(np.concatenate(rows))).numpy()
plotting.save_grid(
    decoded, os.path.join(args.out, "interpolation.png"), title="latent interpolation"
)

# Manifold: z on a grid of normal quantiles, so equal areas of the prior get equal room.
quantiles = np.array(
    [NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, args.grid)], np.float32
)
z = np.array([[x, y] for y in quantiles[::-1] for x in quantiles], np.float32)
manifold = unit_to_pixels(model.decode_mean(z)).numpy()
plotting.save_grid(manifold, os.path.join(args.out, "manifold.png"), title="2-D latent manifold")
print(f"wrote {args.out}/interpolation.png and {args.out}/manifold.png")
