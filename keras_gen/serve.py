"""The zoo in a browser: a static page that samples every zoo model's `model.tflite` on the
device through LiteRT.js (WebAssembly), served from this machine, offline.

`python -m keras_gen serve` serves, on the loopback address by default:

    /                      the page (keras_gen/web/)
    /zoo.json              each zoo model: name, class, noise inputs, labels, card figures
    /models/<name>.tflite  the zoo file with a fixed batch of 1 (LiteRT.js cannot resize inputs)
    /models/<name>/<png>   the model card's pictures
    /litertjs/...          the LiteRT.js ES modules and WebAssembly files, from npm
    /files/<name>          files of `--files DIR`, such as noise .npy files for the URL contract
    /test_images.npy?shape=HxWxC
                           up to 20 images for the page to complete, as uint8 pixels
                           (N, H, W, C): the first held-out images of `--images PATH` (your
                           folder or array, read at that shape); without `--images`, for
                           28x28x1, the test digits below
    /test_digits.npy       20 static binarized MNIST test digits, as uint8 pixels 0/255
                           (N, 28, 28, 1), for the page's completion; only with `--manual-dir`

LiteRT.js comes from npm, once: `npm ci --prefix keras_gen/web` (package.json pins
@litertjs/core 2.5.3). The responses carry cross-origin isolation headers, so the threaded
WebAssembly build may run.
"""

import http.server
import io
import json
import os
import socketserver
import urllib.parse

import numpy as np

from keras_gen import data, formats, image_files, validation, zoo

WEB_DIR = os.path.join(os.path.dirname(__file__), "web")
LITERTJS_ENV = "KERAS_GEN_LITERTJS"
# What the page may fetch from npm's packages, relative to node_modules/@litertjs.
LITERTJS_FILES = ("core/dist/", "core/wasm/", "wasm-utils/dist/")
# The page's test digits to complete: two of each class (the test file is ordered by class).
TEST_DIGITS = tuple(range(250, 10_000, 500))
TEST_IMAGES = 20  # how many of `--images`' held-out images the page offers to complete
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".npy": "application/octet-stream",
    ".tflite": "application/octet-stream",
    ".map": "application/json",
}


class ServeError(RuntimeError):
    """The page cannot be served: LiteRT.js is not installed, or the port is taken."""


def litertjs_dir():
    """node_modules/@litertjs of the page: $KERAS_GEN_LITERTJS, else keras_gen/web's."""
    return os.environ.get(LITERTJS_ENV) or os.path.join(WEB_DIR, "node_modules", "@litertjs")


def check_litertjs(directory=None):
    """Raises ServeError, with the install command, when LiteRT.js is missing."""
    directory = directory or litertjs_dir()
    if not os.path.exists(os.path.join(directory, "core", "dist", "index.js")):
        raise ServeError(
            f"LiteRT.js is not installed in {directory}. Install it once with "
            f"`npm ci --prefix {os.path.relpath(WEB_DIR)}` (npm's @litertjs/core 2.5.3), or "
            f"point ${LITERTJS_ENV} at a node_modules/@litertjs folder."
        )
    return directory


def fixed_batch_copy(tflite_bytes, batch=1):
    """A .tflite model whose signature inputs have batch `batch` instead of -1 (dynamic).

    Only the inputs' declared shapes change; LiteRT.js refuses a dynamic batch, and the
    interpreters compute every other shape from the inputs, so the outputs stay the same.
    """
    # LiteRT's own flatbuffer tools (ai-edge-litert), not TensorFlow's internal copy of them.
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(tflite_bytes))
    for signature in model.signatureDefs:
        tensors = model.subgraphs[signature.subgraphIndex].tensors
        for tensor_map in signature.inputs:
            tensor = tensors[tensor_map.tensorIndex]
            for name in ("shape", "shapeSignature"):
                shape = getattr(tensor, name)
                if shape is not None and len(shape):
                    setattr(tensor, name, np.array([batch, *shape[1:]], np.int32))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def catalogue():
    """What the page knows of each zoo model with a model.tflite: a list of dicts."""
    models = []
    for entry in zoo.list():
        folder = zoo.folder(entry["name"])
        if not os.path.exists(os.path.join(folder, formats.TFLITE)):
            continue
        manifest = formats.read_manifest(folder)
        models.append(
            dict(
                name=entry["name"],
                model=entry["model"],
                image_shape=manifest["image_shape"],
                num_levels=manifest["num_levels"],
                num_classes=manifest["num_classes"],
                noise=formats.noise_spec_json(formats.noise_spec_of(manifest)),
                signatures=sorted(manifest["signatures"]),
                figures=entry["figures"],
                published=entry["published"],
                litert_ms_per_image=entry["litert_ms_per_image"],
                pictures=sorted(f for f in os.listdir(folder) if f.endswith(".png")),
            )
        )
    return models


class _ZooRequestHandler(http.server.BaseHTTPRequestHandler):
    """GET only; every path is resolved inside the web, zoo or LiteRT.js folders."""

    litertjs = None  # set by `make_server`
    files_dir = None  # served under /files/, e.g. noise .npy files for the URL contract
    manual_dir = None  # binarized_mnist's raw files, for /test_digits.npy
    images = None  # the user's images (a folder or an array file), for /test_images.npy
    _tflite_cache = {}
    _test_digits_cache = {}  # folder -> the .npy bytes: the raw file is 15 MB of text
    _test_images_cache = {}  # (path, shape) -> the .npy bytes

    def log_message(self, format, *args):  # quiet: the tests and the page make many requests
        pass

    def end_headers(self):
        # Cross-origin isolation lets LiteRT.js use threads (SharedArrayBuffer).
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def _send(self, body, content_type, status=200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self, why):
        self._send(json.dumps({"error": why}).encode(), "application/json", 404)

    def _send_file(self, path):
        with open(path, "rb") as file:
            body = file.read()
        self._send(body, CONTENT_TYPES.get(os.path.splitext(path)[1], "application/octet-stream"))

    def do_GET(self):  # noqa: N802  (http.server's name)
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path in ("/", "/index.html"):
            return self._send_file(os.path.join(WEB_DIR, "index.html"))
        if path == "/zoo.json":
            return self._send(json.dumps(catalogue()).encode(), "application/json")
        if path.startswith("/litertjs/"):
            relative = path[len("/litertjs/") :]
            if relative.startswith(LITERTJS_FILES) and ".." not in relative:
                full = os.path.join(self.litertjs, relative)
                if os.path.isfile(full):
                    return self._send_file(full)
            return self._not_found(f"no LiteRT.js file {relative}")
        if path.startswith("/models/"):
            return self._model_file(path[len("/models/") :])
        if path == "/test_digits.npy":
            return self._test_digits()
        if path == "/test_images.npy":
            return self._test_images(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
        if path.startswith("/files/") and self.files_dir:
            name = path[len("/files/") :]
            full = os.path.join(self.files_dir, name)
            if "/" not in name and not name.startswith(".") and os.path.isfile(full):
                return self._send_file(full)
            return self._not_found(f"no such file: {path}")
        name = path.lstrip("/")
        if name in os.listdir(WEB_DIR) and "/" not in name and not name.startswith("."):
            return self._send_file(os.path.join(WEB_DIR, name))
        # Anything else under the zoo's folder, such as a test's noise file, is not served.
        return self._not_found(f"no such file: {path}")

    def _test_digits(self):
        folder = data.resolve_manual_dir("binarized_mnist", self.manual_dir)
        if folder not in self._test_digits_cache:
            try:
                levels = data.static_binarized_test_digits(TEST_DIGITS, self.manual_dir)
            except data.DatasetError as error:
                return self._not_found(f"no test digits to pick: {error}")
            buffer = io.BytesIO()
            np.save(buffer, levels * np.uint8(255))
            self._test_digits_cache[folder] = buffer.getvalue()
        return self._send(self._test_digits_cache[folder], CONTENT_TYPES[".npy"])

    def _test_images(self, query):
        text = query.get("shape", [""])[0]
        try:
            shape = tuple(int(d) for d in text.split("x"))
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3):
            return self._not_found(f"shape must be HxWxC with C 1 or 3, e.g. 28x28x1; got {text!r}")
        if self.images is None:
            if shape == (28, 28, 1):
                return self._test_digits()
            return self._not_found(
                f"no {text} images to complete: start the server with --images PATH "
                "(a folder or an array of your images)"
            )
        key = (self.images, shape)
        if key not in self._test_images_cache:
            source = image_files.ImageSource(
                self.images, image_size=shape[:2], channels=shape[2], skip_bad_images=True
            )
            try:
                pixels = source.real_images("test", TEST_IMAGES)
            except (data.DatasetError, validation.InputError) as error:
                return self._not_found(f"no images to complete: {error}")
            buffer = io.BytesIO()
            np.save(buffer, pixels)
            self._test_images_cache[key] = buffer.getvalue()
        return self._send(self._test_images_cache[key], CONTENT_TYPES[".npy"])

    def _model_file(self, relative):
        if relative.endswith(".tflite") and "/" not in relative:
            name = relative[: -len(".tflite")]
            if name not in zoo.names():
                return self._not_found(f"no zoo model named {name!r}")
            source = os.path.join(zoo.folder(name), formats.TFLITE)
            key = (source, os.path.getmtime(source))
            if key not in self._tflite_cache:
                with open(source, "rb") as file:
                    self._tflite_cache[key] = fixed_batch_copy(file.read())
            return self._send(self._tflite_cache[key], "application/octet-stream")
        name, _, picture = relative.partition("/")
        if name in zoo.names() and picture.endswith(".png") and "/" not in picture:
            full = os.path.join(zoo.folder(name), picture)
            if os.path.isfile(full):
                return self._send_file(full)
        return self._not_found(f"no such model file: {relative}")


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use is an error, not shared


def make_server(
    host="127.0.0.1", port=8000, litertjs=None, files_dir=None, manual_dir=None, images=None
):
    """An HTTP server of the page and the zoo (call `serve_forever`); port 0 picks a free one.

    Args:
        files_dir: a folder whose files are served under /files/ (noise .npy files for the
            page's URL contract: ?model=...&noise=/files/noise.npy&autorun=1).
        manual_dir: binarized_mnist's raw files (else $KERAS_GEN_MANUAL_DIR), so the page can
            offer test digits to complete; without them it offers drawing only.
        images: your images, a folder or a .npy / .npz array (`keras_gen.image_files`): the page
            offers the first of their held-out images, at each model's shape, to complete.
    Raises ServeError when LiteRT.js is missing or the port is taken.

    Example:

    ```python
    import threading
    server = make_server(port=0)                              # any free port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/?model=pixelcnn_binarized_mnist" % server.server_address[1]
    server.shutdown()
    ```
    """
    if images is not None and not os.path.exists(images):
        raise ServeError(f"--images {images}: no such folder or file.")
    handler = type(
        "Handler",
        (_ZooRequestHandler,),
        dict(
            litertjs=check_litertjs(litertjs),
            files_dir=files_dir,
            manual_dir=manual_dir,
            images=None if images is None else os.path.abspath(os.path.expanduser(images)),
        ),
    )
    try:
        return _Server((host, port), handler)
    except OSError as error:
        raise ServeError(
            f"cannot serve on {host}:{port} ({error.strerror or error}); the port is in use? "
            "Pass another with --port."
        ) from None
