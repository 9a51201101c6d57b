"""Measuring GANs offline with a small MNIST classifier (the precedent of TF-GAN's MNIST evaluation).

Inception-based FID needs weights from the network; a classifier trained here
gives the features instead:
- Fréchet distance between generated and real images, on the classifier's logits (TF-GAN's MNIST
  "frechet distance") and on its 128-d features (FCD);
- classifier score, exp(E_x KL(p(y|x) || p(y))), the Inception score's analogue (max 10);
- for conditional models, the fraction of samples classified as the label asked for.
"""

import os

import keras
import numpy as np
from keras import layers

from keras_gen.registry import register

DEFAULT_CLASSIFIER = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "saved_models",
    "mnist_classifier.keras",
)


@register
class MnistClassifier(keras.Model):
    """A small convnet on uint8 pixels (batch, 28, 28, 1); `features` is its 128-d penultimate layer.

    Example:

    ```python
    classifier = MnistClassifier()
    logits = classifier(np.zeros((2, 28, 28, 1), "float32"))  # (2, 10); the zoo's: metrics.load_classifier()
    ```
    """

    def __init__(self, image_shape=(28, 28, 1), num_classes=10, **kwargs):
        super().__init__(**kwargs)
        self.image_shape, self.num_classes = tuple(image_shape), int(num_classes)
        self.trunk = keras.Sequential(
            [
                keras.Input(self.image_shape),
                layers.Rescaling(1 / 255.0),
                layers.Conv2D(32, 3, activation="relu"),
                layers.Conv2D(32, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Conv2D(64, 3, activation="relu"),
                layers.Conv2D(64, 3, activation="relu"),
                layers.MaxPooling2D(),
                layers.Flatten(),
                layers.Dropout(0.3),
                layers.Dense(128, activation="relu"),
            ],
            name="trunk",
        )
        self.dropout = layers.Dropout(0.3)
        self.head = layers.Dense(self.num_classes, name="head")
        self.head.build((None, 128))
        self.built = True

    def features(self, pixels, training=False):
        """(batch, H, W, C) uint8 pixels -> (batch, 128) features."""
        return self.trunk(keras.ops.cast(pixels, "float32"), training=training)

    def call(self, pixels, training=False):
        """(batch, H, W, C) uint8 pixels -> (batch, num_classes) logits."""
        return self.head(self.dropout(self.features(pixels, training), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(image_shape=list(self.image_shape), num_classes=self.num_classes)
        return config


def train_classifier(out=DEFAULT_CLASSIFIER, epochs=4, manual_dir=None, data_dir=None):
    """Trains the MNIST classifier and saves it to `out`; returns (model, test accuracy)."""
    from keras_gen import data
    from keras_gen.files import atomic_path

    train = data.load(
        "mnist", "train", batch_size=128, labels=True, manual_dir=manual_dir, data_dir=data_dir
    )
    test = data.load(
        "mnist", "test", batch_size=500, labels=True, manual_dir=manual_dir, data_dir=data_dir
    )
    keras.utils.set_random_seed(0)
    model = MnistClassifier()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(train, epochs=epochs, validation_data=test, verbose=2)
    accuracy = model.evaluate(test, return_dict=True, verbose=0)["accuracy"]
    with atomic_path(out) as temporary:
        model.save(temporary)
    return model, accuracy


def load_classifier(path=None):
    """The MNIST classifier at `path` (None: saved_models/mnist_classifier.keras)."""
    path = path or DEFAULT_CLASSIFIER
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No MNIST classifier at {path}; train one with `python -m keras_gen train-classifier`."
        )
    return keras.saving.load_model(path, safe_mode=True)


def _batched(function, pixels, batch_size=500):
    return np.concatenate(
        [
            np.asarray(function(pixels[i : i + batch_size]))
            for i in range(0, len(pixels), batch_size)
        ]
    )


def frechet_distance(features_a, features_b):
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between two (n, d) feature sets."""
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    cov_a = np.cov(features_a, rowvar=False)
    cov_b = np.cov(features_b, rowvar=False)
    # Tr((C_a C_b)^(1/2)) through the symmetric C_a^(1/2) C_b C_a^(1/2), which has the same eigenvalues.
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def classifier_score(logits):
    """exp(E_x KL(p(y|x) || p(y))) from (n, classes) logits: 1 (useless) .. classes (sharp and diverse)."""
    logits = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    marginal = probabilities.mean(axis=0, keepdims=True)
    kl = np.sum(probabilities * (np.log(probabilities + 1e-12) - np.log(marginal + 1e-12)), axis=1)
    return float(np.exp(kl.mean()))


def classifier_outputs(classifier, pixels):
    """(n, H, W, C) uint8 pixels -> ((n, 128) features, (n, classes) logits), in batches of one pass each."""
    features = _batched(classifier.features, pixels)
    return features, _batched(classifier.head, features)


def evaluate_samples(classifier, generated, real=None, labels=None, real_outputs=None):
    """Scores generated uint8 pixels against real ones.

    Pass the real images as `real` pixels, or as `real_outputs` from
    `classifier_outputs` when several evaluations share them.
    Returns {"fd_logits", "fcd", "classifier_score"}: the Fréchet distance on the
    classifier's logits (TF-GAN's MNIST "frechet distance") and on its 128-d
    features, and the classifier score; with `labels` (what each sample was
    asked to be), also "label_accuracy".
    """
    real_features, real_logits = (
        real_outputs if real_outputs is not None else classifier_outputs(classifier, real)
    )
    features, logits = classifier_outputs(classifier, generated)
    results = {
        "fd_logits": frechet_distance(logits, real_logits),
        "fcd": frechet_distance(features, real_features),
        "classifier_score": classifier_score(logits),
    }
    if labels is not None:
        results["label_accuracy"] = float(np.mean(np.argmax(logits, axis=1) == labels))
    return results
