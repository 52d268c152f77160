"""Figures for the training experiments (matplotlib's object API; no pyplot state)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

_MARKERS = ("o", "s", "^", "D", "v")


def _label(family: str, tile_size: int | None) -> str:
    return f"tiled (t={tile_size})" if family == "tiled" else family


def accuracy_vs_parameters(
    rows: Sequence[Mapping],
    published: Mapping[str, Mapping[str, float]] | None = None,
    published_parameters: Mapping[str, int] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Mean test accuracy (error bar: std over seeds) against parameter count, log scale.

    ``rows`` are :func:`~locality.train.experiment.summarise` rows; ``published`` maps dataset ->
    family -> accuracy and ``published_parameters`` family -> parameters, drawn as crosses.
    """
    fig, ax = _figure(ax)
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    for marker, dataset in zip(_MARKERS, datasets):
        mine = [row for row in rows if row["dataset"] == dataset]
        line = ax.errorbar(
            [row["parameters"] for row in mine],
            [row["test_accuracy_mean"] for row in mine],
            yerr=[row["test_accuracy_std"] for row in mine],
            fmt=marker, capsize=3, label=dataset,
        )
        for row in mine:
            ax.annotate(
                _label(row["model"], row["tile_size"]), (row["parameters"], row["test_accuracy_mean"]),
                textcoords="offset points", xytext=(5, 4), fontsize=7,
            )
        for family, accuracy in (published or {}).get(dataset, {}).items():
            if published_parameters and family in published_parameters:
                ax.plot(published_parameters[family], accuracy, "x", color=line[0].get_color(), markersize=8)
                ax.annotate(
                    f"published {'MLP' if family == 'dense' else 'CNN'}",
                    (published_parameters[family], accuracy), textcoords="offset points",
                    xytext=(5, -10), fontsize=7, color=line[0].get_color(),
                )
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy against parameters" + (" (crosses: published)" if published else ""))
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def accuracy_vs_shift(records: Sequence[Mapping], dataset: str | None = None, ax: Axes | None = None) -> Figure:
    """Mean test accuracy (band: min to max over seeds) against the test-time shift, per model.

    ``records`` are per-run results holding ``shift_accuracy`` (accuracy at shifts 0, 1, ...);
    ``dataset`` picks one dataset, by default the first.
    """
    fig, ax = _figure(ax)
    dataset = dataset if dataset is not None else records[0]["dataset"]
    models = list(dict.fromkeys((r["family"], r["tile_size"]) for r in records if r["dataset"] == dataset))
    for marker, (family, tile) in zip(_MARKERS * 2, models):
        curves = [r["shift_accuracy"] for r in records if (r["dataset"], r["family"], r["tile_size"]) == (dataset, family, tile)]
        by_shift = list(zip(*curves))
        shifts = range(len(by_shift))
        line = ax.plot(shifts, [statistics.fmean(v) for v in by_shift], marker=marker, label=_label(family, tile))
        ax.fill_between(shifts, [min(v) for v in by_shift], [max(v) for v in by_shift], color=line[0].get_color(), alpha=0.15)
    ax.set_xlabel("test signal shifted by (positions, circular)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: accuracy under test-time shift, no retraining")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def _figure(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    return fig, fig.add_subplot()
