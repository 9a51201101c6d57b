"""PixelVAE on binarized MNIST: a VAE whose decoder is a small PixelCNN conditioned on z.

    python examples/pixelvae.py --manual-dir ../shared/data --epochs 2

The encoder maps a digit to q(z | x); z is upsampled to a map that biases every masked block
of the PixelCNN decoder. The masked layers draw the strokes, so z is left to carry the digit's
shape: rows of the picture share one z and differ only in the pixel noise.
"""

import argparse
import os

import keras
import numpy as np

import keras_gen  # noqa: F401  selects the TensorFlow backend
from keras_gen import data, plotting
from keras_gen.models import PixelVAE

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--manual-dir", help="folder with mnist/ (raw .gz files), for offline use")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--take", type=int, default=None, help="use only the first N images")
parser.add_argument("--importance-samples", type=int, default=100)
parser.add_argument("--out", default="runs/pixelvae_example")
args = parser.parse_args()

# 1. Data: 0/1 digits, binarized afresh each epoch for training.
train = data.load(
    "mnist",
    "train",
    batch_size=128,
    preprocessing="dynamic_binarize",
    take=args.take,
    manual_dir=args.manual_dir,
)
test = data.load(
    "mnist",
    "test[:500]",
    batch_size=250,
    preprocessing="threshold_binarize",
    take=args.take,
    manual_dir=args.manual_dir,
)

# 2. The model: 32 latents, a 3-block PixelCNN decoder. The KL weight warms up over the first
#    1,000 steps, so the decoder learns to read z before the KL term pushes q(z | x) to the prior.
model = PixelVAE(latent_dim=32, num_blocks=3, kl_warmup_steps=1000, seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
model.fit(train, epochs=args.epochs, validation_data=test)

# 3. The ELBO's terms and the IWAE bound, in nats per image. The KL is what z carries.
results = model.evaluate(test, return_dict=True, verbose=0)
print(f"test ELBO: reconstruction {results['reconstruction']:.2f} + KL {results['kl']:.2f} nats")
images = next(iter(test))[:100]
nll = -np.mean(model.log_prob(images, num_samples=args.importance_samples, seed=0))
print(f"IWAE bound, k = {args.importance_samples}: {nll:.2f} nats per image")

# 4. Samples: each row keeps one z from the prior and draws fresh pixel noise per column.
rows, columns = 6, 8
noise = model.make_noise(rows * columns, seed=0)
noise["z"] = np.repeat(noise["z"][::columns], columns, axis=0)
samples = model.sample(noise).numpy()
os.makedirs(args.out, exist_ok=True)
plotting.save_grid(
    samples, os.path.join(args.out, "samples_per_z.png"), "one z per row", columns=columns
)
model.save(os.path.join(args.out, "pixelvae.keras"))
print("wrote", os.path.join(args.out, "samples_per_z.png"))
