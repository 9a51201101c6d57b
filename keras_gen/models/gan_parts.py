"""Parts a GAN can add to its training: a weight average of the generator, and InfoGAN's code.

Each is a small object that `AdversarialModel` holds when asked for; the base's train step calls
them, so neither the average nor the code is a branch of the base's own logic.
"""

import keras
import tensorflow as tf
from keras import layers


class GeneratorAverage:
    """An exponential moving average of a generator's weights (Yazici et al. 2019).

    After each generator step the averaged weights move towards the generator's, with the decay
    warmed up as min(decay, (1 + t) / (10 + t)) at step t; then a forward pass on that step's
    latents updates the average's own batch-norm statistics, since the trained generator's
    statistics do not fit the averaged weights.

    Example:

    ```python
    generator = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    copy = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    average = GeneratorAverage(decay=0.999)
    ema_generator = average.frozen_copy(copy, generator)     # the generator's weights, frozen
    average.update(ema_generator, generator, step=tf.constant(0), inputs=np.zeros((2, 4), "float32"))
    ```
    """

    def __init__(self, decay):
        self.decay = float(decay)

    @staticmethod
    def frozen_copy(copy, generator):
        """`copy` (a network of the generator's structure) frozen, with the generator's weights.

        Its weights are not trained, but batch norm stays trainable so that its training mode uses
        and tracks batch statistics (a frozen Keras BatchNormalization always runs in inference mode).
        """
        # A model's layers one by one (a generator's batch norm stays trainable); a layer whole.
        for layer in copy.layers if isinstance(copy, keras.Model) else [copy]:
            layer.trainable = isinstance(layer, layers.BatchNormalization)
            for variable in layer.weights:
                variable.trainable = False
        for average, weight in zip(copy.weights, generator.weights):
            average.assign(weight)
        return copy

    def update(self, average, generator, step, inputs=None):
        """Moves `average`'s weights towards `generator`'s at generator step `step` (a tensor), then
        runs `average` on `inputs` (z, or [z, labels]) in training mode for its batch statistics."""
        steps = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + steps) / (10.0 + steps))
        # Every replica holds the same generator after the synchronized step, so each updates
        # its own copy of the average alike.
        for averaged, weight in zip(average.weights, generator.weights):
            if weight.trainable:
                averaged.assign(decay * averaged + (1.0 - decay) * weight)
        if inputs is not None:  # a network without batch norm (a diffusion U-Net) needs no pass
            average(inputs, training=True)


class InfoGANCode:
    """InfoGAN's categorical latent code (Chen et al. 2016), read from z itself.

    The code is the index of the largest of z's first `categories` entries (uniform for a normal
    z), so the noise input and the exports stay as they are. A head on the discriminator's
    features reads the code back from generated images; both networks add `weight` times its
    cross-entropy (a bound on the mutual information between code and image) to their losses.

    Example:

    ```python
    code = InfoGANCode(categories=10, weight=1.0, latent_dim=64)
    z = np.random.default_rng(0).standard_normal((4, 64)).astype("float32")
    nats = code.loss(z, tf.zeros((4, 10)))                    # (4,) log(10) each: chance
    ```
    """

    def __init__(self, categories, weight=1.0, latent_dim=None):
        if latent_dim is not None and not 2 <= int(categories) <= latent_dim:
            raise ValueError(
                f"code_categories must be 0 or in [2, latent_dim = {latent_dim}], got {categories}."
            )
        self.categories, self.weight = int(categories), float(weight)

    def generator_input(self, z):
        """The code as the generator sees it: a small embedding of (batch, categories) per code,
        enough for a separate shift of the next layer per code."""
        from keras_gen.layers import CategoricalCode

        code = CategoricalCode(self.categories)(z)
        return layers.Embedding(self.categories, self.categories)(code)

    def discriminator_head(self, features):
        """(batch, categories) float32 code logits from the discriminator's flat features."""
        # InfoGAN's 128 units here, on 7x7x128 features, made a zoo checkpoint of 27 MB.
        hidden = layers.LeakyReLU(0.2)(layers.Dense(32)(features))
        return layers.Dense(self.categories, dtype="float32", name="code_logits")(hidden)

    def loss(self, latents, code_logits):
        """(batch,) cross-entropy in nats of the code in `latents` (batch, latent_dim) under
        `code_logits` (batch, categories); log(categories) is chance."""
        codes = tf.argmax(latents[:, : self.categories], axis=-1)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=codes, logits=code_logits)


def copy_network(network):
    """A fresh network of `network`'s structure (its own weights), for a user's generator."""
    if isinstance(network, keras.Sequential) or getattr(network, "_is_graph_network", False):
        return keras.models.clone_model(network)
    return type(network).from_config(network.get_config())
