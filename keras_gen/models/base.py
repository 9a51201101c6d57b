"""What every keras_gen model shares: the image spec, noise, checked inputs and export endpoints."""

import functools
import inspect
import math

import keras
import numpy as np
import tensorflow as tf

from keras_gen import likelihoods, precision, validation
from keras_gen.conventions import (  # noqa: F401  (draw_noise and the rest lived here before)
    ROUNDED_PIXELS,
    draw_noise,
    draw_noise_structure,
    noise_batch_size,
    pixels_to_levels,
    unit_to_pixels,
)
from keras_gen.registry import register


def unpack_batch(data):
    """Splits what `fit` passes to train_step into (images, labels or None).

    Accepts images, (images,), (images, labels) and ((images, labels),).
    """
    if isinstance(data, (tuple, list)):
        if len(data) == 1:
            return unpack_batch(data[0])
        return data[0], data[1]
    return data, None


def repeat_rows_to(batch, rows):
    """A batch (a tensor or a nest of them, batch-major) with its rows repeated cyclically up to
    at least `rows` rows; a batch that already has them is returned unchanged."""
    flat = tf.nest.flatten(batch)
    count = tf.shape(flat[0])[0]
    index = tf.range(tf.maximum(count, rows)) % count
    return tf.nest.map_structure(lambda tensor: tf.gather(tensor, index), batch)


def in_chunks(function, signature, chunk_size):
    """`function` run on its batch in chunks of at most `chunk_size` images, in one graph loop.

    Every input in `signature` and every output is batch-major. A batch of up to `chunk_size`
    images runs as one chunk, unchanged; a larger one is cut into chunks of exactly `chunk_size`,
    the last padded by repeating rows (dropped from the outputs), so peak memory is that of one
    chunk whatever the batch, and an image's outputs do not depend on the other images in its batch
    beyond the chunk it computes with. The loop writes each chunk's outputs with one select, which
    LiteRT's built-in ops and XLA both take.

    Args:
        function: (*inputs) -> {name: (batch, ...) tensor}, traced once, on a chunk.
        signature: the inputs' `tf.TensorSpec`s, batch axis None.
        chunk_size: images per chunk, >= 1.
    Returns:
        A function with the same inputs and outputs.
    """
    chunk_specs = [
        tf.TensorSpec((None,) + tuple(spec.shape[1:]), spec.dtype, name=spec.name)
        for spec in signature
    ]

    def run(*inputs):
        batch = tf.shape(inputs[0])[0]
        chunk = tf.minimum(batch, chunk_size)
        chunks = (batch + chunk - 1) // chunk
        # Traced once, then called from the loop body.
        chunk_function = tf.function(function, autograph=False).get_concrete_function(*chunk_specs)
        padded = [repeat_rows_to(tensor, chunks * chunk) for tensor in inputs]
        padded = [tf.reshape(t, tf.concat([[chunks, chunk], tf.shape(t)[1:]], 0)) for t in padded]
        outputs = chunk_function.structured_outputs
        # Each output is kept flat, (chunks, chunk * its per-image size), and integers as int32:
        # LiteRT's select takes at most rank 5, and no uint8.
        sizes = {name: math.prod(output.shape[1:]) for name, output in outputs.items()}
        kept = {
            name: tf.int32 if output.dtype.is_integer else output.dtype
            for name, output in outputs.items()
        }
        written = {
            name: tf.zeros(tf.stack([chunks, chunk * sizes[name]]), kept[name]) for name in outputs
        }

        def step(index, written):
            fresh = chunk_function(*[tensor[index] for tensor in padded])
            here = (tf.range(chunks) == index)[:, None]
            return index + 1, {
                name: tf.where(here, tf.reshape(tf.cast(fresh[name], kept[name]), [1, -1]), value)
                for name, value in written.items()
            }

        _, written = tf.while_loop(lambda index, _: index < chunks, step, (tf.constant(0), written))
        return {
            name: tf.cast(
                tf.reshape(value, (-1,) + tuple(outputs[name].shape[1:]))[:batch],
                outputs[name].dtype,
            )
            for name, value in written.items()
        }

    return run


class _BatchCounter(keras.callbacks.Callback):
    """Counts the batches `fit` trains on (a skipped float16 step still counts)."""

    batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


@register
class GenerativeModel(keras.Model):
    """Base of every zoo model.

    Data images (what `fit` and `log_prob` take) are integer levels: uint8 of
    shape (batch, H, W, C) in [0, num_levels - 1] (0/1 for binary data).
    Sampled images (what `sample` returns) are display pixels: uint8 in [0, 255].

    Subclasses set `noise_kind` ("normal" or "uniform"), define `noise_shape`,
    and implement `_sample(noise, labels)` and, if they have a likelihood,
    `_log_prob(images, labels)`.

    Example:

    ```python
    model = VAE(image_shape=(8, 8, 1), latent_dim=2, widths=(4, 8))   # any keras_gen model
    noise = model.make_noise(4, seed=0)                       # the same seed gives the same noise
    images = model.sample(noise)                              # (4, 8, 8, 1) uint8 pixels, deterministic
    ```
    """

    noise_kind = "normal"
    has_log_prob = False
    default_learning_rate = 1e-3
    # Whether an export's SavedModel compiles `sample` with XLA (LiteRT always gets the plain graph).
    xla_served_sample = False
    # How closely exports' samples follow Keras' for the same noise (conventions.EXACT_PIXELS for
    # discrete samplers); cards, export.json and the parity tests read it.
    sample_parity = ROUNDED_PIXELS
    # Images an exported signature computes at once (`in_chunks`): bounds its memory at any batch.
    export_chunk_size = 64
    # The likelihood of non-binary data, in families with one (`likelihoods.get`'s names).
    default_likelihood = None

    @classmethod
    def likelihood_name_for(cls, likelihood, num_levels):
        """The likelihood a model of this class takes: `likelihood`, else its family's default
        for `num_levels` levels ("bernoulli" for binary data); None in families without one."""
        if likelihood is not None or cls.default_likelihood is None:
            return likelihood
        return "bernoulli" if num_levels == 2 else cls.default_likelihood

    @classmethod
    def float32_reason(cls, options):
        """Why a model of these constructor `options` should compute in float32 even where
        bfloat16 is native (what `--mixed-precision auto` follows), or None."""
        name = cls.likelihood_name_for(options.get("likelihood"), options.get("num_levels", 2))
        if name and not likelihoods.LIKELIHOODS[name].trains_well_in_bfloat16:
            return f"its {name} likelihood trains worse in bfloat16"
        return None

    def __init_subclass__(cls, **kwargs):
        # Sublayers built in __init__ take the global dtype policy. Build them under the model's
        # own `dtype` instead, so a mixed-precision model loaded in a float32 process stays whole.
        super().__init_subclass__(**kwargs)
        init = cls.__init__

        @functools.wraps(init)
        def init_under_own_policy(self, *args, **init_kwargs):
            dtype = init_kwargs.get("dtype")
            if dtype is None:
                return init(self, *args, **init_kwargs)
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy(keras.dtype_policies.get(dtype))
            try:
                return init(self, *args, **init_kwargs)
            finally:
                keras.config.set_dtype_policy(previous)

        init_under_own_policy.__signature__ = inspect.signature(
            init
        )  # Keras reads __init__'s argspec
        cls.__init__ = init_under_own_policy

    def __init__(
        self, image_shape=(28, 28, 1), num_levels=2, num_classes=None, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        image_shape = tuple(int(d) for d in image_shape)
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(
                f"image_shape must be (H, W, C) with positive sizes, got {image_shape}."
            )
        if not 2 <= int(num_levels) <= 256:
            raise ValueError(f"num_levels must be in [2, 256], got {num_levels}.")
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2 or None, got {num_classes}.")
        self.image_shape = image_shape
        self.num_levels = int(num_levels)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.seed = seed
        # Randomness in train/test steps; its state is saved, so resumed training is exact.
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    @classmethod
    def from_preset(cls, preset):
        """The trained model of a zoo preset, ready to `sample` or `save`; `compile` it (e.g.
        `compile_for_training()`) to `fit` further, with a fresh optimizer.

        Args:
            preset: a zoo name (see `keras_gen.zoo.names()`, e.g. "pixelcnn_binarized_mnist")
                or a folder holding a model.keras.
        """
        from keras_gen import registry

        model = registry.load_preset(preset)
        if not isinstance(model, cls):
            raise registry.PresetError(
                f"{preset} holds a {type(model).__name__}, not a {cls.__name__}; "
                f"use {type(model).__name__}.from_preset."
            )
        return model

    def compile(self, optimizer="rmsprop", **kwargs):
        """`keras.Model.compile`; then builds every optimizer at once, in the model's distribution scope.

        Under mixed_float16 each optimizer is wrapped in a `LossScaleOptimizer`.
        """
        super().compile(optimizer=optimizer, **kwargs)
        self.build_optimizers()

    def compile_from_config(self, config):
        # Keras skips a compile() that a subclass overrides; this one is safe to replay.
        self.compile(**keras.saving.deserialize_keras_object(config))

    def compile_for_training(self, learning_rate=None, **kwargs):
        """Compiles with this family's default optimizer (what the CLI uses)."""
        learning_rate = learning_rate or self.default_learning_rate
        self.compile(optimizer=keras.optimizers.Adam(learning_rate), **kwargs)

    def set_learning_rate(self, learning_rate):
        """Sets the learning rate of every optimizer the model trains with, keeping their state."""
        for optimizer in self.training_optimizers():
            optimizer.learning_rate = learning_rate

    def optimizer_targets(self):
        """[(optimizer, the variables it updates)]: the optimizer of `compile` and every trainable variable."""
        return [(self.optimizer, self.trainable_variables)]

    def training_optimizers(self):
        """The optimizers `fit` updates."""
        return [optimizer for optimizer, _ in self.optimizer_targets()]

    def with_loss_scaling(self, optimizer):
        """`optimizer`, wrapped in a `LossScaleOptimizer` when the model computes in float16."""
        if self.dtype_policy.compute_dtype == "float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            return keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def build_optimizers(self):
        """Creates every optimizer's slots now, eagerly and inside the model's strategy scope.

        An optimizer built lazily inside the traced train step breaks `MirroredStrategy`
        (keras#23085), and a loss scale read before it is built is frozen into the graph.
        """
        with self.distribute_strategy.scope():
            for optimizer, variables in self.optimizer_targets():
                if optimizer is not None and not optimizer.built:
                    optimizer.build(variables)

    # -- data checks shared by fit and evaluate ----------------------------------
    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, with two checks and one guarantee.

        An empty dataset raises `InputError` before training (or, when its size cannot be known
        up front, after an epoch without steps) instead of training nothing. Under a strategy with
        R replicas, a batch with fewer than R images (an epoch's last partial batch) repeats its
        images up to R, so every replica gets at least one: TensorFlow's convolutions fail on an
        empty replica batch. A first batch below R is refused. Training in bfloat16 on hardware
        without native bfloat16 warns once (`keras_gen.precision`).
        """
        x, y, kwargs = self._checked_data(x, y, kwargs, "fit")
        if isinstance(x, tf.data.Dataset):
            # A dataset shuffles itself; Keras' default shuffle=True would only warn that it ignores it.
            kwargs.setdefault("shuffle", False)
        if self.dtype_policy.compute_dtype == "bfloat16":
            precision.warn_if_bfloat16_is_slow()
        counter = _BatchCounter()
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), counter]
        history = super().fit(x, y, *args, **kwargs)
        if counter.batches == 0 and kwargs.get("epochs", 1) > kwargs.get("initial_epoch", 0):
            raise validation.InputError(self._empty_data_message("fit"))
        return history

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, with `fit`'s checks of the data."""
        x, y, kwargs = self._checked_data(x, y, kwargs, "evaluate")
        return super().evaluate(x, y, *args, **kwargs)

    def _empty_data_message(self, method):
        return (
            f"{type(self).__name__}.{method}: the data holds no images (an empty dataset, or a take, "
            "filter or split that keeps nothing); nothing was done."
        )

    def _checked_data(self, x, y, kwargs, method):
        """(x, y, kwargs) for Keras, after refusing empty data and padding batches for replicas."""
        replicas = self.distribute_strategy.num_replicas_in_sync
        if isinstance(x, tf.data.Dataset):
            cardinality = int(x.cardinality())
            if cardinality == 0:
                raise validation.InputError(self._empty_data_message(method))
            if cardinality == tf.data.UNKNOWN_CARDINALITY or replicas > 1:
                first = next(iter(x.take(1)), None)  # only here: it may fill a shuffle buffer
                if first is None:
                    raise validation.InputError(self._empty_data_message(method))
                self._check_replica_batch(int(tf.shape(tf.nest.flatten(first)[0])[0]), replicas)
            x = self._padded_for_replicas(x, replicas)
            if isinstance(kwargs.get("validation_data"), tf.data.Dataset):
                kwargs = {
                    **kwargs,
                    "validation_data": self._padded_for_replicas(
                        kwargs["validation_data"], replicas
                    ),
                }
        elif x is not None and not callable(getattr(x, "__next__", None)):
            first = tf.nest.flatten(x)[0]
            if hasattr(first, "shape") and len(first.shape) and first.shape[0] == 0:
                raise validation.InputError(self._empty_data_message(method))
        return x, y, kwargs

    @staticmethod
    def _padded_for_replicas(dataset, replicas):
        if replicas == 1:
            return dataset
        return dataset.map(
            lambda *batch: repeat_rows_to(batch if len(batch) > 1 else batch[0], replicas)
        )

    def _check_replica_batch(self, batch, replicas):
        if batch < replicas:
            raise validation.InputError(
                f"{type(self).__name__}: a global batch of {batch} on {replicas} replicas leaves "
                f"{batch // replicas} images per replica; the smallest global batch that works is "
                f"{replicas} (one image per replica)."
            )

    def global_mean(self, per_example):
        """The mean of `per_example` (batch,) over the global batch, as this replica's share.

        The replicas' shares sum to the exact mean even when they hold different numbers of
        examples (a partial last batch); `tf.nn.compute_average_loss` assumes equal ones.
        """
        per_example = tf.cast(per_example, tf.float32)
        count = tf.cast(tf.shape(per_example)[0], tf.float32)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        return tf.math.divide_no_nan(tf.reduce_sum(per_example), count)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras averages the first batch over all replicas to build a model symbolically; under
        # MultiWorkerMirroredStrategy that all-reduce has no uint8 kernel (tensorflow#72388). These
        # models and their optimizers are built before `fit`, so the build has nothing to do.
        if all(layer.built for layer in self._flatten_layers()) and all(
            optimizer is None or optimizer.built for optimizer in self.training_optimizers()
        ):
            return
        super()._maybe_symbolic_build(iterator, data_batch)

    def step_logs(self, metrics):
        """What a train or test step returns: {name: result} of `metrics`.

        Keras' multi-worker `fit` averages each returned value over axis 0, which a
        scalar lacks (keras#20585), so there each result is a (1,) tensor. The
        results are already aggregated over every replica.
        """
        logs = {metric.name: metric.result() for metric in metrics}
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def minimize(self, tape, loss, optimizer, variables):
        """One optimizer step on d loss / d variables; the loss was computed under `tape`.

        The loss is a replica's share of the global-batch mean (`global_mean`);
        the optimizer sums the replicas' gradients. A float16 loss scale is applied through
        the tape's output gradient and undone by the `LossScaleOptimizer`.
        """
        loss_scale = optimizer.scale_loss(tf.ones_like(loss))
        gradients = tape.gradient(loss, variables, output_gradients=loss_scale)
        optimizer.apply_gradients(zip(gradients, variables))

    # -- randomness in train and test steps ----------------------------------
    def replica_random(self, draw, shape):
        """`draw(shape, seed=self.seed_generator)` for this replica's share of the global batch.

        A seed generator gives every replica the same numbers (keras#20612). So each
        replica draws the noise of the whole global batch and keeps its own rows:
        replicas differ, and N replicas draw exactly what one device draws for the
        same global batch.

        Args:
            draw: e.g. `keras.random.normal`.
            shape: (local batch, ...), the batch size may be a tensor.
        """
        context = tf.distribute.get_replica_context()
        replicas = 1 if context is None else context.num_replicas_in_sync
        if replicas == 1:
            return draw(tuple(shape), seed=self.seed_generator)
        local = shape[0]
        start = local * tf.cast(
            context.replica_id_in_sync_group, local.dtype if tf.is_tensor(local) else tf.int32
        )
        whole = draw((local * replicas,) + tuple(shape[1:]), seed=self.seed_generator)
        return whole[start : start + local]

    # -- noise -----------------------------------------------------------
    @property
    def noise_shape(self):
        """Shape of one example's noise, without the batch axis."""
        raise NotImplementedError

    @property
    def noise_spec(self):
        """{name: (shape without the batch axis, "normal" or "uniform")}: the noise `sample` takes.

        One entry, "noise", for a model with one noise input (the exports' signature input
        keeps that name); a model with several, such as a latent z and pixel noise, overrides it.
        """
        return {"noise": (tuple(self.noise_shape), self.noise_kind)}

    def make_noise(self, batch_size, seed=None):
        """Draws noise for `noise_spec` with NumPy: a (batch_size, *noise_shape) float32 array
        for one noise input, {name: array} for several. The same seed gives the same noise."""
        return draw_noise_structure(batch_size, self.noise_spec, seed)

    # -- public, checked entry points -------------------------------------
    def sample(self, noise, labels=None):
        """Turns noise into images, deterministically.

        Args:
            noise: (batch, *noise_shape) float32, or {name: array} for a model with several
                noise inputs (`noise_spec`).
            labels: (batch,) int class labels, for conditional models only.
        Returns:
            (batch, H, W, C) uint8 pixels in [0, 255].
        """
        noise = validation.check_noise_structure(noise, self.noise_spec)
        labels = self._check_condition(labels, noise_batch_size(noise))
        return self._sample(noise, labels)

    def log_prob(self, images, labels=None):
        """(batch,) float32 log-likelihood of integer level images, in nats per image."""
        return self._log_prob(*self._check_log_prob_inputs(images, labels))

    def _check_log_prob_inputs(self, images, labels):
        if not self.has_log_prob:
            raise NotImplementedError(f"{type(self).__name__} has no likelihood.")
        images = validation.check_images(images, self.image_shape, self.num_levels)
        labels = self._check_condition(labels, images.shape[0])
        return images, labels

    @property
    def conditioned(self):
        """Whether the model takes a condition (class labels) beside its images or noise."""
        return self.num_classes is not None

    def _check_condition(self, labels, batch_size):
        """The checked condition (class labels) of `sample` and `log_prob`."""
        return validation.check_labels(labels, self.num_classes, batch_size)

    def bits_per_dim(self, images, labels=None):
        """(batch,) negative log-likelihood in bits per sub-pixel."""
        return -self.log_prob(images, labels) / (self.num_subpixels * math.log(2.0))

    @property
    def num_subpixels(self):
        return int(np.prod(self.image_shape))

    def _unpack_batch(self, data):
        """(images, labels) from what `fit` passes, checked against image_shape when traced."""
        images, labels = unpack_batch(data)
        if tuple(images.shape[1:]) != self.image_shape or not images.dtype.is_integer:
            raise validation.InputError(
                f"{type(self).__name__} trains on integer level images of shape (batch, "
                f"{', '.join(map(str, self.image_shape))}); the data gives shape {tuple(images.shape)} "
                f"and dtype {images.dtype.name}. Check the dataset and image_shape."
            )
        if self.conditioned and labels is None:
            what = (
                f" on {self.num_classes} classes; the data must yield (images, labels)"
                if self.num_classes is not None
                else "; the data must yield (images, condition)"
            )
            raise validation.InputError(
                f"{type(self).__name__} is conditional{what}, e.g. data.load(..., labels=True)."
            )
        return images, (labels if self.conditioned else None)

    def _sample(self, noise, labels):
        raise NotImplementedError

    def _log_prob(self, images, labels):
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------
    def to_unit_interval(self, images):
        """Levels -> float in [0, 1] in the compute dtype."""
        return tf.cast(images, self.compute_dtype) / float(self.num_levels - 1)

    def levels_to_pixels(self, levels):
        """Integer levels -> uint8 pixels in [0, 255]."""
        return unit_to_pixels(tf.cast(levels, tf.float32) / float(self.num_levels - 1))

    def to_symmetric_interval(self, images):
        """Levels -> float in [-1, 1] in the compute dtype."""
        return 2.0 * self.to_unit_interval(images) - 1.0

    # -- export ------------------------------------------------------------
    def export_endpoints(self):
        """Functions to export: {name: (fn, input_signature)}, each fn returning a dict."""
        label_spec = self._label_specs()
        names = sorted(self.noise_spec)
        noise_specs = [
            tf.TensorSpec((None,) + tuple(self.noise_spec[name][0]), tf.float32, name=name)
            for name in names
        ]
        image_spec = tf.TensorSpec((None,) + self.image_shape, tf.uint8, name="images")

        def sample_fn(*inputs):
            # The signature's inputs: each noise input by name, then the labels of a conditional model.
            noise = inputs[0] if len(names) == 1 else dict(zip(names, inputs[: len(names)]))
            labels = inputs[len(names)] if len(inputs) > len(names) else None
            return {"images": self._sample(noise, labels)}

        endpoints = {"sample": (sample_fn, noise_specs + label_spec)}
        if self.has_log_prob:

            def log_prob_fn(images, labels=None):
                return {"log_prob": self._export_log_prob(images, labels)}

            endpoints["log_prob"] = (log_prob_fn, [image_spec] + label_spec)
        return endpoints

    def chunked_export_endpoints(self):
        """`export_endpoints`, each run in chunks of `export_chunk_size` images (`in_chunks`), so
        an export takes any batch in one call with bounded memory."""
        return {
            name: (in_chunks(function, signature, self.export_chunk_size), signature)
            for name, (function, signature) in self.export_endpoints().items()
        }

    def _label_specs(self):
        """The exports' labels input of a class-conditional model: [spec] or []."""
        return [tf.TensorSpec((None,), tf.int32, name="labels")] if self.num_classes else []

    def _export_log_prob(self, images, labels):
        """The log_prob that is exported; deterministic models export `_log_prob` itself."""
        return self._log_prob(images, labels)

    # Keras does not save seed-generator state; without it a resumed run would draw anew.
    _SEED_STATE_KEY = "seed_generator_state"

    # Nor the seed generators of sublayers such as Dropout: kept in order, one key each.
    _SUBLAYER_SEED_PREFIX = "sublayer_seed_state_"

    def _sublayer_seed_generators(self):
        return [
            generator
            for layer in self._flatten_layers(include_self=False)
            for generator in getattr(layer, "_seed_generators", [])
        ]

    # Options that a weights-only copy sets, where it drops weights only training reads.
    weights_only_overrides = {}

    def weights_only_copy(self):
        """The model a zoo folder keeps, saved without optimizer state: this one, unless a family
        can drop weights that only training reads (`Diffusion` keeps its average alone, with the
        options in `weights_only_overrides`)."""
        return self

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_STATE_KEY] = np.asarray(self.seed_generator.state)
        for index, generator in enumerate(self._sublayer_seed_generators()):
            store[f"{self._SUBLAYER_SEED_PREFIX}{index}"] = np.asarray(generator.state)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_STATE_KEY in keys:
            self.seed_generator.state.assign(np.asarray(store[self._SEED_STATE_KEY]))
        for index, generator in enumerate(self._sublayer_seed_generators()):
            key = f"{self._SUBLAYER_SEED_PREFIX}{index}"
            if key in keys:  # files saved before kept none
                generator.state.assign(np.asarray(store[key]))
        super().load_own_variables(
            {
                k: store[k]
                for k in keys
                if k != self._SEED_STATE_KEY and not k.startswith(self._SUBLAYER_SEED_PREFIX)
            }
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            image_shape=list(self.image_shape),
            num_levels=self.num_levels,
            num_classes=self.num_classes,
            seed=self.seed,
        )
        return config
