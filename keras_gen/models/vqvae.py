"""VQ-VAE (van den Oord et al. 2017) and the PixelCNN prior over its codes, trained in two stages.

Stage 1, `VQVAE`: an encoder to a grid of latents, each snapped to the nearest of K codebook
vectors, and a decoder back to the image. Stage 2, `VQVAEPrior`: a PixelCNN over the frozen
VQ-VAE's code grids; sampling draws a grid from it and decodes it, in one graph.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from keras_gen import validation
from keras_gen.conventions import unit_to_pixels
from keras_gen.layers.quantize import VectorQuantizer, sum_per_example
from keras_gen.models.base import GenerativeModel
from keras_gen.models.pixelcnn import (
    PIXELCNN_NETWORKS,
    pixelcnn_network,
    pixelcnn_network_depth,
)
from keras_gen.models.vae import check_downsampling
from keras_gen.registry import register


def code_usage(codes, num_codes):
    """(perplexity, dead codes) of int codes (any shape) from a codebook of `num_codes`:
    exp of the entropy of the codes' frequencies (num_codes when all are used equally), and
    how many codes never occur."""
    counts = np.bincount(np.asarray(codes).ravel(), minlength=num_codes)
    frequencies = counts / max(counts.sum(), 1)
    entropy = -np.sum(frequencies[counts > 0] * np.log(frequencies[counts > 0]))
    return float(np.exp(entropy)), int(np.sum(counts == 0))


@register
class VQVAE(GenerativeModel):
    """An encoder to a (H / 2^n, W / 2^n) grid of `code_dim` latents, a codebook of `num_codes`
    vectors, and a decoder from the quantized grid to the mean image.

    Trained on the squared error of the mean image (pixels in [0, 1], summed per image) plus
    `commitment_cost` x ||z_e - sg[e]||^2; the codebook follows moving averages ("ema") or its
    own loss ("loss"). On its own it samples codes uniformly (its prior in training); a
    `VQVAEPrior` learns a better one.

    Args:
        image_shape, num_levels: the images; H and W divisible by 2 ** len(widths).
        num_codes, code_dim: the codebook's K and D.
        widths: the encoder's stride-2 convolutions; the decoder mirrors them.
        codebook_update: "ema" or "loss" (see `VectorQuantizer`).
        commitment_cost: weight of the commitment term (beta in the paper).
        decay: of the codebook's moving averages.

    Example:

    ```python
    model = VQVAE(image_shape=(8, 8, 1), num_levels=256, num_codes=8, code_dim=4, widths=(4,))
    model.compile_for_training()
    images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype("uint8")
    model.fit(images, batch_size=8, epochs=1, verbose=0)     # loss, reconstruction_mse, perplexity
    codes = model.encode_codes(images)                        # (16, 4, 4) int32 in [0, 8)
    pixels = model.decode_codes(codes)                        # (16, 8, 8, 1) uint8
    ```
    """

    noise_kind = "uniform"

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=256,
        num_codes=64,
        code_dim=16,
        widths=(32, 64),
        codebook_update="ema",
        commitment_cost=0.25,
        decay=0.99,
        **kwargs,
    ):
        super().__init__(image_shape=image_shape, num_levels=num_levels, **kwargs)
        if self.num_classes is not None:
            raise ValueError("VQVAE is unconditional; give num_classes to its VQVAEPrior.")
        self.widths = tuple(int(w) for w in widths)
        check_downsampling(self.image_shape, self.widths, "VQVAE")
        self.num_codes, self.code_dim = int(num_codes), int(code_dim)
        self.commitment_cost = float(commitment_cost)
        factor = 2 ** len(self.widths)
        self.grid_shape = (self.image_shape[0] // factor, self.image_shape[1] // factor)
        self.encoder = keras.Sequential(
            [keras.Input(self.image_shape)]
            + [
                layers.Conv2D(w, 3, strides=2, padding="same", activation="relu")
                for w in self.widths
            ]
            + [layers.Conv2D(self.code_dim, 1)],
            name="encoder",
        )
        self.quantizer = VectorQuantizer(
            self.num_codes, self.code_dim, codebook_update, decay, name="quantizer"
        )
        self.quantizer.build()
        self.decoder = keras.Sequential(
            [
                keras.Input(self.grid_shape + (self.code_dim,)),
                layers.Conv2D(self.widths[-1], 3, padding="same", activation="relu"),
            ]
            + [
                layers.Conv2DTranspose(w, 3, strides=2, padding="same", activation="relu")
                for w in reversed(self.widths)
            ]
            + [layers.Conv2D(self.image_shape[-1], 3, padding="same")],
            name="decoder",
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.mse_tracker = keras.metrics.Mean(name="reconstruction_mse")
        self.commitment_tracker = keras.metrics.Mean(name="commitment")
        self.perplexity_tracker = keras.metrics.Mean(name="perplexity")
        self.built = True

    @property
    def noise_shape(self):
        return self.grid_shape + (1,)

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.mse_tracker,
            self.commitment_tracker,
            self.perplexity_tracker,
        ]

    # -- the two halves --------------------------------------------------------
    def encode_latents(self, images, training=False):
        """Levels (batch, H, W, C) -> the encoder's latents z_e (batch, h, w, code_dim)."""
        return self.encoder(self.to_unit_interval(images), training=training)

    def encode_codes(self, images):
        """Levels (batch, H, W, C) -> int32 codes (batch, h, w) in [0, num_codes)."""
        return self.quantizer.codes_of(self.encode_latents(images))

    def decode_output(self, quantized, training=False):
        """Quantized latents (batch, h, w, code_dim) -> the decoder's linear output (batch, H, W,
        C), float32: the image in [0, 1] that the squared error is taken of."""
        return tf.cast(self.decoder(quantized, training=training), tf.float32)

    def decode_mean(self, quantized, training=False):
        """Quantized latents (batch, h, w, code_dim) -> the mean image (batch, H, W, C) in [0, 1]."""
        # Linear, clipped only here: a sigmoid output saturated at 0 on MNIST's black background
        # in the first steps, and the error stayed that of an all-black image.
        return tf.clip_by_value(self.decode_output(quantized, training=training), 0.0, 1.0)

    def decode_codes(self, codes):
        """int codes (batch, h, w) in [0, num_codes) -> uint8 pixels (batch, H, W, C) in [0, 255]."""
        if tf.executing_eagerly():
            codes = validation.check_codes(codes, self.grid_shape, self.num_codes)
        return self.pixels_of(codes)

    def pixels_of(self, codes):
        """`decode_codes` without the input checks, for traced graphs: (batch, h, w) int32 ->
        uint8 pixels (batch, H, W, C)."""
        return unit_to_pixels(self.decode_mean(self.quantizer.lookup(codes)))

    def call(self, images, training=False):
        """Reconstruction: levels (batch, H, W, C) -> the mean image in [0, 1], float32."""
        quantized, _ = self.quantizer(self.encode_latents(images, training=training))
        return self.decode_mean(quantized, training=training)

    def _sample(self, noise, labels):
        # Uniform codes: the prior the VQ-VAE assumes while it trains.
        return self.pixels_of(tf.cast(tf.floor(noise[..., 0] * self.num_codes), tf.int32))

    # -- training ----------------------------------------------------------------
    def _loss_terms(self, images, training):
        """(loss, squared error, commitment) per image, latents and codes."""
        latents = self.encode_latents(images, training=training)
        quantized, codes = self.quantizer(latents)
        mean = self.decode_output(quantized, training=training)
        error = sum_per_example(
            tf.square(mean - tf.cast(self.to_unit_interval(images), tf.float32))
        )
        commitment, codebook = self.quantizer.loss_terms(latents, codes)
        loss = error + self.commitment_cost * commitment
        if self.quantizer.codebook_update == "loss":
            loss += codebook
        return loss, error, commitment, latents, codes

    def _update_metrics(self, loss, error, commitment, codes):
        self.loss_tracker.update_state(loss)
        self.mse_tracker.update_state(error / float(np.prod(self.image_shape)))
        self.commitment_tracker.update_state(commitment)
        frequencies = tf.reduce_mean(tf.one_hot(tf.reshape(codes, [-1]), self.num_codes), axis=0)
        entropy = -tf.reduce_sum(frequencies * tf.math.log(frequencies + 1e-10))
        self.perplexity_tracker.update_state(tf.exp(entropy))
        return self.step_logs(self.metrics)

    def train_step(self, data):
        images, _ = self._unpack_batch(data)
        with tf.GradientTape() as tape:
            loss, error, commitment, latents, codes = self._loss_terms(images, training=True)
            total = self.global_mean(loss)
            if self.losses:
                total += tf.nn.scale_regularization_loss(tf.add_n(self.losses))
        self.minimize(tape, total, self.optimizer, self.trainable_variables)
        self.quantizer.update(latents, codes, self.optimizer.iterations)
        return self._update_metrics(loss, error, commitment, codes)

    def test_step(self, data):
        images, _ = self._unpack_batch(data)
        loss, error, commitment, _, codes = self._loss_terms(images, training=False)
        return self._update_metrics(loss, error, commitment, codes)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_codes=self.num_codes,
            code_dim=self.code_dim,
            widths=list(self.widths),
            codebook_update=self.quantizer.codebook_update,
            commitment_cost=self.commitment_cost,
            decay=self.quantizer.decay,
        )
        return config


PRIOR_NETWORKS = PIXELCNN_NETWORKS  # what `prior_network` names


@register
class VQVAEPrior(GenerativeModel):
    """A PixelCNN or Gated PixelCNN prior over a trained, frozen VQ-VAE's code grids; samples are
    decoded grids.

    The prior reads each code through an embedding (codes have no order) and predicts the next
    with a `num_codes`-way softmax. Its `nll` is in nats per code grid. Sampling: uniform noise
    (batch, h, w, 1) -> the prior's cached sampler (the same codes as its plain loop) -> the
    VQ-VAE's decoder -> uint8 images, all in one graph, so the exports' `sample` does both.

    Args:
        vqvae: the trained `VQVAE` (or its serialized config); its weights are not trained here.
        prior_network: "pixelcnn" (masked residual blocks, `PixelCNN`) or "gated_pixelcnn"
            (vertical and horizontal stacks without a blind spot, `GatedPixelCNN`).
        filters, num_blocks, first_kernel_size, kernel_size, head_filters: the prior network's
            (see `PixelCNN`); for "gated_pixelcnn", `num_blocks` is its number of gated layers.
        embedding_dim: size of each code's learned input vector.
        num_classes: a class-conditional prior (labels (batch,) in `fit`, `sample`).

    Example:

    ```python
    vqvae = VQVAE(image_shape=(8, 8, 1), num_levels=256, num_codes=8, code_dim=4, widths=(4,))
    model = VQVAEPrior(vqvae, filters=8, num_blocks=1, embedding_dim=4, head_filters=8)
    model.compile_for_training()
    images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1)).astype("uint8")
    model.fit(images, batch_size=8, epochs=1, verbose=0)     # nll in nats per 4 x 4 code grid
    samples = model.sample(model.make_noise(4, seed=0))       # (4, 8, 8, 1) uint8 pixels
    ```
    """

    noise_kind = "uniform"
    xla_served_sample = True  # the prior's cached sampler runs fastest fused (see PixelCNN)
    builds_on = "vqvae"  # `train vqvae_prior --from <a VQVAE's model.keras>`

    def __init__(
        self,
        vqvae,
        filters=64,
        num_blocks=5,
        first_kernel_size=5,
        kernel_size=3,
        head_filters=64,
        embedding_dim=32,
        num_classes=None,
        prior_network="pixelcnn",
        **kwargs,
    ):
        if isinstance(vqvae, dict):
            vqvae = keras.saving.deserialize_keras_object(vqvae)
        if not isinstance(vqvae, VQVAE):
            raise validation.InputError(
                f"VQVAEPrior needs a trained VQVAE (a model.keras of `train vqvae`), got "
                f"{type(vqvae).__name__}."
            )
        kwargs.pop("image_shape", None)  # both come from the VQ-VAE
        kwargs.pop("num_levels", None)
        super().__init__(
            image_shape=vqvae.image_shape,
            num_levels=vqvae.num_levels,
            num_classes=num_classes,
            **kwargs,
        )
        # A weights-only copy: the prior neither trains the VQ-VAE nor carries its optimizer.
        # (Built trainable, so that freezing it below reaches its sublayers too.)
        self.vqvae = VQVAE.from_config({**vqvae.get_config(), "trainable": True})
        self.vqvae.set_weights(vqvae.get_weights())
        self.vqvae.trainable = False
        self.prior_network = prior_network
        self.prior = pixelcnn_network(
            prior_network,
            num_blocks,
            argument="prior_network",
            image_shape=vqvae.grid_shape + (1,),
            num_levels=vqvae.num_codes,
            filters=filters,
            first_kernel_size=first_kernel_size,
            kernel_size=kernel_size,
            head_filters=head_filters,
            num_classes=num_classes,
            embedding_dim=embedding_dim,
            likelihood="categorical",
            name="prior",
        )
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self.built = True

    @property
    def noise_shape(self):
        return self.prior.image_shape

    @property
    def metrics(self):
        return [self.nll_tracker]

    def codes_of(self, images):
        """Levels (batch, H, W, C) -> the VQ-VAE's codes as the prior's images (batch, h, w, 1)."""
        return self.vqvae.encode_codes(images)[..., None]

    def code_grid_nll(self, codes, labels=None, training=False):
        """-log p(codes) in nats per code grid: (batch, h, w, 1) ints -> (batch,)."""
        return -self.prior.likelihood.log_prob(self.prior(codes, labels, training=training), codes)

    def call(self, images, labels=None, training=False):
        """Levels (batch, H, W, C) -> the prior's params for their code grids (batch, h, w, K)."""
        return self.prior(self.codes_of(images), labels, training=training)

    def train_step(self, data):
        images, labels = self._unpack_batch(data)
        codes = self.codes_of(images)
        with tf.GradientTape() as tape:
            nll = self.code_grid_nll(codes, labels, training=True)
            loss = self.global_mean(nll)
        self.minimize(tape, loss, self.optimizer, self.trainable_variables)
        self.nll_tracker.update_state(nll)
        return {"loss": self.nll_tracker.result(), **self.step_logs(self.metrics)}

    def test_step(self, data):
        images, labels = self._unpack_batch(data)
        self.nll_tracker.update_state(self.code_grid_nll(self.codes_of(images), labels))
        return {"loss": self.nll_tracker.result(), **self.step_logs(self.metrics)}

    def sample_codes(self, noise, labels=None, method="auto"):
        """Code grids from the prior: noise (batch, h, w, 1) uniform -> int32 (batch, h, w).
        method "fast" (cached) and "plain" give the same codes."""
        return tf.cast(self.prior.sample_levels(noise, labels, method=method)[..., 0], tf.int32)

    def _sample(self, noise, labels):
        return self.vqvae.pixels_of(
            tf.cast(self.prior.draw_levels(noise, labels)[..., 0], tf.int32)
        )

    def get_config(self):
        config = super().get_config()
        prior = self.prior
        config.update(
            vqvae=keras.saving.serialize_keras_object(self.vqvae),
            prior_network=self.prior_network,
            filters=prior.filters,
            num_blocks=pixelcnn_network_depth(prior),
            first_kernel_size=prior.first_kernel_size,
            kernel_size=prior.kernel_size,
            head_filters=prior.head_filters,
            embedding_dim=prior.embedding_dim,
        )
        return config
