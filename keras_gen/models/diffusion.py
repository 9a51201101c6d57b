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

from keras_gen import likelihoods, validation
from keras_gen.conventions import HASH_PRIME, draw_noise_structure, image_hashes
from keras_gen.layers.unet import UNetBackbone
from keras_gen.models.base import GenerativeModel
from keras_gen.models.gan_parts import GeneratorAverage
from keras_gen.registry import register

SCHEDULES = ("cosine", "linear")
PREDICTIONS = ("epsilon", "v")
SAMPLERS = ("ddim", "ddpm")


def _noise_bank_size(subpixels):
    """How many normal numbers the bound's noise bank holds (`_bound_draws`): the smallest prime
    at or above 8 x `subpixels`, at most HASH_PRIME (itself prime), so that every bank index stays
    below 2**31 for images of up to 32,768 sub-pixels."""
    size = min(8 * subpixels, HASH_PRIME)
    while any(size % d == 0 for d in range(2, int(size**0.5) + 1)):
        size += 1
    return size


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


def _float32_constant(values):
    return tf.constant(np.asarray(values, np.float64).astype(np.float32))


def noise_scales(alpha_bar):
    """(signal, noise) scales sqrt(alpha-bar_t) and sqrt(1 - alpha-bar_t) of every timestep, each
    (num_timesteps,) float64.

    The model's graphs gather these (and the other coefficients below) from tables computed in
    float64, and never subtract alpha-bar from 1 at run time: a float16 LiteRT file rounds every
    float constant to float16, where alpha-bar near 1 is 1.0 and 1 - alpha-bar would be 0.
    """
    return np.sqrt(alpha_bar), np.sqrt(1.0 - alpha_bar)


def bound_weights(alpha_bar):
    """The weight of ||x_0 - x_0 estimate||^2 in the bound's KL term at each timestep t >= 1,
    alpha-bar_{t-1} beta_t / (2 (1 - alpha-bar_t) (1 - alpha-bar_{t-1})) (half the fall in
    signal-to-noise ratio from t - 1 to t), (num_timesteps,) float64, 0 at t = 0."""
    previous = alpha_bar[:-1]
    beta = 1.0 - alpha_bar[1:] / previous
    weights = previous * beta / (2.0 * (1.0 - alpha_bar[1:]) * (1.0 - previous))
    return np.concatenate([[0.0], weights])


def reverse_step_coefficients(alpha_bar, steps):
    """Coefficients of each step of the reverse loop over timesteps `steps`, from t = steps[i] to
    s = steps[i + 1] (s = -1, alpha-bar 1, after the last), each (len(steps),) float64:

    - "signal", "noise": sqrt(alpha-bar_t), sqrt(1 - alpha-bar_t);
    - "signal_next", "noise_next": the same at s;
    - "posterior_x0", "posterior_xt", "posterior_deviation": the posterior q(x_s | x_t, x_0) of
      the strided chain, whose step t -> s has beta = 1 - alpha-bar_t / alpha-bar_s: its mean's
      coefficients of x_0 and x_t, and its standard deviation (DDPM sampling).
    """
    alpha, alpha_next = alpha_bar[steps], np.append(alpha_bar[steps[1:]], 1.0)
    beta = 1.0 - alpha / alpha_next
    (signal, noise), (signal_next, noise_next) = noise_scales(alpha), noise_scales(alpha_next)
    return {
        "signal": signal,
        "noise": noise,
        "signal_next": signal_next,
        "noise_next": noise_next,
        "posterior_x0": np.sqrt(alpha_next) * beta / (1.0 - alpha),
        "posterior_xt": np.sqrt(alpha / alpha_next) * (1.0 - alpha_next) / (1.0 - alpha),
        "posterior_deviation": np.sqrt(beta * (1.0 - alpha_next) / (1.0 - alpha)),
    }


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
        sampler: what `noise_spec`, `make_noise` and the exports' `sample` use: "ddim" (eta = 0,
            deterministic from x_T) or "ddpm" (ancestral, Ho et al.: a second noise input
            "step_noise", one standard normal image per step, so it is reproducible too).
            `sample` runs whichever its noise is for.
        bound_timesteps: how many of the T - 1 denoising terms of the variational bound
            `log_prob` evaluates per image (one timestep drawn in each of this many equal
            strata, weighted by the stratum's size): its cost in network evaluations.

    Example:

    ```python
    model = Diffusion(image_shape=(8, 8, 1), num_levels=256, widths=(8, 16), blocks_per_level=1,
                      attention_levels=(1,), num_timesteps=100, sampling_steps=5)
    images = model.sample(model.make_noise(2, seed=0))   # (2, 8, 8, 1) uint8, deterministic
    ```
    """

    noise_kind = "normal"
    has_log_prob = True
    default_learning_rate = 2e-4
    # The DDIM loop's many steps of one network run as one compiled loop for TensorFlow clients.
    xla_served_sample = True

    def __init__(
        self,
        schedule="cosine",
        num_timesteps=1000,
        prediction="epsilon",
        sampling_steps=50,
        ema_decay=0.999,
        label_dropout=0.1,
        guidance_scale=0.0,
        sampler="ddim",
        bound_timesteps=50,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}.")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
        if not 1 <= int(bound_timesteps) <= int(num_timesteps) - 1:
            raise ValueError(
                f"bound_timesteps must be in [1, num_timesteps - 1 = {int(num_timesteps) - 1}], "
                f"got {bound_timesteps}."
            )
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
        self.sampler, self.bound_timesteps = sampler, int(bound_timesteps)
        self.alpha_bar = signal_fractions(schedule, self.num_timesteps)  # float64
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

    def configure_sampling(self, sampling_steps=None, guidance_scale=None, sampler=None):
        """Sets how `sample`, `complete` and exports made afterwards sample, without retraining:
        the steps (1 .. num_timesteps), the guidance scale w and the sampler ("ddim" or "ddpm").
        Arguments left None keep their value; a bad one raises InputError and changes nothing.

        Example: `model.configure_sampling(sampling_steps=10)`, then `export(model, "exports/10")`.
        """
        if sampling_steps is not None:
            ddim_timesteps(self.num_timesteps, sampling_steps)
        if guidance_scale is not None:
            self.check_guidance(guidance_scale)
        if sampler is not None and sampler not in SAMPLERS:
            raise validation.InputError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
        if sampling_steps is not None:
            self.sampling_steps = int(sampling_steps)
        if guidance_scale is not None:
            self.guidance_scale = float(guidance_scale)
        if sampler is not None:
            self.sampler = sampler
        return self

    @property
    def noise_shape(self):
        return self.image_shape

    def sampler_noise_spec(self, sampler=None, sampling_steps=None):
        """The noise of a sampler: {"noise": x_T}, and for "ddpm" also {"step_noise": one image per
        step, (sampling_steps, H, W, C)}; all standard normal. Defaults: the model's."""
        sampler = sampler or self.sampler
        if sampler not in SAMPLERS:
            raise validation.InputError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
        spec = {"noise": (self.image_shape, "normal")}
        if sampler == "ddpm":
            steps = len(ddim_timesteps(self.num_timesteps, sampling_steps or self.sampling_steps))
            spec["step_noise"] = ((steps,) + self.image_shape, "normal")
        return spec

    @property
    def noise_spec(self):
        return self.sampler_noise_spec()

    def make_noise(self, batch_size, seed=None, sampler=None, sampling_steps=None):
        """Standard normal noise for `sample`: x_T, (batch_size, H, W, C) float32, for DDIM; for
        "ddpm", {"noise": x_T, "step_noise": (batch_size, sampling_steps, H, W, C)}. The same seed
        gives the same noise."""
        return draw_noise_structure(
            batch_size, self.sampler_noise_spec(sampler, sampling_steps), seed
        )

    weights_only_overrides = {"ema_decay": 0.0}

    def weights_only_copy(self):
        """With an average of the weights, a copy without one whose network holds the average
        (and this model's seed state): it samples and scores exactly as this model does, in half
        the bytes. Fine-tuning it starts from the average, with a fresh one."""
        if self.ema_network is None:
            return self
        copy = type(self).from_config({**self.get_config(), **self.weights_only_overrides})
        for target, source in zip(copy.network.weights, self.ema_network.weights):
            target.assign(source)
        copy.seed_generator.state.assign(self.seed_generator.state)
        return copy

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
        return tuple(
            tf.gather(_float32_constant(scales), timesteps)[:, None, None, None]
            for scales in noise_scales(self.alpha_bar)
        )

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

    def reverse_levels(
        self,
        noise,
        labels=None,
        sampling_steps=None,
        guidance_scale=None,
        step_noise=None,
        known=None,
        keep=None,
    ):
        """The reverse process from x_T = `noise`, in one graph loop over `sampling_steps` evenly
        spaced timesteps; each step's x_0 estimate is clipped to [-1, 1].

        Without `step_noise`, DDIM with eta = 0 (Song et al. 2021). With it, ancestral DDPM
        sampling (Ho et al.) on those timesteps: step i draws from the posterior q(x_s | x_t, x_0)
        with the estimated x_0, adding `step_noise[:, i]` times its standard deviation (zero at
        the last step, which returns x_0). With `known` levels and a boolean `keep` mask, the
        known sub-pixels are replaced after every step by the known image noised to that step's
        level with x_T's own noise, and kept exactly at the end (inpainting by replacement).

        Args:
            noise: (batch, H, W, C) float32, x_T.
            labels: (batch,) int labels of a class-conditional model, or None.
            sampling_steps, guidance_scale: as in `sample` (default: the model's).
            step_noise: (batch, sampling_steps, H, W, C) float32, or None for DDIM.
            known: (batch, H, W, C) integer levels; keep: (batch, H, W, C) bool.
        Returns:
            (batch, H, W, C) int32 levels in [0, num_levels - 1].
        """
        steps = ddim_timesteps(self.num_timesteps, sampling_steps or self.sampling_steps)
        guidance_scale = self.guidance_scale if guidance_scale is None else guidance_scale
        coefficients = {
            name: _float32_constant(values)
            for name, values in reverse_step_coefficients(self.alpha_bar, steps).items()
        }
        timesteps = tf.constant(steps)
        noise = tf.convert_to_tensor(noise, tf.float32)
        labels = None if labels is None else tf.cast(labels, tf.int32)
        known_x0 = None if known is None else tf.cast(self.to_symmetric_interval(known), tf.float32)

        def with_known(x, signal, noise_scale):
            if known is None:
                return x
            return tf.where(keep, signal * known_x0 + noise_scale * noise, x)

        def step(i, x, x0):
            # Keeps the static batch: a (None,) t would turn a batch of 1's x into (None, ...).
            t = tf.zeros_like(noise[:, 0, 0, 0], tf.int32) + timesteps[i]
            at = {name: tf.gather(values, i) for name, values in coefficients.items()}
            _, x0 = self.guided_prediction(x, t, labels, guidance_scale)
            x0 = tf.clip_by_value(x0, -1.0, 1.0)
            if step_noise is None:
                epsilon = (x - at["signal"] * x0) / at["noise"]
                x = at["signal_next"] * x0 + at["noise_next"] * epsilon
            else:
                mean = at["posterior_x0"] * x0 + at["posterior_xt"] * x
                x = mean + at["posterior_deviation"] * tf.gather(step_noise, i, axis=1)
            return i + 1, with_known(x, at["signal_next"], at["noise_next"]), x0

        x_start = with_known(noise, coefficients["signal"][0], coefficients["noise"][0])
        _, _, x0 = tf.while_loop(
            lambda i, *_: i < len(steps), step, (tf.constant(0), x_start, tf.zeros_like(noise))
        )
        if known is not None:
            x0 = tf.where(keep, known_x0, x0)
        levels = tf.round((x0 + 1.0) / 2.0 * (self.num_levels - 1))
        return tf.cast(tf.clip_by_value(levels, 0, self.num_levels - 1), tf.int32)

    def _checked_noise(self, noise, sampling_steps):
        """(x_T, step_noise or None) of `sample` and `complete`: DDPM when the noise carries
        "step_noise" (its steps must be `sampling_steps`', if given), else DDIM."""
        sampler = "ddpm" if isinstance(noise, dict) and "step_noise" in noise else "ddim"
        if sampler == "ddpm" and sampling_steps is None and np.ndim(noise["step_noise"]) > 1:
            sampling_steps = np.shape(noise["step_noise"])[1]  # the steps the noise is for
        noise = validation.check_noise_structure(
            noise, self.sampler_noise_spec(sampler, sampling_steps)
        )
        if sampler == "ddim":
            return noise, None, sampling_steps
        return noise["noise"], noise["step_noise"], int(noise["step_noise"].shape[1])

    def sample(self, noise, labels=None, sampling_steps=None, guidance_scale=None):
        """Samples from x_T = `noise`, deterministically: DDIM for an array, ancestral DDPM for
        {"noise": x_T, "step_noise": ...} (`make_noise(..., sampler="ddpm")`).

        Args:
            noise: (batch, H, W, C) float32 standard normal x_T, or for DDPM {"noise": x_T,
                "step_noise": (batch, sampling_steps, H, W, C)}.
            labels: (batch,) int class labels, for class-conditional models.
            sampling_steps: steps, 1 .. num_timesteps (default: the model's; for DDPM, the
                step noise's).
            guidance_scale: classifier-free guidance w (default: the model's).
        Returns:
            (batch, H, W, C) uint8 pixels in [0, 255].
        """
        noise, step_noise, sampling_steps = self._checked_noise(noise, sampling_steps)
        labels = self._check_condition(labels, noise.shape[0])
        if guidance_scale is not None:
            self.check_guidance(guidance_scale)
        return self.levels_to_pixels(
            self._compiled_reverse(sampling_steps, guidance_scale)(noise, labels, step_noise)
        )

    def complete(
        self, images, known_mask, noise, labels=None, sampling_steps=None, guidance_scale=None
    ):
        """Keeps the sub-pixels of `images` where `known_mask` is True and samples the rest
        (inpainting by replacement: the known region, noised to each step's level, replaces the
        sample's after every step).

        Args:
            images: (batch, H, W, C) uint8 levels; only the known sub-pixels are read.
            known_mask: (batch, H, W, C) bool (or 0/1): True where a sub-pixel is kept.
            noise, labels, sampling_steps, guidance_scale: as in `sample`.
        Returns:
            (batch, H, W, C) uint8 pixels in [0, 255], equal to `images`' where known.
        """
        noise, step_noise, sampling_steps = self._checked_noise(noise, sampling_steps)
        batch = int(noise.shape[0])
        images = validation.check_images(images, self.image_shape, self.num_levels)
        known_mask = np.asarray(known_mask)
        if known_mask.shape != (batch,) + self.image_shape or images.shape[0] != batch:
            raise validation.InputError(
                f"images and known_mask: expected shape {(batch,) + self.image_shape} (one per "
                f"noise row), received {tuple(images.shape)} and {known_mask.shape}."
            )
        labels = self._check_condition(labels, batch)
        if guidance_scale is not None:
            self.check_guidance(guidance_scale)
        levels = self._compiled_reverse(sampling_steps, guidance_scale)(
            noise, labels, step_noise, images, known_mask != 0
        )
        return self.levels_to_pixels(levels)

    def _compiled_reverse(self, sampling_steps, guidance_scale):
        """`reverse_levels` for these settings as one traced graph loop (eager, it would run its
        steps one op at a time), cached per setting."""
        steps = int(sampling_steps or self.sampling_steps)
        scale = float(self.guidance_scale if guidance_scale is None else guidance_scale)
        cache = self.__dict__.setdefault("_reverse_cache", {})
        if (steps, scale) not in cache:
            cache[steps, scale] = tf.function(
                lambda noise, labels, step_noise, known=None, keep=None: self.reverse_levels(
                    noise, labels, steps, scale, step_noise, known, keep
                ),
                reduce_retracing=True,
            )
        return cache[steps, scale]

    def _noise_inputs(self, noise):
        return (
            (noise, None) if not isinstance(noise, dict) else (noise["noise"], noise["step_noise"])
        )

    def _sample(self, noise, labels):
        noise, step_noise = self._noise_inputs(noise)
        return self.levels_to_pixels(self.reverse_levels(noise, labels, step_noise=step_noise))

    # -- the variational bound ---------------------------------------------------
    def _bound_draws(self, images):
        """Each image's timesteps and noise for the bound, fixed by a hash of its pixels:
        (timesteps (S, batch) int32 in [1, T - 1], weights (S,) float32 summing to T - 1, noise
        (S + 1, batch, H, W, C) float32), S = bound_timesteps; the last noise is the decoder's.

        Draw k of an image reads sub-pixel j's noise from entry (a_k j + b_k) mod P of a fixed
        bank of P normal numbers (P a prime above the sub-pixel count, so the map is one-to-one),
        with a_k, b_k hashed from the image: integer arithmetic, as in every runtime, and a
        bank of kilobytes rather than whole noise images.
        """
        count = self.bound_timesteps
        edges = np.round(np.linspace(1, self.num_timesteps, count + 1)).astype(np.int32)
        starts, sizes = edges[:-1], np.diff(edges)
        rng = np.random.default_rng(1)
        subpixels = int(np.prod(self.image_shape))
        bank_size = _noise_bank_size(subpixels)
        bank = rng.standard_normal(bank_size, dtype=np.float32)
        hashes = image_hashes(images, 3 * count + 2, rng)
        timesteps = starts[:, None] + tf.math.floormod(hashes[:count], sizes[:, None])
        scales = 1 + tf.math.floormod(hashes[count : 2 * count + 1], bank_size - 1)
        offsets = tf.math.floormod(hashes[2 * count + 1 :], bank_size)
        positions = tf.range(subpixels, dtype=tf.int32)
        entries = tf.math.floormod(scales[..., None] * positions + offsets[..., None], bank_size)
        noise = tf.reshape(
            tf.gather(bank, entries), tf.concat([tf.shape(entries)[:2], self.image_shape], 0)
        )
        return timesteps, tf.constant(sizes, tf.float32), noise

    def variational_bound_terms(self, images, labels=None):
        """The terms of the negative variational bound (Ho et al. 2020, eq. 5) of level images,
        in nats per image, each (batch,) float32:

        - "prior": KL(q(x_T | x_0) || N(0, I));
        - "denoising": the sum over t = 1 .. T - 1 of KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)),
          estimated from `bound_timesteps` stratified timesteps (unbiased), where p is the
          ancestral sampler's step: the posterior with the clipped x_0 estimate and its variance;
        - "decoder": -log p(x_0 | x_1), a Gaussian at the x_0 estimate with standard deviation
          sqrt(beta_1), discretized into the image's levels.

        Draws are fixed by each image's pixels, so an image scores the same in any batch and
        runtime. Guidance is not applied: the bound is of the conditional (or unconditional)
        network itself.
        """
        x0 = tf.cast(self.to_symmetric_interval(images), tf.float32)
        timesteps, weights, noise = self._bound_draws(images)
        labels = None if labels is None else tf.cast(labels, tf.int32)
        axes = [1, 2, 3]
        last = float(self.alpha_bar[-1])
        # KL(N(sqrt(a) x_0, 1 - a) || N(0, 1)) per sub-pixel, its x_0-free part in float64.
        prior = 0.5 * tf.reduce_sum(last * tf.square(x0), axis=axes) + 0.5 * float(
            np.prod(self.image_shape)
        ) * (-last - math.log1p(-last))
        kl_weights = _float32_constant(bound_weights(self.alpha_bar))

        def denoising_term(t, epsilon):
            signal, noise_scale = self._fractions(t)
            noised = signal * x0 + noise_scale * epsilon
            _, estimate = self.predict_noise(self.sampling_network, noised, t, labels)
            error = tf.square(x0 - tf.clip_by_value(estimate, -1.0, 1.0))
            return tf.gather(kl_weights, t) * tf.reduce_sum(error, axis=axes)

        # A graph loop, not a Python one: one copy of the network in the graph (and in LiteRT).
        _, denoising = tf.while_loop(
            lambda i, _: i < self.bound_timesteps,
            lambda i, total: (
                i + 1,
                total
                + tf.gather(weights, i)
                * denoising_term(tf.gather(timesteps, i), tf.gather(noise, i)),
            ),
            (tf.constant(0), tf.zeros_like(prior)),
        )
        t0 = tf.zeros(tf.shape(timesteps)[1:], tf.int32)
        signal, noise_scale = (float(scales[0]) for scales in noise_scales(self.alpha_bar))
        noised = signal * x0 + noise_scale * noise[-1]
        _, estimate = self.predict_noise(self.sampling_network, noised, t0, labels)
        decoder = -tf.reduce_sum(
            likelihoods.discretized_gaussian_log_prob(
                images, tf.clip_by_value(estimate, -1.0, 1.0), noise_scale, self.num_levels
            ),
            axis=axes,
        )
        return {"prior": prior, "denoising": denoising, "decoder": decoder}

    def _log_prob(self, images, labels):
        """(batch,) float32: minus the variational bound in nats per image (a lower bound on the
        log-likelihood, estimated: see `variational_bound_terms`)."""
        terms = self.variational_bound_terms(images, labels)
        return -(terms["prior"] + terms["denoising"] + terms["decoder"])

    # -- export --------------------------------------------------------------------
    def export_endpoints(self):
        """The family's endpoints (sample, log_prob), and:

        - "complete": the noise inputs, `known` uint8 levels and `known_mask` uint8 (1: keep),
          each (batch, H, W, C) [, labels] -> uint8 pixels;
        - "denoise": one network evaluation, for samplers of one's own: `noised` x_t float32
          (batch, H, W, C) and `timesteps` int32 (batch,) [, labels] -> "epsilon" and "x0"
          (float32, the clipped x_0 estimate, on the [-1, 1] scale), with the sampling network and
          the model's guidance scale.
        """
        endpoints = super().export_endpoints()
        names = sorted(self.noise_spec)
        shape = (None,) + self.image_shape
        noise_specs = [
            tf.TensorSpec((None,) + tuple(self.noise_spec[name][0]), tf.float32, name=name)
            for name in names
        ]
        known_specs = [
            tf.TensorSpec(shape, tf.uint8, name="known"),
            tf.TensorSpec(shape, tf.uint8, name="known_mask"),
        ]

        def complete_fn(*inputs):
            noise = dict(zip(names, inputs[: len(names)]))
            known, known_mask = inputs[len(names) : len(names) + 2]
            labels = inputs[len(names) + 2] if len(inputs) > len(names) + 2 else None
            keep = tf.not_equal(tf.cast(known_mask, tf.int32), 0)  # LiteRT: no uint8 NotEqual
            levels = self.reverse_levels(
                noise["noise"], labels, step_noise=noise.get("step_noise"), known=known, keep=keep
            )
            return {"images": self.levels_to_pixels(levels)}

        def denoise_fn(noised, timesteps, labels=None):
            epsilon, x0 = self.guided_prediction(noised, timesteps, labels, self.guidance_scale)
            return {"epsilon": epsilon, "x0": tf.clip_by_value(x0, -1.0, 1.0)}

        endpoints["complete"] = (complete_fn, noise_specs + known_specs + self._label_specs())
        endpoints["denoise"] = (
            denoise_fn,
            [
                tf.TensorSpec(shape, tf.float32, name="noised"),
                tf.TensorSpec((None,), tf.int32, name="timesteps"),
            ]
            + self._label_specs(),
        )
        return endpoints

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
            sampler=self.sampler,
            bound_timesteps=self.bound_timesteps,
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
