"""Sampling speed of the autoregressive models, every sampler side by side in one run.

    python benchmarks/sampling.py --model pixelcnn --num 16
    python benchmarks/sampling.py --model saved_models/pixelcnn_binarized_mnist/model.keras
    python benchmarks/sampling.py --model all --skip-predict-loop            # every kind, default sizes
    python benchmarks/sampling.py --model pixelcnn --sizes 16,28,32,64 --skip-predict-loop

For each model it times, on the same noise: the per-pixel `model.predict`
loop of the common tutorial, the in-graph plain loop (one full pass per
sub-pixel inside tf.while_loop), the model's fast sampler, the exported
SavedModel, and LiteRT with 1 and 2 threads (16 images, then one image at a
time with 1 thread: the on-device latency). After a warm-up call each, the
samplers take turns, one call each per round, and each figure is the median
over the rounds, so a slow spell of the shared machine slows them alike. The
table says whether each sampler's images equal the plain loop's. Results go to --out as JSON and a plot.
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
from _plots import save_grouped_bars  # noqa: E402  (benchmarks/, beside this script)

import keras_gen  # noqa: F401
from keras_gen import cli, export, models, precision, runtime
from keras_gen.conventions import pixels_to_levels, slice_noise

KINDS = {
    "pixelcnn": ("pixelcnn", {}),
    "gated_pixelcnn": ("gated_pixelcnn", {}),
    "row_lstm": ("pixelrnn", {"kind": "row_lstm"}),
    "diagonal_bilstm": ("pixelrnn", {"kind": "diagonal_bilstm"}),
    "pixelvae": ("pixelvae", {}),
    "vqvae_prior": ("vqvae_prior", {"vqvae": lambda: models.VQVAE()}),
}


def levels_by(model, noise, method):
    """The model's images as levels from the in-graph sampler `method` ("plain" or "fast"); a
    VQ-VAE prior samples code grids, which its decoder turns into images."""
    if isinstance(model, models.VQVAEPrior):
        codes = model.sample_codes(noise, method=method)
        return pixels_to_levels(model.vqvae.decode_codes(codes), model.num_levels)
    return model.sample_levels(noise, method=method)


def predict_loop(model, noise):
    """The tutorial's sampler: a Python loop of full forward passes, one per sub-pixel."""
    height, width, channels = model.image_shape
    canvas = np.zeros(noise.shape, np.uint8)
    for row in range(height):
        for col in range(width):
            for channel in range(channels):
                params = model.predict_on_batch(canvas)
                drawn = model.likelihood.inverse_cdf(params, noise, channels).numpy()
                canvas[:, row, col, channel] = drawn[:, row, col, channel]
    return canvas


def timed_side_by_side(samplers, repeats):
    """Rows (name, median seconds, last result): one warm-up call each, then `repeats` rounds
    calling every sampler once in turn, so a slow spell of the machine hits all of them alike."""
    results = {name: np.asarray(function()) for name, function in samplers}
    times = {name: [] for name, _ in samplers}
    for _ in range(repeats):
        for name, function in samplers:
            start = time.perf_counter()
            results[name] = np.asarray(function())
            times[name].append(time.perf_counter() - start)
    return [(name, float(np.median(times[name])), results[name]) for name, _ in samplers]


def measure(model, num, repeats, skip_predict_loop):
    """Rows (sampler, seconds for `num` images, images as levels) for one model."""
    noise = model.make_noise(num, seed=0)
    rows = []
    if not skip_predict_loop and isinstance(model, models.AutoregressiveModel):
        rows += timed_side_by_side(
            [("predict loop (tutorial)", lambda: predict_loop(model, noise))], 1
        )
    with tempfile.TemporaryDirectory() as directory:
        export.export(model, os.path.join(directory, "export"), verbose=False)
        saved_model = runtime.open_artifact(os.path.join(directory, "export"))
        tflite = os.path.join(directory, "export", export.TFLITE)
        runners = {
            threads: runtime.open_artifact(tflite, num_threads=threads) for threads in (1, 2)
        }

        def one_at_a_time():
            return np.concatenate(
                [runners[1].sample(slice_noise(noise, i, i + 1)) for i in range(num)]
            )

        as_levels = lambda pixels: pixels_to_levels(pixels, model.num_levels)  # noqa: E731
        rows += timed_side_by_side(
            [
                ("in-graph plain loop", lambda: levels_by(model, noise, "plain")),
                ("fast (cached)", lambda: levels_by(model, noise, "fast")),
                ("SavedModel", lambda: as_levels(saved_model.sample(noise))),
                ("LiteRT, 1 thread", lambda: as_levels(runners[1].sample(noise))),
                ("LiteRT, 2 threads", lambda: as_levels(runners[2].sample(noise))),
                ("LiteRT, 1 thread, batch 1", lambda: as_levels(one_at_a_time())),
            ],
            repeats,
        )
    return rows


def build(name, size, options):
    if name.endswith(".keras"):
        return precision.float32_twin(runtime.load_keras(name))  # as `sample` runs it
    model_name, kind_options = KINDS.get(name, (name, {}))
    kind_options = {k: v() if callable(v) else v for k, v in kind_options.items()}
    extra = {} if size is None else {"image_shape": (size, size, 1)}
    return models.get(model_name)(seed=0, **kind_options, **extra, **options)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="pixelcnn", help=f"{', '.join(KINDS)}, 'all', or a .keras file"
    )
    parser.add_argument("--num", type=int, default=16, help="images per batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per sampler (median)")
    parser.add_argument(
        "--sizes", default=None, help="comma list of square grey image sides, e.g. 16,28,32,64"
    )
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="model option, JSON value"
    )
    parser.add_argument(
        "--skip-predict-loop", action="store_true", help="skip the slow tutorial loop"
    )
    parser.add_argument(
        "--out", default="benchmarks/results/sampling", help="path stem for .json and .png"
    )
    args = parser.parse_args()
    names = list(KINDS) if args.model == "all" else [args.model]
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [None]
    options = cli.parse_model_options(args.set)
    results = []
    for name in names:
        for size in sizes:
            model = build(name, size, options)
            rows = measure(model, args.num, args.repeats, args.skip_predict_loop)
            plain = next(images for sampler, _, images in rows if sampler == "in-graph plain loop")
            results.append(
                dict(
                    model=os.path.basename(name),
                    image_shape=list(model.image_shape),
                    parameters=model.count_params(),
                    rows=[
                        dict(
                            sampler=sampler,
                            seconds=seconds,
                            same_as_plain=bool(np.array_equal(images, plain)),
                        )
                        for sampler, seconds, images in rows
                    ],
                )
            )
            print_table(results[-1], args.num)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as file:
        json.dump(dict(num_images=args.num, results=results), file, indent=1)
    plot(results, args.out + ".png")
    print(f"\nwrote {args.out}.json and {args.out}.png")


def print_table(result, num):
    shape = "x".join(map(str, result["image_shape"]))
    plain = next(r["seconds"] for r in result["rows"] if r["sampler"] == "in-graph plain loop")
    print(f"\n{result['model']} ({result['parameters']:,} parameters), {num} images of {shape}\n")
    print("| sampler | seconds | ms per image | speed-up over in-graph plain loop | same images |")
    print("|---|---:|---:|---:|---|")
    for row in result["rows"]:
        print(
            f"| {row['sampler']} | {row['seconds']:.3f} | {1000 * row['seconds'] / num:.1f} | "
            f"{plain / row['seconds']:.1f}x | {row['same_as_plain']} |"
        )


def plot(results, path):
    samplers = [r["sampler"] for r in results[0]["rows"]]
    labels = [f"{r['model']} {'x'.join(map(str, r['image_shape']))}" for r in results]
    seconds = {
        sampler: [
            next((row["seconds"] for row in r["rows"] if row["sampler"] == sampler), np.nan)
            for r in results
        ]
        for sampler in samplers
    }
    save_grouped_bars(path, labels, seconds, "seconds (log)", log=True)


if __name__ == "__main__":
    main()
