"""Latent-variable models trained on the ELBO: the family base and the VAE (Kingma & Welling 2014)."""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from keras_gen import likelihoods
from keras_gen.conventions import image_hashes
from keras_gen.models.base import GenerativeModel, unit_to_pixels
from keras_gen.registry import register

_LOG_2PI = math.log(2.0 * math.pi)


def _standard_normal_log_density(z):
    """(batch, ...) log N(z; 0, I) summed over the last axis, in nats."""
    return -0.5 * tf.reduce_sum(tf.square(z) + _LOG_2PI, axis=-1)


def gaussian_kl_per_dimension(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, 1)) of each latent dimension, in nats: (batch, latent_dim)
    each -> (batch, latent_dim); summed over the last axis it is the KL of z."""
    return 0.5 * (tf.square(mean) + tf.exp(log_var) - 1.0 - log_var)


EXPORT_DRAWS = ("per_image", "shared")
_DRAW_BANK_SIZE = 4096


def hashed_standard_normal_draws(images, num_draws, dim):
    """Fixed standard normal draws for each image, picked by a hash of its pixels.

    Built from integer arithmetic and a gather, so SavedModel and LiteRT (built-in ops) pick
    the same draws; an image gets the same draws in any batch, and different images mostly
    different ones, from one bank of 4,096 normal vectors.

    Args:
        images: (batch, H, W, C) uint8 levels, at most 32,768 sub-pixels each.
        num_draws: draws k per image.
        dim: size of each draw.
    Returns:
        (num_draws, batch, dim) float32.
    """
    if np.prod(images.shape[1:]) > 2**15:
        raise ValueError(
            f"Per-image export draws hash at most 32,768 sub-pixels an image, got {images.shape[1:]}; "
            'use export_draws="shared".'
        )
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((_DRAW_BANK_SIZE, dim), dtype=np.float32)
    hashed = image_hashes(images, num_draws, rng)  # (k, batch)
    return tf.gather(bank, tf.math.floormod(hashed, _DRAW_BANK_SIZE))


def check_downsampling(image_shape, widths, model_name):
    """Refuses an image whose H and W the encoder's stride-2 layers cannot halve evenly."""
    factor = 2 ** len(widths)
    if image_shape[0] % factor or image_shape[1] % factor:
        raise ValueError(
            f"{model_name} with {len(widths)} stride-2 layers needs H and W divisible by "
            f"{factor}; got image_shape {tuple(image_shape)}."
        )


def conv_encoder(image_shape, widths, latent_dim, depth=1, name="encoder"):
    """Images in [0, 1] (batch, H, W, C) -> (batch, 2 * latent_dim): a posterior's mean and log
    variance. Per width, a stride-2 3 x 3 ReLU convolution and `depth - 1` more of stride 1;
    then a dense layer."""
    convolutions = []
    for width in widths:
        convolutions += [
            layers.Conv2D(width, 3, strides=2 if i == 0 else 1, padding="same", activation="relu")
            for i in range(int(depth))
        ]
    return keras.Sequential(
        [keras.Input(tuple(image_shape))]
        + convolutions
        + [layers.Flatten(), layers.Dense(2 * latent_dim)],
        name=name,
    )


def upsampling_decoder(image_shape, widths, latent_dim, out_channels, name="decoder"):
    """z (batch, latent_dim) -> (batch, H, W, out_channels), the mirror of `conv_encoder`: a dense
    layer to the smallest map, one stride-2 transposed convolution per width, a 3 x 3 output."""
    height, width = image_shape[:2]
    factor = 2 ** len(widths)
    return keras.Sequential(
        [
            keras.Input((latent_dim,)),
            layers.Dense((height // factor) * (width // factor) * widths[-1], activation="relu"),
            layers.Reshape((height // factor, width // factor, widths[-1])),
        ]
        + [
            layers.Conv2DTranspose(w, 3, strides=2, padding="same", activation="relu")
            for w in reversed(widths)
        ]
        + [layers.Conv2D(out_channels, 3, padding="same")],
        name=name,
    )


@register
class LatentVariableModel(GenerativeModel):
    """x ~ p(x | z) with z ~ N(0, I), trained on the ELBO: the family base of VAE and PixelVAE.

    It owns the posterior, the KL term with beta, warm-up and free bits, the train and test
    steps, and the IWAE estimate of log p(x). Subclasses build `self.encoder` (images in [0, 1]
    -> 2 * latent_dim) and define `log_likelihood_given_latent(images, z)`, `call` and `_sample`.

    Args:
        latent_dim: size of z.
        likelihood: of p(x | z); "bernoulli" for binary data, else "logistic" (VAE) or
            "categorical" (PixelVAE).
        beta: weight of the KL term (beta-VAE).
        kl_warmup_steps: the KL weight grows linearly from 0 to beta over these steps.
        free_bits: nats per latent dimension and image that the KL term does not charge in
            training (Kingma et al. 2016); 0 charges all. `evaluate` reports the true KL.
        free_bits_steps: free bits hold for these optimizer steps only, then training charges
            the whole KL (the true ELBO); None keeps them for all of training.
        eval_num_samples: importance samples k for the `nll` that `evaluate` reports.
        export_draws: the exported `log_prob`'s importance draws, fixed so that every runtime
            scores alike: "per_image" picks each image's k draws from a fixed bank by a hash
            of its pixels, so the draws' luck averages out over a test set; "shared" gives
            every image the same k draws (exports made before the option; files saved then
            load with it).

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))
    mean, log_var = model.encode(np.zeros((3, 8, 8, 1), "uint8"))   # (3, 2) each
    params = model.decode(model.make_noise(3, seed=0))        # (3, 8, 8, 1) Bernoulli logits
    ```
    """

    noise_kind = "normal"
    has_log_prob = True
    # An exported bound decodes eval_num_samples images per image: 4 images x 100 draws at once.
    export_chunk_size = 4
    default_likelihood = "logistic"  # of non-binary data; PixelVAE's is "categorical"

    def __init__(
        self,
        latent_dim=16,
        likelihood=None,
        beta=1.0,
        kl_warmup_steps=0,
        free_bits=0.0,
        free_bits_steps=None,
        eval_num_samples=100,
        export_draws="per_image",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if export_draws not in EXPORT_DRAWS:
            raise ValueError(f"export_draws must be one of {EXPORT_DRAWS}, got {export_draws!r}.")
        self.latent_dim = int(latent_dim)
        likelihood = self.likelihood_name_for(likelihood, self.num_levels)
        self.likelihood_name = likelihood
        self.likelihood = likelihoods.get(likelihood, self.num_levels)
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.free_bits = float(free_bits)
        self.free_bits_steps = None if free_bits_steps is None else int(free_bits_steps)
        self.eval_num_samples = int(eval_num_samples)
        self.export_draws = export_draws
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.nll_tracker = keras.metrics.Mean(name="nll")

    @property
    def noise_shape(self):
        return (self.latent_dim,)

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker, self.nll_tracker]

    def encode(self, images, training=False):
        """Integer level images (batch, H, W, C) -> posterior (mean, log_var), each (batch, latent_dim)."""
        stats = tf.cast(self.encoder(self.to_unit_interval(images), training=training), tf.float32)
        mean, log_var = tf.split(stats, 2, axis=-1)
        return mean, tf.clip_by_value(log_var, -12.0, 8.0)

    def log_likelihood_given_latent(self, images, z, training=False):
        """log p(x | z) in nats: images (n, H, W, C) levels, z (n, latent_dim) -> (n,)."""
        raise NotImplementedError

    # -- training -------------------------------------------------------------
    def kl_weight(self):
        """The KL weight at the optimizer's current step."""
        if self.kl_warmup_steps <= 0 or self.optimizer is None:
            return tf.constant(self.beta)
        progress = tf.cast(self.optimizer.iterations, tf.float32) / self.kl_warmup_steps
        return self.beta * tf.minimum(1.0, progress)

    def charged_kl_per_dimension(self, kl_dims):
        """The KL that training charges: (batch, latent_dim) nats, at least `free_bits` per
        dimension while free bits hold."""
        if self.free_bits <= 0:
            return kl_dims
        freed = tf.maximum(kl_dims, self.free_bits)  # only the charged KL is clipped
        if self.free_bits_steps is None:
            return freed
        return tf.where(self.optimizer.iterations < self.free_bits_steps, freed, kl_dims)

    def negative_elbo_terms(self, images, training=False):
        """(reconstruction, kl per latent dimension): (batch,) and (batch, latent_dim) in nats,
        with one reparameterised sample of z."""
        mean, log_var = self.encode(images, training=training)
        eps = self.replica_random(keras.random.normal, (tf.shape(mean)[0], self.latent_dim))
        z = mean + tf.exp(0.5 * log_var) * eps
        reconstruction = -self.log_likelihood_given_latent(images, z, training=training)
        return reconstruction, gaussian_kl_per_dimension(mean, log_var)

    def train_step(self, data):
        images, _ = self._unpack_batch(data)
        with tf.GradientTape() as tape:
            reconstruction, kl_dims = self.negative_elbo_terms(images, training=True)
            kl = tf.reduce_sum(kl_dims, axis=-1)
            charged = tf.reduce_sum(self.charged_kl_per_dimension(kl_dims), axis=-1)
            per_image = reconstruction + self.kl_weight() * charged
            loss = self.global_mean(per_image)
            if self.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
        self.minimize(tape, loss, self.optimizer, self.trainable_variables)
        self.loss_tracker.update_state(per_image)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return self.step_logs(self.metrics[:3])

    def test_step(self, data):
        images, _ = self._unpack_batch(data)
        reconstruction, kl_dims = self.negative_elbo_terms(images)
        kl = tf.reduce_sum(kl_dims, axis=-1)
        self.loss_tracker.update_state(reconstruction + self.beta * kl)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        self.nll_tracker.update_state(-self._log_prob(images, None))
        return self.step_logs(self.metrics)

    # -- likelihood -----------------------------------------------------------
    def _log_prob_terms(self, images, eps):
        """Importance weights log p(x, z_k) - log q(z_k | x) for eps (k, batch, latent_dim)."""
        mean, log_var = self.encode(images)
        std = tf.exp(0.5 * log_var)
        z = mean[None] + std[None] * eps
        k, batch = tf.shape(eps)[0], tf.shape(eps)[1]
        tiled = tf.reshape(
            tf.tile(images[None], [k, 1, 1, 1, 1]), tf.concat([[k * batch], self.image_shape], 0)
        )
        log_px_z = tf.reshape(
            self.log_likelihood_given_latent(tiled, tf.reshape(z, [-1, self.latent_dim])),
            [k, batch],
        )
        log_q = _standard_normal_log_density(eps) - 0.5 * tf.reduce_sum(log_var, -1)[None]
        return log_px_z + _standard_normal_log_density(z) - log_q

    def importance_weighted_log_prob(self, images, eps, chunk_size=100):
        """IWAE estimate of log p(x) in nats per image.

        Args:
            images: (batch, H, W, C) uint8 levels.
            eps: (k, batch, latent_dim) standard normal draws, k >= 1.
            chunk_size: how many of the k draws are decoded at once (memory).
        Returns:
            (batch,) float32.
        """
        k = tf.shape(eps)[0]
        batch = tf.shape(images)[0]

        def body(start, running):
            chunk = eps[start : start + chunk_size]
            weights = self._log_prob_terms(images, chunk)
            return start + chunk_size, tf.reduce_logsumexp(
                tf.concat([running[None], weights], 0), axis=0
            )

        _, total = tf.while_loop(
            lambda start, _: start < k,
            body,
            (tf.constant(0), tf.fill([batch], -float("inf"))),
        )
        return total - tf.math.log(tf.cast(k, tf.float32))

    def log_prob(self, images, labels=None, num_samples=1000, seed=None):
        """IWAE estimate of log p(x) (Burda et al. 2016), in nats per image.

        Args:
            images: (batch, H, W, C) uint8 levels.
            num_samples: importance samples k; the bound tightens as k grows.
            seed: optional int for reproducible draws.
        Returns:
            (batch,) float32.
        """
        images, _ = self._check_log_prob_inputs(images, labels)
        return self._log_prob(images, labels, num_samples, seed)

    def _log_prob(self, images, labels, num_samples=None, seed=None):
        num_samples = num_samples or self.eval_num_samples
        if seed is None:  # per-replica draws in a distributed test step
            eps = self.replica_random(
                keras.random.normal, (tf.shape(images)[0], num_samples, self.latent_dim)
            )
            eps = tf.transpose(eps, [1, 0, 2])
        else:
            eps = keras.random.normal(
                [num_samples, tf.shape(images)[0], self.latent_dim], seed=seed
            )
        return self.importance_weighted_log_prob(images, eps)

    def _export_log_prob(self, images, labels):
        if self.export_draws == "shared":
            eps = np.random.default_rng(0).standard_normal(
                (self.eval_num_samples, 1, self.latent_dim), dtype=np.float32
            )
            eps = tf.tile(eps, [1, tf.shape(images)[0], 1])
        else:
            eps = hashed_standard_normal_draws(images, self.eval_num_samples, self.latent_dim)
        return self.importance_weighted_log_prob(images, eps)

    @classmethod
    def from_config(cls, config):
        # Files saved before the option existed export with one set of draws for all images.
        return super().from_config({"export_draws": "shared", **config})

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            likelihood=self.likelihood_name,
            beta=self.beta,
            kl_warmup_steps=self.kl_warmup_steps,
            free_bits=self.free_bits,
            free_bits_steps=self.free_bits_steps,
            eval_num_samples=self.eval_num_samples,
            export_draws=self.export_draws,
        )
        return config


@register
class VAE(LatentVariableModel):
    """Convolutional VAE (Kingma & Welling 2014).

    Args:
        image_shape: (H, W, C); H and W divisible by 2 ** len(widths).
        num_levels: 2 for binary data (Bernoulli decoder), else a discretized logistic.
        latent_dim: size of z.
        widths: encoder conv widths, one stride-2 layer each; the decoder mirrors them.
        beta, kl_warmup_steps, free_bits, free_bits_steps, eval_num_samples, export_draws: as in
            `LatentVariableModel`.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8), eval_num_samples=4)
    model.compile_for_training()
    images = (np.random.default_rng(0).random((16, 8, 8, 1)) < 0.3).astype("uint8")
    model.fit(images, batch_size=8, epochs=1, verbose=0)     # loss, reconstruction, kl in nats
    samples = model.sample(model.make_noise(4, seed=0))       # (4, 8, 8, 1) uint8 pixels
    ```
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=2,
        latent_dim=16,
        widths=(32, 64),
        likelihood=None,
        beta=1.0,
        kl_warmup_steps=0,
        free_bits=0.0,
        free_bits_steps=None,
        eval_num_samples=100,
        **kwargs,
    ):
        super().__init__(
            image_shape=image_shape,
            num_levels=num_levels,
            latent_dim=latent_dim,
            likelihood=likelihood,
            beta=beta,
            kl_warmup_steps=kl_warmup_steps,
            free_bits=free_bits,
            free_bits_steps=free_bits_steps,
            eval_num_samples=eval_num_samples,
            **kwargs,
        )
        self.widths = tuple(int(w) for w in widths)
        check_downsampling(self.image_shape, self.widths, "VAE")
        self.encoder = conv_encoder(self.image_shape, self.widths, self.latent_dim)
        self.decoder = self.make_decoder()
        self.built = True

    def make_decoder(self):
        """A fresh decoder for this VAE: z (batch, latent_dim) -> the likelihood's params
        (batch, H, W, C x params per sub-pixel), in the global dtype policy."""
        return upsampling_decoder(
            self.image_shape,
            self.widths,
            self.latent_dim,
            self.image_shape[-1] * self.likelihood.num_params(),
        )

    def decode(self, z, training=False):
        """z (batch, latent_dim) -> likelihood params (batch, H, W, C * num_params)."""
        return self.decoder(z, training=training)

    def decode_mean(self, z):
        """z (batch, latent_dim) -> mean image (batch, H, W, C), float32 in [0, 1]."""
        return self.likelihood.mean(self.decode(z), self.image_shape[-1])

    def log_likelihood_given_latent(self, images, z, training=False):
        return self.likelihood.log_prob(self.decode(z, training=training), images)

    def call(self, images, training=False):
        """Reconstruction: the likelihood params of p(x | z = posterior mean)."""
        mean, _ = self.encode(images, training=training)
        return self.decode(mean, training=training)

    def _sample(self, noise, labels):
        # The decoder's mean, the usual picture of a VAE sample.
        return unit_to_pixels(self.decode_mean(noise))

    def get_config(self):
        config = super().get_config()
        config.update(widths=list(self.widths))
        return config
