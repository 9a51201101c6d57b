"""Held-out bits/dim on every held-out image, and on the held-out images with no sibling in the
training share (issue N's emoji: 1,875 of the 3,786 are skin-tone variants of another).

    python benchmarks/unseen_designs.py gated_pixelcnn_emoji vae_emoji \
        --images .data/node_modules/emoji-datasource-google/img/google/64

Two files are siblings when their names are equal after removing --variant (a regular
expression; by default Unicode's five skin-tone modifiers, as the emoji files spell them).
The held-out share is the one `train` and `evaluate` use (`ImageSource`'s hash of each file's
path). Each artifact (a zoo name, an export directory or a .keras file) is scored through its
export's `log_prob` (a .keras file through Keras), in bits per sub-pixel.
"""

import argparse
import re

import numpy as np

import keras_gen  # noqa: F401
from keras_gen import runtime, zoo
from keras_gen.image_files import ImageSource, held_out, list_image_files

SKIN_TONES = r"-1f3f[b-f]"


def unseen_mask(files, held, variant):
    """Of the held-out `files` (bool `held` over all of them), those whose design has no
    variant among the training files: a bool array over the held-out ones, in their order."""
    design = [re.sub(variant, "", name) for name in files]
    trained = {d for d, h in zip(design, held) if not h}
    return np.array([design[i] not in trained for i in np.flatnonzero(held)])


def bits_per_dim(runner, images, batch=64):
    """Mean negative log-likelihood of uint8 `images` (N, H, W, C), in bits per sub-pixel."""
    log_p = np.concatenate(
        [runner.log_prob(images[i : i + batch]) for i in range(0, len(images), batch)]
    )
    return float(-np.mean(log_p) / (np.prod(images.shape[1:]) * np.log(2)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "artifacts", nargs="+", help="zoo names, export directories or .keras files"
    )
    parser.add_argument("--images", required=True, help="the folder the models trained on")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--validation-split", type=float, default=0.05)
    parser.add_argument("--variant", default=SKIN_TONES, help="what siblings' names differ by")
    args = parser.parse_args()

    source = ImageSource(
        args.images,
        image_size=(args.image_size, args.image_size),
        channels=args.channels,
        validation_fraction=args.validation_split,
    )
    files = list_image_files(source.path)
    held = held_out(files, args.validation_split)
    images = source.real_images("test", int(held.sum()))
    unseen = unseen_mask(files, held, args.variant)
    print(f"held out: {len(images)} images, {int(unseen.sum())} without a sibling in training")
    print("| artifact | held-out bits/dim | without a sibling |\n|---|---|---|")
    for artifact in args.artifacts:
        path = zoo.resolve(artifact)
        runner = (
            runtime.KerasRunner(runtime.load_keras(path))
            if path.endswith(".keras")
            else runtime.open_artifact(path)
        )
        every, alone = bits_per_dim(runner, images), bits_per_dim(runner, images[unseen])
        print(f"| {artifact} | {every:.4f} | {alone:.4f} |")


if __name__ == "__main__":
    main()
