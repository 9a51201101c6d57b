"""Use a keras_gen model from your own code: fit, save, export, and sample on LiteRT.

python examples/vae_in_your_code.py --manual-dir ../shared/data/mnist --epochs 1
"""

import argparse
import os

import keras

import keras_gen  # noqa: F401  selects the TensorFlow backend
from keras_gen import data, export, runtime
from keras_gen.models import VAE

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--manual-dir", help="folder with MNIST's raw .gz files, for offline use")
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--out", default="runs/example")
args = parser.parse_args()

# 1. Data: uint8 0/1 images, a fresh binarization each epoch.
train = data.load(
    "mnist", "train", batch_size=128, preprocessing="dynamic_binarize", manual_dir=args.manual_dir
)
test = data.load(
    "mnist",
    "test[:1000]",
    batch_size=500,
    preprocessing="threshold_binarize",
    manual_dir=args.manual_dir,
)

# 2. An ordinary Keras workflow: compile, fit, evaluate, save.
model = VAE(image_shape=(28, 28, 1), num_levels=2, latent_dim=16)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
model.fit(train, epochs=args.epochs, validation_data=test)
print(model.evaluate(test, return_dict=True, verbose=0))  # nll: IWAE estimate, nats per image
os.makedirs(args.out, exist_ok=True)
model.save(os.path.join(args.out, "vae.keras"))

# 3. Export, then sample through LiteRT with the same noise as in Keras.
export_dir = os.path.join(args.out, "vae_export")
export.export(model, export_dir, overwrite=True)
noise = model.make_noise(8, seed=0)
on_device = runtime.open_artifact(os.path.join(export_dir, "model.tflite")).sample(noise)
print(
    "LiteRT and Keras agree:", (abs(on_device.astype(int) - model.sample(noise).numpy()) <= 1).all()
)
