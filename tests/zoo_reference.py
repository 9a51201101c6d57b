"""Figures of every zoo model.keras, recorded before issue I moved the networks into backbones.

    python tests/zoo_reference.py      # rewrites tests/zoo_reference.json (only with a reason)

For each zoo folder: the sha256 of `sample(make_noise(4, seed=0))` (labels 0..3 for conditional
models) through the float32 Keras model, and for models with a likelihood the exported `log_prob`
in nats of 4 fixed images (`reference_images`), computed by the Keras model. tests/test_zoo.py
checks today's code against them.

"samples" holds those samples' bytes (hex), added on 2026-12-06 (`--add-samples`), so that a
model whose float decoder rounds a pixel differently on another CPU is held to its declared
parity (`sample_parity`) rather than to a hash: on the AVX2 machine of that day the DCGAN's and
the VAE's samples no longer hashed as recorded on the AVX-512 machines; the other eight did, so
their "samples" are the bytes that were recorded.

    python tests/zoo_reference.py --add-samples   # adds "samples" to each entry, nothing else
    python tests/zoo_reference.py --add NAME      # records a new zoo model, nothing else

An autoregressive sampler's draws are discrete, yet a uniform draw can fall within a few float32
steps of a bin's CDF, and CPUs round that CDF differently: on AVX2 (ONEDNN_MAX_CPU_ISA=AVX2) the
Fashion-MNIST Gated PixelCNN draws level 213 where AVX-512 and AMX drew 214 (u = 0.99994403, CDF
0.9999441), and the image's later pixels follow their new past. `float_ties` tells such a tie
from a changed model.
"""

import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "zoo_reference.json")
ZOO = os.path.join(os.path.dirname(HERE), "saved_models")
# A level is a float tie when moving its uniform draw by this much draws it: float32 steps near 1
# are 6e-8, and the CPUs seen so far differ by one or two of them.
TIE = 1e-6


def reference_images(image_shape=(28, 28, 1), num_levels=2):
    """4 deterministic images of `image_shape`, in levels: binary for the 28x28 grey models (as
    recorded for them, whatever their levels), uniform over `num_levels` for other shapes."""
    rng = np.random.default_rng(0)
    if tuple(image_shape) == (28, 28, 1):
        return (rng.random((4, 28, 28, 1)) < 0.15).astype(np.uint8)
    return rng.integers(0, num_levels, (4, *image_shape)).astype(np.uint8)


def load(name):
    """Zoo model `name`'s model.keras as a float32 model, from the repository's zoo itself,
    whatever $KERAS_GEN_ZOO_DIR a test has set."""
    from keras_gen import runtime

    try:
        from keras_gen.precision import float32_twin
    except ImportError:  # the code before issue I, where the reference was recorded
        from keras_gen.export import float32_twin
    return float32_twin(runtime.load_keras(os.path.join(ZOO, name, "model.keras")))


def reference_labels(model):
    """The labels the reference samples with: 0..3 for conditional models, else None."""
    return np.arange(4, dtype=np.int32) % model.num_classes if model.num_classes else None


def float_ties(model, samples, noise, labels=None):
    """Where an autoregressive `model`'s `samples` ((batch, H, W, C) levels, drawn from uniform
    `noise` of that shape) are float ties, as a (batch, H, W, C) bool array.

    Each sub-pixel is drawn again by today's model given the samples' earlier sub-pixels (one
    teacher-forced pass). A level that differs from that draw is a tie when a uniform draw within
    TIE of its own gives it; any other difference raises AssertionError, naming the sub-pixel.
    """
    import tensorflow as tf

    samples = np.asarray(samples, np.uint8)
    params = model(tf.constant(samples), labels)
    channels = samples.shape[-1]

    def draw(uniform):
        uniform = tf.constant(np.clip(uniform, 0.0, 1.0 - 1e-7), tf.float32)
        return np.asarray(model.likelihood.inverse_cdf(params, uniform, channels))

    noise = np.asarray(noise, np.float32)
    redrawn, lowest, highest = draw(noise), draw(noise - TIE), draw(noise + TIE)
    ties = samples != redrawn
    unexplained = [
        tuple(map(int, at)) for at in np.argwhere(ties & ((samples < lowest) | (samples > highest)))
    ]
    assert not unexplained, (
        f"{len(unexplained)} sampled levels are not today's draws, first at (image, row, column, "
        f"channel) {unexplained[0]}: {samples[unexplained[0]]} against "
        f"{redrawn[unexplained[0]]}, farther than {TIE} from a tie"
    )
    return ties


def figures(name, model=None):
    """{"samples_sha256", "samples", ["log_prob"]} of zoo model `name` (or of `model`, loaded
    already with `load(name)`) through today's code."""
    from keras_gen import runtime

    model = load(name) if model is None else model
    labels = reference_labels(model)
    samples = np.ascontiguousarray(np.asarray(model.sample(model.make_noise(4, seed=0), labels)))
    result = {
        "samples_sha256": hashlib.sha256(samples.tobytes()).hexdigest(),
        "samples": samples.tobytes().hex(),
    }
    if model.has_log_prob:  # as exported: a VAE's with its fixed importance draws, so deterministic
        images = reference_images(model.image_shape, model.num_levels)
        log_prob = runtime.KerasRunner(model).log_prob(images, labels)
        result["log_prob"] = [float(v) for v in np.asarray(log_prob)]
    return result


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(HERE))
    names = sorted(
        n for n in os.listdir(ZOO) if os.path.exists(os.path.join(ZOO, n, "model.keras"))
    )
    if "--add" in sys.argv:
        recorded = json.load(open(REFERENCE))
        name = sys.argv[sys.argv.index("--add") + 1]
        if name in recorded:
            sys.exit(f"{name} is recorded already; its figures change only with a reason.")
        recorded[name] = figures(name)
    elif "--add-samples" in sys.argv:
        recorded = json.load(open(REFERENCE))
        for name in names:
            today = figures(name)
            recorded[name]["samples"] = today["samples"]
            if today["samples_sha256"] != recorded[name]["samples_sha256"]:
                recorded[name]["samples_note"] = (
                    "samples recorded again on a CPU where they no longer hash as samples_sha256 "
                    "(a float decoder's rounding); held to the model's sample_parity"
                )
    else:
        recorded = {name: figures(name) for name in names}
    with open(REFERENCE, "w") as file:
        json.dump(recorded, file, indent=1)
        file.write("\n")
    print(json.dumps(recorded, indent=1))
