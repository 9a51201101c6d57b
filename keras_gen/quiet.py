"""A quiet command line: TensorFlow's C++ logs kept off the terminal (issue P).

TensorFlow 2.21 logs through absl before anything calls `absl::InitializeLog()`, so its start-up
lines (oneDNN, CUDA stubs, "All log messages before absl::InitializeLog()") reach stderr whatever
`TF_CPP_MIN_LOG_LEVEL` says. The command line therefore reads its own stderr through a pipe and
drops the lines written in the C++ logs' format; everything else, Python's tracebacks and
keras_gen's own messages included, passes through unchanged.

This module imports nothing heavy: `keras_gen/__init__.py` calls it before TensorFlow loads.
"""

import atexit
import os
import re
import sys
import threading

# "I0000 00:00:1796417606.116344    3909 port.cc:153] ...", absl's notice, LiteRT's delegate line,
# and the second line of the CPU-feature notice.
NATIVE_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d+:\d+:\d+\.\d+ +\d+ [\w./-]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|INFO: Created TensorFlow Lite XNNPACK delegate"
    rb"|To enable the following instructions: .* rebuild TensorFlow with)"
)
VERBOSE_FLAG = "--verbose"

_state = {"active": False}


def live_progress():
    """Whether progress lines should update in place: a person watches a terminal, not a log, a
    pipe or CI (where each update would stay behind as a run-on line)."""
    return sys.stdout.isatty() and not os.environ.get("CI")


def _argv(argv):
    """`argv`, or this process's own command line (with `python -m`, as it was typed)."""
    return list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)


# The repository's benchmark scripts are command-line tools too.
BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def _program(argv):
    """The file a command line runs: the script after the interpreter (as `sys.orig_argv` has
    it, for `python script.py` and for an installed `keras-gen`), else the first word."""
    if len(argv) > 1 and os.path.basename(argv[0]).startswith("python"):
        return argv[1]
    return argv[0] if argv else ""


def is_command_line(argv=None):
    """Whether this process is keras_gen's command line (`python -m keras_gen`, `keras-gen`) or
    one of the repository's benchmark scripts."""
    argv = _argv(argv)
    program = _program(argv)
    return (
        argv[1:3] == ["-m", "keras_gen"]
        or os.path.basename(program) in ("keras-gen", "keras_gen")
        or os.path.dirname(os.path.abspath(program)) == BENCHMARKS
    )


def wanted(argv=None, environ=None):
    """Whether to hide the C++ logs: on the command line, unless the user set
    TF_CPP_MIN_LOG_LEVEL or passed --verbose."""
    argv = _argv(argv)
    environ = os.environ if environ is None else environ
    return (
        is_command_line(argv) and "TF_CPP_MIN_LOG_LEVEL" not in environ and VERBOSE_FLAG not in argv
    )


def active():
    """Whether this process hides the C++ logs (and third-party chatter, such as tfds')."""
    return _state["active"]


def keep_line(line):
    """Whether one line of stderr (bytes) reaches the terminal."""
    return not NATIVE_LOG_LINE.match(line)


def _forward(read_end, terminal):
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        pending = b""
        while True:
            chunk = pipe.read(65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if keep_line(line))
            if kept:
                os.write(terminal, kept)
        if pending and keep_line(pending):
            os.write(terminal, pending)


def hide_native_logs():
    """Routes this process's stderr (file descriptor 2) through the filter until it exits."""
    if _state["active"]:
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward, args=(read_end, terminal), daemon=True)
    forwarder.start()
    _state["active"] = True

    def restore():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(terminal, 2)  # closes the pipe's last write end: the forwarder reads its end
        forwarder.join(timeout=5)

    atexit.register(restore)


def for_command_line():
    """Called at import: hides the C++ logs if this process is the command line and the user
    asked for nothing else (`wanted`)."""
    if wanted():
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # what TensorFlow still honours, later on
        hide_native_logs()
