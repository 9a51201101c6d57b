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

# name: (model options, preprocessing, images). WGAN-GP's 17 images in global batches of 8 give
# each worker 4 images for 5 critic steps, and a last batch of 1 image for the 2 workers.
FAMILIES = {
    "pixelcnn": (
        dict(image_shape=(6, 6, 1), filters=4, num_blocks=1, head_filters=4),
        "dynamic_binarize",
        32,
    ),
    "vae": (dict(image_shape=(8, 8, 1), latent_dim=4, widths=(4, 8)), "dynamic_binarize", 32),
    "dcgan": (dict(image_shape=(8, 8, 1), latent_dim=4, filters=4), "none", 32),
    "wgan_gp": (dict(image_shape=(8, 8, 1), latent_dim=4, filters=4), "none", 17),
}


def main(out_path):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    results = {}
    for name, (config, preprocessing, count) in FAMILIES.items():
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = models.get(name)(seed=1, **config)
            model.compile_for_training()
        before = [np.asarray(w).tolist() for w in model.get_weights()]
        raw = (
            np.arange(count * int(np.prod(config["image_shape"]))).reshape(
                (count,) + config["image_shape"]
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
        steps = [int(optimizer.iterations.numpy()) for optimizer in model.training_optimizers()]
        results[name] = {
            "optimizer_steps": steps,
            "before": before,
            "after": [np.asarray(w).tolist() for w in model.get_weights()],
            "history": {k: [float(np.mean(v)) for v in values] for k, values in history.items()},
        }
    with open(out_path, "w") as file:
        json.dump(results, file)


if __name__ == "__main__":
    main(sys.argv[1])
