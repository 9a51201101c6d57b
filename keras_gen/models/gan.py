"""Adversarial models: DCGAN (Radford et al. 2016), WGAN-GP (Gulrajani et al. 2017) and a conditional GAN."""

import json

import keras
import tensorflow as tf
from keras import layers

from keras_gen.conventions import unit_to_pixels
from keras_gen.models.base import GenerativeModel
from keras_gen.models.gan_parts import GeneratorAverage, InfoGANCode, copy_network
from keras_gen.registry import register


def _upsamplings(size):
    """How many stride-2 stages lead from a start of at least 4 pixels to `size` (28 -> 2, 32 -> 3, 64 -> 4)."""
    count = 0
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        count += 1
    return count


def _as_network(network):
    """A user's network, as a Keras model (built, so its weights exist before training)."""
    if not isinstance(network, keras.Model):
        raise ValueError(
            f"generator and discriminator must be Keras models, got {type(network).__name__}."
        )
    if not network.built:
        raise ValueError(
            f"{network.name} is not built; give it an Input (keras.Input) or call build() first."
        )
    return network


@register
class AdversarialModel(GenerativeModel):
    """Base of the GANs: a generator G(z[, y]) and a discriminator (critic) D(x[, y]).

    Owns the two-optimizer `compile`, its save and load, `generate`, the loss
    trackers and the train step. Each batch feeds `discriminator_steps`
    discriminator (critic) steps, on its interleaved slices so that each sees
    fresh real images, then one generator step. So with n critic steps, a batch
    of n * m images gives critic batches of m; any other batch of at least one image gives
    critic batches of ceil(batch / n), reusing a few of its rows (`critic_rows`). Subclasses
    define the two losses.

    Args:
        latent_dim: size of z.
        filters: channels of the widest discriminator layer's input; the networks scale from it.
        discriminator_steps: discriminator (critic) steps per generator step.
        ema_decay: decay of an exponential moving average of the generator's weights, updated after
            each generator step (warmed up as min(ema_decay, (1 + t) / (10 + t)) at step t). When
            above 0, `sample` and the exports draw from the average (`ema_generator`; Yazici et al.
            2019); training still steps the generator itself. The average keeps batch-norm statistics
            of its own activations, from a forward pass on each generator step's latents: the
            trained generator's statistics do not fit the averaged weights. 0 turns it off.
        sample_from_average: with `ema_decay` above 0, whether `sample` and the exports use the
            average (the default) or the trained generator. The average's samples are smoother but
            can be less varied, so measure both (the zoo's conditional GAN samples better without).
        code_categories: size of a categorical latent code (InfoGAN, Chen et al. 2016), 0 for none.
            The code is the index of the largest of z's first `code_categories` entries (uniform),
            so noise and exports stay as they are. The generator also sees it as a small embedding,
            and a small head on the discriminator's features learns to read it back from
            generated images (both small because checkpoints carry Adam state and a weight
            average); both networks add `code_weight` times that head's cross-entropy (a bound on
            the mutual information between code and image) to their losses. Without labels, this
            lets the generator put separate modes, such as digit classes, on separate codes
            instead of spreading one connected latent space across them.
        code_weight: weight of the code's cross-entropy (InfoGAN's lambda).
        generator, discriminator: your own networks instead of the built-in DCGAN ones (keras-io's
            `GAN(discriminator, generator, latent_dim)`). The generator maps z (batch, latent_dim)
            [and labels (batch,)] to float32 images (batch, H, W, C) in [-1, 1]; the discriminator
            maps images [and labels] to logits (batch, 1), or to [logits, code logits (batch,
            code_categories)] with a code. They are saved inside the model's config. `filters` then
            has no effect.

    Example:

    ```python
    generator = keras.Sequential([keras.Input((16,)), layers.Dense(2 * 2 * 8, activation="relu"),
                                  layers.Reshape((2, 2, 8)),
                                  layers.Conv2DTranspose(4, 4, 2, "same", activation="relu"),
                                  layers.Conv2DTranspose(1, 4, 2, "same", activation="tanh")])
    discriminator = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(8, 4, 2, "same"),
                                      layers.LeakyReLU(0.2), layers.Flatten(), layers.Dense(1)])
    model = DCGAN(image_shape=(8, 8, 1), latent_dim=16, generator=generator, discriminator=discriminator)
    model.compile_for_training()
    images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype("uint8")
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    ```
    """

    noise_kind = "normal"
    has_log_prob = False
    default_learning_rate = 2e-4
    default_betas = (0.5, 0.999)
    discriminator_batch_norm = True  # the DCGAN's option; never in a gradient-penalty critic

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=256,
        latent_dim=64,
        filters=64,
        discriminator_steps=1,
        num_classes=None,
        ema_decay=0.0,
        sample_from_average=True,
        code_categories=0,
        code_weight=1.0,
        generator=None,
        discriminator=None,
        **kwargs,
    ):
        super().__init__(
            image_shape=image_shape, num_levels=num_levels, num_classes=num_classes, **kwargs
        )
        self.latent_dim, self.filters = int(latent_dim), int(filters)
        self.discriminator_steps = int(discriminator_steps)
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}.")
        self.ema_decay = float(ema_decay)
        self.sample_from_average = bool(sample_from_average)
        self.code_categories, self.code_weight = int(code_categories), float(code_weight)
        self.code = None
        if self.code_categories:
            self.code = InfoGANCode(self.code_categories, self.code_weight, self.latent_dim)
        self.own_networks = generator is not None or discriminator is not None
        if self.own_networks and (generator is None or discriminator is None):
            raise ValueError(
                f"{type(self).__name__} takes both a generator and a discriminator, or neither."
            )
        height, width, _ = self.image_shape
        self.stages = _upsamplings(height)
        if not self.own_networks and (self.stages == 0 or width != height):
            raise ValueError(
                f"{type(self).__name__} needs square images with an even side of at least 8 "
                f"(28, 32, 64, ...); got image_shape {self.image_shape}."
            )
        if self.own_networks:
            self.generator, self.discriminator = _as_network(generator), _as_network(discriminator)
        else:
            self.generator, self.discriminator = (
                self._build_generator(),
                self._build_discriminator(),
            )
        self.ema_generator, self.average = None, None
        if self.ema_decay:
            self.average = GeneratorAverage(self.ema_decay)
            copy = (
                copy_network(self.generator)
                if self.own_networks
                else self._build_generator(name="ema_generator")
            )
            self.ema_generator = self.average.frozen_copy(copy, self.generator)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        # Cross-entropy of the code read back from generated images (nats; log(categories) is chance).
        self.code_loss_tracker = (
            keras.metrics.Mean(name="code_loss") if self.code_categories else None
        )
        self.d_optimizer = self.g_optimizer = None
        self.built = True

    @property
    def noise_shape(self):
        return (self.latent_dim,)

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker, self.code_loss_tracker]
        return [tracker for tracker in trackers if tracker is not None]

    # -- networks -----------------------------------------------------------
    def _inputs(self, shape, name):
        main = keras.Input(shape, name=name)
        labels = keras.Input((), dtype="int32", name="labels") if self.num_classes else None
        return main, labels

    def _batch_norm(self):
        # Synchronized: under tf.distribute, statistics of the global batch, as on one device.
        return layers.BatchNormalization(synchronized=True)

    def _build_generator(self, name="generator"):
        height, _, channels = self.image_shape
        start = height // 2**self.stages
        z, labels = self._inputs((self.latent_dim,), "z")
        hidden = z
        if self.code is not None:
            hidden = layers.Concatenate()([hidden, self.code.generator_input(z)])
        if labels is not None:
            hidden = layers.Concatenate()(
                [hidden, layers.Embedding(self.num_classes, self.latent_dim)(labels)]
            )
        widest = self.filters * 2 ** (self.stages - 1)
        hidden = layers.Dense(start * start * widest, use_bias=False)(hidden)
        hidden = layers.ReLU()(self._batch_norm()(hidden))
        hidden = layers.Reshape((start, start, widest))(hidden)
        for stage in range(self.stages - 1):
            hidden = layers.Conv2DTranspose(
                widest // 2 ** (stage + 1), 4, 2, "same", use_bias=False
            )(hidden)
            hidden = layers.ReLU()(self._batch_norm()(hidden))
        images = layers.Conv2DTranspose(channels, 4, 2, "same", activation="tanh", dtype="float32")(
            hidden
        )
        return keras.Model([z, labels] if labels is not None else z, images, name=name)

    def _build_discriminator(self):
        images, labels = self._inputs(self.image_shape, "images")
        hidden = images
        for stage in range(self.stages):
            hidden = layers.Conv2D(self.filters * 2**stage, 4, 2, "same")(hidden)
            if stage > 0 and self.discriminator_batch_norm:
                hidden = self._batch_norm()(hidden)
            hidden = layers.LeakyReLU(0.2)(hidden)
        features = layers.Flatten()(hidden)
        logits = layers.Dense(1, dtype="float32")(features)
        if labels is not None:
            # Projection discriminator (Miyato & Koyama 2018): <embed(y), features>.
            embedded = layers.Embedding(self.num_classes, features.shape[-1])(labels)
            projection = layers.Dot(axes=1, dtype="float32")([embedded, features])
            logits = layers.Add(dtype="float32")([logits, projection])
        outputs = logits
        if self.code is not None:
            outputs = [logits, self.code.discriminator_head(features)]
        return keras.Model(
            [images, labels] if labels is not None else images, outputs, name="discriminator"
        )

    def _with_labels(self, inputs, labels):
        return [inputs, labels] if self.num_classes else inputs

    def generate(self, z, labels=None, training=False, average=False):
        """z (batch, latent_dim) [and labels (batch,)] -> images (batch, H, W, C) float32 in [-1, 1].

        With `average=True`, through the weight average `ema_generator` (when `ema_decay` > 0).
        """
        generator = (
            self.ema_generator if average and self.ema_generator is not None else self.generator
        )
        return tf.cast(generator(self._with_labels(z, labels), training=training), tf.float32)

    def discriminate(self, images, labels=None, training=False):
        """Images in [-1, 1] (batch, H, W, C) -> logits (batch,), float32."""
        return self.discriminate_with_code(images, labels, training)[0]

    def discriminate_with_code(self, images, labels=None, training=False):
        """Images in [-1, 1] -> (logits (batch,), code logits (batch, code_categories) or None), float32."""
        outputs = self.discriminator(self._with_labels(images, labels), training=training)
        logits, code_logits = outputs if self.code is not None else (outputs, None)
        if code_logits is not None:
            code_logits = tf.cast(code_logits, tf.float32)
        return tf.cast(tf.reshape(logits, [-1]), tf.float32), code_logits

    def call(self, z, labels=None, training=False):
        return self.generate(z, labels, training)

    def _sample(self, noise, labels):
        return unit_to_pixels(
            (self.generate(noise, labels, average=self.sample_from_average) + 1.0) / 2.0
        )

    # -- compile and save -----------------------------------------------------
    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Compiles with one optimizer per network (defaults: Adam at the model's defaults)."""
        beta_1, beta_2 = self.default_betas

        def chosen(optimizer):
            optimizer = (
                keras.optimizers.get(optimizer)
                if optimizer
                else keras.optimizers.Adam(self.default_learning_rate, beta_1=beta_1, beta_2=beta_2)
            )
            return self.with_loss_scaling(optimizer)

        self.d_optimizer, self.g_optimizer = chosen(d_optimizer), chosen(g_optimizer)
        super().compile(**kwargs)  # builds both
        self.optimizer = (
            None  # Keras' default optimizer would be built over both networks and saved
        )

    def compile_for_training(self, learning_rate=None, **kwargs):
        beta_1, beta_2 = self.default_betas
        rate = learning_rate or self.default_learning_rate
        self.compile(
            d_optimizer=keras.optimizers.Adam(rate, beta_1=beta_1, beta_2=beta_2),
            g_optimizer=keras.optimizers.Adam(rate, beta_1=beta_1, beta_2=beta_2),
            **kwargs,
        )

    def optimizer_targets(self):
        return [
            (self.d_optimizer, self.discriminator.trainable_variables),
            (self.g_optimizer, self.generator.trainable_variables),
        ]

    def get_compile_config(self):
        if self.d_optimizer is None:
            return None
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
        }

    def compile_from_config(self, config):
        self.compile(
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
        )

    # -- training -------------------------------------------------------------
    def discriminator_loss(self, real, fake, labels, real_logits, fake_logits):
        """(batch,) per-example discriminator loss."""
        raise NotImplementedError

    def input_gradient_norms(self, images, labels):
        """(batch,) ||grad_x D(x)||_2 per image of `images` (batch, H, W, C) in [-1, 1], in float32
        whatever the precision (a bfloat16 norm is too coarse for a penalty)."""
        images = tf.convert_to_tensor(images, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = self.discriminate(images, labels, training=True)
        gradients = tf.cast(tape.gradient(logits, images), tf.float32)
        return tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]) + 1e-12)

    def generator_loss(self, fake_logits):
        """(batch,) per-example generator loss."""
        raise NotImplementedError

    def _latents(self, batch):
        return self.replica_random(keras.random.normal, (batch, self.latent_dim))

    def code_loss(self, latents, code_logits):
        """(batch,) cross-entropy in nats of the code in `latents` (batch, latent_dim) under
        `code_logits` (batch, code_categories); zeros without a code."""
        if self.code is None:
            return tf.zeros(tf.shape(latents)[:1])
        return self.code.loss(latents, code_logits)

    def _real(self, images):
        # float32 like the generator's output, so real and fake mix in one dtype under mixed precision
        return tf.cast(self.to_symmetric_interval(images), tf.float32)

    def train_step(self, data):
        """`discriminator_steps` critic steps, each on its own interleaved slice of the batch
        (`critic_rows`), then one generator step with the batch's size. A Python loop, not a tf.cond: a conditional optimizer
        step cannot synchronize replicas under tf.distribute."""
        images, labels = self._unpack_batch(data)
        real = self._real(images)
        for step in range(self.discriminator_steps):
            rows = self.critic_rows(step, tf.shape(real)[0])
            self._discriminator_step(
                tf.gather(real, rows), None if labels is None else tf.gather(labels, rows)
            )
        self._generator_step(tf.shape(real)[0], labels)
        return self.step_logs(self.metrics)

    def critic_rows(self, step, batch):
        """(ceil(batch / n),) indices of the rows critic step `step` of n = `discriminator_steps` reads.

        Rows step, step + n, step + 2n, ... of the batch, wrapping round to its start: a batch of
        n * m rows gives each critic step its own m rows (every row once), and any other batch of
        at least one row gives every step ceil(batch / n) rows, reusing a few (all of them when
        the batch has fewer than n rows). So small and ragged batches train, with critic batches
        of equal size.
        """
        steps = self.discriminator_steps
        size = (batch + steps - 1) // steps
        return (step + steps * tf.range(size)) % batch

    def _discriminator_step(self, real, labels):
        latents = self._latents(tf.shape(real)[0])
        with tf.GradientTape() as tape:
            fake = self.generate(latents, labels, training=True)
            fake_logits, code_logits = self.discriminate_with_code(fake, labels, training=True)
            loss_per_example = self.discriminator_loss(
                real, fake, labels, self.discriminate(real, labels, training=True), fake_logits
            )
            loss = self.global_mean(
                loss_per_example + self.code_weight * self.code_loss(latents, code_logits)
            )
        self.minimize(tape, loss, self.d_optimizer, self.discriminator.trainable_variables)
        self.d_loss_tracker.update_state(loss_per_example)

    def _generator_step(self, batch, labels):
        latents = self._latents(batch)
        with tf.GradientTape() as tape:
            fake = self.generate(latents, labels, training=True)
            fake_logits, code_logits = self.discriminate_with_code(fake, labels, training=True)
            loss_per_example = self.generator_loss(fake_logits)
            code_loss = self.code_loss(latents, code_logits)
            loss = self.global_mean(loss_per_example + self.code_weight * code_loss)
        self.minimize(tape, loss, self.g_optimizer, self.generator.trainable_variables)
        self.g_loss_tracker.update_state(loss_per_example)
        if self.code_loss_tracker is not None:
            self.code_loss_tracker.update_state(code_loss)
        if self.ema_generator is not None:
            self._update_ema_generator(latents, labels)

    def _update_ema_generator(self, latents, labels):
        """`GeneratorAverage.update` after a generator step on `latents` (batch, latent_dim)."""
        self.average.update(
            self.ema_generator,
            self.generator,
            self.g_optimizer.iterations,
            self._with_labels(latents, labels),
        )

    def test_step(self, data):
        images, labels = self._unpack_batch(data)
        real = self._real(images)
        latents = self._latents(tf.shape(real)[0])
        fake = self.generate(latents, labels)
        fake_logits, code_logits = self.discriminate_with_code(fake, labels)
        self.d_loss_tracker.update_state(
            self.discriminator_loss(
                real, fake, labels, self.discriminate(real, labels), fake_logits
            )
        )
        self.g_loss_tracker.update_state(self.generator_loss(fake_logits))
        if self.code_loss_tracker is not None:
            self.code_loss_tracker.update_state(self.code_loss(latents, code_logits))
        return self.step_logs(self.metrics)

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            filters=self.filters,
            discriminator_steps=self.discriminator_steps,
            ema_decay=self.ema_decay,
            sample_from_average=self.sample_from_average,
            code_categories=self.code_categories,
            code_weight=self.code_weight,
        )
        if self.own_networks:  # built-in networks follow from the options; a user's are saved whole
            # Through JSON, as a .keras file holds it (tuples become lists), so a reload's config is equal.
            config.update(
                {
                    name: json.loads(json.dumps(keras.saving.serialize_keras_object(network)))
                    for name, network in (
                        ("generator", self.generator),
                        ("discriminator", self.discriminator),
                    )
                }
            )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("generator", "discriminator"):
            if isinstance(config.get(name), dict):
                config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)


@register
class DCGAN(AdversarialModel):
    """DCGAN with the non-saturating generator loss.

    Args:
        label_smoothing: real targets are 1 - label_smoothing (one-sided smoothing).
        r1_weight: gamma of the R1 penalty (Mescheder et al. 2018), gamma / 2 *
            ||grad_x D(x)||^2 on real images, which keeps the discriminator from sharpening on
            (and overfitting) the training images; 0 for none. 10 is the paper's value for 64 x 64
            images, with gradients taken w.r.t. images in [-1, 1]. The discriminator's batch
            norm couples a batch, so each image's gradient also carries its share through the
            batch statistics.
        discriminator_batch_norm: batch norm after the discriminator's inner convolutions (the
            DCGAN paper's); False leaves it out, as R1's authors train their discriminators.

    Example:

    ```python
    model = DCGAN(image_shape=(8, 8, 1), latent_dim=4, filters=4, code_categories=3)
    model.compile_for_training()
    images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype("uint8")
    model.fit(images, batch_size=8, epochs=1, verbose=0)     # d_loss, g_loss, code_loss
    samples = model.sample(model.make_noise(4, seed=0))       # (4, 8, 8, 1) uint8 pixels
    ```
    """

    def __init__(self, label_smoothing=0.0, r1_weight=0.0, discriminator_batch_norm=True, **kwargs):
        self.discriminator_batch_norm = bool(discriminator_batch_norm)  # read by the base's build
        super().__init__(**kwargs)
        self.label_smoothing = float(label_smoothing)
        self.r1_weight = float(r1_weight)

    def r1_penalty(self, real, labels):
        """(batch,) ||grad_x D(x)||_2^2 / 2 at the real images (batch, H, W, C) in [-1, 1]."""
        return 0.5 * tf.square(self.input_gradient_norms(real, labels))

    def discriminator_loss(self, real, fake, labels, real_logits, fake_logits):
        real_targets = tf.fill(tf.shape(real_logits), 1.0 - self.label_smoothing)
        loss = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=real_targets, logits=real_logits
        ) + tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.zeros_like(fake_logits), logits=fake_logits
        )
        if self.r1_weight:
            loss += self.r1_weight * self.r1_penalty(real, labels)
        return loss

    def generator_loss(self, fake_logits):
        return tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.ones_like(fake_logits), logits=fake_logits
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            label_smoothing=self.label_smoothing,
            r1_weight=self.r1_weight,
            discriminator_batch_norm=self.discriminator_batch_norm,
        )
        return config


@register
class WGANGP(AdversarialModel):
    """Wasserstein GAN with gradient penalty; the critic has no batch norm.

    Args:
        gradient_penalty_weight: lambda.
        discriminator_steps: critic steps per generator step (n_critic).

    Example:

    ```python
    model = WGANGP(image_shape=(8, 8, 1), latent_dim=4, filters=4)   # 5 critic steps per batch
    model.compile_for_training()
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1)).astype("uint8")
    model.fit(images, batch_size=3, epochs=1, verbose=0)     # batches below 5 reuse rows
    ```
    """

    default_learning_rate = 1e-4
    default_betas = (0.5, 0.9)
    discriminator_batch_norm = False

    def __init__(self, gradient_penalty_weight=10.0, discriminator_steps=5, **kwargs):
        super().__init__(discriminator_steps=discriminator_steps, **kwargs)
        self.gradient_penalty_weight = float(gradient_penalty_weight)

    def interpolation_weights(self, batch):
        """(batch, 1, 1, 1) weights uniform in [0, 1), one per example."""
        return self.replica_random(keras.random.uniform, (batch, 1, 1, 1))

    def gradient_penalty(self, real, fake, labels, weights):
        """(batch,) (||grad_x D(x_hat)||_2 - 1)^2 at x_hat = real + weights * (fake - real)."""
        return tf.square(self.input_gradient_norms(real + weights * (fake - real), labels) - 1.0)

    def discriminator_loss(self, real, fake, labels, real_logits, fake_logits):
        weights = self.interpolation_weights(tf.shape(real)[0])
        penalty = self.gradient_penalty(real, fake, labels, weights)
        return fake_logits - real_logits + self.gradient_penalty_weight * penalty

    def generator_loss(self, fake_logits):
        return -fake_logits

    def get_config(self):
        config = super().get_config()
        config.update(gradient_penalty_weight=self.gradient_penalty_weight)
        return config


@register
class ConditionalGAN(DCGAN):
    """Class-conditional DCGAN: a label embedding in the generator, a projection discriminator.

    Example:

    ```python
    model = ConditionalGAN(image_shape=(8, 8, 1), latent_dim=4, filters=4, num_classes=3)
    model.compile_for_training()
    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1)).astype("uint8")
    model.fit(images, np.arange(8) % 3, batch_size=4, epochs=1, verbose=0)
    threes = model.sample(model.make_noise(2, seed=0), np.array([2, 2]))
    ```
    """

    def __init__(self, num_classes=10, **kwargs):
        if num_classes is None:
            raise ValueError("ConditionalGAN needs num_classes.")
        super().__init__(num_classes=num_classes, **kwargs)
