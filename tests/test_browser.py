"""The zoo page in a real Chromium (Debian's, headless, driven by Playwright): every zoo model
samples in the browser exactly what Python LiteRT samples, and bad input gets a message.

Needs Debian's chromium and LiteRT.js (`npm ci --prefix keras_gen/web`); `.ci/run` installs
both. Without them these tests skip, saying which is missing.
"""

import contextlib
import hashlib
import io
import os
import shutil
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from keras_gen import cli, data, formats, runtime, serve, zoo
from keras_gen.conventions import pixels_to_levels
from tests.conftest import REPO, SHARED_DATA, package_data, shared_data

CHROMIUM = shutil.which("chromium")
SCREENSHOTS = os.environ.get("KERAS_GEN_SCREENSHOTS")  # a folder: keep the page's pictures
COUNT = 2  # images per model: the autoregressive ones take about half a second each here

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
    pytest.mark.skipif(
        not os.path.exists(os.path.join(serve.litertjs_dir(), "core", "dist", "index.js")),
        reason="LiteRT.js is not installed (npm ci --prefix keras_gen/web)",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    files = tmp_path_factory.mktemp("files")
    with running_server(files_dir=str(files), manual_dir=SHARED_DATA) as base:
        yield base, files


@contextlib.contextmanager
def running_server(**options):
    server = serve.make_server(port=0, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def open_page(browser, url, width=1280, height=900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    return page


def wait_for_result(page, timeout=120_000):
    """The page's sha256 and ms per image, or the text of its error."""
    page.wait_for_function(
        "document.getElementById('result-sha256').textContent !== '–'"
        " || !document.getElementById('error').hidden",
        timeout=timeout,
    )
    if not page.locator("#error").is_hidden():
        return None, None, page.inner_text("#error")
    return page.inner_text("#result-sha256"), float(page.inner_text("#result-ms")), None


def zoo_names():
    return [n for n in zoo.names() if os.path.exists(os.path.join(zoo.folder(n), formats.TFLITE))]


@pytest.mark.parametrize("name", zoo_names())
def test_the_browser_samples_what_python_litert_samples(server, browser, name):
    base, files = server
    check_sampling(base, files, browser, name)


def check_sampling(base, files, browser, name):
    """The page samples `name` from noise files exactly as Python LiteRT does."""
    runner = runtime.open_artifact(os.path.join(zoo.folder(name), formats.TFLITE))
    noise = runner.make_noise(COUNT, seed=7)
    labels = np.arange(COUNT, dtype=np.int32) + 3 if runner.num_classes else None
    query = f"?model={name}&autorun=1&warmup=1"  # the warm-up image must not change the result
    for key, values in noise.items() if isinstance(noise, dict) else [("noise", noise)]:
        path = files / f"{name}_{key}.npy"
        np.save(path, np.ascontiguousarray(values, np.float32))
        query += f"&{'noise' if key == 'noise' else 'noise_' + key}=/files/{path.name}"
    if labels is not None:
        query += "&labels=" + ",".join(map(str, labels))
    expected = runner.sample(noise, labels)
    page = open_page(browser, base + "/" + query)
    digest, milliseconds, error = wait_for_result(page)
    assert error is None, error
    assert digest == hashlib.sha256(np.ascontiguousarray(expected, np.uint8).tobytes()).hexdigest()
    assert milliseconds > 0
    if SCREENSHOTS and name == "pixelcnn_binarized_mnist":
        page.screenshot(path=os.path.join(SCREENSHOTS, "web_desktop.png"), full_page=True)
        phone = open_page(browser, base + "/" + query, width=390, height=844)
        wait_for_result(phone)
        phone.screenshot(path=os.path.join(SCREENSHOTS, "web_phone.png"), full_page=True)
    page.close()


def test_the_page_samples_from_its_own_controls(server, browser):
    base, _ = server
    page = open_page(browser, base + "/?model=conditional_gan_mnist")
    page.wait_for_selector("#sample:not([disabled])", timeout=60_000)
    assert page.is_visible("#label-row")  # a conditional model asks for the digit
    page.select_option("#label", "7")
    page.fill("#count", "4")
    page.click("#sample")
    digest, milliseconds, error = wait_for_result(page)
    assert error is None and len(digest) == 64 and milliseconds > 0
    assert "conditional_gan_mnist" in page.inner_text("#card-name")


@pytest.mark.parametrize(
    "query, message",
    [
        ("?model=nonesuch", 'unknown model "nonesuch"'),
        (
            "?model=pixelcnn_binarized_mnist&noise=/files/wrong.npy&autorun=1",
            "takes noise of shape",
        ),
        ("?model=pixelcnn_binarized_mnist&noise=/files/missing.npy&autorun=1", "HTTP 404"),
        ("?model=conditional_gan_mnist&noise=/files/gan.npy&autorun=1", "needs 2 labels"),
    ],
)
def test_bad_input_gets_a_message_on_the_page(server, browser, query, message):
    base, files = server
    np.save(files / "wrong.npy", np.zeros((2, 5, 5, 1), np.float32))
    np.save(files / "gan.npy", np.zeros((2, 64), np.float32))
    page = open_page(browser, base + "/" + query)
    page.wait_for_selector("#error:not([hidden])", timeout=60_000)
    assert message in page.inner_text("#error")


def test_the_server_refuses_a_port_in_use_and_a_missing_litertjs(
    server, tmp_path, capsys, monkeypatch
):
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(serve.ServeError, match="port is in use"):
        serve.make_server(port=port)
    assert cli.main(["serve", "--port", str(port)]) == 2
    assert "is in use" in capsys.readouterr().err
    with pytest.raises(serve.ServeError, match="npm ci --prefix"):
        serve.make_server(port=0, litertjs=str(tmp_path))
    monkeypatch.setenv(zoo.ZOO_DIR_ENV, zoo.zoo_dir())  # restored after `serve --zoo` sets it
    assert cli.main(["serve", "--port", "0", "--zoo", str(tmp_path)]) == 2
    assert "no sub-folder holds an export" in capsys.readouterr().err
    assert cli.main(["serve", "--port", "0", "--images", str(tmp_path / "missing")]) == 2
    assert "no such folder or file" in capsys.readouterr().err


def test_a_fixed_batch_copy_is_the_same_model():
    path = os.path.join(REPO, "saved_models", "pixelcnn_binarized_mnist", formats.TFLITE)
    with open(path, "rb") as file:
        copy = serve.fixed_batch_copy(file.read())
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=copy)
    sample = interpreter.get_signature_runner("sample")
    assert list(sample.get_input_details()["noise"]["shape_signature"]) == [1, 28, 28, 1]
    noise = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
    expected = runtime.open_artifact(path).sample(noise)
    np.testing.assert_array_equal(sample(noise=noise)["images"], expected)


def test_the_vae_interpolates_between_two_samples_with_a_slider(server, browser):
    base, _ = server
    page = open_page(browser, base + "/?model=vae_binarized_mnist")
    page.wait_for_function("document.getElementById('between-t').textContent === 't = 0.00'")

    def picture():
        return page.evaluate(
            "() => Array.from(document.getElementById('between').getContext('2d')"
            ".getImageData(0, 0, 28, 28).data)"
        )

    start = picture()
    page.fill("#slider", "1")
    page.wait_for_function("document.getElementById('between-t').textContent === 't = 1.00'")
    end = picture()
    assert start != end and max(end) == 255
    assert page.is_hidden("#error")
    page.goto(base + "/?model=pixelcnn_binarized_mnist")
    page.wait_for_selector("#sample:not([disabled])")
    assert page.is_hidden("#interpolation")  # no single latent vector


def completion_names():
    return [
        n for n in zoo_names() if "complete" in formats.read_manifest(zoo.folder(n))["signatures"]
    ]


@pytest.mark.parametrize("name", completion_names())
def test_the_browser_completes_what_python_completes(server, browser, name):
    base, files = server
    check_completion(base, files, browser, name)


def check_completion(base, files, browser, name):
    """The page completes a sample of `name`'s top rows exactly as Python LiteRT does."""
    runner = runtime.open_artifact(os.path.join(zoo.folder(name), formats.TFLITE))
    labels = np.zeros(1, np.int32) if runner.num_classes else None  # the page's label field: 0
    known = pixels_to_levels(runner.sample(runner.make_noise(1, seed=1), labels), runner.num_levels)
    noise = runner.make_noise(1, seed=2)
    rows = runner.image_shape[0] // 2
    mask = np.zeros(known.shape, bool)
    mask[:, :rows] = True
    expected = runner.complete(known, mask, noise, labels)
    np.testing.assert_array_equal(
        pixels_to_levels(expected, runner.num_levels)[mask], known[mask]
    )  # the kept rows are unchanged
    np.save(files / f"{name}_known.npy", known)
    np.save(files / f"{name}_completion_noise.npy", noise)
    page = open_page(
        browser,
        f"{base}/?model={name}&known=/files/{name}_known.npy"
        f"&noise=/files/{name}_completion_noise.npy&rows={rows}&autorun=1",
    )
    digest, _, error = wait_for_result(page)
    assert error is None, error
    assert digest == hashlib.sha256(np.ascontiguousarray(expected).tobytes()).hexdigest()


def complete_the_pad(page, shape=(28, 28, 1)):
    """Clicks Complete; the drawing pad's and the completed image's pixels, each `shape` (H, W, C)
    uint8."""
    page.click("#complete")
    digest, _, error = wait_for_result(page)
    assert error is None and len(digest) == 64
    height, width, channels = shape
    pixels = page.evaluate(
        "([w, h]) => ['drawing', 'completed'].map((id) => Array.from(document.getElementById(id)"
        ".getContext('2d').getImageData(0, 0, w, h).data))",
        [width, height],
    )
    return [np.array(p, np.uint8).reshape(height, width, 4)[..., :channels] for p in pixels]


def test_a_drawing_keeps_its_top_rows_when_completed(server, browser):
    base, _ = server
    page = open_page(browser, base + "/?model=pixelcnn_binarized_mnist")
    page.wait_for_selector("#complete:not([disabled])", timeout=60_000)
    box = page.locator("#drawing").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.45, steps=12)
    page.mouse.up()
    drawing, completed = (p[..., 0] for p in complete_the_pad(page))
    drawing, completed = drawing[:14], completed[:14]
    assert drawing.max() == 255  # the stroke reached the kept rows
    np.testing.assert_array_equal(completed, np.where(drawing > 127, 255, 0))


def test_a_picked_test_digit_keeps_its_top_rows_when_completed(server, browser):
    digits = data.static_binarized_test_digits(serve.TEST_DIGITS, shared_data("binarized_mnist"))
    base, _ = server
    page = open_page(browser, base + "/?model=gated_pixelcnn_binarized_mnist")
    page.wait_for_selector("#complete:not([disabled])", timeout=60_000)
    assert page.locator("#test-digits button").count() == len(serve.TEST_DIGITS)
    page.click("#test-digits button[data-index='7']")
    page.fill("#keep-rows", "12")
    drawing, completed = (p[..., 0] for p in complete_the_pad(page))
    np.testing.assert_array_equal(drawing, digits[7, ..., 0] * 255)  # the pad shows the digit
    np.testing.assert_array_equal(completed[:12], drawing[:12])  # its top rows are kept
    assert completed[12:].max() == 255  # and the model drew the rest of the digit
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, "web_completion.png"), full_page=True)


def test_without_the_test_digits_file_the_page_says_how_to_offer_them(browser, tmp_path):
    with running_server(manual_dir=str(tmp_path)) as base:
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(base + "/test_digits.npy")
        page = open_page(browser, base + "/?model=pixelcnn_binarized_mnist")
        page.wait_for_selector("#test-digits-hint:not([hidden])", timeout=60_000)
        assert "--manual-dir" in page.inner_text("#test-digits-hint")
        assert page.locator("#test-digits button").count() == 0
        assert page.is_hidden("#error")


def test_a_colour_model_samples_and_completes_your_held_out_images(browser, tmp_path, monkeypatch):
    """Colour in the browser (issue N): an RGB Gated PixelCNN with the logistic-mixture head
    samples and completes as Python LiteRT does, and `serve --images` offers the folder's
    held-out images, read at the model's shape, to complete."""
    from keras_gen import export, models
    from keras_gen.image_files import ImageSource
    from tests.test_image_files import colour_folder

    model = models.GatedPixelCNN(
        image_shape=(8, 8, 3), num_levels=16, filters=6, num_layers=2, head_filters=6,
        likelihood="logistic_mixture", num_mixtures=3,
    )  # fmt: skip
    export.export(model, str(tmp_path / "zoo" / "tiny_colour"), verbose=False)
    monkeypatch.setenv(zoo.ZOO_DIR_ENV, str(tmp_path / "zoo"))
    photos = colour_folder(str(tmp_path / "photos"), count=60)
    held_out = ImageSource(photos, image_size=(8, 8), channels=3).real_images("test", 20)
    files = tmp_path / "files"
    files.mkdir()
    with running_server(files_dir=str(files), images=photos) as base:
        check_sampling(base, files, browser, "tiny_colour")
        check_completion(base, files, browser, "tiny_colour")
        for query, message in [("shape=8x8", "HxWxC"), ("shape=8x8x3", None)]:
            try:
                with urllib.request.urlopen(f"{base}/test_images.npy?{query}") as response:
                    assert message is None
                    np.testing.assert_array_equal(np.load(io.BytesIO(response.read())), held_out)
            except urllib.error.HTTPError as error:
                assert message and message in error.read().decode()
        page = open_page(browser, base + "/?model=tiny_colour")
        page.wait_for_selector("#test-digits button", timeout=60_000)
        assert page.locator("#test-digits button").count() == len(held_out) >= 2
        assert page.is_visible("#ink")  # a colour model's pen has a colour
        # A blank pad takes the held-out images' background: their border's median colour.
        border = np.concatenate(
            [held_out[:, [0, -1]].reshape(-1, 3), held_out[:, 1:-1, [0, -1]].reshape(-1, 3)]
        )
        page.click("#clear")
        blank = page.evaluate(
            "() => Array.from(document.getElementById('drawing').getContext('2d')"
            ".getImageData(0, 0, 1, 1).data)"
        )
        assert blank[:3] == [int(v) for v in np.sort(border, axis=0)[len(border) // 2]]
        page.click("#test-digits button[data-index='1']")
        page.fill("#keep-rows", "4")
        pad, completed = complete_the_pad(page, (8, 8, 3))
        np.testing.assert_array_equal(pad, held_out[1])  # the pad shows the picked image
        np.testing.assert_array_equal(  # and its top rows, as 16 levels, are kept
            pixels_to_levels(completed[:4], 16), pixels_to_levels(held_out[1, :4], 16)
        )
    with running_server() as base:  # no --images: nothing to offer at a colour model's shape
        with pytest.raises(urllib.error.HTTPError, match="404") as refused:
            urllib.request.urlopen(base + "/test_images.npy?shape=8x8x3")
        assert "--images" in refused.value.read().decode()


def test_the_colour_zoo_model_completes_a_held_out_emoji_picked_on_the_page(browser):
    """The zoo's colour model on the page (issue N), with `serve --images` offering the held-out
    emoji: a picked emoji keeps its top rows and the model draws the rest."""
    from keras_gen.image_files import ImageSource

    emoji = package_data("emoji-datasource-google/img/google/64")
    held_out = ImageSource(emoji, image_size=(32, 32), channels=3).real_images("test", 20)
    with running_server(images=emoji) as base:
        page = open_page(browser, base + "/?model=gated_pixelcnn_emoji")
        page.wait_for_selector("#test-digits button", timeout=60_000)
        page.click("#test-digits button[data-index='18']")
        page.fill("#keep-rows", "16")
        pad, completed = complete_the_pad(page, (32, 32, 3))
        np.testing.assert_array_equal(pad, held_out[18])
        np.testing.assert_array_equal(completed[:16], held_out[18, :16])
        assert not np.array_equal(completed[16:], held_out[18, 16:])  # the model drew the rest
        if SCREENSHOTS:
            page.screenshot(path=os.path.join(SCREENSHOTS, "web_colour.png"), full_page=True)
