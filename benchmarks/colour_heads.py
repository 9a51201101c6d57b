"""The 256-way softmax head against the discretized logistic-mixture head (issue N), on the same
colour images, budget and seed, side by side in one process.

    python benchmarks/colour_heads.py --images DIR/node_modules/emoji-datasource-google/img/google/64
    python benchmarks/colour_heads.py --images photos/ --image-size 32 --train-steps 400

Both heads sit on the same Gated PixelCNN (the colour zoo recipe's network unless --options says
otherwise), built from the same seed. They train on the same batches, in the same order, taking
turns every --round steps so that whatever else the CPU runs slows both alike; each step is timed
alone. Then each is scored on the held-out images (test bits/dim, through `log_prob`) and times
its fast sampler (XLA) on one batch of --sample-batch images after a warm-up call. Rows go to
--out as JSON.
"""

import argparse
import json
import os
import statistics
import time

import keras_gen  # noqa: F401  (first: it hides TensorFlow's start-up lines)

# isort: split
import keras
import numpy as np

from keras_gen import data, models, recipes
from keras_gen.image_files import ImageSource

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPE = os.path.join(os.path.dirname(HERE), "saved_models", "gated_pixelcnn_emoji", "recipe.json")
HEADS = ("categorical", "logistic_mixture")


def build(head, image_shape, options, seed):
    keras.utils.set_random_seed(seed)
    options = {**options, "likelihood": head}
    if head != "logistic_mixture":
        options.pop("num_mixtures", None)
    model = models.GatedPixelCNN(image_shape=image_shape, num_levels=256, **options)
    model.compile_for_training()
    return model


def bits_per_dim(model, images):
    """Mean negative log-likelihood of uint8 `images`, in bits per sub-pixel."""
    log_p = np.concatenate([model.log_prob(images[i : i + 64]) for i in range(0, len(images), 64)])
    return float(-np.mean(log_p) / (np.prod(images.shape[1:]) * np.log(2)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="a folder of colour images or an array")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--options", default=None, help="JSON options of the Gated PixelCNN")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--round", type=int, default=10, help="steps a head takes per turn")
    parser.add_argument("--sample-batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()

    options = json.loads(args.options) if args.options else recipes.load(RECIPE)["options"]
    options.pop("likelihood", None)
    size = (args.image_size, args.image_size)
    source = ImageSource(args.images, image_size=size, channels=3, batch_size=args.batch_size)
    train = data.as_numpy(source.load("train", shuffle=False))
    test = source.real_images("test", 10_000)
    order = np.random.default_rng(args.seed).permutation(len(train))
    batches = [
        train[order[(step * args.batch_size + np.arange(args.batch_size)) % len(train)]]
        for step in range(args.train_steps)
    ]
    contestants = {head: build(head, source.image_shape(), options, args.seed) for head in HEADS}
    step_seconds = {head: [] for head in HEADS}
    for model in contestants.values():  # traced before timing
        model.train_on_batch(batches[0])
    for start in range(1, args.train_steps, args.round):
        for head, model in contestants.items():
            for batch in batches[start : start + args.round]:
                begin = time.perf_counter()
                model.train_on_batch(batch)
                step_seconds[head].append(time.perf_counter() - begin)
    rows = []
    for head, model in contestants.items():
        noise = model.make_noise(args.sample_batch, seed=args.seed)
        model.sample(noise)  # traced and compiled
        begin = time.perf_counter()
        model.sample(noise)
        sample_seconds = (time.perf_counter() - begin) / args.sample_batch
        rows.append(
            dict(
                head=head,
                test_bits_per_dim=bits_per_dim(model, test),
                parameters=int(model.count_params()),
                train_images_per_second=args.batch_size / statistics.median(step_seconds[head]),
                sample_seconds_per_image=sample_seconds,
            )
        )
    print(
        f"{len(train):,} train and {len(test):,} held-out {size[0]}x{size[1]} RGB images from "
        f"{args.images}; {args.train_steps} steps of {args.batch_size}, seed {args.seed}\n"
    )
    print("| head | test bits/dim | parameters | train img/s | sampling s/image |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['head']} | {row['test_bits_per_dim']:.3f} | {row['parameters']:,} | "
            f"{row['train_images_per_second']:.1f} | {row['sample_seconds_per_image']:.2f} |"
        )
    if args.out:
        settings = {k: v for k, v in vars(args).items() if k != "out"}
        with open(args.out, "w") as file:
            json.dump({"settings": {**settings, "options": options}, "rows": rows}, file, indent=1)


if __name__ == "__main__":
    main()
