"""VQ-VAE on MNIST, then a PixelCNN prior over its codes: the two stages in plain `model.fit`.

    python examples/vqvae.py --manual-dir ../shared/data --epochs 2 --prior-epochs 2
    python examples/vqvae.py --dataset fashion_mnist ...     # or any tfds image dataset

Stage 1 compresses each 28 x 28 digit into a 7 x 7 grid of codes from a codebook of 64
vectors. Stage 2 learns which grids occur: a PixelCNN over the codes, which reads each code
through an embedding. Sampling draws a grid from the prior and decodes it, in one graph.
"""

import argparse
import os

import keras
import numpy as np

import keras_gen  # noqa: F401  selects the TensorFlow backend
from keras_gen import data, plotting
from keras_gen.models import VQVAE, VQVAEPrior, vqvae

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument(
    "--dataset", default="mnist", help="any tfds image dataset (H, W divisible by 4)"
)
parser.add_argument("--manual-dir", help="folder of the dataset's raw files, for offline use")
parser.add_argument("--epochs", type=int, default=2, help="of the VQ-VAE")
parser.add_argument("--prior-epochs", type=int, default=2)
parser.add_argument("--take", type=int, default=None, help="use only the first N images")
parser.add_argument("--out", default="runs/vqvae_example")
args = parser.parse_args()

load = dict(take=args.take, manual_dir=args.manual_dir)
train = data.load(args.dataset, "train", batch_size=128, **load)
test = data.load(args.dataset, "test[:1000]", batch_size=500, **load)
image_shape = data.image_shape_of(args.dataset, args.manual_dir)

# 1. The VQ-VAE: 64 codes of 16 dimensions; the codebook follows moving averages of the
#    latents assigned to it, and unused codes restart at latents of the batch.
model = VQVAE(image_shape=image_shape, num_codes=64, code_dim=16, seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
model.fit(train, epochs=args.epochs, validation_data=test)
images = next(iter(test))[:16].numpy()
codes = model.encode_codes(images)  # (16, H / 4, W / 4) ints in [0, 64): 7 x 7 for MNIST
perplexity, dead = vqvae.code_usage(codes, model.num_codes)
print(f"codebook: perplexity {perplexity:.1f} of 64 codes, {dead} unused in these 16 digits")

# 2. The prior: a PixelCNN over the frozen VQ-VAE's code grids. Its nll is in nats per grid.
prior = VQVAEPrior(model, filters=64, num_blocks=5, embedding_dim=32, seed=0)
prior.compile(optimizer=keras.optimizers.Adam(1e-3))
prior.fit(train, epochs=args.prior_epochs, validation_data=test)

# 3. Reconstructions above, samples below.
reconstructions = model.decode_codes(codes).numpy()
samples = prior.sample(prior.make_noise(16, seed=0)).numpy()
os.makedirs(args.out, exist_ok=True)
picture = os.path.join(args.out, "reconstructions_and_samples.png")
plotting.save_grid(
    np.concatenate([images, reconstructions, samples]),  # 8-bit levels are pixels already
    picture,
    "test digits, their reconstructions, samples",
    columns=16,
)
prior.save(os.path.join(args.out, "vqvae_prior.keras"))
print("wrote", picture)
