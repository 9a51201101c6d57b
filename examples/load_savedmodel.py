"""Load an exported model with TensorFlow alone and call its signatures.

    python examples/load_savedmodel.py saved_models/pixelcnn_binarized_mnist

An export directory holds saved_model/, model.tflite and export.json; this
script needs nothing from keras_gen, only TensorFlow and NumPy.
"""

import argparse
import json
import os

import numpy as np
import tensorflow as tf

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("export_dir", nargs="?", default="saved_models/pixelcnn_binarized_mnist")
args = parser.parse_args()

with open(os.path.join(args.export_dir, "export.json")) as file:
    manifest = json.load(file)  # shapes, dtypes, the noise kind, sha256 of each file
loaded = tf.saved_model.load(os.path.join(args.export_dir, "saved_model"))
print("signatures:", list(loaded.signatures))

rng = np.random.default_rng(0)
shape = (4, *manifest["noise_shape"])
noise = (
    rng.random(shape, np.float32)
    if manifest["noise_kind"] == "uniform"
    else rng.standard_normal(shape, np.float32)
)
inputs = {"noise": tf.constant(noise)}
if manifest.get("num_classes"):
    inputs["labels"] = tf.constant(np.arange(4, dtype=np.int32) % manifest["num_classes"])
images = loaded.signatures["sample"](**inputs)["images"].numpy()  # uint8 pixels, (4, H, W, C)
print("sampled", images.shape, images.dtype)

if "log_prob" in loaded.signatures:
    levels = np.round(images.astype(np.float32) * (manifest["num_levels"] - 1) / 255).astype(
        np.uint8
    )
    scoring = {"images": tf.constant(levels)} | (
        {"labels": inputs["labels"]} if "labels" in inputs else {}
    )
    nats = loaded.signatures["log_prob"](**scoring)["log_prob"].numpy()
    print("log p(x) of the samples, nats per image:", np.round(nats, 2))
