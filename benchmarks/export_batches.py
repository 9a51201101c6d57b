"""An export's log_prob at any batch: time and peak memory per call, one process per call (issue P).

    python benchmarks/export_batches.py --manual-dir ../shared/data
    python benchmarks/export_batches.py --exports saved_models/pixelvae_binarized_mnist /tmp/old_pvae \
        --batches 1 100 500 1000 --runtimes savedmodel tflite --manual-dir ../shared/data
    python benchmarks/export_batches.py --test-set 1000 --exports saved_models/pixelvae_binarized_mnist \
        --manual-dir ../shared/data      # all 10,000 static test images in calls of 1,000

Each row calls the export's `log_prob` signature once, directly (no chunking by a runner), on the
first BATCH static binarized MNIST test images, in a fresh process, and reports the call's wall
time (after one warm-up call on one image) and the process's peak resident memory. A call that
kills its process is reported with its signal, as a user would meet it: an export written before
the signatures ran in chunks segfaults at 500 images. `--test-set B` instead scores all 10,000 test
images in calls of B images and prints the mean NLL in nats.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from keras_gen import data, runtime

TEST_IMAGES = 10_000


def call_once(export_dir, runtime_name, batch, manual_dir):
    """{seconds, peak_rss_mb, mean_log_prob} of one direct log_prob call on `batch` test images."""
    runner = runtime.open_artifact(export_dir, runtime_name)
    images = data.static_binarized_test_digits(range(batch), manual_dir)
    runner._call("log_prob", {"images": images[:1]})  # warm-up: loads and compiles
    start = time.perf_counter()
    log_prob = np.asarray(runner._call("log_prob", {"images": images})["log_prob"])
    seconds = time.perf_counter() - start
    return dict(
        seconds=seconds,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        mean_log_prob=float(log_prob.mean()),
    )


def score_test_set(export_dir, runtime_name, batch, manual_dir):
    """Mean NLL in nats of the 10,000 static test images, scored in direct calls of `batch`."""
    runner = runtime.open_artifact(export_dir, runtime_name)
    images = data.static_binarized_test_digits(range(TEST_IMAGES), manual_dir)
    start = time.perf_counter()
    log_prob = np.concatenate(
        [
            np.asarray(runner._call("log_prob", {"images": images[i : i + batch]})["log_prob"])
            for i in range(0, TEST_IMAGES, batch)
        ]
    )
    return dict(
        nll_nats=float(-log_prob.mean()),
        seconds=time.perf_counter() - start,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        log_prob=log_prob.tolist(),
    )


def run_child(export_dir, runtime_name, batch, manual_dir):
    command = [sys.executable, __file__, "--child", export_dir, runtime_name, str(batch)]
    if manual_dir:
        command += ["--manual-dir", manual_dir]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        signal = -result.returncode if result.returncode < 0 else None
        return {"failed": f"signal {signal}" if signal else f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--exports",
        nargs="+",
        default=["saved_models/pixelvae_binarized_mnist", "saved_models/vae_binarized_mnist"],
    )
    parser.add_argument("--runtimes", nargs="+", default=["savedmodel", "tflite"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 100, 1000])
    parser.add_argument("--manual-dir", default=None)
    parser.add_argument("--test-set", type=int, default=None, metavar="BATCH")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        export_dir, runtime_name, batch = args.child
        print(json.dumps(call_once(export_dir, runtime_name, int(batch), args.manual_dir)))
        return
    if args.test_set:
        for export_dir in args.exports:
            for runtime_name in args.runtimes:
                result = score_test_set(export_dir, runtime_name, args.test_set, args.manual_dir)
                print(
                    f"{export_dir} {runtime_name}: {TEST_IMAGES} test images in calls of "
                    f"{args.test_set}: NLL {result['nll_nats']:.4f} nats, {result['seconds']:.0f} s, "
                    f"peak RSS {result['peak_rss_mb']:.0f} MB"
                )
                if args.out:
                    with open(f"{args.out}_{runtime_name}_{args.test_set}.json", "w") as file:
                        json.dump(result, file)
        return
    rows = []
    print("| export | runtime | batch | seconds | ms per image | peak RSS (MB) | mean log_prob |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for export_dir in args.exports:
        for runtime_name in args.runtimes:
            for batch in args.batches:
                result = run_child(export_dir, runtime_name, batch, args.manual_dir)
                rows.append(dict(export=export_dir, runtime=runtime_name, batch=batch, **result))
                if "failed" in result:
                    cells = ["crashed: " + result["failed"], "", "", ""]
                else:
                    cells = [
                        f"{result['seconds']:.2f}",
                        f"{1000 * result['seconds'] / batch:.1f}",
                        f"{result['peak_rss_mb']:.0f}",
                        f"{result['mean_log_prob']:.3f}",
                    ]
                print(f"| {export_dir} | {runtime_name} | {batch} | " + " | ".join(cells) + " |")
    if args.out:
        with open(args.out, "w") as file:
            json.dump(rows, file, indent=1)


if __name__ == "__main__":
    main()
