"""The charts the benchmark scripts draw: grouped bars and learning curves."""

import numpy as np


def save_grouped_bars(
    path, group_labels, series, ylabel, log=False, rotation=20, fontsize=None, limit=None
):
    """Writes a PNG with one bar per series in each group.

    Args:
        series: {legend label: one value per group (NaN: no bar)}.
        limit: (value, label) of a dashed horizontal line, such as a target.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        axis.bar(np.arange(len(group_labels)) + i * width, values, width, label=label)
    axis.set_xticks(
        np.arange(len(group_labels)) + 0.4 - width / 2,
        group_labels,
        rotation=rotation,
        ha="right",
        fontsize=fontsize,
    )
    if limit is not None:
        axis.axhline(limit[0], color="grey", linestyle="--", linewidth=1, label=limit[1])
    if log:
        axis.set_yscale("log")
    _save(figure, axis, path, ylabel)


def save_curves(path, curves, xlabel, ylabel):
    """Writes a PNG with one line per curve.

    Args:
        curves: {legend label: [(x, y), ...]}, such as (training steps, validation NLL).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for label, points in curves.items():
        axis.plot(*zip(*points), marker="o", label=label)
    axis.set_xlabel(xlabel)
    _save(figure, axis, path, ylabel)


def _save(figure, axis, path, ylabel):
    import matplotlib.pyplot as plt

    axis.set_ylabel(ylabel)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
