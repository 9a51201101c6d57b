"""A quiet command line (issue P): its first line is its own; TensorFlow's C++ logs show only with
--verbose or a TF_CPP_MIN_LOG_LEVEL the user set; --mixed-precision float32 is accepted."""

import os
import subprocess
import sys

import pytest

from keras_gen import cli, quiet
from tests.conftest import REPO


def run_cli(*arguments, **environment):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(environment)
    result = subprocess.run(
        [sys.executable, "-m", "keras_gen", *arguments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, (result.stderr + result.stdout).splitlines()


def native_lines(lines):
    return [line for line in lines if not quiet.keep_line(line.encode())]


def test_native_log_lines_are_recognised_and_nothing_else():
    dropped = [
        "I0000 00:00:1796417606.116344    3909 port.cc:153] oneDNN custom operations are on.",
        "E0000 00:00:1796417316.781115    2177 cuda_platform.cc:52] failed call to cuInit: ...",
        "W0000 00:00:1796417524.934806    3016 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    ]
    kept = [
        "error: No zoo model named 'nonesuch'.",
        "Traceback (most recent call last):",
        "precision: float32 (asked for)",
        "I0000 is not a log line without its source file",
    ]
    assert not any(quiet.keep_line(line.encode()) for line in dropped)
    assert all(quiet.keep_line(line.encode()) for line in kept)


def test_the_filter_is_for_the_command_line_only_and_steps_aside_when_asked():
    command = ["python", "-m", "keras_gen", "zoo"]
    assert quiet.wanted(command, {})
    assert not quiet.wanted(command + ["--verbose"], {})
    assert not quiet.wanted(command, {"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert not quiet.wanted(["python", "train.py"], {})  # a user's script keeps TensorFlow's logs
    assert quiet.wanted(["/usr/bin/keras-gen", "zoo"], {})
    # An installed console script, as sys.orig_argv gives it: the interpreter comes first.
    assert quiet.wanted(["/usr/bin/python3.11", "/usr/local/bin/keras-gen", "zoo"], {})
    script = os.path.join(quiet.BENCHMARKS, "zoo_latency.py")
    assert quiet.wanted(["python", script, "--num", "2"], {})
    assert not quiet.wanted(["python", "-c", "import keras_gen"], {})


def test_benchmark_scripts_hide_tensorflows_start_up_lines():
    script = os.path.join(REPO, "benchmarks", "unseen_designs.py")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, script, "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    assert not native_lines(result.stderr.splitlines())


def test_the_command_lines_first_line_is_its_own():
    result, lines = run_cli("sample", "nonesuch", "--out", "/nonexistent/x.png")
    assert result.returncode == 2
    assert lines[0].startswith("error: No zoo model named 'nonesuch'"), lines[:5]
    assert native_lines(lines) == []
    result, lines = run_cli("zoo")
    assert result.returncode == 0 and lines[0].endswith("saved_models"), lines[:5]
    assert native_lines(lines) == []


def test_verbose_and_a_users_log_level_keep_tensorflows_lines():
    result, verbose = run_cli("sample", "nonesuch", "--out", "/nonexistent/x.png", "--verbose")
    assert result.returncode == 2 and "error: No zoo model named 'nonesuch'" in "\n".join(verbose)
    _, users = run_cli(
        "sample", "nonesuch", "--out", "/nonexistent/x.png", TF_CPP_MIN_LOG_LEVEL="0"
    )
    # TensorFlow writes its start-up lines on every CPU build (absl's notice at least).
    assert native_lines(verbose) and native_lines(users)


@pytest.mark.parametrize("choice", ["float32", "auto"])
def test_mixed_precision_float32_is_accepted_where_auto_is(choice):
    args = cli.build_parser().parse_args(
        ["train", "vae", "--out", "x", "--mixed-precision", choice]
    )
    assert args.mixed_precision == choice
    args = cli.build_parser().parse_args(["quickstart", "--mixed-precision", choice])
    assert args.mixed_precision == choice
    from keras_gen import precision

    policy, line = precision.resolve("float32")
    assert policy is None and line == "precision: float32 (asked for)"


def test_fit_on_a_dataset_does_not_warn_about_shuffle():
    import warnings

    import numpy as np

    from tests.test_distribute import make_data, make_model

    model = make_model("pixelcnn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(make_data(model), epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]
    assert np.isfinite(model.evaluate(make_data(model), verbose=0)).all()


def test_the_quiet_command_line_prints_a_warning_on_one_line(monkeypatch):
    import warnings

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after
    cli.quiet_python_logs()
    text = warnings.formatwarning("model_int8.tflite moves log_prob", RuntimeWarning, "x.py", 7)
    assert text == "warning: model_int8.tflite moves log_prob\n"
