"""Test figures from Python: what `python -m keras_gen evaluate` prints, as a dict.

Models with a likelihood get their test NLL (nats per image) and bits per dimension; GANs get
Fréchet distances on the MNIST classifier's logits and features, its score and, for conditional
models, label accuracy, each beside the real-data floor (train against test images). Diffusion
models get both: the samples' figures, and their variational bound as "nll_bound" and
"bits_per_dim_bound" (`--num-samples` counts the samples; `--split test[:1000]` bounds fewer
images).
"""

import math
import os
import time

import keras
import numpy as np

from keras_gen import formats, metrics, precision, runtime, zoo
from keras_gen.models.diffusion import DiffusionModel
from keras_gen.models.vqvae import VQVAE, VQVAEPrior, code_usage


def generator_figures(runner, source, count=10_000, classifier=None):
    """{fd_logits, fcd, classifier_score[, label_accuracy], and the real-data floors} of `count`
    samples against the first `count` test images of `source` (mnist).

    A conditional model is asked for the test images' own labels, so its samples follow the test
    split's class mix, as the real images of the floor do (uniform labels alone add about 0.2 to
    the FD on logits of real MNIST images).
    """
    classifier = metrics.load_classifier(classifier)
    (test, test_labels), train = (
        source.real_images("test", count, labels=True),
        source.real_images("train", count),
    )
    labels = np.resize(test_labels, count) if runner.num_classes else None
    generated = runtime.sample_in_batches(
        runner, runner.make_noise(count, seed=0), labels, batch_size=500
    )
    test_outputs = metrics.classifier_outputs(classifier, test)  # shared by both comparisons
    results = metrics.evaluate_samples(
        classifier, generated, labels=labels, real_outputs=test_outputs
    )
    floor = metrics.evaluate_samples(classifier, train, real_outputs=test_outputs)
    results["fd_logits_real_floor"] = floor["fd_logits"]
    results["fcd_real_floor"] = floor["fcd"]
    results["classifier_score_real"] = floor["classifier_score"]
    print(
        f"{count} generated vs {len(test)} real test images; floor: {len(train)} train vs test images"
    )
    return results


def likelihood_figures(source, split="test", model=None, runner=None, num_samples=None, verbose=2):
    """{nll (nats per image), bits_per_dim, ...}: `model.evaluate` for a Keras model, else the
    export `runner`'s log_prob, over `split` of `source`.

    Args:
        num_samples: a VAE's importance samples k (default: the model's `eval_num_samples`).
    """
    if model is not None:
        model = precision.float32_twin(model)  # score in float32 after bf16 training
        model.compile()
        if num_samples is not None and hasattr(model, "eval_num_samples"):
            model.eval_num_samples = num_samples
        dataset = source.load(split, labels=model.num_classes is not None, shuffle=False)
        results = model.evaluate(dataset, return_dict=True, verbose=verbose)
        subpixels = model.num_subpixels
    else:
        dataset = source.load(split, labels=runner.num_classes is not None, shuffle=False)
        total, count = 0.0, 0
        # Keras' own verbosity: 1 updates in place (a terminal), 2 stays quiet until the figures.
        bar = keras.utils.Progbar(None, unit_name="image", verbose=verbose)
        for batch in dataset:
            images, labels = batch if isinstance(batch, tuple) else (batch, None)
            total -= float(np.sum(runner.log_prob(images.numpy(), labels)))
            count += len(images)
            bar.add(len(images))
        results = {"nll": total / count}
        subpixels = int(np.prod(runner.image_shape))
    results["bits_per_dim"] = results["nll"] / (subpixels * math.log(2))
    return results


def evaluate(
    artifact,
    source,
    *,
    split="test",
    runtime_name=None,
    num_samples=None,
    classifier=None,
    verbose=2,
):
    """Test figures of a zoo name (through its export), a .keras file, an export directory or a
    Keras model.

    Args:
        artifact: e.g. "pixelcnn_binarized_mnist", "runs/vae/model.keras", "exports/vae", or a
            loaded model (e.g. a diffusion model after `configure_sampling(sampling_steps=10)`).
        source: a `keras_gen.data.Source` with the model's data (e.g. binarized_mnist, or mnist).
        runtime_name: for an export: "savedmodel" (default), "tflite", "tflite-int8", "tflite-float16".
        num_samples: a VAE's importance samples k; a GAN's number of samples (default 10,000).
    Returns:
        {figure: value}, with "seconds".

    Example:

    ```python
    from keras_gen import data, evaluation

    source = data.Source("binarized_mnist", manual_dir="../shared/data")
    evaluation.evaluate("pixelcnn_binarized_mnist", source)["nll"]          # 84.92 nats
    ```
    """
    start = time.time()
    if isinstance(artifact, keras.Model):
        path, model = None, artifact
        artifact = type(model).__name__  # for error messages
    else:
        path = zoo.resolve(artifact)
        model = runtime.load_keras(path) if path.endswith(".keras") else None
    runner = (
        runtime.KerasRunner(model)
        if model is not None
        else runtime.open_artifact(path, runtime_name)
    )
    source.check_matches(runner.image_shape, runner.num_levels, artifact)
    if _is_diffusion(path, model):
        # Its Keras evaluate reports the denoising loss; its bound is its log_prob, as exported.
        bound = likelihood_figures(source, split, None, runner, verbose=verbose)
        results = generator_figures(runner, source, num_samples or 10_000, classifier)
        results.update(nll_bound=bound["nll"], bits_per_dim_bound=bound["bits_per_dim"])
    elif runner.has_log_prob:
        results = likelihood_figures(
            source, split, model, None if model is not None else runner, num_samples, verbose
        )
    else:
        results = generator_figures(runner, source, num_samples or 10_000, classifier)
    code_model = model if isinstance(model, (VQVAE, VQVAEPrior)) else _code_model_beside(path)
    if code_model is not None:
        results.update(code_figures(code_model, source, split, verbose))
    results["seconds"] = time.time() - start
    return results


def _is_diffusion(path, model):
    if model is not None:
        return isinstance(model, DiffusionModel)
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    if os.path.basename(directory) == formats.SAVED_MODEL:
        directory = os.path.dirname(directory)
    try:
        class_name = formats.read_manifest(directory).get("class_name")
    except (OSError, ValueError):
        return False
    from keras_gen import models

    return isinstance(getattr(models, class_name, None), type) and issubclass(
        getattr(models, class_name), DiffusionModel
    )


def _code_model_beside(path):
    """The model.keras beside the export of a VQ-VAE (a zoo folder), or None: the codes'
    figures need the encoder, which exports leave out."""
    if path is None or not os.path.isdir(path):
        return None
    keras_file = os.path.join(path, "model.keras")
    if not os.path.exists(keras_file):
        return None
    if formats.read_manifest(path).get("class_name") not in (VQVAE.__name__, VQVAEPrior.__name__):
        return None
    return runtime.load_keras(keras_file)


def code_figures(model, source, split="test", verbose=2):
    """A VQ-VAE's figures over `split` of `source`: reconstruction_mse (pixels in [0, 1]), the
    codes' perplexity and dead codes (of num_codes) and, for a `VQVAEPrior`, prior_nll (nats per
    code grid) with prior_bits_per_code.

    Example:

    ```python
    from keras_gen import data, evaluation, runtime

    source = data.Source("mnist", manual_dir="../shared/data")
    evaluation.code_figures(runtime.load_keras("runs/vqvae/model.keras"), source)
    ```
    """
    vqvae = model.vqvae if isinstance(model, VQVAEPrior) else model
    conditional = model.num_classes is not None
    dataset = source.load(split, labels=conditional, shuffle=False)
    images = dataset.map(lambda *batch: batch[0])
    codes = np.concatenate([vqvae.encode_codes(batch).numpy().ravel() for batch in images])
    perplexity, dead = code_usage(codes, vqvae.num_codes)
    vqvae.compile()
    scores = vqvae.evaluate(images, return_dict=True, verbose=verbose)
    results = {
        "reconstruction_mse": scores["reconstruction_mse"],
        "code_perplexity": perplexity,
        "dead_codes": dead,
    }
    if isinstance(model, VQVAEPrior):
        model.compile()
        nll = model.evaluate(dataset, return_dict=True, verbose=verbose)["nll"]
        results["prior_nll"] = nll
        results["prior_bits_per_code"] = nll / (np.prod(vqvae.grid_shape) * math.log(2))
    return results
