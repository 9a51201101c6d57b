"""Your own images (issue N): folders of image files and array files as data sources."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_gen import models
from keras_gen.image_files import ImageFilesError, ImageSource, held_out, list_image_files
from keras_gen.validation import InputError


def write_png(path, pixels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(pixels))


def colour_folder(root, count=12):
    """`count` 16x12 images in two class folders: RGB, grey and RGBA (half transparent) files."""
    rng = np.random.default_rng(0)
    for i in range(count):
        kind = ("rgb", "grey", "rgba")[i % 3]
        channels = {"rgb": 3, "grey": 1, "rgba": 4}[kind]
        pixels = rng.integers(0, 256, (16, 12, channels)).astype(np.uint8)
        if kind == "rgba":
            pixels[..., 3] = 0  # fully transparent: composited on white
        write_png(os.path.join(root, f"class_{i % 2}", f"{kind}_{i:02d}.png"), pixels)
    return root


def test_a_folder_gives_resized_colour_levels_labels_and_a_stable_held_out_split(tmp_path):
    root = colour_folder(str(tmp_path / "photos"))
    source = ImageSource(root, image_size=(8, 8), channels=3, validation_fraction=0.3)
    assert source.image_shape() == (8, 8, 3) and source.num_levels() == 256
    assert source.num_classes == 2
    train, train_labels = source.real_images("train", 100, labels=True)
    test = source.real_images("test", 100)
    assert len(train) + len(test) == 12 and train.dtype == np.uint8
    assert train.shape[1:] == (8, 8, 3) and set(train_labels) <= {0, 1}
    # Which images are held out depends on each file's name alone.
    files = sorted(f for _, _, names in os.walk(root) for f in names)
    again = ImageSource(root, image_size=(8, 8), validation_fraction=0.3)
    np.testing.assert_array_equal(again.real_images("test", 100), test)
    assert held_out(["a/b.png"], 0.3)[0] == held_out(["a/b.png", "c.png"], 0.3)[0]
    assert len(files) == 12
    batch = next(iter(source.load("train", labels=True)))
    assert batch[0].dtype == tf.uint8 and batch[1].dtype == tf.int32


def test_transparent_pixels_are_white_and_grey_files_become_rgb(tmp_path):
    write_png(str(tmp_path / "a" / "clear.png"), np.zeros((4, 4, 4), np.uint8))
    write_png(str(tmp_path / "a" / "grey.png"), np.full((4, 4, 1), 100, np.uint8))
    source = ImageSource(str(tmp_path / "a"), image_size=(4, 4), validation_fraction=0.01)
    images = source.real_images("train", 2)
    np.testing.assert_array_equal(images[0], np.full((4, 4, 3), 255))  # clear.png, sorted first
    np.testing.assert_array_equal(images[1], np.full((4, 4, 3), 100))
    grey = ImageSource(str(tmp_path / "a"), image_size=(2, 2), channels=1, validation_fraction=0.01)
    assert grey.real_images("train", 2).shape == (2, 2, 2, 1)


def test_a_wide_image_is_cut_about_its_centre_before_resizing(tmp_path):
    pixels = np.zeros((4, 8, 1), np.uint8)
    pixels[:, 2:6] = 200  # the centred 4x4 square
    write_png(str(tmp_path / "w" / "wide.png"), pixels)
    source = ImageSource(
        str(tmp_path / "w"), image_size=(2, 2), channels=1, validation_fraction=0.01
    )
    np.testing.assert_array_equal(source.real_images("train", 1), np.full((1, 2, 2, 1), 200))


def test_arrays_with_labels_train_a_model(tmp_path):
    images = (np.arange(20 * 36).reshape(20, 6, 6) * 7 % 256).astype(np.uint8)
    np.savez(tmp_path / "digits.npz", images=images, labels=np.arange(20) % 4)
    source = ImageSource(str(tmp_path / "digits.npz"), bits=2, batch_size=8)
    assert source.image_shape() == (6, 6, 1) and source.num_levels() == 4
    assert source.num_classes == 4
    model = models.PixelCNN(
        image_shape=(6, 6, 1), num_levels=4, filters=4, num_blocks=1, head_filters=4, num_classes=4
    )
    model.compile_for_training()
    history = model.fit(source.load("train", labels=True), epochs=1, verbose=0).history
    assert np.isfinite(history["nll"][0])
    np.save(tmp_path / "plain.npy", images)
    assert ImageSource(str(tmp_path / "plain.npy"), image_size=(3, 3)).image_shape() == (3, 3, 1)


def test_bad_input_is_refused_naming_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "notes.txt").write_text("hello")
    with pytest.raises(ImageFilesError, match="no images"):
        ImageSource(str(empty), image_size=(4, 4)).image_shape()
    with pytest.raises(ImageFilesError, match="no images"):
        ImageSource(str(tmp_path / "texts"), image_size=(4, 4)).image_shape()
    root = colour_folder(str(tmp_path / "photos"), count=4)
    broken = os.path.join(root, "class_0", "broken.png")
    with open(os.path.join(root, "class_0", "rgb_00.png"), "rb") as file:
        head = file.read(40)
    with open(broken, "wb") as file:
        file.write(head)  # a truncated PNG
    with pytest.raises(ImageFilesError, match="broken.png: not a readable image"):
        ImageSource(root, image_size=(4, 4)).image_shape()
    skipping = ImageSource(root, image_size=(4, 4), skip_bad_images=True, validation_fraction=0.01)
    assert len(skipping.real_images("train", 100)) == 4
    np.save(tmp_path / "floats.npy", np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ImageFilesError, match="uint8"):
        ImageSource(str(tmp_path / "floats.npy")).image_shape()
    np.save(tmp_path / "rank2.npy", np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageFilesError, match="shape"):
        ImageSource(str(tmp_path / "rank2.npy")).image_shape()
    np.savez(tmp_path / "mismatch.npz", images=np.zeros((3, 4, 4), np.uint8), labels=[0, 1])
    with pytest.raises(ImageFilesError, match="labels must be 3 integers"):
        ImageSource(str(tmp_path / "mismatch.npz")).image_shape()
    with pytest.raises(InputError, match="give the images' size"):
        ImageSource(root, skip_bad_images=True).image_shape()
    with pytest.raises(InputError, match="channels must be 1 or 3"):
        ImageSource(root, channels=4)
    np.save(tmp_path / "unlabelled.npy", np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ImageFilesError, match="no labels"):
        ImageSource(str(tmp_path / "unlabelled.npy")).load("train", labels=True)
    model = models.PixelCNN(image_shape=(8, 8, 1), filters=4, num_blocks=1, head_filters=4)
    with pytest.raises(ImageFilesError, match="takes 8x8x1 images with 2 levels"):
        ImageSource(str(tmp_path / "unlabelled.npy")).check_matches(
            model.image_shape, model.num_levels, "the model"
        )


def test_train_and_evaluate_take_a_folder_on_the_command_line(tmp_path, capsys):
    from keras_gen import cli

    root = colour_folder(str(tmp_path / "photos"), count=24)
    data_flags = ["--images", root, "--image-size", "8", "--channels", "1", "--bits", "2"]
    run = tmp_path / "run"
    argv = ["train", "pixelcnn", *data_flags, "--batch-size", "8", "--epochs", "1"]
    argv += ["--validation-split", "25%", "--out", str(run)]
    argv += ["--set", "filters=4", "--set", "num_blocks=1", "--set", "head_filters=4"]
    assert cli.main(argv) == 0
    assert "checked 24 of 24 images" in capsys.readouterr().out
    assert cli.main(["evaluate", str(run / "model.keras"), *data_flags, "--batch-size", "8"]) == 0
    assert "bits_per_dim" in capsys.readouterr().out
    assert cli.main(["evaluate", str(run / "model.keras"), "--images", root]) == 2  # no size
    assert "give the images' size" in capsys.readouterr().err
    assert cli.main(["evaluate", str(run / "model.keras"), *data_flags, "--dataset", "mnist"]) == 2
    assert "not both" in capsys.readouterr().err


def test_quickstart_trains_exports_and_samples_a_colour_vae_on_a_folder(
    tmp_path, capsys, monkeypatch
):
    from keras_gen import cli, runtime

    root = colour_folder(str(tmp_path / "photos"), count=24)
    out = tmp_path / "quickstart"
    monkeypatch.setattr(cli, "QUICKSTART_STEPS", 3)  # a small folder trains for this many steps
    argv = ["quickstart", "--images", root, "--image-size", "8", "--out", str(out)]
    assert cli.main(argv) == 0
    train_images = ImageSource(root, image_size=(8, 8)).count("train")
    epochs = -(-3 * 64 // train_images)
    assert epochs > 2 and train_images < 64  # an epoch is one step
    printed = capsys.readouterr().out
    assert f"training a VAE on your images (8x8x3, 8-bit), {epochs} epochs" in printed
    # auto gives float32 on any CPU: this VAE's logistic likelihood trains worse in bfloat16.
    assert "precision: float32 (auto: " in printed
    assert len(json.load(open(out / "vae" / "history.json"))["loss"]) == epochs
    runner = runtime.open_artifact(str(out / "export" / "model.tflite"))
    assert runner.image_shape == (8, 8, 3) and runner.num_levels == 256
    assert tf.io.decode_png(tf.io.read_file(str(out / "samples_tflite.png"))).shape[-1] >= 3
    assert cli.main(["quickstart", "--image-size", "8", "--out", str(tmp_path / "q2")]) == 2
    assert "--image-size goes with --images" in capsys.readouterr().err


def test_a_recipe_reads_image_files_from_the_manual_dir_or_images(tmp_path, capsys):
    from keras_gen import cli, recipes, runtime

    colour_folder(str(tmp_path / "data" / "node_modules" / "some-images" / "img"), count=16)
    recipe = {
        "model": "gated_pixelcnn",
        "options": {
            "filters": 6,
            "num_layers": 1,
            "head_filters": 6,
            "likelihood": "logistic_mixture",
            "num_mixtures": 2,
        },
        "data": {
            "images": "some-images/img",
            "package": "npm:some-images@1.0.0",
            "image_size": [8, 8],
            "validation_fraction": 0.25,
            "batch_size": 4,
        },
        "epochs": 1,
        "validation_split": "test",
    }
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    argv = ["train", "--recipe", str(path), "--steps-per-epoch", "2"]
    assert cli.main(argv + ["--out", str(tmp_path / "r"), "--manual-dir", str(tmp_path / "d")]) == 2
    assert "npm install --prefix DIR some-images@1.0.0" in capsys.readouterr().err
    assert (
        cli.main(argv + ["--out", str(tmp_path / "r"), "--manual-dir", str(tmp_path / "data")]) == 0
    )
    model = runtime.load_keras(str(tmp_path / "r" / "model.keras"))
    assert model.image_shape == (8, 8, 3) and model.num_levels == 256
    moved = str(tmp_path / "elsewhere")
    os.rename(str(tmp_path / "data" / "node_modules" / "some-images" / "img"), moved)
    assert cli.main(argv + ["--out", str(tmp_path / "r2"), "--images", moved]) == 0
    for bad in ({"dataset": "mnist", "images": "x"}, {"dataset": "mnist", "image_size": [8, 8]}):
        with pytest.raises(recipes.RecipeError, match="data.images"):
            recipes._checked({"model": "vae", "data": bad}, "recipe.json")


def write_idx(folder, split, images, labels, compress=True):
    """An MNIST-format split: uint8 images (N, H, W) and labels (N,) as IDX files."""
    import gzip

    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")}
    names["test"] = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    os.makedirs(folder, exist_ok=True)
    for name, array, magic in zip(names[split], (images, labels), (0x803, 0x801)):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
        opener = gzip.open if compress else open
        with opener(os.path.join(folder, name + (".gz" if compress else "")), "wb") as file:
            file.write(header + array.astype(np.uint8).tobytes())


def test_an_idx_folder_keeps_its_own_train_and_test_sets(tmp_path):
    folder = str(tmp_path / "idx")
    train, test = (np.arange(n * 36).reshape(n, 6, 6) % 256 for n in (10, 4))
    write_idx(folder, "train", train, np.arange(10) % 3)
    write_idx(folder, "test", test, np.array([2, 0, 1, 1]), compress=False)
    source = ImageSource(folder, batch_size=4)
    assert source.image_shape() == (6, 6, 1) and source.num_classes == 3
    images, labels = source.real_images("test", 10, labels=True)
    np.testing.assert_array_equal(images[..., 0], test)
    np.testing.assert_array_equal(labels, [2, 0, 1, 1])
    assert sum(len(batch) for batch in source.load("train")) == 10
    assert len(source.real_images("test[:3]", 10)) == 3
    write_idx(folder, "test", test, np.array([2, 0, 1]))  # (the .gz is read first)
    with pytest.raises(ImageFilesError, match="3 labels for 4 images"):
        ImageSource(folder).image_shape()
    with open(os.path.join(folder, "t10k-images-idx3-ubyte.gz"), "wb") as file:
        file.write(b"not gzip")
    with pytest.raises(ImageFilesError, match="t10k-images-idx3-ubyte.gz: not a readable gzip"):
        ImageSource(folder).image_shape()


def test_unseen_designs_picks_the_held_out_images_with_no_variant_in_training(
    tmp_path, monkeypatch
):
    """benchmarks/unseen_designs.py: the mask lines up with the held-out images `evaluate` reads."""
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import unseen_designs

    root = str(tmp_path / "emoji")
    names = [f"{design:04x}{tone}.png" for design in range(12) for tone in ("", "-1f3fb")]
    for index, name in enumerate(names):  # each file's one grey level is its index
        write_png(os.path.join(root, name), np.full((4, 4, 1), index, np.uint8))
    files = list_image_files(root)
    held = held_out(files, 0.3)
    source = ImageSource(root, image_size=(4, 4), channels=1, validation_fraction=0.3)
    images = source.real_images("test", int(held.sum()))
    unseen = unseen_designs.unseen_mask(files, held, unseen_designs.SKIN_TONES)

    design = [name[:4] for name in files]
    trained = {d for d, h in zip(design, held) if not h}
    expected = [names.index(f) for f, h in zip(files, held) if h and f[:4] not in trained]
    assert 0 < len(expected) < held.sum()  # this split has both kinds
    assert sorted(images[unseen][:, 0, 0, 0].tolist()) == sorted(expected)
