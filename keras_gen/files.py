"""Writing files so that a failure never leaves a half-written one; reading a run's history and epoch times."""

import contextlib
import json
import os
import tempfile

EPOCH_TIMES = "epochs.json"  # a run's list of epoch times (`callbacks.EpochTimes`)


def give_default_permissions(path, directory=False):
    """chmod a mkstemp/mkdtemp path (0600/0700) to what open()/mkdir() would have made under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` only on success."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stem, suffix = os.path.splitext(os.path.basename(path))
    handle, temporary = tempfile.mkstemp(
        prefix=f".{stem}.partial-", suffix=suffix, dir=os.path.dirname(path)
    )
    os.close(handle)
    give_default_permissions(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def read_history(path):
    """{metric: [value per epoch]} from a history.json, or {} when there is none yet."""
    if not os.path.exists(path):
        return {}
    with open(path) as file:
        return json.load(file)


def epochs_done(history):
    """Epochs recorded in a history dict: its longest series (GANs log d_loss and g_loss, not loss)."""
    return max((len(values) for values in history.values()), default=0)


def read_epoch_times(path):
    """The entries `callbacks.EpochTimes` wrote at `path` (a list of dicts), or [] when none yet."""
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return json.load(file)


def describe_epoch_times(entries):
    """One line on what a run's recorded epochs cost: epochs, CPU-hours, wall hours and CPUs."""
    cpu_hours = sum(entry["cpu_seconds"] for entry in entries) / 3600
    wall_hours = sum(entry["wall_seconds"] for entry in entries) / 3600
    machines = sorted({f"{entry['cpu']} ({entry['cores']} cores)" for entry in entries})
    return (
        f"{len(entries)} epochs recorded in {EPOCH_TIMES}: {cpu_hours:.1f} CPU-hours, "
        f"{wall_hours:.1f} hours of wall time, on {', '.join(machines)}"
    )
