"""Training speed and likelihood: float32 against mixed_bfloat16, side by side in one run.

    python benchmarks/training.py --model pixelcnn --steps 60 --manual-dir ../shared/data

Each policy trains a fresh model (same seed, same batches) for --steps steps,
then reports seconds per step and the NLL of held-out test images, computed in
float32 by an exact copy of the weights so that only training differs.
"""

import argparse
import time

import keras
import numpy as np

import keras_gen  # noqa: F401
from keras_gen import cli, data, export, models


def train(model_name, policy, batches, test_images, options):
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = models.get(model_name)(seed=0, **options)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile_for_training()
    model.train_on_batch(batches[0])  # trace
    start = time.perf_counter()
    for batch in batches[1:]:
        model.train_on_batch(batch)
    seconds = (time.perf_counter() - start) / (len(batches) - 1)
    evaluator = export.float32_twin(model)
    nll = float(-np.mean(evaluator.log_prob(test_images)))
    return seconds, nll


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pixelcnn")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="model option, JSON value, e.g. --set kind='\"diagonal_bilstm\"'")
    parser.add_argument("--manual-dir", default=None)
    args = parser.parse_args()
    train_data = data.load("binarized_mnist", "train", batch_size=args.batch_size, shuffle=False,
                           take=args.batch_size * (args.steps + 1), manual_dir=args.manual_dir)
    batches = [b.numpy() for b in train_data]
    test_images = data.as_numpy(data.load("binarized_mnist", "test", batch_size=500, take=500,
                                          manual_dir=args.manual_dir))
    rows = [(policy,) + train(args.model, policy, batches, test_images, cli.parse_model_options(args.set))
            for policy in ("float32", "mixed_bfloat16")]
    print(f"\n{args.model}: {args.steps} steps of {args.batch_size} binarized MNIST images")
    print(f"{'policy':<16}{'s/step':>9}{'speed-up':>10}{'test NLL (nats)':>17}")
    for policy, seconds, nll in rows:
        print(f"{policy:<16}{seconds:>9.3f}{rows[0][1] / seconds:>9.2f}x{nll:>17.2f}")


if __name__ == "__main__":
    main()
