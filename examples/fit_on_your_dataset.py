"""Train a keras_gen model with plain `model.fit` on a tfds dataset of your choice.

    python examples/fit_on_your_dataset.py --dataset fashion_mnist --manual-dir ../shared/data --epochs 2
    python examples/fit_on_your_dataset.py --model pixelvae --dataset fashion_mnist ...

`data.load` turns any tfds image dataset into batches of uint8 levels; the
model is an ordinary Keras model, so callbacks, distribution strategies and
`model.save` work as usual.
"""

import argparse

import keras

import keras_gen  # noqa: F401  selects the TensorFlow backend
from keras_gen import data
from keras_gen.models import PixelCNN, PixelVAE

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--dataset", default="fashion_mnist", help="any tfds image dataset")
parser.add_argument("--manual-dir", help="folder of the dataset's raw files, for offline use")
parser.add_argument("--model", choices=["pixelcnn", "pixelvae"], default="pixelcnn")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--take", type=int, default=None, help="use only the first N images")
parser.add_argument("--out", default="runs/fit_example.keras")
args = parser.parse_args()

# 4 grey levels (2 bits) keep the softmax small; the model adapts to the dataset's image shape.
train = data.load(
    args.dataset, "train", batch_size=64, bits=2, take=args.take, manual_dir=args.manual_dir
)
test = data.load(
    args.dataset, "test", batch_size=64, bits=2, take=args.take, manual_dir=args.manual_dir
)
image_shape = data.image_shape_of(args.dataset, args.manual_dir)

if args.model == "pixelcnn":
    model = PixelCNN(image_shape=image_shape, num_levels=4, filters=32, num_blocks=3)
else:  # a VAE with a PixelCNN decoder; its nll is an IWAE bound (importance samples of z)
    model = PixelVAE(
        image_shape=image_shape, num_levels=4, filters=32, num_blocks=3, eval_num_samples=10
    )
model.compile(optimizer=keras.optimizers.Adam(1e-3))
model.fit(
    train,
    epochs=args.epochs,
    validation_data=test,
    callbacks=[
        keras.callbacks.EarlyStopping("val_nll", mode="min", patience=2, restore_best_weights=True)
    ],
)
print(model.evaluate(test, return_dict=True, verbose=0))  # nll (nats per image) and bits_per_dim
model.save(args.out)
