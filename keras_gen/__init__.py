"""keras_gen: a Keras 3 / TensorFlow zoo of image generative models."""

import os

from keras_gen import quiet

quiet.for_command_line()  # before TensorFlow loads: its start-up logs are the first to hide
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_gen needs the TensorFlow backend (its train steps use "
        f"tf.GradientTape), but KERAS_BACKEND is {keras.backend.backend()!r}."
    )

__version__ = "0.1.0"

# Importing the package registers every layer and model with Keras, so `import keras_gen` is
# enough before `keras.saving.load_model`, as with `import keras_hub`.
from keras_gen import layers, models, zoo  # noqa: E402, F401
