"""One worker of the 2-process MultiWorkerMirroredStrategy test (tests/test_distribute.py).

Usage: TF_CONFIG=... python tests/multi_worker_job.py OUT.json
Trains a few steps of a small model of each family on uint8 batches from `data.pipeline`,
as `data.load` gives them, and writes each model's weights before and after to OUT.json.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_gen import data, models  # noqa: E402

FAMILIES = {
    "pixelcnn": (
        dict(image_shape=(6, 6, 1), filters=4, num_blocks=1, head_filters=4),
        "dynamic_binarize",
    ),
    "vae": (dict(image_shape=(8, 8, 1), latent_dim=4, widths=(4, 8)), "dynamic_binarize"),
    "dcgan": (dict(image_shape=(8, 8, 1), latent_dim=4, filters=4), "none"),
}


def main(out_path):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    results = {}
    for name, (config, preprocessing) in FAMILIES.items():
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = models.get(name)(seed=1, **config)
            model.compile_for_training()
        before = [np.asarray(w).tolist() for w in model.get_weights()]
        raw = (
            np.arange(32 * int(np.prod(config["image_shape"]))).reshape(
                (32,) + config["image_shape"]
            )
            * 37
            % 256
        ).astype(np.uint8)
        batches = data.pipeline(
            tf.data.Dataset.from_tensor_slices({"image": raw}),
            batch_size=8,
            preprocessing=preprocessing,
        )
        assert batches.element_spec.dtype == tf.uint8
        history = model.fit(batches, epochs=1, verbose=0).history
        results[name] = {
            "before": before,
            "after": [np.asarray(w).tolist() for w in model.get_weights()],
            "history": {k: [float(np.mean(v)) for v in values] for k, values in history.items()},
        }
    with open(out_path, "w") as file:
        json.dump(results, file)


if __name__ == "__main__":
    main(sys.argv[1])
