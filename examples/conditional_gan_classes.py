"""Conditional GAN samples, one row per class.

    python examples/conditional_gan_classes.py --model conditional_gan_mnist --out classes.png

--model is a zoo name, an export directory, a .tflite file or a .keras file.
"""

import argparse

import numpy as np

import keras_gen  # noqa: F401  selects the TensorFlow backend
from keras_gen import plotting, runtime, zoo

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--model", default="conditional_gan_mnist")
parser.add_argument("--per-class", type=int, default=10, help="images in each row")
parser.add_argument("--out", default="classes.png")
args = parser.parse_args()

runner = runtime.open_artifact(zoo.resolve(args.model))
classes = runner.num_classes
labels = np.repeat(np.arange(classes, dtype=np.int32), args.per_class)  # row r holds class r
noise = runner.make_noise(len(labels), seed=0)
images = runner.sample(noise, labels)
plotting.save_grid(
    images, args.out, title=f"one row per class (0..{classes - 1})", columns=args.per_class
)
print(f"{len(images)} images, {args.per_class} per class -> {args.out}")
