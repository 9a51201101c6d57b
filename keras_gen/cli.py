"""Command line: python -m keras_gen train|sample|export|evaluate|quickstart."""

import argparse
import json
import math
import os
import sys
import time
import warnings

import numpy as np

from keras_gen import quiet, validation
from keras_gen.precision import PRECISION_CHOICES

# The runtimes of an export directory (keras_gen.runtime.RUNTIMES, without importing TensorFlow here).
RUNTIMES = ("savedmodel", "tflite", "tflite-int8", "tflite-float16")
QUICKSTART_STEPS = 1000  # the least training the quickstart gives your own images


def _verbosity():
    """Keras progbar when a person watches, one line per epoch in logs and CI."""
    return 1 if quiet.live_progress() else 2


def _parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_model_options(pairs):
    """["key=value", ...] from --set -> {key: JSON value, or the text if it is not JSON}."""
    options = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set takes key=value (e.g. --set latent_dim=32), got {pair!r}.")
        key, value = pair.split("=", 1)
        options[key] = _parse_value(value)
    return options


def _number_type(convert, is_valid, expected):
    """An argparse type: `convert(text)`, refused unless `is_valid`, saying what was `expected`."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}") from None
        if not is_valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, received {value}")
        return value

    return parse


positive_int = _number_type(int, lambda value: value >= 1, "a whole number >= 1")
positive_float = _number_type(
    float, lambda value: math.isfinite(value) and value > 0, "a finite number > 0"
)


def add_precision_argument(parser, default=None):
    """--mixed-precision, as `train` and `quickstart` take it (`keras_gen.precision.resolve`)."""
    parser.add_argument(
        "--mixed-precision",
        nargs="?",
        const="auto",
        default=default,
        choices=PRECISION_CHOICES,
        help="auto: bfloat16 (mixed_bfloat16 policy) where the CPU or GPU computes "
        "it natively (avx512_bf16 or AMX; compute capability 8.0), else float32, which is "
        "faster there; float32 for models whose likelihood trains worse in bfloat16 (the "
        "discretized logistics of 8-bit colour models); float32, bfloat16 or float16 "
        "(mixed_float16, with loss scaling): as asked. Variables stay float32. "
        "The decision is printed." + (f" Default: {default}." if default else " Default: float32."),
    )


class ArgumentError(ValueError):
    """A command-line argument that argparse accepted but the command cannot use."""


class Parser(argparse.ArgumentParser):
    """Raises ArgumentError instead of exiting, so `main` reports it like every other error.

    Example:

    ```python
    parser = Parser(prog="demo")
    parser.add_argument("--num", type=int, required=True)
    try:
        parser.parse_args([])
    except ArgumentError as error:                           # not SystemExit: main() prints it
        message = str(error)
    ```
    """

    def error(self, message):
        raise ArgumentError(f"{self.prog}: {message}")


def _add_image_options(parser, images_help):
    """--images PATH and how to read it: --image-size, --channels, --skip-bad-images."""
    parser.add_argument("--images", default=None, metavar="PATH", help=images_help)
    parser.add_argument(
        "--image-size",
        type=image_size,
        default=None,
        metavar="H[xW]",
        help="with --images: resize (aspect kept, centre crop) to H x W; default an array's own.",
    )
    parser.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="with --images: 1 (grey) or 3 (RGB); default an array's own, 3 for a folder.",
    )
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="with --images: leave out (and count) files that do not decode, instead of an error.",
    )


def _add_data_options(parser, split, dataset_required=True):
    parser.add_argument(
        "--dataset",
        required=False,
        help="tfds dataset name: mnist, binarized_mnist, fashion_mnist, cifar10, ...",
    )
    _add_image_options(
        parser,
        "your own images instead of --dataset: a folder of PNG/JPEG/BMP/GIF files (class "
        "sub-folders give labels) or a .npy/.npz array of uint8 images; its held-out share is "
        "the 'test' split. With --recipe: where the recipe's images are.",
    )
    parser.set_defaults(dataset_required=dataset_required)
    parser.add_argument("--split", default=split, help=f"tfds split (default {split}).")
    parser.add_argument(
        "--preprocessing",
        default="none",
        choices=["none", "dynamic_binarize", "threshold_binarize"],
        help="none: keep grey levels (quantized to --bits); dynamic_binarize: a fresh "
        "Bernoulli draw per epoch; threshold_binarize: x >= 128. "
        "binarized_mnist is already binary.",
    )
    parser.add_argument(
        "--bits",
        type=int,
        default=8,
        choices=range(1, 9),
        metavar="{1..8}",
        help="quantize grey levels to this many bits.",
    )
    parser.add_argument("--batch-size", type=positive_int, default=128, help="images per batch.")
    parser.add_argument(
        "--take", type=positive_int, default=None, help="use only the first N images (quick runs)."
    )
    parser.add_argument(
        "--manual-dir",
        default=None,
        help="folder of the dataset's raw files for offline use (or a parent with a "
        "sub-folder per dataset); default: $KERAS_GEN_MANUAL_DIR.",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where tfds keeps prepared datasets; default: $KERAS_GEN_DATA_DIR or "
        "~/tensorflow_datasets.",
    )


def build_parser():
    parser = Parser(prog="python -m keras_gen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = commands.add_parser(
        "train",
        help="train a model with model.fit",
        description="Train a zoo model; writes model.keras, a sample grid PNG "
        "per epoch, loss.png, history.json and TensorBoard logs.",
    )
    train.add_argument("model", nargs="?", help="model name, e.g. vae (or give --recipe).")
    train.add_argument(
        "--recipe",
        default=None,
        help="a zoo name (or a recipe.json): train that zoo model again as its recipe says "
        "(model, options, data, precision, epochs, learning-rate schedule); with --resume, continue.",
    )
    _add_data_options(train, "train", dataset_required=False)
    train.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="passes over the data (default 5, or the recipe's; with --resume, the total).",
    )
    train.add_argument(
        "--steps-per-epoch", type=positive_int, default=None, help="cap on batches per epoch."
    )
    train.add_argument(
        "--learning-rate",
        type=positive_float,
        default=None,
        help="default: the model's own; with --resume, sets a new rate from here on (e.g. lower "
        "for the last epochs), optimizer state kept.",
    )
    train.add_argument(
        "--validation-split",
        default="test[:1000]",
        help="split evaluated after each epoch (default test[:1000]; 'none' to skip); with "
        "--images, the held-out share instead (default 5%%, e.g. 0.1 or 10%%), of which the first "
        "1,000 are evaluated.",
    )
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="model option, JSON value, e.g. --set latent_dim=32 --set widths=[32,64].",
    )
    add_precision_argument(train)
    train.add_argument(
        "--strategy",
        default="default",
        choices=["default", "mirrored", "multi_worker"],
        help="tf.distribute strategy: default (one device), mirrored (every local GPU, or CPU), "
        "multi_worker (MultiWorkerMirroredStrategy; the cluster comes from $TF_CONFIG, "
        "see the README). --batch-size is the global batch.",
    )
    train.add_argument(
        "--sample-quality",
        type=positive_int,
        nargs="?",
        const=10_000,
        default=None,
        metavar="N",
        help="GANs on mnist: after each epoch, score N (default 10,000) samples against "
        "the first N train images with the MNIST classifier (logged as sample_fd_logits, "
        "sample_fcd, ...; the test split stays out), and keep the epoch with the lowest "
        "sample_fd_logits in best.keras.",
    )
    train.add_argument(
        "--classifier",
        default=None,
        help="--sample-quality: the MNIST classifier (default saved_models/mnist_classifier.keras).",
    )
    train.add_argument(
        "--seed", type=int, default=0, help="seed for weights and the sample grid noise."
    )
    train.add_argument("--out", required=True, help="run directory to write.")
    train.add_argument(
        "--from",
        dest="from_model",
        metavar="MODEL_KERAS",
        help="the first stage's model.keras, for a model built on one: train vqvae_prior "
        "--from runs/vqvae/model.keras.",
    )
    train.add_argument(
        "--average-weights-from",
        type=int,
        metavar="EPOCH",
        help="from this epoch on, also keep the mean of the weights after each epoch in "
        "averaged.keras (stochastic weight averaging; best at a low, constant learning rate).",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its model.keras (optimizer state included) "
        "until --epochs epochs in total; the same data flags as the first run.",
    )

    sample = commands.add_parser(
        "sample",
        help="sample from a .keras file, an export or a .tflite file",
        description="Draw samples; writes a PNG grid or an .npy of uint8 pixels.",
    )
    sample.add_argument(
        "source",
        help="a zoo name (see `zoo`), model.keras, an export directory, its "
        "saved_model/ or a .tflite file.",
    )
    sample.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=None,
        help="for an export directory: which of its models to run (default savedmodel; "
        "tflite-int8 and tflite-float16 run its quantized copies).",
    )
    sample.add_argument("--num", type=positive_int, default=64, help="how many images.")
    sample.add_argument("--seed", type=int, default=0, help="noise seed: same seed, same images.")
    sample.add_argument(
        "--labels",
        default=None,
        help="conditional models: one class for all, or a comma list of N classes.",
    )
    sample.add_argument("--batch-size", type=positive_int, default=64, help="images per call.")
    add_diffusion_sampling_arguments(sample)
    sample.add_argument(
        "--out", required=True, help="output .png (grid) or .npy (uint8 pixels, 0..255)."
    )

    export = commands.add_parser(
        "export",
        help="export a .keras model to SavedModel + TFLite",
        description="Writes DIR/saved_model, DIR/model.tflite and DIR/export.json.",
    )
    export.add_argument("model_file", help="the .keras file to export, or a zoo name.")
    export.add_argument("--out", required=True, help="export directory (must not exist).")
    export.add_argument(
        "--overwrite", action="store_true", help="replace an existing export directory."
    )
    export.add_argument(
        "--quantize",
        default="",
        help="also write quantized TFLite copies, comma-separated: int8 (model_int8.tflite, "
        "dynamic-range int8 weights), float16 (model_float16.tflite).",
    )
    add_diffusion_sampling_arguments(export)

    evaluate = commands.add_parser(
        "evaluate",
        help="report test metrics (NLL in nats and bits/dim)",
        description="Evaluate a .keras model or an export on a test split.",
    )
    evaluate.add_argument(
        "source", help="a zoo name (scored through its export), model.keras or an export directory."
    )
    evaluate.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=None,
        help="for an export directory: which of its models to run (default savedmodel).",
    )
    evaluate.add_argument(
        "--num-samples",
        type=positive_int,
        default=None,
        help="VAE: importance samples k of the IWAE estimate (default: the model's). "
        "GANs: how many images to generate (default 10000).",
    )
    evaluate.add_argument(
        "--classifier",
        default=None,
        help="GANs: the MNIST classifier whose features give FCD "
        "(default saved_models/mnist_classifier.keras).",
    )
    add_diffusion_sampling_arguments(evaluate)
    _add_data_options(evaluate, "test")

    classifier = commands.add_parser(
        "train-classifier",
        help="train the MNIST classifier behind GAN metrics",
        description="Train the small MNIST classifier whose features give FCD.",
    )
    classifier.add_argument("--epochs", type=positive_int, default=4, help="training epochs.")
    classifier.add_argument("--manual-dir", default=None, help="folder with the 4 MNIST .gz files.")
    classifier.add_argument("--data-dir", default=None, help="where tfds keeps prepared datasets.")
    classifier.add_argument(
        "--out", default=None, help="default saved_models/mnist_classifier.keras."
    )

    zoo_command = commands.add_parser(
        "zoo",
        help="list the trained zoo models with their figures",
        description="The models in saved_models/: test figures, published figures, size.",
    )
    zoo_command.add_argument(
        "--write-cards",
        action="store_true",
        help="also render each folder's card.json and files into its MODEL_CARD.md.",
    )
    zoo_command.add_argument(
        "--weights-only",
        action="store_true",
        help="rewrite every zoo model.keras that still carries optimizer state without it "
        "(zoo files keep weights and configuration; runs in progress keep theirs in in_training/).",
    )
    zoo_command.add_argument(
        "--picture",
        default=None,
        metavar="PNG",
        help="also draw 8 samples of every zoo model, one row each, through LiteRT.",
    )

    serve = commands.add_parser(
        "serve",
        help="serve a page that samples the zoo in your browser (LiteRT.js)",
        description="Serve a static page and the zoo's model.tflite files; the browser samples "
        "them on the device with LiteRT.js. Needs LiteRT.js once: npm ci --prefix keras_gen/web.",
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free).")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback only)."
    )
    serve.add_argument(
        "--files",
        default=None,
        metavar="DIR",
        help="also serve this folder's files under /files/ (noise .npy files for the URL "
        "contract: /?model=NAME&noise=/files/noise.npy&autorun=1).",
    )
    serve.add_argument(
        "--manual-dir",
        default=None,
        help="folder of binarized_mnist's .amat files (or its parent), so the page offers "
        "test digits to complete; default $KERAS_GEN_MANUAL_DIR.",
    )
    serve.add_argument(
        "--zoo",
        default=None,
        metavar="DIR",
        help="serve the exports in DIR's sub-folders (each written by `export`, named by its "
        "folder) instead of saved_models/; as $KERAS_GEN_ZOO_DIR.",
    )
    serve.add_argument(
        "--images",
        default=None,
        metavar="PATH",
        help="your images (a folder or a .npy/.npz array): the page offers the first of their "
        "held-out images, at each model's size, to complete.",
    )

    quickstart = commands.add_parser(
        "quickstart",
        help="train, sample, export and sample via LiteRT",
        description="The end-to-end tour: a short VAE run on MNIST, or on your images "
        "(--images), then its samples, export and LiteRT samples.",
    )
    quickstart.add_argument(
        "--manual-dir", default=None, help="folder with the 4 MNIST .gz files, for offline use."
    )
    quickstart.add_argument("--data-dir", default=None, help="where tfds keeps prepared datasets.")
    _add_image_options(
        quickstart,
        "your own images instead of MNIST (a folder or a .npy/.npz array): the VAE then "
        "models their 8-bit pixels with a discretized logistic per sub-pixel.",
    )
    quickstart.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"training epochs (default: 2 on MNIST; on your images, enough for "
        f"{QUICKSTART_STEPS:,} steps).",
    )
    quickstart.add_argument(
        "--learning-rate", type=positive_float, default=1e-3, help="Adam's learning rate."
    )
    quickstart.add_argument("--out", default="runs/quickstart", help="where to write everything.")
    add_precision_argument(quickstart, default="auto")
    for command in commands.choices.values():
        command.add_argument(
            "--verbose",
            action="store_true",
            help="also show TensorFlow's C++ logs and third-party progress bars, which are hidden "
            "unless TF_CPP_MIN_LOG_LEVEL is set.",
        )
    return parser


def image_size(text):
    """ "32" or "32x24" -> (H, W)."""
    try:
        sizes = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        sizes = ()
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected H or HxW in pixels, e.g. 32 or 32x24; got {text!r}"
        )
    return sizes * 2 if len(sizes) == 1 else sizes


def held_out_fraction(text):
    """--validation-split with --images: "5%" or "0.05" -> 0.05, else None (a split name)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None
    if not 0.0 < value < 1.0:
        raise validation.InputError(
            f"--validation-split {text}: with --images, the held-out share, between 0 and 1 "
            "(e.g. 0.05 or 5%)."
        )
    return value


def refuse_image_flags_without_images(args):
    """--image-size and --channels say how to read --images; without it they are an error."""
    for flag in ("image_size", "channels"):
        if getattr(args, flag, None) is not None:
            raise validation.InputError(f"--{flag.replace('_', '-')} goes with --images.")


def data_source(args):
    """The data source of the data flags: a `keras_gen.data.Source` for --dataset, an
    `ImageSource` for --images."""
    from keras_gen import data

    given = [flag for flag in ("dataset", "images") if getattr(args, flag, None)]
    if len(given) == 2:
        raise validation.InputError("Give --dataset or --images, not both.")
    if not given and args.dataset_required:
        raise validation.InputError("Give the data: --dataset NAME or --images PATH.")
    if getattr(args, "images", None):
        from keras_gen.image_files import ImageSource

        split = getattr(args, "validation_split", None)
        fraction = held_out_fraction(split) if split else None
        if fraction is not None:
            args.validation_split = "test[:1000]"
        return ImageSource(
            args.images,
            image_size=args.image_size,
            channels=args.channels,
            preprocessing=args.preprocessing,
            bits=args.bits,
            batch_size=args.batch_size,
            take=args.take,
            validation_fraction=fraction or 0.05,
            skip_bad_images=args.skip_bad_images,
        )
    refuse_image_flags_without_images(args)
    return data.Source(
        args.dataset,
        preprocessing=args.preprocessing,
        bits=args.bits,
        batch_size=args.batch_size,
        take=args.take,
        manual_dir=args.manual_dir,
        data_dir=args.data_dir,
    )


def _train_recipe(args):
    from keras_gen import recipes

    given = [
        flag
        for flag, value in (
            ("a model name", args.model),
            ("--dataset", args.dataset),
            ("--set", args.set),
            ("--mixed-precision", args.mixed_precision),
            ("--learning-rate", args.learning_rate),
            ("--average-weights-from", args.average_weights_from),
        )
        if value
    ]
    if given:
        raise ArgumentError(
            f"--recipe sets the model, data, precision and schedule; drop {', '.join(given)}."
        )
    return recipes.train(
        recipes.load(args.recipe),
        args.out,
        resume=args.resume,
        manual_dir=args.manual_dir,
        data_dir=args.data_dir,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        take=args.take,
        images=args.images,
        verbose=_verbosity(),
    )


def cmd_train(args):
    from keras_gen import training

    check_writable(os.path.join(args.out, "model.keras"))
    if args.recipe:
        model = _train_recipe(args)
    elif not args.model or not (args.dataset or args.images):
        raise ArgumentError(
            "train needs a model name and --dataset or --images (e.g. train vae --dataset mnist), "
            "or --recipe with a zoo name."
        )
    else:
        model = _train_model(args)
    if training.is_chief(model.distribute_strategy):
        out = os.path.abspath(args.out)
        print(
            f"model:   {os.path.join(out, 'model.keras')}\nsamples: {os.path.join(out, 'samples')}/"
            f"\ncurves:  {os.path.join(out, 'loss.png')}\nlogs:    {os.path.join(out, 'logs')}"
        )
    return model


def _train_model(args):
    from keras_gen import training

    return training.train(
        args.model,
        data_source(args),
        args.out,
        epochs=args.epochs or 5,
        split=args.split,
        validation_split=args.validation_split,
        steps_per_epoch=args.steps_per_epoch,
        learning_rate=args.learning_rate,
        options=parse_model_options(args.set),
        mixed_precision=args.mixed_precision,
        strategy=args.strategy,
        sample_quality=args.sample_quality,
        classifier=args.classifier,
        seed=args.seed,
        resume=args.resume,
        from_model=args.from_model,
        average_weights_from=args.average_weights_from,
        verbose=_verbosity(),
    )


def _labels_arg(text, count):
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ArgumentError(
            f"--labels takes one class or a comma list of {count} classes (e.g. 3 or 0,1,2), "
            f"received {text!r}."
        ) from None
    if len(values) not in (1, count):
        raise ArgumentError(
            f"--labels: expected 1 or {count} classes (one per image), received {len(values)}."
        )
    return np.array(values * count if len(values) == 1 else values, np.int32)


def write_samples(images, path):
    """Writes uint8 pixel images to a .png grid or an .npy file."""
    from keras_gen import plotting
    from keras_gen.files import atomic_path

    if path.endswith(".npy"):
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as file:
                np.save(file, images)
    elif path.endswith(".png"):
        plotting.save_grid(images, path)
    else:
        raise ValueError(f"--out must end in .png or .npy, got {path!r}.")


def check_writable(path, flag="--out"):
    """Fails before any slow work when `path` could not be written: an ancestor is a file, or read-only."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ArgumentError(f"{flag} {path}: {folder} is a file, not a folder.")
    if not os.access(folder, os.W_OK):
        raise ArgumentError(f"{flag} {path}: {folder} is not writable.")


def add_diffusion_sampling_arguments(parser):
    """--sampling-steps, --guidance-scale and --sampler: a diffusion model's sampling settings."""
    parser.add_argument(
        "--sampling-steps",
        type=positive_int,
        default=None,
        help="diffusion models: denoising steps (default: the model's, 50 for the zoo's).",
    )
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="class-conditional diffusion models: classifier-free guidance w (default: the model's).",
    )
    parser.add_argument(
        "--sampler",
        choices=("ddim", "ddpm"),
        default=None,
        help="diffusion models: deterministic DDIM or ancestral DDPM (default: the model's).",
    )


def diffusion_sampling(args, source):
    """The Keras model of `source` (a .keras file, a zoo name or folder) with the diffusion
    sampling flags applied, or None when none was given. Exports fix these settings, so the flags
    need a model.keras."""
    from keras_gen import precision, runtime, zoo
    from keras_gen.models.diffusion import DiffusionModel

    settings = dict(
        sampling_steps=args.sampling_steps, guidance_scale=args.guidance_scale, sampler=args.sampler
    )
    given = ", ".join(f"--{k.replace('_', '-')}" for k, v in settings.items() if v is not None)
    if not given:
        return None
    path = zoo.resolve(source)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, zoo.KERAS_FILE)):
        path = os.path.join(path, zoo.KERAS_FILE)
    if not path.endswith(".keras") or getattr(args, "runtime", None) not in (None, "keras"):
        raise validation.InputError(
            f"{given}: an export samples as it was exported; give the model.keras (or a zoo name "
            "without --runtime), or export it again with these flags."
        )
    model = precision.float32_twin(runtime.load_keras(path))
    if not isinstance(model, DiffusionModel):
        raise validation.InputError(
            f"{given}: for diffusion models; this is a {type(model).__name__}."
        )
    return model.configure_sampling(**settings)


def cmd_sample(args):
    from keras_gen import runtime, zoo

    if not args.out.endswith((".png", ".npy")):
        raise ValueError(f"--out must end in .png or .npy, got {args.out!r}.")
    check_writable(args.out)
    model = diffusion_sampling(args, args.source)
    runner = (
        runtime.KerasRunner(model)
        if model is not None
        else runtime.open_artifact(zoo.resolve(args.source), args.runtime)
    )
    noise = runner.make_noise(args.num, seed=args.seed)
    labels = _labels_arg(args.labels, args.num)
    start = time.time()
    images = runtime.sample_in_batches(runner, noise, labels, batch_size=args.batch_size)
    write_samples(images, args.out)
    print(f"{len(images)} samples in {time.time() - start:.1f} s -> {os.path.abspath(args.out)}")
    return images


def cmd_export(args):
    from keras_gen import export, runtime, zoo

    quantize = export.check_quantize(args.quantize)  # before the slow load
    check_writable(os.path.join(args.out, "export.json"))
    model = diffusion_sampling(args, args.model_file) or runtime.load_keras(
        zoo.keras_path(args.model_file)
    )
    return export.export(model, args.out, overwrite=args.overwrite, quantize=quantize)


def cmd_train_classifier(args):
    from keras_gen import metrics

    out = args.out or metrics.DEFAULT_CLASSIFIER
    _, accuracy = metrics.train_classifier(out, args.epochs, args.manual_dir, args.data_dir)
    print(f"test accuracy {accuracy:.4f} -> {out}")


def cmd_evaluate(args):
    from keras_gen import evaluation

    results = evaluation.evaluate(
        diffusion_sampling(args, args.source) or args.source,
        data_source(args),
        split=args.split,
        runtime_name=args.runtime,
        num_samples=args.num_samples,
        classifier=args.classifier,
        verbose=_verbosity(),
    )
    for name, value in results.items():
        print(f"{name:>22}: {value:.4f}")
    return results


def cmd_serve(args):
    from keras_gen import serve

    if args.zoo:
        from keras_gen import zoo

        os.environ[zoo.ZOO_DIR_ENV] = os.path.abspath(args.zoo)
        if not serve.catalogue():  # the page's own rule: a sub-folder with a model.tflite
            raise validation.InputError(
                f"--zoo {args.zoo}: no sub-folder holds an export with a model.tflite "
                "(write one with: python -m keras_gen export MODEL.keras --out DIR/NAME)."
            )

    server = serve.make_server(
        args.host, args.port, files_dir=args.files, manual_dir=args.manual_dir, images=args.images
    )
    host, port = server.server_address[:2]
    print(f"keras_gen zoo page: http://{host}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_zoo(args):
    from keras_gen import zoo

    if args.weights_only:
        for name in zoo.names():
            path = zoo.keras_path(name)
            if os.path.exists(path) and zoo.has_optimizer_state(path):
                before, after = zoo.write_weights_only(path, path)
                print(f"{path}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB (weights only)")
    entries = zoo.list()
    if args.write_cards:
        for entry in entries:
            print(f"wrote {zoo.write_card(entry['name'])}")
    if args.picture:
        check_writable(args.picture, "--picture")
        _zoo_picture(entries, args.picture)
    print(f"{len(entries)} models in {zoo.zoo_dir()}\n")
    print("| name | model | test figure | published | size (MB) | LiteRT ms/image |")
    print("|---|---|---|---|---:|---:|")
    for entry in entries:
        latency = entry["litert_ms_per_image"]
        print(
            f"| {entry['name']} | {entry['model']} | {_figures(entry['figures'])} | "
            f"{_figures(entry['published'])} | {entry['size_mb']:.1f} | "
            f"{'' if latency is None else f'{latency:g}'} |"
        )
    return entries


def _zoo_picture(entries, path, count=8):
    """One row of LiteRT samples per zoo model (labels 0..7 for conditional ones), same noise seed."""
    from keras_gen import plotting, zoo

    rows = {}
    for entry in entries:
        runner = zoo.open(entry["name"], runtime="tflite")
        labels = (
            np.arange(count, dtype=np.int32) % runner.num_classes if runner.num_classes else None
        )
        rows[entry["name"]] = runner.sample(runner.make_noise(count, seed=0), labels)
    plotting.save_rows(rows, path)
    print(f"wrote {path}")


def _figures(figures):
    return (
        ", ".join(
            f"{name} {value:g}" if isinstance(value, (int, float)) else f"{name} {value}"
            for name, value in figures.items()
        )
        or "-"
    )


def cmd_quickstart(args):
    from keras_gen import data, export, runtime, training

    out = os.path.abspath(args.out)
    if os.path.exists(out):
        raise FileExistsError(f"{out} exists; remove it or pass another --out.")
    if args.images:
        from keras_gen.image_files import ImageSource

        source = ImageSource(
            args.images,
            image_size=args.image_size,
            channels=args.channels,
            batch_size=64,
            skip_bad_images=args.skip_bad_images,
        )
        # The colour zoo VAE's network (saved_models/vae_emoji): the default one's 16 latents
        # draw grey fields from the prior on 3,786 emoji, even after 30 epochs.
        options = {"likelihood": "logistic", "widths": [64, 128], "latent_dim": 64, "beta": 3}
        height, width, channels = source.image_shape()
        what = f"your images ({height}x{width}x{channels}, 8-bit)"
        # A small folder is few steps an epoch: train for at least QUICKSTART_STEPS.
        epochs = args.epochs or max(2, math.ceil(QUICKSTART_STEPS * 64 / source.count("train")))
    else:
        refuse_image_flags_without_images(args)
        source = data.Source(
            "mnist",
            preprocessing="dynamic_binarize",
            batch_size=64,
            manual_dir=args.manual_dir,
            data_dir=args.data_dir,
        )
        options = None
        what = "MNIST (dynamically binarized)"
        epochs = args.epochs or 2
    print(f"1/4 training a VAE on {what}, {epochs} epochs of batches of 64")
    model = training.train(
        "vae",
        source,
        os.path.join(out, "vae"),
        epochs=epochs,
        learning_rate=args.learning_rate,
        options=options,
        mixed_precision=args.mixed_precision,
        verbose=_verbosity(),
    )
    print("2/4 sample grid from the trained model")
    grid_path = os.path.join(out, "samples_keras.png")
    write_samples(model.sample(model.make_noise(64, seed=1)), grid_path)
    print(f"    {grid_path}")
    print("3/4 export to SavedModel + TFLite")

    export_dir = os.path.join(out, "export")
    export.export(model, export_dir)
    print("4/4 sampling through LiteRT")
    runner = runtime.open_artifact(os.path.join(export_dir, "model.tflite"))
    tflite_path = os.path.join(out, "samples_tflite.png")
    write_samples(runner.sample(runner.make_noise(64, seed=1)), tflite_path)
    print(
        f"\nDone. Files:\n  model     {os.path.join(out, 'vae', 'model.keras')}\n"
        f"  samples   {grid_path}\n  export    {export_dir}/ (saved_model/, model.tflite, export.json)\n"
        f"  LiteRT    {tflite_path}\n"
        f"  browser   python -m keras_gen serve --zoo {out}"
    )


COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "export": cmd_export,
    "evaluate": cmd_evaluate,
    "train-classifier": cmd_train_classifier,
    "quickstart": cmd_quickstart,
    "zoo": cmd_zoo,
    "serve": cmd_serve,
}


def short_warning(message, category, filename, lineno, line=None):
    """A Python warning as the quiet command line prints it: one line, without the source line
    that raised it (--verbose keeps Python's own format)."""
    return f"warning: {message}\n"


def quiet_python_logs():
    """Third-party Python chatter off the quiet command line: absl's warnings (tfds') and
    tfds' progress bars; keras_gen prints its own line when it prepares a dataset. Python
    warnings print as one line each."""
    from absl import logging as absl_logging

    from keras_gen import data

    absl_logging.set_verbosity(absl_logging.ERROR)
    data.quiet_tfds()
    warnings.formatwarning = short_warning


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except ArgumentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from keras_gen import callbacks, data, export, quiet, recipes, runtime, serve, training, zoo

    if quiet.active():
        quiet_python_logs()

    expected = (
        validation.InputError,
        data.DatasetError,
        runtime.ArtifactError,
        zoo.ZooError,
        export.ExportError,
        callbacks.NonFiniteLossError,
        training.TrainingError,
        recipes.RecipeError,
        serve.ServeError,
        ValueError,
        OSError,
    )
    try:
        COMMANDS[args.command](args)
    except expected as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
