"""Sampling speed of an autoregressive model, three ways, measured side by side in one run.

    python benchmarks/sampling.py --model pixelcnn --num 16
    python benchmarks/sampling.py --model pixelrnn --set kind='"diagonal_bilstm"' --skip-predict-loop

Columns: the per-pixel `model.predict` loop of the common tutorial, the
in-graph plain loop (one full pass per sub-pixel inside tf.while_loop) and the
model's fast sampler. All three use the same noise; the table says whether
their images agree.
"""

import argparse
import time

import numpy as np

import keras_gen  # noqa: F401
from keras_gen import cli, export, models, runtime


def predict_loop(model, noise, labels=None):
    """The tutorial's sampler: a Python loop of full forward passes, one per sub-pixel."""
    height, width, channels = model.image_shape
    canvas = np.zeros(noise.shape, np.uint8)
    inputs = canvas if labels is None else [canvas, labels]
    for row in range(height):
        for col in range(width):
            for channel in range(channels):
                params = model.predict_on_batch(inputs) if labels is None else model(canvas, labels)
                drawn = model.likelihood.inverse_cdf(params, noise, channels).numpy()
                canvas[:, row, col, channel] = drawn[:, row, col, channel]
    return canvas


def timed(function, repeats):
    function()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), np.asarray(result)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pixelcnn", help="model name, or a .keras file")
    parser.add_argument("--num", type=int, default=16, help="images per batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per sampler (median)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="model option, JSON value, e.g. --set kind='\"diagonal_bilstm\"'")
    parser.add_argument("--skip-predict-loop", action="store_true", help="skip the slow tutorial loop")
    args = parser.parse_args()
    if args.model.endswith(".keras"):
        model = export.float32_twin(runtime.load_keras(args.model))  # as `sample` runs it
    else:
        model = models.get(args.model)(seed=0, **cli.parse_model_options(args.set))
    noise = model.make_noise(args.num, seed=0)
    rows = []
    if not args.skip_predict_loop:
        rows.append(("predict loop (tutorial)",) + timed(lambda: predict_loop(model, noise), 1))
    rows.append(("in-graph plain loop",) + timed(lambda: model.sample_levels(noise, method="plain"), args.repeats))
    if model.has_fast_sampler:
        rows.append(("fast (cached)",) + timed(lambda: model.sample_levels(noise, method="fast"), args.repeats))
    baseline_seconds, baseline_images = rows[0][1], rows[0][2]
    shape = "x".join(map(str, model.image_shape))
    print(f"\n{type(model).__name__} ({model.count_params():,} parameters), {args.num} images of {shape}")
    print(f"{'sampler':<26}{'seconds':>10}{'speed-up':>10}  same images as '{rows[0][0]}'")
    for name, seconds, images in rows:
        same = np.array_equal(images, baseline_images)
        print(f"{name:<26}{seconds:>10.2f}{baseline_seconds / seconds:>9.1f}x  {same}")


if __name__ == "__main__":
    main()
