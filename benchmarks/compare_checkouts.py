"""Sampling and training speed of two checkouts of keras_gen, in turns, to see that a refactor
costs nothing.

    git worktree add /tmp/before <commit>
    python benchmarks/compare_checkouts.py /tmp/before . --rounds 2

Each round runs one process per checkout, one after the other, so both meet the same machine.
A process builds the four autoregressive kinds at their default sizes (seed 0) and times the
fast sampler on 16 images (median of 5 calls after a warm-up) and training steps at batch 64
(median of 4 steps after 2, timed inside `fit`). The table gives every round's figures.
"""

import argparse
import json
import os
import subprocess
import sys

KINDS = {
    "pixelcnn": ("pixelcnn", {}),
    "gated_pixelcnn": ("gated_pixelcnn", {}),
    "row_lstm": ("pixelrnn", {"kind": "row_lstm"}),
    "diagonal_bilstm": ("pixelrnn", {"kind": "diagonal_bilstm"}),
}

MEASURE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, keras, tensorflow as tf
import keras_gen
from keras_gen import models
kinds = json.loads(sys.argv[2])
out = {}
for name, (registered, options) in kinds.items():
    model = models.get(registered)(seed=0, **options)
    noise = model.make_noise(16, seed=0)
    model.sample_levels(noise, method="fast")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        model.sample_levels(noise, method="fast")
        times.append(time.perf_counter() - start)
    model.compile_for_training()
    images = (np.random.default_rng(0).random((64 * 6, 28, 28, 1)) < 0.3).astype(np.uint8)
    steps = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            steps.append(time.perf_counter() - self.start)

    model.fit(tf.data.Dataset.from_tensor_slices(images).batch(64), verbose=0, callbacks=[Timer()])
    out[name] = [float(np.median(times)), float(np.median(steps[2:]))]
print(json.dumps({"package": keras_gen.__file__, "figures": out}))
"""


def measure(checkout):
    """{kind: [sampling seconds, training step seconds]} of the keras_gen in `checkout`."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, os.path.abspath(checkout), json.dumps(KINDS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.abspath(checkout),
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["package"].startswith(os.path.abspath(checkout)), report["package"]
    return report["figures"]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", help="a checkout of keras_gen (e.g. a git worktree)")
    parser.add_argument("after", help="another checkout")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = {"before": [], "after": []}
    for _ in range(args.rounds):
        for label, checkout in (("before", args.before), ("after", args.after)):
            rows[label].append(measure(checkout))
    print("| kind | checkout | fast sampler, 16 images (s) | training step, batch 64 (s) |")
    print("|---|---|---|---|")
    for kind in KINDS:
        for label in ("before", "after"):
            sampling = " / ".join(f"{round_[kind][0]:.3f}" for round_ in rows[label])
            training = " / ".join(f"{round_[kind][1]:.3f}" for round_ in rows[label])
            print(f"| {kind} | {label} | {sampling} | {training} |")


if __name__ == "__main__":
    main()
