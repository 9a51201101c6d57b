"""Sample on a device with LiteRT alone: no TensorFlow, no keras_gen, just ai_edge_litert and NumPy.

    python examples/litert_on_device.py saved_models/pixelcnn_binarized_mnist --num 4 --out samples.npy

Copy model.tflite and export.json to the device; export.json says the noise's
shape and kind. Noise is an input, so the same noise gives the same images as
the SavedModel and the Keras model.
"""

import argparse
import json
import os
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("export_dir", nargs="?", default="saved_models/pixelcnn_binarized_mnist")
parser.add_argument(
    "--model", default="model.tflite", help="or model_int8.tflite, model_float16.tflite"
)
parser.add_argument("--num", type=int, default=4)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--out", default="samples.npy")
args = parser.parse_args()

with open(os.path.join(args.export_dir, "export.json")) as file:
    manifest = json.load(file)
interpreter = Interpreter(
    model_path=os.path.join(args.export_dir, args.model), num_threads=args.threads
)
sample = interpreter.get_signature_runner("sample")

rng = np.random.default_rng(0)
images = []
for index in range(args.num):  # one image per call: the latency a device sees
    shape = (1, *manifest["noise_shape"])
    noise = (
        rng.random(shape, np.float32)
        if manifest["noise_kind"] == "uniform"
        else rng.standard_normal(shape, np.float32)
    )
    inputs = {"noise": noise}
    if manifest.get("num_classes"):
        inputs["labels"] = np.array([index % manifest["num_classes"]], np.int32)
    start = time.perf_counter()
    images.append(sample(**inputs)["images"][0])
    print(f"image {index}: {1000 * (time.perf_counter() - start):.1f} ms")
np.save(args.out, np.stack(images))  # uint8 pixels, (num, H, W, C)
print(f"{args.num} images -> {args.out}")
