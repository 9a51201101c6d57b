"""Every public class of keras_gen (exceptions aside) has an `Example:` block, and it runs."""

import inspect
import re
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gen.layers as gen_layers
import keras_gen.models as gen_models
from keras_gen import callbacks, cli, data, export, likelihoods, metrics, runtime
from keras_gen.layers.incremental import Window
from keras_gen.models import gan_parts

MODULES = (gen_layers, gen_models, gan_parts, callbacks, runtime, data, metrics, likelihoods, cli)


def public_classes():
    found = {}
    for module in MODULES:
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__.startswith("keras_gen")
                and not name.startswith("_")
                and not issubclass(value, Exception)
            ):
                found[name] = value
    found["Window"] = Window
    return found


CLASSES = public_classes()


def example_code(cls):
    match = re.search(r"Example:\s*```python\n(.*?)```", inspect.getdoc(cls) or "", re.S)
    return match and match.group(1)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_the_example_runs(name):
    code = example_code(CLASSES[name])
    assert code, f"{name}'s docstring has no Example: block"
    namespace = {
        "np": np,
        "tf": tf,
        "keras": keras,
        "layers": keras.layers,
        "tempfile": tempfile,
        "export": export,
        "ArgumentError": cli.ArgumentError,
        **public_classes(),
    }
    keras.utils.set_random_seed(0)
    exec(compile(code, f"<{name} example>", "exec"), namespace)
