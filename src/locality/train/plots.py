"""Figures for the training experiments (matplotlib's object API; no pyplot state)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import cast

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure

_MARKERS = ("o", "s", "^", "D", "v")


def _label(family: str, tile_size: int | None) -> str:
    return f"tiled (t={tile_size})" if family == "tiled" else family


def accuracy_vs_parameters(
    rows: Sequence[Mapping],
    published: Mapping[str, Mapping[str, float]] | None = None,
    published_parameters: Mapping[str, int] | None = None,
    share_accuracy_axis: bool = True,
) -> Figure:
    """Mean test accuracy (error bar: std over seeds) against parameter count, log scale, one
    panel per dataset, the same style per model in every panel and one legend of the models below
    the panels.

    ``rows`` are :func:`~locality.train.experiment.summarise` rows; ``published`` maps dataset ->
    family -> accuracy and ``published_parameters`` family -> parameters, drawn in black with a
    legend in their panel. ``share_accuracy_axis=False`` gives each panel its own accuracy range
    (for datasets whose accuracies lie far apart).
    """
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    models = list(dict.fromkeys(_label(row["model"], row["tile_size"]) for row in rows))
    style = _styles(models)
    fig = Figure(figsize=(5.2 * len(datasets), 5.4), layout="constrained")
    axes = fig.subplots(1, len(datasets), sharey=share_accuracy_axis, squeeze=False)[0]
    handles: dict[str, Artist] = {}
    for ax, dataset in zip(axes, datasets, strict=True):
        for row in (row for row in rows if row["dataset"] == dataset):
            label = _label(row["model"], row["tile_size"])
            color, marker = style[label]
            handles[label] = ax.errorbar(
                row["parameters"],
                row["test_accuracy_mean"],
                yerr=row["test_accuracy_std"],  # None (one seed): no error bar
                fmt=marker,
                color=color,
                capsize=3,
                markersize=7,
            )
        drawn = []
        for family, accuracy in (published or {}).get(dataset, {}).items():
            if published_parameters and family in published_parameters:
                name, marker = ("MLP", "X") if family == "dense" else ("CNN", "P")
                drawn += ax.plot(
                    published_parameters[family],
                    accuracy,
                    marker,
                    color="black",
                    markersize=9,
                    linestyle="none",
                    label=f"published {name} ({published_parameters[family]:,} "
                    f"parameters): {100 * accuracy:.0f}%",
                )
        if drawn:
            ax.legend(handles=drawn, loc="best", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("parameters (log scale)")
        ax.set_title(dataset)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy (mean ± std over seeds)")
    fig.legend(
        handles=list(handles.values()),
        labels=list(handles),
        loc="outside lower center",
        ncol=min(len(handles), 6),
        fontsize=9,
    )
    fig.suptitle("Test accuracy against parameters")
    return fig


def accuracy_vs_shift(
    records: Sequence[Mapping], dataset: str | None = None, ax: Axes | None = None
) -> Figure:
    """Mean test accuracy (band: min to max over seeds) against the test-time shift, per model.

    ``records`` are per-run results holding ``shift_accuracy`` (accuracy at shifts 0, 1, ...);
    ``dataset`` picks one dataset, by default the first.
    """
    own = ax is None
    fig, ax = _figure(ax)
    dataset = dataset if dataset is not None else records[0]["dataset"]
    models = list(
        dict.fromkeys((r["family"], r["tile_size"]) for r in records if r["dataset"] == dataset)
    )
    style = _styles([_label(family, tile) for family, tile in models])
    for family, tile in models:
        color, marker = style[_label(family, tile)]
        curves = [
            r["shift_accuracy"]
            for r in records
            if (r["dataset"], r["family"], r["tile_size"]) == (dataset, family, tile)
        ]
        by_shift = list(zip(*curves, strict=True))
        shifts = range(len(by_shift))
        line = ax.plot(
            shifts,
            [statistics.fmean(v) for v in by_shift],
            marker=marker,
            color=color,
            label=_label(family, tile),
        )
        ax.fill_between(
            shifts,
            [min(v) for v in by_shift],
            [max(v) for v in by_shift],
            color=line[0].get_color(),
            alpha=0.15,
        )
    modes = {r.get("shift_mode", "roll") for r in records if r["dataset"] == dataset}
    how = "circular roll" if modes == {"roll"} else "zero padding" if modes == {"pad"} else "mixed"
    ax.set_xlabel(f"shift of the test inputs (positions, {how})")
    ax.set_ylabel("test accuracy (mean; band: min to max over seeds)")
    ax.set_title(f"{dataset}: accuracy under test-time shift, no retraining")
    ax.grid(True, alpha=0.3)
    if len(models) > 6:  # beside the axes, where it hides no curve
        if own:
            fig.set_size_inches(9.6, 4.8)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    else:
        ax.legend()
    return fig


def _styles(labels: Sequence[str]) -> dict[str, tuple[object, str]]:
    """A colour and marker per label, distinct for up to 20 labels (tab20 beyond the 10 of the
    default cycle)."""
    if len(labels) <= 10:
        colors: list[object] = [f"C{i}" for i in range(len(labels))]
    else:
        from matplotlib import colormaps

        colors = [colormaps["tab20"](i % 20) for i in range(len(labels))]
    return {label: (colors[i], _MARKERS[i % len(_MARKERS)]) for i, label in enumerate(labels)}


def _figure(ax: Axes | None) -> tuple[Figure, Axes]:
    """The figure to draw on: ``ax``'s own (the top-level one, if ``ax`` is in a sub-figure)."""
    if ax is not None:
        return cast(Figure, ax.figure.figure), ax
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    return fig, fig.add_subplot()
