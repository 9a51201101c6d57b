"""PixelVAE (Gulrajani et al. 2017): a VAE whose decoder is a shallow PixelCNN conditioned on z.

The masked layers model local detail given z, so the latent code is left to carry the global
shape; the ELBO, its warm-up and free bits, and the IWAE bound come from `LatentVariableModel`.
"""

from keras_gen import validation
from keras_gen.conventions import EXACT_PIXELS
from keras_gen.models.pixelcnn import pixelcnn_network, pixelcnn_network_depth
from keras_gen.models.vae import (
    LatentVariableModel,
    check_downsampling,
    conv_encoder,
    upsampling_decoder,
)
from keras_gen.registry import register


@register
class PixelVAE(LatentVariableModel):
    """A convolutional encoder to q(z | x), and p(x | z) = prod_i p(x_i | x_<i, z): a PixelCNN
    (or Gated PixelCNN) whose every block adds a bias from z, or from a map z is upsampled to.

    Sampling takes two noise inputs: "z" (batch, latent_dim), standard normal, for the latent,
    and "pixels" (batch, H, W, C), uniform in [0, 1), from which the decoder's cached sampler
    draws each sub-pixel by inverse CDF. The same noise gives the same images in Keras,
    SavedModel and LiteRT.

    Args:
        image_shape: (H, W, C); H and W divisible by 2 ** len(widths).
        num_levels: 2 (Bernoulli) or up to 256 (a softmax per sub-pixel).
        latent_dim: size of z.
        widths: the encoder's stride-2 convolutions; z is upsampled through their mirror.
        encoder_depth: convolutions per width in the encoder (the first of stride 2).
        map_channels: channels of the map at image size that conditions the decoder; None
            conditions every block on z itself (a bias per image, as Gulrajani et al. on MNIST).
        decoder_network: "pixelcnn" (masked residual blocks, `PixelCNN`) or "gated_pixelcnn"
            (no blind spot, `GatedPixelCNN`).
        filters, num_blocks, first_kernel_size, kernel_size, head_filters: the decoder's (see
            `PixelCNN`); num_blocks >= 1, as the blocks read z; for "gated_pixelcnn" it is the
            number of gated layers.
        beta, kl_warmup_steps, free_bits, free_bits_steps, eval_num_samples, export_draws: as in
            `LatentVariableModel`.

    Example:

    ```python
    model = PixelVAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4,), map_channels=2,
                     filters=4, num_blocks=1, head_filters=4, eval_num_samples=4)
    model.compile_for_training()
    images = (np.random.default_rng(0).random((16, 8, 8, 1)) < 0.3).astype("uint8")
    model.fit(images, batch_size=8, epochs=1, verbose=0)     # loss, reconstruction, kl in nats
    noise = model.make_noise(4, seed=0)                       # {"pixels": ..., "z": ...}
    samples = model.sample(noise)                             # (4, 8, 8, 1) uint8 pixels
    nats = model.log_prob(images[:2], num_samples=8, seed=0)  # (2,) IWAE bound of log p(x)
    ```
    """

    default_likelihood = "categorical"
    # Its pixels are the decoder's discrete draws given z: the same in every runtime.
    sample_parity = EXACT_PIXELS
    xla_served_sample = True  # the decoder's cached sampler runs fastest fused (see PixelCNN)

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=2,
        latent_dim=32,
        widths=(32, 64),
        encoder_depth=1,
        map_channels=32,
        filters=64,
        num_blocks=3,
        first_kernel_size=7,
        kernel_size=3,
        head_filters=64,
        decoder_network="pixelcnn",
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
        if self.num_classes is not None:
            raise ValueError("PixelVAE is unconditional; its decoder is conditioned on z.")
        if int(num_blocks) < 1:
            raise ValueError(
                f"PixelVAE needs num_blocks >= 1 (the blocks read z), got {num_blocks}."
            )
        self.widths = tuple(int(w) for w in widths)
        self.decoder_network = decoder_network
        self.map_channels = None if map_channels is None else int(map_channels)
        check_downsampling(self.image_shape, self.widths, "PixelVAE")
        if int(encoder_depth) < 1:
            raise ValueError(f"PixelVAE needs encoder_depth >= 1, got {encoder_depth}.")
        self.encoder_depth = int(encoder_depth)
        self.encoder = conv_encoder(
            self.image_shape, self.widths, self.latent_dim, self.encoder_depth
        )
        self.latent_to_map = None
        if self.map_channels is not None:
            self.latent_to_map = upsampling_decoder(
                self.image_shape,
                self.widths,
                self.latent_dim,
                self.map_channels,
                name="latent_to_map",
            )
        self.decoder = pixelcnn_network(
            decoder_network,
            num_blocks,
            argument="decoder_network",
            image_shape=self.image_shape,
            num_levels=self.num_levels,
            filters=filters,
            first_kernel_size=first_kernel_size,
            kernel_size=kernel_size,
            head_filters=head_filters,
            likelihood=self.likelihood_name,
            condition_kind="vector" if self.map_channels is None else "spatial",
            condition_size=self.latent_dim if self.map_channels is None else self.map_channels,
            name="decoder",
        )
        self.built = True

    @property
    def noise_spec(self):
        return {
            "z": ((self.latent_dim,), "normal"),
            "pixels": (self.image_shape, "uniform"),
        }

    def condition_map(self, z, training=False):
        """What the decoder is conditioned on: z (batch, latent_dim) -> (batch, H, W,
        map_channels), or z itself when `map_channels` is None."""
        if self.latent_to_map is None:
            return z
        return self.latent_to_map(z, training=training)

    def decode(self, images, z, training=False):
        """p(x | z)'s params: levels (batch, H, W, C) and z (batch, latent_dim) -> (batch, H, W,
        C * num_params); causal in the images, as a PixelCNN's."""
        return self.decoder(images, self.condition_map(z, training=training), training=training)

    def log_likelihood_given_latent(self, images, z, training=False):
        return self.likelihood.log_prob(self.decode(images, z, training=training), images)

    def call(self, images, training=False):
        """Reconstruction: the params of p(x | z = posterior mean), (batch, H, W, C * num_params)."""
        mean, _ = self.encode(images, training=training)
        return self.decode(images, mean, training=training)

    # -- sampling ------------------------------------------------------------
    def sample_levels(self, noise, known=None, known_mask=None, method="auto"):
        """Draws images as integer levels: z from `noise["z"]`, then the decoder's sub-pixels.

        Args:
            noise: {"z": (batch, latent_dim) standard normal, "pixels": (batch, H, W, C)
                uniform in [0, 1)}, e.g. `make_noise`.
            known, known_mask: completion, as in `PixelCNN.sample_levels`: (batch, H, W, C)
                levels and a bool mask of the sub-pixels to keep. z still comes from the noise.
            method: "fast" (the decoder's cached sampler), "plain" (a full pass per
                sub-pixel) or "auto" (fast); both give the same images.
        Returns:
            (batch, H, W, C) uint8 levels.
        """
        noise = validation.check_noise_structure(noise, self.noise_spec)
        condition = self.condition_map(noise["z"])
        return self.decoder.sample_levels(noise["pixels"], condition, known, known_mask, method)

    def complete(self, images, known_mask, noise, method="auto"):
        """Keeps the sub-pixels of `images` (levels) where `known_mask` is True and samples the
        rest given `noise` (as in `sample_levels`). Returns (batch, H, W, C) uint8 pixels."""
        return self.levels_to_pixels(self.sample_levels(noise, images, known_mask, method))

    def _sample(self, noise, labels):
        levels = self.decoder.draw_levels(noise["pixels"], self.condition_map(noise["z"]))
        return self.levels_to_pixels(levels)

    def get_config(self):
        config = super().get_config()
        decoder = self.decoder
        config.update(
            widths=list(self.widths),
            encoder_depth=self.encoder_depth,
            map_channels=self.map_channels,
            decoder_network=self.decoder_network,
            filters=decoder.filters,
            num_blocks=pixelcnn_network_depth(decoder),
            first_kernel_size=decoder.first_kernel_size,
            kernel_size=decoder.kernel_size,
            head_filters=decoder.head_filters,
        )
        return config
