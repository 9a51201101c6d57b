"""Denoising diffusion (Ho et al. 2020), sampled with DDIM (Song et al. 2021): the fifth family.

A model noises level images scaled to [-1, 1] along a schedule of `num_timesteps` steps and trains a
network to predict the noise (or the velocity, Salimans & Ho 2022) from the noised image and its
timestep. `sample(noise)` runs DDIM with eta = 0 from x_T = noise: deterministic, so the same noise
gives the same images in every runtime, in `sampling_steps` steps chosen at sampling time.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_gen import validation
from keras_gen.layers.unet import UNetBackbone
from keras_gen.models.base import GenerativeModel
from keras_gen.models.gan_parts import GeneratorAverage
from keras_gen.registry import register

SCHEDULES = ("cosine", "linear")
PREDICTIONS = ("epsilon", "v")


def signal_fractions(schedule, num_timesteps):
    """alpha-bar_t for t = 0 .. num_timesteps - 1: the fraction of the signal's variance left after
    t + 1 noising steps, (num_timesteps,) float64, decreasing from near 1 towards 0.

    "linear": betas from 1e-4 to 0.02 (Ho et al.), scaled by 1000 / num_timesteps; "cosine":
    Nichol & Dhariwal (2021), offset s = 0.008, betas clipped at 0.999.
    """
    if schedule == "linear":
        scale = 1000.0 / num_timesteps
        betas = np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)
    elif schedule == "cosine":
        steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
        f = np.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    return np.cumprod(1.0 - betas)


def ddim_timesteps(num_timesteps, sampling_steps):
    """The timesteps DDIM visits, from the noisiest down: `sampling_steps` evenly spaced values of
    [0, num_timesteps - 1], the first num_timesteps - 1 and the last 0, as int32."""
    if not 1 <= int(sampling_steps) <= num_timesteps:
        raise validation.InputError(
            f"sampling_steps must be in [1, {num_timesteps}] (the schedule's steps), "
            f"got {sampling_steps}."
        )
    if sampling_steps == 1:
        return np.array([num_timesteps - 1], np.int32)
    return np.round(np.linspace(num_timesteps - 1, 0, int(sampling_steps))).astype(np.int32)


@register
class DiffusionModel(GenerativeModel):
    """Base of the diffusion family: the schedule, the training step, an average of the network's
    weights, DDIM sampling and the export endpoints.

    Data images (`fit`) are uint8 levels, scaled to [-1, 1] inside the model; `sample` returns uint8
    pixels. The noise of `sample` is x_T, standard normal of the image's shape.

    Args:
        schedule: "cosine" (Nichol & Dhariwal 2021) or "linear" (Ho et al. 2020).
        num_timesteps: T, the schedule's steps.
        prediction: what the network predicts: "epsilon" (the noise) or "v" (the velocity).
        sampling_steps: DDIM steps of `sample` and the exported `sample` (1 .. T).
        ema_decay: decay of the moving average of the network's weights that sampling and exports
            use (warmed up as min(ema_decay, (1 + t) / (10 + t)) at step t); 0 samples from the
            trained weights.
        label_dropout: with `num_classes`, the fraction of training labels replaced by "no label",
            so that one network learns both and sampling can use classifier-free guidance.
        guidance_scale: with `num_classes`, sampling's w: prediction = (1 + w) * conditional -
            w * unconditional (Ho & Salimans 2022); 0 is plain conditional sampling.

    Example:

    ```python
    model = Diffusion(image_shape=(8, 8, 1), num_levels=256, widths=(8, 16), blocks_per_level=1,
                      attention_levels=(1,), num_timesteps=100, sampling_steps=5)
    images = model.sample(model.make_noise(2, seed=0))   # (2, 8, 8, 1) uint8, deterministic
    ```
    """

    noise_kind = "normal"
    has_log_prob = False
    default_learning_rate = 2e-4

    def __init__(
        self,
        schedule="cosine",
        num_timesteps=1000,
        prediction="epsilon",
        sampling_steps=50,
        ema_decay=0.999,
        label_dropout=0.1,
        guidance_scale=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}.")
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}.")
        if not 0.0 <= float(label_dropout) < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {label_dropout}.")
        self.schedule, self.num_timesteps = schedule, int(num_timesteps)
        self.prediction = prediction
        self.ema_decay, self.label_dropout = float(ema_decay), float(label_dropout)
        self.check_guidance(guidance_scale)
        self.guidance_scale = float(guidance_scale)
        ddim_timesteps(self.num_timesteps, sampling_steps)  # checks it
        self.sampling_steps = int(sampling_steps)
        self.signal_fractions = signal_fractions(schedule, self.num_timesteps).astype(np.float32)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.network = self.build_network(name="network")
        self.ema_network = None
        if self.ema_decay:
            self.average = GeneratorAverage(self.ema_decay)
            self.ema_network = self.average.frozen_copy(
                self._built(self.build_network(name="ema_network")), self._built(self.network)
            )
        else:
            self._built(self.network)
        self.built = True

    def build_network(self, name):
        """The denoising network: `network(x_t, timesteps, labels)` -> a prediction of x_t's shape."""
        raise NotImplementedError

    def _built(self, network):
        height, width, channels = self.image_shape
        labels = np.zeros((1,), np.int32) if self.num_classes else None
        network(
            np.zeros((1, height, width, channels), np.float32), np.zeros((1,), np.int32), labels
        )
        return network

    def check_guidance(self, guidance_scale):
        if float(guidance_scale) != 0.0 and not self.num_classes:
            raise validation.InputError(
                f"guidance_scale={guidance_scale}: classifier-free guidance needs a class-"
                "conditional model (num_classes); this one is unconditional."
            )
        if float(guidance_scale) < 0.0:
            raise validation.InputError(f"guidance_scale must be >= 0, got {guidance_scale}.")

    @property
    def noise_shape(self):
        return self.image_shape

    @property
    def sampling_network(self):
        """The network that `sample` and the exports run: the weight average, where there is one."""
        return self.ema_network if self.ema_network is not None else self.network

    def optimizer_targets(self):
        return [(self.optimizer, self.network.trainable_variables)]

    @property
    def metrics(self):
        return [self.loss_tracker]

    # -- the forward process ---------------------------------------------------
    def _fractions(self, timesteps):
        """(signal, noise) scales sqrt(alpha-bar_t), sqrt(1 - alpha-bar_t) of (batch,) timesteps,
        shaped (batch, 1, 1, 1), float32."""
        alpha_bar = tf.gather(tf.constant(self.signal_fractions), timesteps)[:, None, None, None]
        return tf.sqrt(alpha_bar), tf.sqrt(1.0 - alpha_bar)

    def predict_noise(self, network, noised, timesteps, labels=None):
        """The network's estimate of (epsilon, x_0) for x_t `noised` (batch, H, W, C) float32 at
        `timesteps` (batch,), whichever it predicts; float32."""
        output = tf.cast(
            network(tf.cast(noised, self.compute_dtype), timesteps, labels), tf.float32
        )
        signal, noise = self._fractions(timesteps)
        if self.prediction == "epsilon":
            epsilon = output
            return epsilon, (noised - noise * epsilon) / signal
        # v = signal * epsilon - noise * x_0, so x_0 = signal * x_t - noise * v.
        x0 = signal * noised - noise * output
        epsilon = noise * noised + signal * output
        return epsilon, x0

    def denoising_loss(self, network, images, labels, training):
        """(batch,) mean squared error of the network's prediction, per pixel, at random
        timesteps and noise (the simple objective of Ho et al.)."""
        x0 = tf.cast(self.to_symmetric_interval(images), tf.float32)
        batch = tf.shape(x0)[0]
        timesteps = tf.cast(
            tf.floor(self.replica_random(keras.random.uniform, (batch,)) * self.num_timesteps),
            tf.int32,
        )
        timesteps = tf.minimum(timesteps, self.num_timesteps - 1)
        epsilon = self.replica_random(keras.random.normal, (batch,) + self.image_shape)
        signal, noise = self._fractions(timesteps)
        noised = signal * x0 + noise * epsilon
        if labels is not None and training and self.label_dropout:
            dropped = self.replica_random(keras.random.uniform, (batch,)) < self.label_dropout
            labels = tf.where(dropped, self.num_classes, tf.cast(labels, tf.int32))
        output = tf.cast(
            network(tf.cast(noised, self.compute_dtype), timesteps, labels, training=training),
            tf.float32,
        )
        target = epsilon if self.prediction == "epsilon" else signal * epsilon - noise * x0
        return tf.reduce_mean(tf.square(output - target), axis=[1, 2, 3])

    def train_step(self, data):
        images, labels = self._unpack_batch(data)
        with tf.GradientTape() as tape:
            per_image = self.denoising_loss(self.network, images, labels, training=True)
            loss = self.global_mean(per_image)
        self.minimize(tape, loss, self.optimizer, self.network.trainable_variables)
        if self.ema_network is not None:
            self.average.update(self.ema_network, self.network, self.optimizer.iterations)
        self.loss_tracker.update_state(per_image)
        return self.step_logs(self.metrics)

    def test_step(self, data):
        images, labels = self._unpack_batch(data)
        self.loss_tracker.update_state(
            self.denoising_loss(self.sampling_network, images, labels, training=False)
        )
        return self.step_logs(self.metrics)

    # -- sampling ----------------------------------------------------------------
    def guided_prediction(self, noised, timesteps, labels, guidance_scale):
        """(epsilon, x_0) of the sampling network, with classifier-free guidance when
        `guidance_scale` > 0: epsilon = (1 + w) * conditional - w * unconditional."""
        network = self.sampling_network
        epsilon, x0 = self.predict_noise(network, noised, timesteps, labels)
        if labels is None or not guidance_scale:
            return epsilon, x0
        unconditional, _ = self.predict_noise(
            network, noised, timesteps, tf.fill(tf.shape(labels), self.num_classes)
        )
        epsilon = (1.0 + guidance_scale) * epsilon - guidance_scale * unconditional
        signal, noise = self._fractions(timesteps)
        return epsilon, (noised - noise * epsilon) / signal

    def ddim_levels(self, noise, labels=None, sampling_steps=None, guidance_scale=None):
        """DDIM with eta = 0 (Song et al. 2021) from x_T = `noise` (batch, H, W, C) float32, in one
        graph loop of `sampling_steps` steps; each step's x_0 estimate is clipped to [-1, 1].

        Returns:
            (batch, H, W, C) int32 levels in [0, num_levels - 1].
        """
        steps = ddim_timesteps(self.num_timesteps, sampling_steps or self.sampling_steps)
        guidance_scale = self.guidance_scale if guidance_scale is None else guidance_scale
        alpha_bar = tf.constant(self.signal_fractions)
        timesteps = tf.constant(steps)
        previous = tf.constant(np.append(steps[1:], -1).astype(np.int32))
        batch = tf.shape(noise)[0]
        labels = None if labels is None else tf.cast(labels, tf.int32)

        def step(i, x, x0):
            t = tf.fill([batch], timesteps[i])
            epsilon, x0 = self.guided_prediction(x, t, labels, guidance_scale)
            x0 = tf.clip_by_value(x0, -1.0, 1.0)
            signal, noise_scale = self._fractions(t)
            epsilon = (x - signal * x0) / noise_scale
            t_previous = previous[i]
            alpha_previous = tf.where(
                t_previous >= 0, tf.gather(alpha_bar, tf.maximum(t_previous, 0)), 1.0
            )
            x = tf.sqrt(alpha_previous) * x0 + tf.sqrt(1.0 - alpha_previous) * epsilon
            return i + 1, x, x0

        noise = tf.convert_to_tensor(noise, tf.float32)
        _, _, x0 = tf.while_loop(
            lambda i, *_: i < len(steps), step, (tf.constant(0), noise, tf.zeros_like(noise))
        )
        levels = tf.round((x0 + 1.0) / 2.0 * (self.num_levels - 1))
        return tf.cast(tf.clip_by_value(levels, 0, self.num_levels - 1), tf.int32)

    def sample(self, noise, labels=None, sampling_steps=None, guidance_scale=None):
        """DDIM samples from x_T = `noise`, deterministically.

        Args:
            noise: (batch, H, W, C) float32 standard normal (`make_noise`).
            labels: (batch,) int class labels, for class-conditional models.
            sampling_steps: DDIM steps, 1 .. num_timesteps (default: the model's).
            guidance_scale: classifier-free guidance w (default: the model's).
        Returns:
            (batch, H, W, C) uint8 pixels in [0, 255].
        """
        noise = validation.check_noise_structure(noise, self.noise_spec)
        labels = self._check_condition(labels, noise.shape[0])
        if guidance_scale is not None:
            self.check_guidance(guidance_scale)
        return self.levels_to_pixels(
            self.ddim_levels(noise, labels, sampling_steps, guidance_scale)
        )

    def _sample(self, noise, labels):
        return self.levels_to_pixels(self.ddim_levels(noise, labels))

    def get_config(self):
        config = super().get_config()
        config.update(
            schedule=self.schedule,
            num_timesteps=self.num_timesteps,
            prediction=self.prediction,
            sampling_steps=self.sampling_steps,
            ema_decay=self.ema_decay,
            label_dropout=self.label_dropout,
            guidance_scale=self.guidance_scale,
        )
        return config


@register
class Diffusion(DiffusionModel):
    """A denoising diffusion model on a `UNetBackbone`.

    Args:
        widths, blocks_per_level, attention_levels, dropout, groups: the U-Net's
            (`keras_gen.layers.UNetBackbone`).
        schedule, num_timesteps, prediction, sampling_steps, ema_decay, label_dropout,
            guidance_scale: as in `DiffusionModel`.

    Example:

    ```python
    model = Diffusion(image_shape=(8, 8, 1), num_levels=256, widths=(8, 16), blocks_per_level=1,
                      attention_levels=(1,), num_timesteps=100, sampling_steps=5)
    model.compile_for_training()
    images = np.zeros((4, 8, 8, 1), "uint8")
    model.fit(images, epochs=1, batch_size=2, verbose=0)      # the denoising loss, per pixel
    samples = model.sample(model.make_noise(2, seed=0), sampling_steps=3)   # (2, 8, 8, 1) uint8
    ```
    """

    def __init__(
        self,
        image_shape=(28, 28, 1),
        num_levels=256,
        widths=(32, 64, 128),
        blocks_per_level=2,
        attention_levels=(2,),
        dropout=0.1,
        groups=8,
        **kwargs,
    ):
        self.widths = tuple(int(w) for w in widths)
        self.blocks_per_level = int(blocks_per_level)
        self.attention_levels = tuple(int(level) for level in attention_levels)
        self.dropout, self.groups = float(dropout), int(groups)
        super().__init__(image_shape=image_shape, num_levels=num_levels, **kwargs)

    def build_network(self, name):
        network = UNetBackbone(
            output_channels=self.image_shape[-1],
            widths=self.widths,
            blocks_per_level=self.blocks_per_level,
            attention_levels=self.attention_levels,
            num_classes=self.num_classes,
            dropout=self.dropout,
            groups=self.groups,
            name=name,
            dtype=self.dtype_policy,
        )
        network.check_image_size(*self.image_shape[:2])
        return network

    def get_config(self):
        config = super().get_config()
        config.update(
            widths=list(self.widths),
            blocks_per_level=self.blocks_per_level,
            attention_levels=list(self.attention_levels),
            dropout=self.dropout,
            groups=self.groups,
        )
        return config
