"""The singular-value spectrum of a layer's (positions x kernel) matrix, and its energy ranks."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from locality.analysis.sharing import Spectrum

__all__ = ["spectrum_figure"]


def spectrum_figure(spectrum: Spectrum, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Singular values (relative to the largest, log scale) and the cumulative energy they keep.

    Dotted lines mark the ranks keeping 90% and 99% of the energy. A layer made from a
    convolution shows one value and a drop to rounding level; a low-rank layer of rank K a drop
    after K values.

    Args:
        spectrum: from :func:`locality.analysis.kernel_spectrum`.
        ax: axes to draw into; a new figure when ``None``.
        title: the axes title (default: the matrix shape).
    """
    where = "spectrum_figure"
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"{where}: spectrum must be a Spectrum, got {type(spectrum).__name__}")
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"{where}: ax must be matplotlib Axes or None, got {type(ax).__name__}")
    if ax is None:
        figure = Figure(figsize=(6, 3.6), layout="constrained")
        ax = figure.add_subplot()
    else:
        figure = ax.get_figure()  # type: ignore[assignment]  # an Axes' figure is a Figure
    values = spectrum.singular_values
    ranks = range(1, len(values) + 1)
    largest = float(values[0]) if len(values) and values[0] > 0 else 1.0
    # rounding-level values of an exactly low-rank matrix would squash the plot; floor them
    relative = (values / largest).clamp_min(1e-17).tolist()
    ax.semilogy(ranks, relative, "o-", color="tab:blue", markersize=3, label="singular value")
    ax.set_xlabel("rank")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("singular value / largest", color="tab:blue")
    energy_ax = ax.twinx()
    energy_ax.plot(ranks, spectrum.energy.tolist(), color="tab:orange", label="energy kept")
    energy_ax.set_ylim(0, 1.05)
    energy_ax.set_ylabel("cumulative energy", color="tab:orange")
    for rank in {spectrum.rank_90, spectrum.rank_99} - {0}:
        ax.axvline(rank, color="grey", linestyle=":", linewidth=1)
    ax.text(
        0.98,
        0.55,
        f"rank keeping 90% of the energy: {spectrum.rank_90}\n"
        f"rank keeping 99% of the energy: {spectrum.rank_99}",
        transform=ax.transAxes,
        ha="right",
        va="center",
        fontsize=8,
        bbox={"facecolor": "white", "edgecolor": "grey", "alpha": 0.9},
    )
    ax.set_title(
        title
        if title is not None
        else f"kernels across positions: {spectrum.positions} x {spectrum.kernel_size} matrix"
    )
    return figure
