"""The trained zoo in `saved_models/`: list it, open a model by name, and load presets.

Each zoo folder holds an export (saved_model/, model.tflite, export.json),
usually `model.keras` (the trained Keras model, optimizer state included) and
`card.json` (what was measured, and how it was made), from which `write_card`
renders MODEL_CARD.md.

    keras_gen.zoo.list()                                   # [{name, model, dataset, figures, ...}, ...]
    runner = keras_gen.zoo.open("pixelcnn_binarized_mnist", runtime="tflite")
    model = keras_gen.models.PixelCNN.from_preset("pixelcnn_binarized_mnist")
"""

import builtins
import json
import os

from keras_gen import files, formats, registry
from keras_gen.conventions import describe_parity

ZOO_DIR_ENV = "KERAS_GEN_ZOO_DIR"
CARD = "card.json"
KERAS_FILE = "model.keras"
RECIPE = "recipe.json"


def recipe_command(name):
    """The one command that trains zoo model `name` again from its recipe.json."""
    return (
        f"python -m keras_gen train --recipe {name} --manual-dir ../shared/data --out runs/{name}"
    )


class ZooError(registry.PresetError):
    """A zoo name that does not exist, or a zoo folder without the file asked for."""


def zoo_dir():
    """The zoo's folder: $KERAS_GEN_ZOO_DIR, else saved_models/ beside the package (a clone or editable install)."""
    return os.environ.get(ZOO_DIR_ENV) or os.path.join(
        os.path.dirname(os.path.dirname(__file__)), "saved_models"
    )


def names():
    """Sorted names of the zoo's models (its folders holding an export or a .keras file)."""
    root = zoo_dir()
    if not os.path.isdir(root):
        return []
    return sorted(
        name
        for name in os.listdir(root)
        if os.path.exists(os.path.join(root, name, "export.json"))
        or os.path.exists(os.path.join(root, name, KERAS_FILE))
    )


def folder(name):
    """The folder of zoo model `name`; a wrong name raises ZooError listing the valid ones."""
    if name not in names():
        raise ZooError(
            f"No zoo model named {name!r}. The zoo has: {', '.join(names()) or 'nothing'} "
            f"(in {zoo_dir()})."
        )
    return os.path.join(zoo_dir(), name)


def card(name):
    """The zoo model's card.json as a dict ({} when it has none)."""
    path = os.path.join(folder(name), CARD)
    if not os.path.exists(path):
        return {}
    with builtins.open(path) as file:
        return json.load(file)


def list():  # noqa: A001  (KerasHub's name)
    """One dict per zoo model: name, model class, dataset, test figures, published figure, size in MB."""
    entries = []
    for name in names():
        path = folder(name)
        manifest = {}
        if os.path.exists(os.path.join(path, "export.json")):
            with builtins.open(os.path.join(path, "export.json")) as file:
                manifest = json.load(file)
        info = card(name)
        size = sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, names in os.walk(path)
            for f in names
        )
        entries.append(
            dict(
                name=name,
                model=info.get("model", manifest.get("class_name")),
                dataset=info.get("dataset"),
                figures=info.get("figures", {}),
                published=info.get("published", {}),
                litert_ms_per_image=info.get("litert_ms_per_image"),
                size_mb=size / 2**20,
                has_keras=os.path.exists(os.path.join(path, KERAS_FILE)),
            )
        )
    return entries


def resolve(source):
    """A path as given when it exists; else a zoo name's folder (its model.keras where a .keras is wanted)."""
    if os.path.exists(source) or os.sep in source or source.endswith((".keras", ".tflite")):
        return source
    return folder(source)


def keras_path(source):
    """The .keras file of a path or zoo name."""
    path = resolve(source)
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, KERAS_FILE)):
            raise ZooError(f"{path} holds no {KERAS_FILE}, only an export.")
        return os.path.join(path, KERAS_FILE)
    return path


def open(name, runtime=None, num_threads=None):  # noqa: A001  (the runners' counterpart of list)
    """A runner (`sample`, `log_prob`, `make_noise`) for zoo model `name`.

    Args:
        runtime: "savedmodel" (default), "tflite", "tflite-int8", "tflite-float16", or "keras".
    """
    from keras_gen import runtime as runtimes

    if runtime == "keras":
        return runtimes.open_artifact(keras_path(name))
    return runtimes.open_artifact(folder(name), runtime, num_threads=num_threads)


@registry.register_preset_loader
def load(source):
    """The trained Keras model of a zoo name or a folder holding model.keras.

    A zoo file holds weights and configuration, not optimizer state (as KerasHub presets do):
    compile the model (e.g. `model.compile_for_training()`) to train it further, with a fresh
    optimizer.
    """
    from keras_gen import runtime

    return runtime.load_keras(keras_path(source))


def write_weights_only(source, destination):
    """Writes a copy of the .keras file `source` without its optimizer state (what a zoo folder
    keeps) to `destination`; returns (bytes before, bytes after). It samples and scores exactly
    as `source` does: the weights and seed are unchanged, except that a family may drop weights
    only training reads (`GenerativeModel.weights_only_copy`).

    A run in progress keeps its full checkpoint in the folder's `in_training/` instead.
    """
    from keras_gen import runtime

    before = os.path.getsize(source)
    model = runtime.load_keras(source, compile=False).weights_only_copy()
    partial = destination + ".partial.keras"  # never a half-written zoo file
    model.save(partial)
    os.replace(partial, destination)
    return before, os.path.getsize(destination)


def has_optimizer_state(path):
    """Whether the .keras file at `path` carries optimizer state."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    return bool(config.get("compile_config"))


def update_card(name, **fields):
    """Sets `fields` in the zoo model's card.json, then re-renders MODEL_CARD.md; returns the card."""
    info = card(name)
    info.update(fields)
    with builtins.open(os.path.join(folder(name), CARD), "w") as file:
        json.dump(info, file, indent=1)
        file.write("\n")
    write_card(name)
    return info


def sample_parity(name):
    """How closely the zoo model's runtimes agree on samples (`conventions.EXACT_PIXELS` or
    `ROUNDED_PIXELS`): its export.json's, else its class's; None without an export."""
    manifest_path = os.path.join(folder(name), formats.MANIFEST)
    if not os.path.exists(manifest_path):
        return None
    manifest = formats.read_manifest(folder(name))
    if "sample_parity" in manifest:
        return manifest["sample_parity"]
    from keras_gen import models

    return getattr(models, manifest["class_name"]).sample_parity


# The figure a card's validation curve shows, by what the run logged: the first that it has.
CURVE_FIGURES = {
    "val_nll": "validation NLL (nats an image)",
    "sample_fd_logits": "Fréchet distance of 10,000 samples (classifier logits)",
    "val_loss": "validation loss",
}
CURVE_ROWS = 30  # longer runs show every k-th epoch and the last


def validation_curve(path):
    """Markdown lines of a folder's validation figure per epoch, from history.json, with each
    epoch's wall and CPU seconds where epochs.json has them; [] without such a figure for every
    epoch. An epoch that was not scored (None) shows a blank."""
    history = files.read_history(os.path.join(path, "history.json"))
    epochs = files.epochs_done(history)
    # A figure logged on some epochs only (sample quality switched on later) cannot be placed.
    key = next((key for key in CURVE_FIGURES if len(history.get(key, ())) == epochs > 0), None)
    if key is None:
        return []
    values = history[key]
    times = {e["epoch"]: e for e in files.read_epoch_times(os.path.join(path, files.EPOCH_TIMES))}
    step = -(-len(values) // CURVE_ROWS)
    shown = sorted(set(range(1, len(values) + 1, step)) | {len(values)})
    every = "every epoch" if step == 1 else f"epochs 1, {1 + step}, {1 + 2 * step}, … and the last"
    header, rule = f"| epoch | {CURVE_FIGURES[key]} |", "|---:|---:|"
    if times:
        header, rule = header + " wall s | CPU s |", rule + "---:|---:|"
    lines = [
        "",
        "## Validation curve",
        "",
        f"As the run logged it on its validation images, from `history.json` ({every}).",
        "",
        header,
        rule,
    ]
    for epoch in shown:
        value = values[epoch - 1]
        figure = "" if value is None else f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"
        row = f"| {epoch} | {figure} |"
        if times:
            entry = times.get(epoch)
            row += (
                f" {entry['wall_seconds']:.0f} | {entry['cpu_seconds']:.0f} |" if entry else " | |"
            )
        lines.append(row)
    return lines


def write_card(name):
    """Renders `card.json` and the folder's files into MODEL_CARD.md; returns its path.

    card.json keys: model, dataset, status, figures, published, epochs, training
    (command, data, batch_size, precision, optimizer, wall_time), evaluation,
    export, litert_ms_per_image, limits. The card lists every file of the folder with its size and
    sha256, except a run in progress (`in_training/`).
    """
    sha256 = formats.sha256
    path, info = folder(name), card(name)
    training = info.get("training", {})
    lines = [f"# {name}", "", f"{info.get('model', '?')} trained on {info.get('dataset', '?')}."]
    if info.get("status"):
        lines += ["", f"**Status:** {info['status']}"]
    lines += ["", "## Test figures", "", "| figure | this model | published |", "|---|---:|---:|"]
    for figure, value in info.get("figures", {}).items():
        lines.append(f"| {figure} | {value} | {info.get('published', {}).get(figure, '')} |")
    lines += ["", "## Training", ""]
    lines += [
        f"- {key.replace('_', ' ')}: {value}" for key, value in training.items() if key != "command"
    ]
    if info.get("epochs") is not None:
        lines.append(f"- epochs: {info['epochs']}")
    times = files.read_epoch_times(os.path.join(path, files.EPOCH_TIMES))
    if times:
        lines.append(f"- measured: {files.describe_epoch_times(times)}")
    if info.get("litert_ms_per_image") is not None:
        lines.append(
            f"- LiteRT sampling: {info['litert_ms_per_image']} ms per image (model.tflite, 1 thread, "
            "one image at a time; benchmarks/zoo_latency.py)"
        )
    if os.path.exists(os.path.join(path, RECIPE)):
        lines += [
            "",
            "Trained again, as its recipe.json says, with one command (with `--resume`, the same command "
            "continues an interrupted run from its own checkpoint in `runs/`; this folder's "
            "model.keras holds no optimizer state, so resuming from it starts a fresh one):",
            "",
            "```bash",
            recipe_command(name),
            "```",
        ]
    for title, command in (
        ("Trained with", training.get("command")),
        ("Evaluated with", info.get("evaluation")),
        ("Exported with", info.get("export")),
    ):
        if command:
            lines += ["", f"{title}:", "", "```bash", command, "```"]
    lines += validation_curve(path)
    parity = sample_parity(name)
    if parity:
        lines += ["", "## Runtimes", "", describe_parity(parity)]
    if info.get("limits"):
        lines += ["", "## Limits", "", info["limits"]]
    lines += ["", "## Files", "", "| file | bytes | sha256 |", "|---|---:|---|"]
    for root, directories, file_names in os.walk(path):
        # A run in progress changes every session; the card lists the finished model's files.
        directories[:] = sorted(d for d in directories if d != "in_training")
        for file_name in sorted(file_names):
            full = os.path.join(root, file_name)
            relative = os.path.relpath(full, path)
            if relative != "MODEL_CARD.md":
                lines.append(f"| {relative} | {os.path.getsize(full)} | `{sha256(full)}` |")
    card_path = os.path.join(path, "MODEL_CARD.md")
    with builtins.open(card_path, "w") as file:
        file.write("\n".join(lines) + "\n")
    return card_path
