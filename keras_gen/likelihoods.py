"""Per-sub-pixel output distributions shared by the VAE and the autoregressive models.

Each likelihood reads raw network outputs ("params") of shape
(batch, H, W, C * num_params) and works on integer level images of shape
(batch, H, W, C). Log-probabilities are in nats and computed in float32.
"""

import math

import tensorflow as tf


class Likelihood:
    """Base: a factorised distribution over the sub-pixels of an image.

    Example:

    ```python
    likelihood = Bernoulli()
    params = tf.zeros((2, 4, 4, 1))                          # logits: p = 0.5 everywhere
    likelihood.log_prob(params, np.zeros((2, 4, 4, 1), "uint8"))   # (2,) = 16 log 0.5 nats
    ```
    """

    name = None
    # Whether a network computing in bfloat16 learns it as well as in float32 (`--mixed-precision
    # auto` keeps float32 where not).
    trains_well_in_bfloat16 = True

    def __init__(self, num_levels):
        self.num_levels = int(num_levels)

    def num_params(self):
        """Output channels the network needs per image channel."""
        raise NotImplementedError

    def _split(self, params, channels):
        params = tf.cast(params, tf.float32)
        shape = tf.shape(params)
        return tf.reshape(params, tf.concat([shape[:3], [channels, self.num_params()]], 0))

    def log_prob_per_subpixel(self, params, images):
        """(batch, H, W, C) log-probabilities in nats."""
        raise NotImplementedError

    def log_prob(self, params, images):
        """(batch,) log-probabilities of whole images in nats."""
        return tf.reduce_sum(self.log_prob_per_subpixel(params, images), axis=[1, 2, 3])

    def mean(self, params, channels):
        """(batch, H, W, C) float32 mean, scaled to [0, 1] for display."""
        raise NotImplementedError

    def inverse_cdf(self, params, uniform, channels):
        """(batch, H, W, C) uint8 levels: the inverse CDF of each sub-pixel at `uniform`."""
        raise NotImplementedError


class Bernoulli(Likelihood):
    """Binary pixels; params are logits, one per sub-pixel.

    Example:

    ```python
    likelihood = Bernoulli()
    likelihood.log_prob(tf.zeros((1, 2, 2, 1)), np.ones((1, 2, 2, 1), "uint8"))   # 4 log 0.5 nats
    ```
    """

    name = "bernoulli"

    def __init__(self, num_levels=2):
        if num_levels != 2:
            raise ValueError(f"The Bernoulli likelihood needs num_levels=2, got {num_levels}.")
        super().__init__(2)

    def num_params(self):
        return 1

    def log_prob_per_subpixel(self, params, images):
        logits = tf.cast(params, tf.float32)
        labels = tf.cast(images, tf.float32)
        return -tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)

    def mean(self, params, channels):
        return tf.sigmoid(tf.cast(params, tf.float32))

    def inverse_cdf(self, params, uniform, channels):
        # P(x = 0) = 1 - sigmoid(logit); x = 1 when u falls above it.
        return tf.cast(uniform >= tf.sigmoid(-tf.cast(params, tf.float32)), tf.uint8)


class Categorical(Likelihood):
    """A num_levels-way softmax per sub-pixel.

    Example:

    ```python
    likelihood = Categorical(num_levels=4)
    params = tf.zeros((1, 2, 2, 4))                          # uniform over 4 levels per sub-pixel
    likelihood.log_prob(params, np.zeros((1, 2, 2, 1), "uint8"))   # 4 log 0.25 nats
    ```
    """

    name = "categorical"

    def num_params(self):
        return self.num_levels

    def log_prob_per_subpixel(self, params, images):
        log_probs = tf.nn.log_softmax(self._split(params, images.shape[-1]), axis=-1)
        # A one-hot pick, not sparse_softmax_cross_entropy, which TFLite runs only with Flex.
        return tf.reduce_sum(
            log_probs * tf.one_hot(tf.cast(images, tf.int32), self.num_levels), axis=-1
        )

    def mean(self, params, channels):
        probs = tf.nn.softmax(self._split(params, channels), axis=-1)
        levels = tf.range(self.num_levels, dtype=tf.float32) / (self.num_levels - 1)
        return tf.reduce_sum(probs * levels, axis=-1)

    def inverse_cdf(self, params, uniform, channels):
        cdf = tf.cumsum(tf.nn.softmax(self._split(params, channels), axis=-1), axis=-1)
        below = tf.cast(cdf <= uniform[..., None], tf.int32)
        return tf.cast(tf.minimum(tf.reduce_sum(below, -1), self.num_levels - 1), tf.uint8)


class DiscretizedLogistic(Likelihood):
    """A logistic per sub-pixel, integrated over each level's bin (Salimans et al. 2017).

    Params per sub-pixel: mean in [-1, 1] space and log-scale.

    Example:

    ```python
    likelihood = DiscretizedLogistic(num_levels=256)
    params = tf.zeros((1, 2, 2, likelihood.num_params()))
    nats = likelihood.log_prob(params, np.full((1, 2, 2, 1), 128, "uint8"))   # (1,)
    ```
    """

    name = "logistic"
    # Measured on 32x32 emoji (2026-12-07): a bfloat16 decoder's rounding costs more than a level's
    # bin (VAE: 9,449 against 8,907 nats after 600 steps, 8,890 with the decoder alone in float32;
    # benchmarks/bfloat16_likelihoods.py).
    trains_well_in_bfloat16 = False

    def num_params(self):
        return 2

    def _mean_log_scale(self, params, channels):
        split = self._split(params, channels)
        return split[..., 0], tf.maximum(split[..., 1], -7.0)

    def _to_centred(self, levels):
        return 2.0 * tf.cast(levels, tf.float32) / (self.num_levels - 1) - 1.0

    def log_prob_per_subpixel(self, params, images):
        mean, log_scale = self._mean_log_scale(params, images.shape[-1])
        return discretized_logistic_log_prob(images, mean, log_scale, self.num_levels)

    def _centred_to_levels(self, x):
        levels = tf.round((tf.clip_by_value(x, -1.0, 1.0) + 1.0) / 2.0 * (self.num_levels - 1))
        return tf.cast(levels, tf.uint8)

    def mean(self, params, channels):
        mean = self._mean_log_scale(params, channels)[0]
        return (tf.clip_by_value(mean, -1.0, 1.0) + 1.0) / 2.0

    def inverse_cdf(self, params, uniform, channels):
        mean, log_scale = self._mean_log_scale(params, channels)
        u = tf.clip_by_value(uniform, 1e-6, 1.0 - 1e-6)
        x = mean + tf.exp(log_scale) * (tf.math.log(u) - tf.math.log1p(-u))
        return self._centred_to_levels(x)


def discretized_logistic_log_prob(levels, mean, log_scale, num_levels):
    """Log-probability of integer levels under logistics on [-1, 1] integrated over each level's
    bin (Salimans et al. 2017), the first and last bins reaching to -inf and +inf.

    Args:
        levels: integer levels, broadcasting against `mean`.
        mean, log_scale: float32, on the [-1, 1] scale.
    Returns:
        float32 log-probabilities in nats, `mean`'s shape.
    """
    x = 2.0 * tf.cast(levels, tf.float32) / (num_levels - 1) - 1.0
    half_bin = 1.0 / (num_levels - 1)
    inv_scale = tf.exp(-log_scale)
    plus_in = inv_scale * (x - mean + half_bin)
    minus_in = inv_scale * (x - mean - half_bin)
    log_cdf_plus = plus_in - tf.nn.softplus(plus_in)
    log_survival_minus = -tf.nn.softplus(minus_in)
    cdf_delta = tf.sigmoid(plus_in) - tf.sigmoid(minus_in)
    centre_in = inv_scale * (x - mean)
    log_pdf_centre = centre_in - log_scale - 2.0 * tf.nn.softplus(centre_in)
    # Where the bin mass underflows, use density x bin width instead.
    log_bin = tf.where(
        cdf_delta > 1e-5,
        tf.math.log(tf.maximum(cdf_delta, 1e-12)),
        log_pdf_centre + math.log(2.0 * half_bin),
    )
    top = float(num_levels - 1)
    levels = tf.cast(levels, tf.float32) + tf.zeros_like(mean)
    return tf.where(
        levels < 0.5, log_cdf_plus, tf.where(levels > top - 0.5, log_survival_minus, log_bin)
    )


class DiscretizedLogisticMixture(Likelihood):
    """A mixture of `num_mixtures` logistics per sub-pixel, integrated over each level's bin
    (PixelCNN++, Salimans et al. 2017). Each sub-pixel has its own mixture, computed from
    features that already see the earlier sub-pixels (the R -> G -> B masking), so no coupling
    between a pixel's channels is needed.

    Params per sub-pixel: num_mixtures logits of the weights, then as many means (on the [-1, 1]
    scale) and log-scales. Sampling takes the inverse of the mixture's CDF over the levels at one
    uniform per sub-pixel, as the softmax head does.

    Example:

    ```python
    likelihood = DiscretizedLogisticMixture(num_levels=256, num_mixtures=5)
    params = tf.zeros((1, 2, 2, likelihood.num_params()))         # 15 per sub-pixel
    nats = likelihood.log_prob(params, np.full((1, 2, 2, 1), 128, "uint8"))   # (1,)
    ```
    """

    name = "logistic_mixture"
    # As the logistic: a Gated PixelCNN on 32x32 emoji, 4.050 against 3.881 bits/dim after 400
    # steps (the 256-way softmax: 4.075 against 4.056).
    trains_well_in_bfloat16 = False

    def __init__(self, num_levels, num_mixtures=10):
        super().__init__(num_levels)
        if int(num_mixtures) < 1:
            raise ValueError(f"num_mixtures must be at least 1, got {num_mixtures}.")
        self.num_mixtures = int(num_mixtures)

    def num_params(self):
        return 3 * self.num_mixtures

    def _components(self, params, channels):
        """(log weights, means, log-scales), each (batch, H, W, C, num_mixtures) float32."""
        split = self._split(params, channels)
        k = self.num_mixtures
        log_weights = tf.nn.log_softmax(split[..., :k], axis=-1)
        return log_weights, split[..., k : 2 * k], tf.maximum(split[..., 2 * k :], -7.0)

    def log_prob_per_subpixel(self, params, images):
        log_weights, means, log_scales = self._components(params, images.shape[-1])
        per_component = discretized_logistic_log_prob(
            tf.cast(images, tf.int32)[..., None], means, log_scales, self.num_levels
        )
        return tf.reduce_logsumexp(log_weights + per_component, axis=-1)

    def mean(self, params, channels):
        log_weights, means, _ = self._components(params, channels)
        mean = tf.reduce_sum(tf.exp(log_weights) * tf.clip_by_value(means, -1.0, 1.0), axis=-1)
        return (mean + 1.0) / 2.0

    def _flat_cdf_at_bin_tops(self, params, channels):
        """(sub-pixels, num_levels - 1) float32: P(level <= k) for k = 0 .. num_levels - 2, the
        sub-pixels flattened so that no tensor passes rank 3 (LiteRT's ops take rank 5 at most)."""
        log_weights, means, log_scales = (
            tf.reshape(part, [-1, 1, self.num_mixtures])
            for part in self._components(params, channels)
        )
        levels = tf.range(self.num_levels - 1, dtype=tf.float32)
        tops = tf.reshape((2.0 * levels + 1.0) / (self.num_levels - 1) - 1.0, [1, -1, 1])
        standardized = (tops - means) * tf.exp(-log_scales)
        return tf.reduce_sum(tf.exp(log_weights) * tf.sigmoid(standardized), axis=-1)

    def cdf_at_bin_tops(self, params, channels):
        """(batch, H, W, C, num_levels - 1) float32: P(level <= k) for k = 0 .. num_levels - 2."""
        cdf = self._flat_cdf_at_bin_tops(params, channels)
        shape = tf.concat([tf.shape(params)[:3], [channels, self.num_levels - 1]], 0)
        return tf.reshape(cdf, shape)

    def inverse_cdf(self, params, uniform, channels):
        cdf = self._flat_cdf_at_bin_tops(params, channels)
        below = tf.cast(cdf <= tf.reshape(uniform, [-1, 1]), tf.int32)
        levels = tf.minimum(tf.reduce_sum(below, -1), self.num_levels - 1)
        return tf.cast(tf.reshape(levels, tf.shape(uniform)), tf.uint8)


LIKELIHOODS = {
    cls.name: cls
    for cls in (Bernoulli, Categorical, DiscretizedLogistic, DiscretizedLogisticMixture)
}


def get(name, num_levels, num_mixtures=10):
    """Returns the likelihood called `name` ("bernoulli", "categorical", "logistic" or
    "logistic_mixture", which takes `num_mixtures`)."""
    if name not in LIKELIHOODS:
        raise ValueError(f"Unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}.")
    if name == DiscretizedLogisticMixture.name:
        return DiscretizedLogisticMixture(num_levels, num_mixtures)
    return LIKELIHOODS[name](num_levels)


def _approximate_standard_normal_cdf(x):
    # Ho et al.'s tanh approximation of the normal CDF: built-in ops only (LiteRT has no Erf).
    return 0.5 * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


def discretized_gaussian_log_prob(levels, mean, scale, num_levels):
    """Log-probability of integer levels under a Gaussian on [-1, 1] cut into `num_levels` bins
    (the decoder of Ho et al. 2020): level k's bin is centred at 2k / (num_levels - 1) - 1, half a
    bin wide each side, the first and last bins reaching to -inf and +inf.

    Args:
        levels: (batch, H, W, C) integer levels in [0, num_levels - 1].
        mean: (batch, H, W, C) float means, on the [-1, 1] scale.
        scale: standard deviation, a float or a tensor broadcasting to `mean`.
        num_levels: the levels' count.
    Returns:
        (batch, H, W, C) float32 log-probabilities in nats.
    """
    levels = tf.cast(levels, tf.float32)
    centre = 2.0 * levels / (num_levels - 1) - 1.0
    half_bin = 1.0 / (num_levels - 1)
    mean = tf.cast(mean, tf.float32)
    upper = _approximate_standard_normal_cdf((centre + half_bin - mean) / scale)
    lower = _approximate_standard_normal_cdf((centre - half_bin - mean) / scale)
    upper = tf.where(levels >= num_levels - 1, 1.0, upper)
    lower = tf.where(levels <= 0, 0.0, lower)
    return tf.math.log(tf.maximum(upper - lower, 1e-12))
