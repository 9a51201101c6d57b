"""Which likelihoods train worse in bfloat16: the same networks, seed and batches, float32 against
mixed_bfloat16, on 8-bit colour images (what `--mixed-precision auto` follows).

    python benchmarks/bfloat16_likelihoods.py --images .data/node_modules/emoji-datasource-google/img/google/64

Rows: the colour VAE (discretized logistic; also with its decoder alone in float32), and a small
Gated PixelCNN with the logistic-mixture head and with the 256-way softmax. Each trains
--vae-steps or --pixelcnn-steps steps from seed 0 and is scored on the held-out 5 % (the VAE by its IWAE bound with k = 10).
Prints a table; --out gets it as JSON and a PNG of each row's prior samples.
"""

import argparse
import json
import os
import time

import keras_gen  # noqa: F401  (first: it hides TensorFlow's start-up lines)

# isort: split
import keras
import numpy as np

from keras_gen import plotting
from keras_gen.image_files import ImageSource
from keras_gen.models import VAE, GatedPixelCNN

VAE_OPTIONS = dict(likelihood="logistic", widths=[64, 128], latent_dim=64, beta=3)
PIXELCNN_OPTIONS = dict(filters=36, num_layers=5, head_filters=36)
# (row, model class, options, batch size, precision, decoder in float32)
ROWS = [
    ("VAE, logistic", VAE, VAE_OPTIONS, 64, "float32", False),
    ("VAE, logistic", VAE, VAE_OPTIONS, 64, "mixed_bfloat16", False),
    ("VAE, logistic", VAE, VAE_OPTIONS, 64, "mixed_bfloat16", True),
    ("Gated PixelCNN, logistic mixture", GatedPixelCNN, dict(PIXELCNN_OPTIONS, likelihood="logistic_mixture"), 16, "float32", False),
    ("Gated PixelCNN, logistic mixture", GatedPixelCNN, dict(PIXELCNN_OPTIONS, likelihood="logistic_mixture"), 16, "mixed_bfloat16", False),
    ("Gated PixelCNN, 256-way softmax", GatedPixelCNN, dict(PIXELCNN_OPTIONS, likelihood="categorical"), 16, "float32", False),
    ("Gated PixelCNN, 256-way softmax", GatedPixelCNN, dict(PIXELCNN_OPTIONS, likelihood="categorical"), 16, "mixed_bfloat16", False),
]  # fmt: skip


def build(model_class, options, source, precision, decoder_in_float32):
    keras.utils.set_random_seed(0)
    extra = {"eval_num_samples": 10} if model_class is VAE else {}
    model = model_class(
        image_shape=source.image_shape(),
        num_levels=source.num_levels(),
        dtype=precision,
        **options,
        **extra,
    )
    if decoder_in_float32:  # a diagnosis, not an option: where the bfloat16 rounding hurts
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")
        try:
            model.decoder = model.make_decoder()
        finally:
            keras.config.set_dtype_policy(previous)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", required=True, help="the emoji folder (or any colour images)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--vae-steps", type=int, default=600)
    parser.add_argument("--pixelcnn-steps", type=int, default=400)
    parser.add_argument("--out", default="benchmarks/results/bfloat16_likelihoods")
    args = parser.parse_args()

    results, samples = [], {}
    for name, model_class, options, batch_size, precision, decoder_in_float32 in ROWS:
        source = ImageSource(
            args.images, image_size=(args.image_size,) * 2, channels=3, batch_size=batch_size
        )
        model = build(model_class, options, source, precision, decoder_in_float32)
        steps = args.vae_steps if model_class is VAE else args.pixelcnn_steps
        start = time.time()
        model.fit(source.load("train").repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
        seconds = time.time() - start
        scores = model.evaluate(source.load("test"), return_dict=True, verbose=0)
        label = precision + (", decoder in float32" if decoder_in_float32 else "")
        dimensions = int(np.prod(model.image_shape))
        results.append(
            dict(
                model=name,
                precision=label,
                steps=steps,
                batch_size=batch_size,
                nll_nats=round(float(scores["nll"]), 1),
                bits_per_dim=round(float(scores["nll"] / dimensions / np.log(2)), 4),
                seconds=round(seconds),
            )
        )
        print(results[-1], flush=True)
        if model_class is VAE:  # the prior's samples show what the rounding costs
            samples[label] = np.asarray(model.sample(model.make_noise(16, seed=1)))

    print(
        "\n| model | precision | steps | held-out nats | bits/dim | s |\n|---|---|---:|---:|---:|---:|"
    )
    for row in results:
        print(
            f"| {row['model']} | {row['precision']} | {row['steps']} | {row['nll_nats']:,.1f} | "
            f"{row['bits_per_dim']:.4f} | {row['seconds']} |"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as file:
        json.dump({"rows": results}, file, indent=1)
    plotting.save_rows(samples, args.out + "_vae_samples.png")
    print(f"\nwrote {args.out}.json and {args.out}_vae_samples.png")


if __name__ == "__main__":
    main()
