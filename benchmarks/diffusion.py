"""The diffusion family's speed (issue O): training img/s, and sampling time per image for 10, 25
and 50 DDIM steps in Python, the SavedModel (XLA-compiled `sample`), LiteRT (1 and 2 threads) and
the browser (LiteRT.js in headless Chromium, 1 and 2 threads), side by side in one process.

    python benchmarks/diffusion.py                                   # the zoo recipe's U-Net
    python benchmarks/diffusion.py --model saved_models/diffusion_mnist/model.keras --repeats 5

The model is the zoo recipe's (saved_models/diffusion_mnist/recipe.json) with fresh weights unless
--model gives a .keras file: time does not depend on the weights. Training: --train-steps steps of
`train_on_batch` at batch 128 on uint8 images, each timed alone after 2 warm-up steps; the figure
is the median step. Sampling: the model is exported once per step count (the steps are fixed in an
export); then the configurations take turns, round after round, one image a call (batch 1, the
on-device case), after one warm-up call each; the figure is the median call. The browser rows
(skipped with --no-browser, or without chromium) load the zoo page on each export in turn, round
after round, and read the page's own ms per image for --browser-images images, one at a time,
after one untimed image. Results go to --out as JSON.
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

import numpy as np
from browser_latency import browser_ms, sampling_query, zoo_page  # benchmarks/, beside this

import keras_gen  # noqa: F401
from keras_gen import export, models, recipes, runtime

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPE = os.path.join(os.path.dirname(HERE), "saved_models", "diffusion_mnist", "recipe.json")


def build(model_path):
    if model_path:
        return runtime.load_keras(model_path)
    recipe = recipes.load(RECIPE)
    return models.Diffusion(**recipe["options"], seed=0)


def training_images_per_second(model, steps, batch=128):
    model.compile_for_training()
    rng = np.random.default_rng(0)
    images = rng.integers(0, model.num_levels, (batch,) + model.image_shape).astype(np.uint8)
    data = (images, np.arange(batch) % model.num_classes) if model.num_classes else images
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        model.train_on_batch(*data) if model.num_classes else model.train_on_batch(data)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def browser_times(model, zoo_dir, steps_list, repeats, count):
    """{(steps, "browser, n threads"): [seconds per image, one a round]} for the exports
    `zoo_dir/diffusion_{steps}_steps` in the zoo page."""
    noise = model.make_noise(count, seed=0, sampler="ddim")
    labels = np.zeros((count,), np.int32) if model.num_classes else None
    times = {}
    with zoo_page(zoo_dir) as (page, base, files):
        queries = {
            (steps, f"browser, {threads} thread{'s' * (threads > 1)}"): base
            + sampling_query(f"diffusion_{steps}_steps", noise, labels, files)
            + f"&threads={threads}"
            for steps in steps_list
            for threads in (1, 2)
        }
        for _ in range(repeats):
            for key, url in queries.items():
                times.setdefault(key, []).append(browser_ms(page, url, rounds=1) / 1000)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a diffusion .keras file (default: fresh)")
    parser.add_argument("--steps", nargs="+", type=int, default=[10, 25, 50])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of sampling calls")
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    parser.add_argument("--no-browser", action="store_true", help="leave out the browser rows")
    parser.add_argument("--browser-images", type=int, default=2, help="images per page load")
    args = parser.parse_args()

    model = build(args.model)
    rows = [
        dict(
            what="training",
            steps=None,
            runtime="keras (float32, batch 128)",
            figure=training_images_per_second(model, args.train_steps),
            unit="img/s",
        )
    ]
    noise = model.make_noise(1, seed=0, sampler="ddim")
    labels = np.zeros((1,), np.int32) if model.num_classes else None
    runners = {}
    with tempfile.TemporaryDirectory() as folder:
        for steps in args.steps:
            model.configure_sampling(sampling_steps=steps)
            directory = os.path.join(folder, f"diffusion_{steps}_steps")  # the page's model name
            export.export(model, directory, verbose=False)
            runners[steps, "python (tf.function)"] = runtime.KerasRunner(model)
            runners[steps, "savedmodel (xla)"] = runtime.open_artifact(directory, "savedmodel")
            for threads in (1, 2):
                runners[steps, f"litert, {threads} thread{'s' * (threads > 1)}"] = (
                    runtime.open_artifact(directory, "tflite", num_threads=threads)
                )
        times = {key: [] for key in runners}

        def call(key):
            steps, name = key
            if name.startswith("python"):
                return model.sample(noise, labels, sampling_steps=steps)
            return runners[key].sample(noise, labels)

        for key in runners:
            call(key)  # warm-up: traces and compiles
        for _ in range(args.repeats):
            for key in runners:
                start = time.perf_counter()
                call(key)
                times[key].append(time.perf_counter() - start)
        if not args.no_browser and shutil.which("chromium"):
            times.update(
                browser_times(model, folder, args.steps, args.repeats, args.browser_images)
            )
    for (steps, name), values in times.items():
        rows.append(
            dict(
                what="sampling",
                steps=steps,
                runtime=name,
                figure=1000 * statistics.median(values),
                unit="ms/image",
            )
        )
    print("| what | DDIM steps | runtime | figure | unit |")
    print("|---|---:|---|---:|---|")
    for row in rows:
        print(
            f"| {row['what']} | {row['steps'] or ''} | {row['runtime']} | {row['figure']:.1f} "
            f"| {row['unit']} |"
        )
    if args.out:
        with open(args.out, "w") as file:
            json.dump(rows, file, indent=1)
            file.write("\n")


if __name__ == "__main__":
    main()
