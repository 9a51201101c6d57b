"""PixelRNN training speed and scale: the recurrent layers before and after their rewrite, side by side.

    python benchmarks/pixelrnn_training.py                      # every row below
    python benchmarks/pixelrnn_training.py --only 28            # just the 28 x 28 speed rows
    python benchmarks/pixelrnn_training.py --only 64 --variants after --out benchmarks/results/pixelrnn_training_64

"before" is the layers as they were: a Python loop slicing one row or one
diagonal out of the gates per step, and four slices per LSTM update (each
slice's gradient is a full-size tensor). "after" is keras_gen's layers:
one unstack or split per loop, and the Diagonal LSTM as a tf.while_loop.
Both compute the same function with the same weights.

Each configuration runs in a fresh process, so that peak memory (max RSS)
is its own: 28 x 28 x 1 binary images at batch 128 in float32 and
mixed_bfloat16, then 64 x 64 x 3 with 256 levels at batch 32. Columns: the
first step (tracing included), the median of the next steps, peak memory.
Then, for the 28 x 28 configurations, both variants train in one process,
their steps interleaved, so that the ratio does not depend on what else the
machine did in between: the second table. Results go to --out as JSON and a plot.
"""

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time

VARIANTS = ("before", "after")
CONFIGS = [
    dict(size=28, channels=1, batch=128, policy="float32"),
    dict(size=28, channels=1, batch=128, policy="mixed_bfloat16"),
    dict(size=64, channels=3, batch=32, policy="float32"),
]


@contextlib.contextmanager
def layers_as_before():
    """Within it, the layers trace with the per-step slicing they used before their rewrite."""
    import tensorflow as tf

    from keras_gen.layers import recurrent

    def state_gates(self, hidden):
        kernel = tf.cast(self.state_kernel, hidden.dtype)
        return tf.nn.conv2d(hidden[:, None], kernel, strides=1, padding="SAME")[:, 0]

    def lstm_update(gates, cell, color_channels):
        units = gates.shape[-1] // 4
        leading = tf.shape(gates)[:-1]
        split = tf.reshape(
            gates, tf.concat([leading, [color_channels, 4, units // color_channels]], 0)
        )
        parts = [tf.reshape(split[..., i, :], tf.concat([leading, [units]], 0)) for i in range(4)]
        input_gate, forget_gate, output_gate = (tf.sigmoid(p) for p in parts[:3])
        cell = forget_gate * cell + input_gate * tf.tanh(parts[3])
        return output_gate * tf.tanh(cell), cell

    def row_lstm_call(self, features):
        input_gates = self.input_to_state(features)
        hidden, cell = self.initial_state(features)
        rows = []
        for row in range(features.shape[1]):
            hidden, cell = self.step(input_gates[:, row], hidden, cell)
            rows.append(hidden)
        return tf.stack(rows, axis=1)

    def diagonal_scan(self, input_gates, spans):
        hidden = cell = tf.zeros([tf.shape(input_gates)[0], 0, self.units], input_gates.dtype)
        previous_first, start, outputs = 0, 0, []
        for first, last in spans:
            hidden, cell = self.step(
                input_gates[:, start : start + last - first + 1],
                recurrent._rows(hidden, previous_first, first - 1, last - 1),
                recurrent._rows(hidden, previous_first, first, last),
                recurrent._rows(cell, previous_first, first, last),
            )
            outputs.append(hidden)
            previous_first, start = first, start + last - first + 1
        return tf.concat(outputs, axis=1)

    patches = [
        (recurrent, "lstm_update", lstm_update),
        (recurrent.RowLSTM, "call", row_lstm_call),
        (recurrent.RowLSTM, "state_gates", state_gates),
        (recurrent.DiagonalLSTM, "_graph_scan", diagonal_scan),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in originals:
            setattr(owner, name, value)


def build_and_trace(kind, variant, size, channels, batch, policy):
    """A PixelRNN with the `variant` layers, its first training step taken (traced); returns (model, images, s)."""
    import keras
    import numpy as np

    from keras_gen.models import PixelRNN

    with layers_as_before() if variant == "before" else contextlib.nullcontext():
        keras.config.set_dtype_policy(policy)
        model = PixelRNN(
            kind=kind,
            image_shape=(size, size, channels),
            num_levels=2 if channels == 1 else 256,
            seed=0,
            **({"complete_context": False} if kind == "diagonal_bilstm" else {}),
        )
        keras.config.set_dtype_policy("float32")
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        images = np.random.default_rng(0).integers(
            0, model.num_levels, (batch, size, size, channels)
        )
        images = images.astype(np.uint8)
        start = time.perf_counter()
        model.train_on_batch(images)  # traced here, so the patched layers are in its graph
    return model, images, time.perf_counter() - start


def run_one(kind, variant, size, channels, batch, policy, steps):
    """Trains `steps` + 1 steps in this process; returns the measurements."""
    import numpy as np

    model, images, first = build_and_trace(kind, variant, size, channels, batch, policy)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(images)
        times.append(time.perf_counter() - start)
    return dict(
        first_step_s=first,
        step_s=float(np.median(times)),
        peak_memory_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    )


def run_side_by_side(kind, size, channels, batch, policy, steps):
    """Both variants in this process, their steps interleaved; returns the median step of each."""
    import numpy as np

    runs = {
        variant: build_and_trace(kind, variant, size, channels, batch, policy)[:2]
        for variant in VARIANTS
    }
    times = {variant: [] for variant in VARIANTS}
    for _ in range(steps):
        for variant, (model, images) in runs.items():
            start = time.perf_counter()
            model.train_on_batch(images)
            times[variant].append(time.perf_counter() - start)
    return {f"{variant}_step_s": float(np.median(times[variant])) for variant in VARIANTS}


def run_child(args):
    """Runs one measurement in a fresh process; returns (exit code, dict of figures or None)."""
    done = subprocess.run([sys.executable, __file__] + args, capture_output=True, text=True)
    if done.returncode != 0:
        return done.returncode, None
    return 0, json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    parser.add_argument(
        "--only", type=int, default=None, help="only configurations of this image side"
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="layer versions in the first table, e.g. 'after' (the earlier Diagonal BiLSTM "
        "needs more than 24 GB at 64 x 64)",
    )
    parser.add_argument(
        "--out", default="benchmarks/results/pixelrnn_training", help="path stem for .json, .png"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--side-by-side", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if set(args.variants.split(",")) - set(VARIANTS):
        parser.error(f"--variants takes names from {VARIANTS}, got {args.variants!r}")
    if args.child:
        print(json.dumps(run_one(steps=args.steps, **json.loads(args.child))))
        return
    if args.side_by_side:
        print(json.dumps(run_side_by_side(steps=args.steps, **json.loads(args.side_by_side))))
        return
    configs = [config for config in CONFIGS if not args.only or config["size"] == args.only]
    rows = []
    print(
        "| kind | image, batch | policy | layers | first step (s) | step (s) | peak memory (GB) |"
    )
    print("|---|---|---|---|---:|---:|---:|")
    for config in configs:
        image = f"{config['size']}x{config['size']}x{config['channels']}, {config['batch']}"
        for kind in ("row_lstm", "diagonal_bilstm"):
            for variant in args.variants.split(","):
                child = dict(kind=kind, variant=variant, **config)
                code, figures = run_child(
                    ["--steps", str(args.steps), "--child", json.dumps(child)]
                )
                if figures is None:  # -9: killed, most likely out of memory
                    rows.append(dict(child, exit_code=code))
                    print(
                        f"| {kind} | {image} | {config['policy']} | {variant} | did not finish (exit "
                        f"{code}{', killed: out of memory' if code == -9 else ''}) | | |",
                        flush=True,
                    )
                    continue
                rows.append(dict(child, **figures))
                print(
                    f"| {kind} | {image} | {config['policy']} | {variant} | {figures['first_step_s']:.1f} | "
                    f"{figures['step_s']:.3f} | {figures['peak_memory_gb']:.1f} |",
                    flush=True,
                )
    side_by_side = []
    print("\nSide by side in one process, steps interleaved (28 x 28 only):\n")
    print("| kind | image, batch | policy | before: step (s) | after: step (s) | speed-up |")
    print("|---|---|---|---:|---:|---:|")
    for config in (config for config in configs if config["size"] == 28):
        image = f"{config['size']}x{config['size']}x{config['channels']}, {config['batch']}"
        for kind in ("row_lstm", "diagonal_bilstm"):
            child = dict(kind=kind, **config)
            code, figures = run_child(
                ["--steps", str(args.steps), "--side-by-side", json.dumps(child)]
            )
            if figures is None:
                print(
                    f"| {kind} | {image} | {config['policy']} | did not finish (exit {code}) | | |",
                    flush=True,
                )
                continue
            side_by_side.append(dict(child, **figures))
            print(
                f"| {kind} | {image} | {config['policy']} | {figures['before_step_s']:.3f} | "
                f"{figures['after_step_s']:.3f} | {figures['before_step_s'] / figures['after_step_s']:.2f}x |",
                flush=True,
            )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as file:
        json.dump(dict(own_process=rows, side_by_side=side_by_side), file, indent=1)
    plot(rows, args.out + ".png")
    print(f"\nwrote {args.out}.json and {args.out}.png")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4))
    labels = sorted({(r["kind"], r["size"], r["channels"], r["policy"]) for r in rows}, key=str)
    variants = [variant for variant in VARIANTS if any(r["variant"] == variant for r in rows)]
    for offset, variant in zip((-0.2, 0.2) if len(variants) == 2 else (0.0,), variants):
        steps = [
            next(
                (
                    r.get("step_s", 0.0)
                    for r in rows
                    if (r["kind"], r["size"], r["channels"], r["policy"]) == label
                    and r["variant"] == variant
                ),
                0.0,
            )
            for label in labels
        ]
        axis.bar([i + offset for i in range(len(labels))], steps, 0.4, label=variant)
        for i, seconds in enumerate(steps):
            if not seconds:
                axis.text(i + offset, 0.05, "did not\nfinish", ha="center", fontsize=7, rotation=90)
    axis.set_xticks(
        range(len(labels)), [f"{k}\n{s}x{s}x{c}\n{p}" for k, s, c, p in labels], fontsize=7
    )
    axis.set_ylabel("seconds per training step")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
