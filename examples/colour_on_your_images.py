"""Train a colour Gated PixelCNN on a folder of your own images, with plain `model.fit`.

    python examples/colour_on_your_images.py my_photos/ --image-size 32 --epochs 10
    python examples/colour_on_your_images.py data/node_modules/emoji-datasource-google/img/google/64

`ImageSource` reads the folder (PNG, JPEG, BMP or GIF, sub-folders included; grey and RGBA files
become RGB on white), resizes each image (aspect kept, centre crop), holds out 5 % by file name
and streams batches of uint8 levels. Each sub-pixel's distribution is a discretized mixture of
logistics (PixelCNN++), the likelihood colour models use; validation reports bits/dim on the
held-out images. Then the model samples with its fast sampler, is saved and is exported.
"""

import argparse
import os

import keras

import keras_gen  # noqa: F401  selects the TensorFlow backend
from keras_gen import export, plotting
from keras_gen.image_files import ImageSource
from keras_gen.models import GatedPixelCNN

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("folder", help="a folder of images (or a .npy / .npz uint8 array file)")
parser.add_argument("--image-size", type=int, default=32, help="the model's H and W")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--filters", type=int, default=72, help="a multiple of 3 (R, G, B groups)")
parser.add_argument("--layers", type=int, default=10)
parser.add_argument("--out", default="runs/colour_example")
args = parser.parse_args()

# 1. Data: your images as 8-bit RGB levels; "test" is the held-out 5 %, the same on every run.
source = ImageSource(
    args.folder, image_size=(args.image_size, args.image_size), channels=3, batch_size=16
)
train, test = source.load("train"), source.load("test")

# 2. The network of the zoo's colour model (saved_models/gated_pixelcnn_emoji) by default.
model = GatedPixelCNN(
    image_shape=source.image_shape(),  # (H, W, 3)
    num_levels=source.num_levels(),  # 256
    filters=args.filters,
    num_layers=args.layers,
    head_filters=args.filters,
    likelihood="logistic_mixture",
    num_mixtures=10,
)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
model.fit(train, epochs=args.epochs, validation_data=test)
print(model.evaluate(test, return_dict=True, verbose=0))  # nll in nats per image, bits_per_dim

# 3. Samples (the fast sampler draws each sub-pixel in turn), the model, and its export.
os.makedirs(args.out, exist_ok=True)
samples = model.sample(model.make_noise(16, seed=0))  # (16, H, W, 3) uint8 pixels
plotting.save_grid(samples.numpy(), os.path.join(args.out, "samples.png"))
model.save(os.path.join(args.out, "model.keras"))
export.export(model, os.path.join(args.out, "export"), overwrite=True)
print(f"wrote {args.out}/samples.png, model.keras and export/ (saved_model/, model.tflite)")
