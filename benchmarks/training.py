"""Training throughput of every model in float32, mixed_bfloat16 and mixed_float16, side by side in one run,
and the same PixelCNN written the tutorial way.

    python benchmarks/training.py                       # every model, 28x28 MNIST shapes, batch 64
    python benchmarks/training.py --models pixelcnn,vae --steps 20

Each configuration trains a fresh model (same seed) with `fit` on a prefetched
tf.data pipeline of uint8 batches (as `data.load` gives), first for --warmup
steps (tracing), then for --steps timed steps; the figure is images per second.
"Tutorial PixelCNN" is the same architecture as `PixelCNN()` written as the
common keras-io tutorial does: the mask multiplied into the kernel in Python on
every call, float inputs from NumPy arrays (no tf.data prefetch), float32,
binary cross-entropy through `compile(loss=...)`.
Results go to --out as JSON and a plot.
"""

import argparse
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

import keras_gen  # noqa: F401
from keras_gen import data, models

MODELS = {  # name: (registered model, options, levels of its data)
    "pixelcnn": ("pixelcnn", {}, 2),
    "gated_pixelcnn": ("gated_pixelcnn", {}, 2),
    "row_lstm": ("pixelrnn", {"kind": "row_lstm"}, 2),
    "diagonal_bilstm": ("pixelrnn", {"kind": "diagonal_bilstm"}, 2),
    "vae": ("vae", {}, 2),
    "dcgan": ("dcgan", {}, 256),
    "wgan_gp": ("wgan_gp", {}, 256),
    "conditional_gan": ("conditional_gan", {}, 256),
}
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def batches(levels, batch_size, count, labels):
    """A prefetched pipeline of `count` deterministic uint8 batches of 28x28x1 levels."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, levels, (batch_size * count, 28, 28, 1)).astype(np.uint8)
    features = (images, (np.arange(len(images)) % 10).astype(np.int32)) if labels else images
    return tf.data.Dataset.from_tensor_slices(features).batch(batch_size).cache().repeat().prefetch(
        tf.data.AUTOTUNE)


def images_per_second(model, dataset, batch_size, warmup, steps):
    model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def measure(name, policy, batch_size, warmup, steps):
    registered, options, levels = MODELS[name]
    keras.utils.set_random_seed(0)
    model = models.get(registered)(num_levels=levels, dtype=policy, seed=0, **options)
    model.compile_for_training()
    return images_per_second(model, batches(levels, batch_size, 4, model.num_classes), batch_size, warmup, steps)


class TutorialMaskedConv(keras.layers.Layer):
    """The tutorial's masked conv: multiplies the mask into the kernel, in Python, on every call."""

    def __init__(self, mask_type, filters, kernel_size, activation=None):
        super().__init__()
        self.mask_type, self.conv = mask_type, keras.layers.Conv2D(filters, kernel_size, padding="same",
                                                                  activation=activation)

    def build(self, input_shape):
        self.conv.build(input_shape)
        rows, cols = self.conv.kernel.shape[:2]
        mask = np.zeros(self.conv.kernel.shape, np.float32)
        mask[: rows // 2] = 1.0
        mask[rows // 2, : cols // 2 + (self.mask_type == "B")] = 1.0
        self.mask = mask

    def call(self, inputs):
        self.conv.kernel.assign(self.conv.kernel * self.mask)
        return self.conv(inputs)


def tutorial_pixelcnn(filters=64, num_blocks=5, head_filters=64):
    """PixelCNN() (64 filters, 5 blocks, 64 head filters) the keras-io way, as a Functional model."""
    inputs = keras.Input((28, 28, 1))
    hidden = TutorialMaskedConv("A", filters, 7)(inputs)
    for _ in range(num_blocks):
        reduced = keras.layers.Conv2D(filters // 2, 1, activation="relu")(keras.layers.ReLU()(hidden))
        spatial = TutorialMaskedConv("B", filters // 2, 3, activation="relu")(reduced)
        hidden = keras.layers.add([hidden, keras.layers.Conv2D(filters, 1)(spatial)])
    head = keras.layers.Conv2D(head_filters, 1, activation="relu")(keras.layers.ReLU()(hidden))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(head)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


def measure_tutorial(batch_size, warmup, steps):
    keras.utils.set_random_seed(0)
    model = tutorial_pixelcnn()
    images = np.random.default_rng(0).integers(0, 2, (batch_size * max(warmup, steps), 28, 28, 1)).astype(np.float32)
    model.fit(images[: batch_size * warmup], images[: batch_size * warmup], batch_size=batch_size, verbose=0)
    start = time.perf_counter()
    model.fit(images[: batch_size * steps], images[: batch_size * steps], batch_size=batch_size, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(row["model"] for row in rows))
    figure, axis = plt.subplots(figsize=(10, 4))
    for offset, policy in enumerate(POLICIES):
        values = [next((r["images_per_second"] for r in rows if r["model"] == n and r["policy"] == policy), 0)
                  for n in names]
        axis.bar(np.arange(len(names)) + (offset - 1) * 0.27, values, 0.27, label=policy)
    axis.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    axis.set_ylabel("images / s (log)")
    axis.set_yscale("log")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--policies", default="float32,mixed_bfloat16",
                        help="comma list of " + ", ".join(POLICIES) + "; mixed_float16 is very slow on CPUs, "
                             "whose float16 convolution gradients have no fast kernel")
    parser.add_argument("--out", default="benchmarks/results/training", help="path stem for .json, .png")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        for policy in args.policies.split(","):
            speed = measure(name, policy, args.batch_size, args.warmup, args.steps)
            rows.append(dict(model=name, policy=policy, images_per_second=speed))
            print(f"{name:>16} {policy:>15} {speed:9.1f} images/s", flush=True)
        if name == "pixelcnn" and "float32" in args.policies:
            speed = measure_tutorial(args.batch_size, args.warmup, args.steps)
            rows.append(dict(model="tutorial_pixelcnn", policy="float32", images_per_second=speed))
            print(f"{'tutorial_pixelcnn':>16} {'float32':>15} {speed:9.1f} images/s", flush=True)

    print(f"\nTraining throughput, batch {args.batch_size}, 28x28x1, {args.steps} timed steps after "
          f"{args.warmup} warm-up steps (images/s; speed-up against float32)\n")
    print("| model | float32 | mixed_bfloat16 | mixed_float16 |")
    print("|---|---:|---:|---:|")
    for name in dict.fromkeys(row["model"] for row in rows):
        speeds = {r["policy"]: r["images_per_second"] for r in rows if r["model"] == name}
        cells = [f"{speeds[p]:.0f}" + ("" if p == "float32" else f" ({speeds[p] / speeds['float32']:.2f}x)")
                 if p in speeds else "" for p in POLICIES]
        print(f"| {name} | {' | '.join(cells)} |")
    if any(r["model"] == "tutorial_pixelcnn" for r in rows):
        ours = next(r for r in rows if r["model"] == "pixelcnn" and r["policy"] == "mixed_bfloat16")
        tutorial = next(r for r in rows if r["model"] == "tutorial_pixelcnn")
        print(f"\nPixelCNN, keras_gen in mixed_bfloat16 against the tutorial way: "
              f"{ours['images_per_second'] / tutorial['images_per_second']:.2f}x")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as file:
        json.dump(dict(vars(args), rows=rows), file, indent=1)
    plot(rows, args.out + ".png")


if __name__ == "__main__":
    main()
