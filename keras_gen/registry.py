"""Registration: keras_gen layers and models for `.keras` loading, and where presets come from."""

import keras


def register(cls):
    """Registers a layer or model for `.keras` loading under the keras_gen package."""
    return keras.saving.register_keras_serializable(package="keras_gen")(cls)


class PresetError(ValueError):
    """A preset that does not exist, or holds another model than the one asked for."""


_preset_loaders = []


def register_preset_loader(loader):
    """Adds `loader(name) -> model or None` to those `from_preset` asks, newest first.

    `keras_gen.zoo` registers the zoo's folders when the package is imported, so the model
    base never imports the zoo.
    """
    _preset_loaders.insert(0, loader)
    return loader


def load_preset(name):
    """The model the first registered loader finds for `name`."""
    for loader in _preset_loaders:
        model = loader(name)
        if model is not None:
            return model
    raise PresetError(
        f"No preset named {name!r}: no preset loader is registered (import keras_gen)."
    )
