"""On-device latency of every zoo model: LiteRT, 1 thread, one image at a time, float and quantized files.

    python benchmarks/zoo_latency.py
    python benchmarks/zoo_latency.py --num 16 --repeats 3 --out benchmarks/results/zoo_latency
    python benchmarks/zoo_latency.py --write-cards    # also records each model.tflite's figure in its card
    python benchmarks/zoo_latency.py --models a b --write-cards a   # times a beside b, writes a's card
    python benchmarks/zoo_latency.py --models vqvae_mnist --out /tmp/vqvae_latency    # chosen models

Each model samples `--num` images one at a time from fixed noise, through each of
its LiteRT files (model.tflite, and model_int8.tflite / model_float16.tflite where
the folder has them); the files take turns, one pass each per round, and each
figure is the median over the rounds. Results go to --out as JSON and a plot.
"""

import argparse
import json
import os
import time

import numpy as np
from _plots import save_grouped_bars  # noqa: E402  (benchmarks/, beside this script)

from keras_gen import conventions, zoo

RUNTIMES = {
    "tflite": "model.tflite",
    "tflite-int8": "model_int8.tflite",
    "tflite-float16": "model_float16.tflite",
}


def per_image_ms(runner, noise, labels):
    """Milliseconds per image for one pass over `noise`, one image per call."""
    count = conventions.noise_batch_size(noise)  # an array, or a dict such as a PixelVAE's
    start = time.perf_counter()
    for i in range(count):
        one = conventions.slice_noise(noise, i, i + 1)
        runner.sample(one, None if labels is None else labels[i : i + 1])
    return 1000 * (time.perf_counter() - start) / count


def measure(name, num, repeats):
    folder = zoo.folder(name)
    runners = {
        runtime: zoo.open(name, runtime=runtime, num_threads=1)
        for runtime, file in RUNTIMES.items()
        if os.path.exists(os.path.join(folder, file))
    }
    first = next(iter(runners.values()))
    noise = first.make_noise(num, seed=0)
    labels = np.arange(num) % first.num_classes if first.num_classes else None
    for runner in runners.values():  # warm-up
        runner.sample(conventions.slice_noise(noise, 0, 1), None if labels is None else labels[:1])
    times = {runtime: [] for runtime in runners}
    for _ in range(repeats):
        for runtime, runner in runners.items():
            times[runtime].append(per_image_ms(runner, noise, labels))
    return {runtime: float(np.median(values)) for runtime, values in times.items()}


def card_milliseconds(milliseconds):
    """A model.tflite's ms/image as its card records it: 0.1 ms under 10 ms, whole ms above."""
    return round(milliseconds, 1 if milliseconds < 10 else None)


def latency_table(rows):
    """The markdown lines of the table this script prints (and the README shows), one row per model."""
    lines = ["| zoo model | LiteRT float32 | int8 | float16 (ms per image, 1 thread) |"]
    lines.append("|---|---:|---:|---:|")
    for row in rows:
        cells = [
            f"{row['ms_per_image'][r]:.1f}" if r in row["ms_per_image"] else "" for r in RUNTIMES
        ]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return lines


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num", type=int, default=16, help="images, sampled one at a time")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (median)")
    parser.add_argument(
        "--out", default="benchmarks/results/zoo_latency", help="path stem for .json and .png"
    )
    parser.add_argument(
        "--write-cards",
        nargs="*",
        default=None,
        metavar="NAME",
        help="record each timed model.tflite's ms/image in its card.json and MODEL_CARD.md; "
        "with names, only those models' (time a model beside a reference, write only its card)",
    )
    parser.add_argument("--models", nargs="*", default=None, help="zoo names (default: all)")
    args = parser.parse_args()
    chosen = args.models or zoo.names()
    unknown = sorted(set(chosen) - set(zoo.names()))
    if unknown:
        parser.error(f"not in the zoo: {', '.join(unknown)}; see `python -m keras_gen zoo`")
    untimed = sorted(set(args.write_cards or ()) - set(chosen))
    if untimed:
        parser.error(f"--write-cards: not timed in this run: {', '.join(untimed)}")
    rows = [
        dict(
            name=entry["name"],
            model=entry["model"],
            ms_per_image=measure(entry["name"], args.num, args.repeats),
        )
        for entry in zoo.list()
        if entry["name"] in chosen
    ]
    print("\n" + "\n".join(latency_table(rows)))
    if args.write_cards is not None:
        for row in rows:
            if args.write_cards and row["name"] not in args.write_cards:
                continue
            zoo.update_card(
                row["name"], litert_ms_per_image=card_milliseconds(row["ms_per_image"]["tflite"])
            )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as file:
        json.dump(dict(num_images=args.num, repeats=args.repeats, rows=rows), file, indent=1)
    plot(rows, args.out + ".png")
    print(f"\nwrote {args.out}.json and {args.out}.png")


def plot(rows, path):
    milliseconds = {
        runtime: [row["ms_per_image"].get(runtime, np.nan) for row in rows] for runtime in RUNTIMES
    }
    save_grouped_bars(
        path,
        [row["name"] for row in rows],
        milliseconds,
        "ms per image (LiteRT, 1 thread; log scale)",
        log=True,  # diffusion's 50 network calls would flatten the other rows
        rotation=25,
        fontsize=7,
        limit=(50, "50 ms"),
    )


if __name__ == "__main__":
    main()
