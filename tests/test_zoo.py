"""The zoo: listing, opening by name in every runtime, presets, and the CLI's zoo names."""

import hashlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import cli, export, formats, models, precision, registry, zoo
from keras_gen.conventions import parity_failures, pixels_to_levels
from keras_gen.models import VAE, PixelCNN
from tests.conftest import REPO

EXPECTED = {
    "vae_binarized_mnist",
    "pixelcnn_binarized_mnist",
    "gated_pixelcnn_binarized_mnist",
    "pixelrnn_row_lstm_binarized_mnist",
    "pixelrnn_diagonal_bilstm_binarized_mnist",
    "dcgan_mnist",
    "wgan_gp_mnist",
    "conditional_gan_mnist",
    "pixelvae_binarized_mnist",
    "vqvae_mnist",
    "diffusion_mnist",
    "gated_pixelcnn_emoji",
    "vae_emoji",
    "gated_pixelcnn_fashion_mnist",
}


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """A zoo folder holding one tiny trained PixelCNN: model.keras, its export and a card."""
    root = tmp_path_factory.mktemp("zoo")
    model = PixelCNN(image_shape=(6, 6, 1), filters=4, head_filters=4, num_blocks=1, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = (np.arange(8 * 36).reshape(8, 6, 6, 1) % 3 == 0).astype(np.uint8)
    model.fit(images, epochs=1, batch_size=4, verbose=0)
    folder = root / "tiny_pixelcnn"
    export.export(model, str(folder), verbose=False)
    model.save(str(folder / "model.keras"))
    (folder / "card.json").write_text(
        json.dumps(dict(model="PixelCNN", dataset="toy", figures={"nll_nats": 1.5}))
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(zoo.ZOO_DIR_ENV, str(root))
        yield model, images


def test_list_open_and_from_preset(tiny_zoo):
    model, images = tiny_zoo
    [entry] = zoo.list()
    assert entry["name"] == "tiny_pixelcnn" and entry["model"] == "PixelCNN" and entry["has_keras"]
    assert entry["figures"] == {"nll_nats": 1.5} and entry["size_mb"] > 0
    noise = model.make_noise(2, seed=3)
    expected = np.asarray(model.sample(noise))
    for runtime in ("savedmodel", "tflite", "keras"):
        np.testing.assert_array_equal(
            zoo.open("tiny_pixelcnn", runtime=runtime).sample(noise), expected
        )
    preset = PixelCNN.from_preset("tiny_pixelcnn")
    preset.compile_for_training()  # a fresh optimizer
    preset.fit(images, epochs=1, batch_size=4, verbose=0)
    assert int(preset.optimizer.iterations) == 2


def test_wrong_names_and_classes_say_what_is_there(tiny_zoo):
    with pytest.raises(
        zoo.ZooError, match="No zoo model named 'pixelcnn'. The zoo has: tiny_pixelcnn"
    ):
        zoo.open("pixelcnn")
    with pytest.raises(
        registry.PresetError, match="holds a PixelCNN, not a VAE; use PixelCNN.from_preset"
    ):
        VAE.from_preset("tiny_pixelcnn")


def test_cli_takes_zoo_names(tiny_zoo, tmp_path, capsys):
    model, _ = tiny_zoo
    out = tmp_path / "grid.npy"
    assert (
        cli.main(
            ["sample", "tiny_pixelcnn", "--runtime", "tflite", "--num", "3", "--out", str(out)]
        )
        == 0
    )
    np.testing.assert_array_equal(np.load(out), model.sample(model.make_noise(3, seed=0)))
    assert cli.main(["export", "tiny_pixelcnn", "--out", str(tmp_path / "again")]) == 0
    assert cli.main(["zoo"]) == 0
    assert "| tiny_pixelcnn | PixelCNN | nll_nats 1.5 |" in capsys.readouterr().out
    assert cli.main(["sample", "nonesuch", "--out", str(tmp_path / "x.png")]) == 2
    assert "The zoo has: tiny_pixelcnn" in capsys.readouterr().err


def test_the_shipped_zoo_lists_every_model(monkeypatch):
    monkeypatch.delenv(zoo.ZOO_DIR_ENV, raising=False)
    assert EXPECTED <= set(zoo.names())
    for entry in zoo.list():
        assert entry["size_mb"] < 25, entry["name"]


def test_zoo_files_hold_weights_without_optimizer_state(monkeypatch, tmp_path):
    monkeypatch.delenv(zoo.ZOO_DIR_ENV, raising=False)
    for name in zoo.names():
        assert not zoo.has_optimizer_state(zoo.keras_path(name)), name
    # A run in progress keeps its optimizer state (test_recipes.py).


def test_each_zoo_folder_keeps_one_model_and_at_most_one_checkpoint_in_training():
    """saved_models/README.md's rule: a run in progress replaces its one checkpoint."""
    root = os.path.join(REPO, "saved_models")
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        checkpoints = sorted(
            os.path.relpath(os.path.join(here, file), folder)
            for here, _, files in os.walk(folder)
            for file in files
            # Keras checkpoints, and TensorFlow ones outside the export's own saved_model/.
            if file.endswith((".keras", ".h5"))
            or (file.endswith(".index") and os.sep + "saved_model" not in here)
        )
        # A run that keeps the mean of its last epochs keeps that mean beside its checkpoint.
        allowed = {"model.keras", "in_training/model.keras", "in_training/averaged.keras"}
        assert set(checkpoints) <= allowed, (name, checkpoints)
        for checkpoint in checkpoints:
            if checkpoint != "in_training/model.keras":
                assert not zoo.has_optimizer_state(os.path.join(folder, checkpoint)), name


def test_a_weights_only_copy_samples_and_scores_the_same(tmp_path):
    model = PixelCNN(image_shape=(5, 5, 1), filters=4, num_blocks=1, head_filters=4, seed=0)
    model.compile_for_training()
    images = (np.random.default_rng(0).random((8, 5, 5, 1)) < 0.4).astype(np.uint8)
    model.fit(images, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "full.keras")
    before, after = zoo.write_weights_only(str(tmp_path / "full.keras"), str(tmp_path / "w.keras"))
    assert after < before and not zoo.has_optimizer_state(str(tmp_path / "w.keras"))
    copy = PixelCNN.from_preset(str(tmp_path / "w.keras"))
    noise = model.make_noise(3, seed=1)
    np.testing.assert_array_equal(copy.sample(noise), model.sample(noise))
    np.testing.assert_array_equal(copy.log_prob(images), model.log_prob(images))


def test_the_shipped_pixelcnn_is_a_preset_with_a_quantized_copy(monkeypatch):
    monkeypatch.delenv(zoo.ZOO_DIR_ENV, raising=False)
    model = PixelCNN.from_preset("pixelcnn_binarized_mnist")
    noise = model.make_noise(1, seed=0)
    float_images = zoo.open("pixelcnn_binarized_mnist", runtime="tflite").sample(noise)
    int8_images = zoo.open("pixelcnn_binarized_mnist", runtime="tflite-int8").sample(noise)
    assert np.mean(float_images == int8_images) > 0.9
    sizes = json.load(open(zoo.folder("pixelcnn_binarized_mnist") + "/export.json"))["file_sizes"]
    assert sizes["model_int8.tflite"] <= 0.4 * sizes["model.tflite"]  # issue G's target


def test_importing_keras_gen_is_enough_to_load_a_zoo_model_keras():
    """A user's fresh interpreter: `import keras_gen`, then plain Keras loading, in safe mode."""
    import subprocess
    import sys

    path = os.path.join(REPO, "saved_models", "dcgan_mnist", "model.keras")
    code = (
        "import sys, keras, keras_gen; "
        "model = keras.saving.load_model(sys.argv[1], safe_mode=True); print(type(model).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "DCGAN"


def test_model_card_lists_figures_commands_and_every_file_with_its_sha256(tiny_zoo):
    from keras_gen.export import sha256

    # A run in progress is not the card's model, and changes every session: left out.
    os.makedirs(os.path.join(zoo.folder("tiny_pixelcnn"), "in_training"), exist_ok=True)
    open(os.path.join(zoo.folder("tiny_pixelcnn"), "in_training", "history.json"), "w").write("{}")
    path = zoo.write_card("tiny_pixelcnn")
    assert "in_training" not in open(path).read()
    os.remove(os.path.join(zoo.folder("tiny_pixelcnn"), "in_training", "history.json"))
    text = open(path).read()
    assert "| nll_nats | 1.5 |" in text
    folder = zoo.folder("tiny_pixelcnn")
    for name in (
        "model.keras",
        "model.tflite",
        "export.json",
        "card.json",
        "saved_model/saved_model.pb",
    ):
        assert f"| {name} | " in text and sha256(f"{folder}/{name}") in text, name


def test_model_card_sums_the_cpu_hours_of_the_runs_recorded_epochs(tiny_zoo):
    entry = {"wall_seconds": 5400.0, "cpu_seconds": 7200.0, "cpu": "Some CPU", "cores": 2}
    times = [dict(entry, epoch=1), dict(entry, epoch=2, cpu="Other CPU")]
    with open(os.path.join(zoo.folder("tiny_pixelcnn"), "epochs.json"), "w") as file:
        json.dump(times, file)
    text = open(zoo.write_card("tiny_pixelcnn")).read()
    assert (
        "- measured: 2 epochs recorded in epochs.json: 4.0 CPU-hours, 3.0 hours of wall time, "
        "on Other CPU (2 cores), Some CPU (2 cores)"
    ) in text
    assert "| epochs.json | " in text


def test_model_card_gives_the_validation_curve_with_the_recorded_epoch_times(tiny_zoo):
    folder = zoo.folder("tiny_pixelcnn")
    history = {"nll": [99.0, 90.0, 88.0], "val_nll": [95.25, None, 87.5], "sample_fd_logits": [3.0]}
    with open(os.path.join(folder, "history.json"), "w") as file:
        json.dump(history, file)
    entry = {"wall_seconds": 61.2, "cpu_seconds": 118.7, "cpu": "Some CPU", "cores": 2}
    with open(os.path.join(folder, "epochs.json"), "w") as file:
        json.dump([dict(entry, epoch=2), dict(entry, epoch=3)], file)  # epoch 1 ran unrecorded
    text = open(zoo.write_card("tiny_pixelcnn")).read()
    table = text.split("## Validation curve")[1].split("\n\n")[2]
    assert table.splitlines() == [
        "| epoch | validation NLL (nats an image) | wall s | CPU s |",
        "|---:|---:|---:|---:|",
        "| 1 | 95.25 | | |",
        "| 2 |  | 61 | 119 |",
        "| 3 | 87.50 | 61 | 119 |",
    ]
    # A long run shows every k-th epoch and the last; a partly logged figure is not placed.
    history = {"nll": list(range(61, 0, -1)), "sample_fd_logits": [1.0] * 60}
    with open(os.path.join(folder, "history.json"), "w") as file:
        json.dump(history, file)
    os.remove(os.path.join(folder, "epochs.json"))
    assert zoo.validation_curve(folder) == []
    history["val_nll"] = [float(v) for v in history["nll"]]
    with open(os.path.join(folder, "history.json"), "w") as file:
        json.dump(history, file)
    rows = zoo.validation_curve(folder)[7:]
    assert [row.split(" | ")[0] for row in rows] == [f"| {e}" for e in range(1, 62, 3)]
    assert rows[-1] == "| 61 | 1.00 |"


def test_update_card_keeps_the_other_fields_and_renders_the_latency(tiny_zoo):
    before = zoo.card("tiny_pixelcnn")
    zoo.update_card("tiny_pixelcnn", litert_ms_per_image=2.5)
    assert zoo.card("tiny_pixelcnn") == dict(before, litert_ms_per_image=2.5)
    assert [entry["litert_ms_per_image"] for entry in zoo.list()] == [2.5]
    assert (
        "- LiteRT sampling: 2.5 ms per image"
        in open(zoo.folder("tiny_pixelcnn") + "/MODEL_CARD.md").read()
    )


def test_latency_benchmark_times_a_model_whose_noise_is_a_dict(monkeypatch):
    # A PixelVAE's noise is {"z", "pixels"}; the benchmark once sliced it as an array.
    from keras_gen import runtime
    from keras_gen.models import PixelVAE

    monkeypatch.syspath_prepend(os.path.join(REPO, "benchmarks"))
    import zoo_latency

    model = PixelVAE(
        image_shape=(6, 6, 1), latent_dim=2, widths=(4,), filters=4, num_blocks=1, head_filters=4
    )
    runner = runtime.KerasRunner(model)
    noise = runner.make_noise(2, seed=0)
    assert isinstance(noise, dict)
    assert zoo_latency.per_image_ms(runner, noise, None) > 0


def test_latency_benchmark_records_each_models_figure_in_its_card(tiny_zoo, tmp_path):
    import shutil
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "zoo_latency.py")
    quick = [sys.executable, script, "--num", "1", "--repeats", "1"]
    subprocess.run(
        quick + ["--write-cards", "--out", str(tmp_path / "latency")],
        check=True,
        capture_output=True,
    )
    milliseconds = zoo.card("tiny_pixelcnn")["litert_ms_per_image"]
    timed = json.load(open(tmp_path / "latency.json"))["rows"][0]["ms_per_image"]["tflite"]
    assert timed > 0 < milliseconds
    wrong = subprocess.run(
        quick + ["--models", "tiny_pixelcnn", "nothing", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2 and "not in the zoo: nothing" in wrong.stderr

    # Timed beside a reference, only the named model's card changes.
    reference = os.path.join(os.path.dirname(zoo.folder("tiny_pixelcnn")), "tiny_reference")
    shutil.copytree(zoo.folder("tiny_pixelcnn"), reference)
    try:
        zoo.update_card("tiny_reference", litert_ms_per_image=-1)
        zoo.update_card("tiny_pixelcnn", litert_ms_per_image=-1)
        beside = quick + [
            "--out",
            str(tmp_path / "b"),
            "--models",
            "tiny_pixelcnn",
            "tiny_reference",
        ]
        subprocess.run(beside + ["--write-cards", "tiny_pixelcnn"], check=True, capture_output=True)
        assert zoo.card("tiny_pixelcnn")["litert_ms_per_image"] > 0
        assert zoo.card("tiny_reference")["litert_ms_per_image"] == -1
        untimed = subprocess.run(
            beside[:-1] + ["--write-cards", "tiny_reference"], capture_output=True, text=True
        )
        assert untimed.returncode == 2 and "not timed in this run: tiny_reference" in untimed.stderr
    finally:
        shutil.rmtree(reference)


def test_zoo_command_draws_every_model_and_writes_cards(tiny_zoo, tmp_path):
    picture = tmp_path / "zoo.png"
    assert cli.main(["zoo", "--picture", str(picture), "--write-cards"]) == 0
    assert picture.stat().st_size > 1000
    assert open(zoo.folder("tiny_pixelcnn") + "/MODEL_CARD.md").read().startswith("# tiny_pixelcnn")


@pytest.mark.parametrize(
    "name",
    [
        "pixelrnn_row_lstm_binarized_mnist",
        "pixelrnn_diagonal_bilstm_binarized_mnist",
        "gated_pixelcnn_binarized_mnist",
        "pixelcnn_binarized_mnist",
        "pixelvae_binarized_mnist",
        "diffusion_mnist",
        "gated_pixelcnn_emoji",
        "vae_emoji",
        "gated_pixelcnn_fashion_mnist",
    ],
)
def test_a_zoo_folders_export_scores_as_its_model_keras(name):
    """The folder's SavedModel is the export of the folder's model.keras, run through today's layers."""
    from keras_gen import runtime
    from tests import zoo_reference

    directory = os.path.join(REPO, "saved_models", name)
    model = precision.float32_twin(runtime.load_keras(os.path.join(directory, "model.keras")))
    exported = tf.saved_model.load(os.path.join(directory, "saved_model"))
    images = zoo_reference.reference_images(model.image_shape, model.num_levels)
    inputs = {"images": tf.constant(images)}
    labels = np.arange(4, dtype=np.int32) if model.num_classes else None
    if labels is not None:
        inputs["labels"] = tf.constant(labels)
    expected = exported.signatures["log_prob"](**inputs)["log_prob"]
    # As exported: a PixelVAE's bound with its fixed importance draws, a diffusion model's with
    # its hashed timesteps and noise.
    np.testing.assert_allclose(
        runtime.KerasRunner(model).log_prob(images, labels), expected, rtol=1e-5
    )


def test_float_ties_tell_a_cpus_rounding_from_a_changed_level():
    from tests import zoo_reference

    model = PixelCNN(image_shape=(6, 6, 1), filters=4, num_blocks=1, head_filters=4)
    noise = np.asarray(model.make_noise(2, seed=0))
    samples = np.asarray(model.sample_levels(model.make_noise(2, seed=0)))
    assert not zoo_reference.float_ties(model, samples, noise).any()
    # The last sub-pixel, which no other depends on, recorded as the other level, its draw moved
    # next to the CDF between the two: a few float steps away is a tie, 1e-4 is a changed level.
    last = (0, 5, 5, 0)
    level_zero = 1.0 - float(np.asarray(model.likelihood.mean(model(samples), 1))[last])
    flipped = samples.copy()
    flipped[last] = 1 - samples[last]
    side = 1.0 if samples[last] else -1.0  # keeps today's draw where it was
    for offset, is_tie in ((3e-7, True), (1e-4, False)):
        moved = noise.copy()
        moved[last] = level_zero + side * offset
        assert not zoo_reference.float_ties(model, samples, moved)[last]
        if is_tie:
            ties = zoo_reference.float_ties(model, flipped, moved)
            assert np.argwhere(ties).tolist() == [list(last)]
        else:
            with pytest.raises(AssertionError, match=r"\(0, 5, 5, 0\)"):
                zoo_reference.float_ties(model, flipped, moved)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_zoo_model_keras_samples_and_scores_as_recorded(name):
    """Refactors keep every zoo file loading (safe_mode) and giving the recorded samples and log_prob."""
    from tests import zoo_reference

    recorded = json.load(open(zoo_reference.REFERENCE))[name]
    model = zoo_reference.load(name)
    today = zoo_reference.figures(name, model)
    # Held to the model's declared parity: a float decoder may round a pixel differently on
    # another CPU; discrete samplers give the same bytes up to their first float tie.
    expected, got = (
        np.frombuffer(bytes.fromhex(f["samples"]), np.uint8).reshape(4, -1)
        for f in (recorded, today)
    )
    if isinstance(model, models.AutoregressiveModel):
        # The recorded samples are today's draws given their own past, but for float ties...
        noise = np.asarray(model.make_noise(4, seed=0))
        labels = zoo_reference.reference_labels(model)
        levels = pixels_to_levels(expected.reshape(noise.shape), model.num_levels)
        ties = zoo_reference.float_ties(model, levels, noise, labels)
        # ...and today's samples equal them up to an image's first tie, in sampling order.
        for image_expected, image_got, image_ties in zip(expected, got, ties.reshape(4, -1)):
            differing = np.flatnonzero(image_expected != image_got)
            if len(differing):
                assert image_ties.any() and differing[0] >= np.flatnonzero(image_ties)[0]
    else:
        manifest = formats.read_manifest(os.path.join(REPO, "saved_models", name))
        parity = manifest.get(
            "sample_parity", getattr(models, manifest["class_name"]).sample_parity
        )
        assert not parity_failures(expected, got, parity)
    if "samples_note" not in recorded:  # recorded on the machines where the hash was taken
        digest = hashlib.sha256(expected.tobytes()).hexdigest()
        assert digest == recorded["samples_sha256"]
    if "log_prob" in recorded:
        # float32 sums of about 1,000 nats differ in their last bits between CPUs.
        np.testing.assert_allclose(today["log_prob"], recorded["log_prob"], atol=1e-4, rtol=1e-6)
