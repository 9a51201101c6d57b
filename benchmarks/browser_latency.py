"""Milliseconds per image of every zoo model in a browser (LiteRT.js, WebAssembly) beside Python
LiteRT, side by side in one run: Debian's headless Chromium through Playwright, one image at a
time, on 1 thread and on several, for the same noise.

    python benchmarks/browser_latency.py [--images 8] [--threads 2] [--rounds 2] [--models ...]

Needs what the browser tests need (chromium, `npm ci --prefix keras_gen/web`). Prints a table
and whether the headless browser offers WebGPU here (it is reported, never faked).
"""

import argparse
import contextlib
import os
import shutil
import tempfile
import threading

import numpy as np
from zoo_latency import per_image_ms  # benchmarks/, beside this script

import keras_gen  # noqa: F401
from keras_gen import formats, runtime, serve, zoo
from keras_gen.conventions import slice_noise


def python_litert_ms(name, noise, labels, rounds):
    """Median over rounds of ms per image, one image at a time, 1 thread."""
    runner = runtime.open_artifact(os.path.join(zoo.folder(name), formats.TFLITE), num_threads=1)
    runner.sample(slice_noise(noise, 0, 1), None if labels is None else labels[:1])  # warm-up
    return float(np.median([per_image_ms(runner, noise, labels) for _ in range(rounds)]))


@contextlib.contextmanager
def zoo_page(zoo_dir=None):
    """(page, base address, files folder): the zoo page served from `zoo_dir` (default: the
    zoo) in headless Chromium, and a folder it serves under /files/ for noise files."""
    from playwright.sync_api import sync_playwright

    previous_zoo = os.environ.get(zoo.ZOO_DIR_ENV)
    if zoo_dir is not None:
        os.environ[zoo.ZOO_DIR_ENV] = os.path.abspath(zoo_dir)
    files = tempfile.mkdtemp()
    server = serve.make_server(port=0, files_dir=files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            try:
                page = browser.new_page()
                page.goto(base + "/")
                yield page, base, files
            finally:
                browser.close()
    finally:
        server.shutdown()
        if zoo_dir is not None:  # the caller's zoo again
            if previous_zoo is None:
                os.environ.pop(zoo.ZOO_DIR_ENV, None)
            else:
                os.environ[zoo.ZOO_DIR_ENV] = previous_zoo


def sampling_query(name, noise, labels, files):
    """The page address that samples `noise` (an array or a dict) with `name`, autorun."""
    query = f"/?model={name}&autorun=1"
    for key, values in (noise if isinstance(noise, dict) else {"noise": noise}).items():
        np.save(os.path.join(files, f"{name}_{key}.npy"), values.astype(np.float32))
        query += f"&{'noise' if key == 'noise' else 'noise_' + key}=/files/{name}_{key}.npy"
    if labels is not None:
        query += "&labels=" + ",".join(map(str, labels))
    return query


def browser_ms(page, url, rounds):
    """Median over rounds of the page's ms per image; each load samples one image untimed
    first (&warmup=1), as `python_litert_ms` does."""
    times = []
    for _ in range(rounds):
        page.goto(url + "&warmup=1")
        page.wait_for_function(
            "document.getElementById('result-ms').textContent !== '–'"
            " || !document.getElementById('error').hidden",
            timeout=600_000,
        )
        if not page.locator("#error").is_hidden():
            raise RuntimeError(page.inner_text("#error"))
        times.append(float(page.inner_text("#result-ms")))
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=8, help="images per timing")
    parser.add_argument("--threads", type=int, default=2, help="the multi-threaded setting")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (median)")
    parser.add_argument("--models", nargs="*", default=None, help="zoo names (default: all)")
    args = parser.parse_args()
    rows = []
    with zoo_page() as (page, base, files):
        webgpu = page.evaluate(
            "async () => !!navigator.gpu && !!(await navigator.gpu.requestAdapter())"
        )
        isolated = page.evaluate("crossOriginIsolated")
        for name in args.models or zoo.names():
            runner = runtime.open_artifact(os.path.join(zoo.folder(name), formats.TFLITE))
            noise = runner.make_noise(args.images, seed=0)
            labels = np.arange(args.images, dtype=np.int32) % 10 if runner.num_classes else None
            query = sampling_query(name, noise, labels, files)
            python = python_litert_ms(name, noise, labels, args.rounds)
            one = browser_ms(page, base + query + "&threads=1", args.rounds)
            several = browser_ms(page, base + query + f"&threads={args.threads}", args.rounds)
            rows.append((name, python, one, several))
            print(f"{name}: Python {python:.1f}, browser {one:.1f} / {several:.1f} ms", flush=True)
    print(
        f"\nheadless Chromium: WebGPU {'offered' if webgpu else 'not offered'} here; "
        f"cross-origin isolated: {isolated}; {args.images} images one at a time, median of "
        f"{args.rounds} rounds\n"
    )
    print(
        f"| zoo model | Python LiteRT, 1 thread | browser, 1 thread | ratio | "
        f"browser, {args.threads} threads |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, python, one, several in rows:
        print(f"| {name} | {python:.1f} | {one:.1f} | {one / python:.1f}x | {several:.1f} |")


if __name__ == "__main__":
    main()
