"""PNG figures of a scored trial list: DET curve (probit axes) and target/non-target histograms.

matplotlib loads on the first figure, not at import: every step that scores imports this module,
and the jobs that only embed (``--cmd`` workers) would pay seconds of start-up for nothing.
"""

from __future__ import annotations

import os

import numpy as np
from scipy.special import ndtri

from dropclass_lib.atomic import atomic_path
from dropclass_lib.metrics import ErrorRates

_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def plot_det(curves: dict[str, ErrorRates], path: str | os.PathLike, title: str = "",
             eers: dict[str, float] | None = None) -> None:
    """Write a DET plot (miss vs false-alarm probability, both on a normal-deviate scale).

    ``curves`` maps a legend label to its operating points; ``eers`` (fractions) are marked.
    """
    fig, ax = _pyplot().subplots(figsize=(5.5, 5.5))
    lo, hi = ndtri(0.0005), ndtri(0.5)
    for label, rates in curves.items():
        # Rates of exactly 0 or 1 sit at -/+ infinity on the probit scale: clip them to the frame.
        x = ndtri(np.clip(rates.fpr, 1e-6, 1 - 1e-6))
        y = ndtri(np.clip(rates.fnr, 1e-6, 1 - 1e-6))
        ax.plot(x, y, label=label)
        if eers and label in eers:
            e = ndtri(np.clip(eers[label], 1e-6, 1 - 1e-6))
            ax.plot([e], [e], "o", color=ax.lines[-1].get_color())
    ax.plot([lo, hi], [lo, hi], ":", color="grey", linewidth=0.8)
    ticks = ndtri(_TICKS)
    labels = [f"{100 * t:g}" for t in _TICKS]
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("False-alarm probability (%)")
    ax.set_ylabel("Miss probability (%)")
    ax.grid(True, linewidth=0.4)
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    _save(fig, path)


def plot_score_histogram(scores, labels, path: str | os.PathLike, title: str = "", bins: int = 100) -> None:
    """Write overlaid, density-normalised histograms of target and non-target scores."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    edges = np.histogram_bin_edges(scores, bins=bins)
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for chosen, name in ((~labels, "non-target"), (labels, "target")):
        density, _ = np.histogram(scores[chosen], bins=edges, density=True)
        # one filled outline per histogram: 100 bar patches took most of the scoring step's time
        ax.stairs(density, edges, fill=True, alpha=0.6, label=f"{name} ({chosen.sum()})")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_p_avg(curves: dict[str, np.ndarray], path: str | os.PathLike, title: str = "") -> None:
    """Sorted average class posteriors (DropAdapt's p_avg), one curve per data source.

    Each curve is sorted in decreasing order and plotted against the class rank on a log
    y-axis: a flat curve means the data spreads its probability over all training classes, a
    steep one that it resembles few of them (the paper's train/test class-mismatch figure).
    """
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for label, p in curves.items():
        ax.plot(np.sort(np.asarray(p, dtype=np.float64))[::-1], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("training class (sorted by p_avg)")
    ax.set_ylabel("p_avg")
    ax.set_title(title or "average posterior over training classes")
    ax.legend(fontsize="small")
    _save(fig, path)
