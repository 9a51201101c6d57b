"""Registration of keras_gen layers and models for `.keras` loading."""

import keras


def register(cls):
    """Registers a layer or model for `.keras` loading under the keras_gen package."""
    return keras.saving.register_keras_serializable(package="keras_gen")(cls)
