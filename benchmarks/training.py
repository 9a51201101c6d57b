"""Training throughput of every model in float32 and mixed_bfloat16 (optionally mixed_float16), side by
side in one process, and the same PixelCNN written the tutorial way.

    python benchmarks/training.py                       # every model, 28x28 MNIST shapes, batch 64
    python benchmarks/training.py --models pixelcnn,vae --rounds 8
    python benchmarks/training.py --models row_lstm --policies float32,float32+xla   # XLA's effect

Every configuration is built first (same seed), on a prefetched tf.data pipeline of uint8 batches
(as `data.load` gives) and traced by a warm-up `fit`. Then the configurations take turns, round
after round, each training --steps steps in one `fit` call per round, the order rotating; a
callback times each step from its batch's start to its end, so `fit`'s own start-up (seconds of
it) is not counted. Each figure is the median step, with the middle half of the steps as its
spread, turned into images per second. "Tutorial PixelCNN" is `PixelCNN()`'s architecture written
as the common keras-io tutorial does: the mask multiplied into the kernel in Python on every
call, float inputs from NumPy arrays, float32, binary cross-entropy through `compile(loss=...)`.
The CPU's flags that decide bfloat16's speed are printed beside the table. A policy ending in
"+xla" compiles the training step with XLA (`compile(jit_compile=True)`), which Keras leaves off
on CPUs. Results go to --out as JSON and a plot.
"""

import argparse
import json
import os
import time

import keras_gen  # noqa: F401  (first: it hides TensorFlow's start-up lines)

# isort: split
import keras
import numpy as np
import tensorflow as tf

from keras_gen import models, precision

MODELS = {  # name: (registered model, options, levels of its data)
    "pixelcnn": ("pixelcnn", {}, 2),
    "gated_pixelcnn": ("gated_pixelcnn", {}, 2),
    "row_lstm": ("pixelrnn", {"kind": "row_lstm"}, 2),
    "diagonal_bilstm": ("pixelrnn", {"kind": "diagonal_bilstm"}, 2),
    "vae": ("vae", {}, 2),
    "dcgan": ("dcgan", {}, 256),
    "wgan_gp": ("wgan_gp", {}, 256),
    "conditional_gan": ("conditional_gan", {}, 256),
    "pixelvae": ("pixelvae", {}, 2),
    "vqvae": ("vqvae", {}, 256),
    # The prior's step includes encoding the batch with its frozen VQ-VAE (built per contestant).
    "vqvae_prior": ("vqvae_prior", {"vqvae": lambda: models.VQVAE()}, 256),
}
POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def batches(levels, batch_size, count, labels):
    """A prefetched pipeline of `count` deterministic uint8 batches of 28x28x1 levels."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, levels, (batch_size * count, 28, 28, 1)).astype(np.uint8)
    features = (images, (np.arange(len(images)) % 10).astype(np.int32)) if labels else images
    return (
        tf.data.Dataset.from_tensor_slices(features)
        .batch(batch_size)
        .cache()
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )


class StepTimer(keras.callbacks.Callback):
    """Seconds of each training step, from its batch's start to its end."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


class Contestant:
    """One configuration: a model, its data and the step times it has collected."""

    def __init__(self, name, policy, model, fit_data):
        self.name, self.policy, self.model, self.fit_data = name, policy, model, fit_data
        self.timer = StepTimer()

    def train(self, steps, timed=True):
        args, kwargs = self.fit_data(steps)
        self.model.fit(
            *args, **kwargs, epochs=1, verbose=0, callbacks=[self.timer] if timed else []
        )


def keras_gen_contestant(name, policy, batch_size):
    """`name` in `policy`, a dtype policy, with "+xla" for an XLA-compiled training step."""
    registered, options, levels = MODELS[name]
    keras.utils.set_random_seed(0)
    options = {key: value() if callable(value) else value for key, value in options.items()}
    dtype, _, xla = policy.partition("+")
    model = models.get(registered)(num_levels=levels, dtype=dtype, seed=0, **options)
    model.compile_for_training(jit_compile=xla == "xla")
    dataset = batches(levels, batch_size, 4, model.num_classes)
    return Contestant(name, policy, model, lambda steps: ((dataset,), dict(steps_per_epoch=steps)))


class TutorialMaskedConv(keras.layers.Layer):
    """The tutorial's masked conv: multiplies the mask into the kernel, in Python, on every call."""

    def __init__(self, mask_type, filters, kernel_size, activation=None):
        super().__init__()
        self.mask_type, self.conv = (
            mask_type,
            keras.layers.Conv2D(filters, kernel_size, padding="same", activation=activation),
        )

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
        reduced = keras.layers.Conv2D(filters // 2, 1, activation="relu")(
            keras.layers.ReLU()(hidden)
        )
        spatial = TutorialMaskedConv("B", filters // 2, 3, activation="relu")(reduced)
        hidden = keras.layers.add([hidden, keras.layers.Conv2D(filters, 1)(spatial)])
    head = keras.layers.Conv2D(head_filters, 1, activation="relu")(keras.layers.ReLU()(hidden))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(head)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


def tutorial_contestant(batch_size):
    keras.utils.set_random_seed(0)
    model = tutorial_pixelcnn()
    images = np.random.default_rng(0).integers(0, 2, (batch_size * 4, 28, 28, 1)).astype(np.float32)
    return Contestant(
        "tutorial_pixelcnn",
        "float32",
        model,
        lambda steps: (
            (np.resize(images, (batch_size * steps,) + images.shape[1:]),) * 2,
            dict(batch_size=batch_size),
        ),
    )


def summary(contestant, batch_size):
    """{median step (s), its quartiles, images/s}, from the timed steps."""
    seconds = np.asarray(contestant.timer.seconds)
    low, median, high = np.percentile(seconds, [25, 50, 75])
    return dict(
        model=contestant.name,
        policy=contestant.policy,
        steps=len(seconds),
        median_step_s=median,
        quartiles_s=[low, high],
        images_per_second=batch_size / median,
    )


def plot(rows, policies, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(row["model"] for row in rows))
    figure, axis = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(policies)
    for offset, policy in enumerate(policies):
        values = [
            next(
                (r["images_per_second"] for r in rows if r["model"] == n and r["policy"] == policy),
                0,
            )
            for n in names
        ]
        centre = offset - (len(policies) - 1) / 2
        axis.bar(np.arange(len(names)) + centre * width, values, width, label=policy)
    axis.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    axis.set_ylabel("images / s (log)")
    axis.set_yscale("log")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS)
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps per configuration (tracing)."
    )
    parser.add_argument(
        "--steps", type=int, default=3, help="timed steps per configuration and round."
    )
    parser.add_argument("--rounds", type=int, default=5, help="turns each configuration takes.")
    parser.add_argument(
        "--policies",
        default="float32,mixed_bfloat16",
        help="comma list of " + ", ".join(POLICIES) + ", each optionally with +xla; "
        "mixed_float16 is very slow on CPUs, "
        "whose float16 convolution gradients have no fast kernel",
    )
    parser.add_argument(
        "--out", default="benchmarks/results/training", help="path stem for .json, .png"
    )
    args = parser.parse_args()
    policies = args.policies.split(",")
    contestants = [
        keras_gen_contestant(name, policy, args.batch_size)
        for name in args.models.split(",")
        for policy in policies
    ]
    if "pixelcnn" in args.models.split(",") and "float32" in policies:
        contestants.append(tutorial_contestant(args.batch_size))
    for contestant in contestants:
        contestant.train(args.warmup, timed=False)
        print(f"warmed up {contestant.name} {contestant.policy}", flush=True)
    for turn in range(args.rounds):
        shift = turn % len(contestants)
        for contestant in contestants[shift:] + contestants[:shift]:
            contestant.train(args.steps)
        print(f"round {turn + 1}/{args.rounds} done", flush=True)
    rows = [summary(contestant, args.batch_size) for contestant in contestants]

    print(
        f"\nCPU: {os.cpu_count()} cores; flags: {precision.speed_flags()}; bfloat16 native: "
        f"{precision.native_bfloat16()[0]}"
    )
    print(
        f"Training throughput, batch {args.batch_size}, 28x28x1: images/s from the median of "
        f"{args.rounds} x {args.steps} steps taken in turns (middle half of the steps in brackets); "
        "speed-up against float32\n"
    )
    print("| model | " + " | ".join(policies) + " |")
    print("|---|" + "---:|" * len(policies))
    for name in dict.fromkeys(row["model"] for row in rows):
        found = {r["policy"]: r for r in rows if r["model"] == name}
        cells = []
        for policy in policies:
            row = found.get(policy)
            if row is None:
                cells.append("")
                continue
            low, high = (args.batch_size / q for q in reversed(row["quartiles_s"]))
            cell = f"{row['images_per_second']:.0f} ({low:.0f}-{high:.0f})"
            if policy != "float32" and "float32" in found:
                cell += f", {row['images_per_second'] / found['float32']['images_per_second']:.2f}x"
            cells.append(cell)
        print(f"| {name} | {' | '.join(cells)} |")
    by_key = {(r["model"], r["policy"]): r["images_per_second"] for r in rows}
    if ("tutorial_pixelcnn", "float32") in by_key:
        print()
        for policy in policies:
            if ("pixelcnn", policy) in by_key:
                print(
                    f"PixelCNN, keras_gen in {policy} against the tutorial way: "
                    f"{by_key[('pixelcnn', policy)] / by_key[('tutorial_pixelcnn', 'float32')]:.2f}x"
                )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as file:
        json.dump(dict(vars(args), cpu_flags=precision.speed_flags(), rows=rows), file, indent=1)
    plot(rows, policies, args.out + ".png")


if __name__ == "__main__":
    main()
