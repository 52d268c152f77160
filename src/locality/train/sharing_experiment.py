"""How much weight sharing, and of which kind, each task wants: issue 16's experiment.

The rows of :mod:`locality.train.experiment` (dense, locally connected, tiled t = 4 and 2, conv)
next to the kinds between convolution and locally connected:

- ``region-R``: every connectivity layer of the conv family made region-shared with ``R``
  regions per dimension (``R x R`` in 2-D; capped at a layer's output size), starting from the
  conv initialisation (all regions equal; they diverge as each region's positions train it);
- ``lowrank-K``: every layer low-rank locally connected with ``K`` basis kernels (Elsayed et al.,
  ICML 2020), starting exactly as the conv model (uniform mixes of a basis centred on the conv
  kernel, see :func:`locality.convert.localize`);
- ``locally_connected-share-N``: the locally connected family trained with Pogodin et al.'s
  instant weight sharing every ``N`` optimiser steps (:class:`locality.train.WeightSharing`,
  period = kernel size as in their paper).

on MNIST-1D, shuffled MNIST-1D, the 8x8 digits and ``digits-slots``, a translation-variance task
(:func:`digits_slots`). Each run records the accuracy under test-time circular shifts
(``torch.roll`` along the last axis, for every dataset: on ``digits-slots`` a roll by 8 swaps the
two halves) and, for locally connected rows, the singular values of the first layer's
(positions x kernel) matrix after training.

Finished runs are saved under ``out_dir/runs/`` and skipped when the experiment runs again, so a
long table can be filled by several processes (each given some of the datasets or rows) and then
assembled by one more call with everything.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from locality.analysis.sharing import kernel_spectrum
from locality.convert.localize import localize
from locality.layers.local import _LocallyConnectedNd
from locality.train import data as datasets
from locality.train.data import Data
from locality.train.experiment import (
    PUBLISHED,
    PUBLISHED_PARAMETERS,
    format_accuracy,
    machine,
    markdown_table,
    shift,
    summarise,
)
from locality.train.loop import TrainConfig, evaluate, train
from locality.train.models import FAMILIES, build_model
from locality.train.sharing import WeightSharing

__all__ = [
    "ROWS",
    "DATASETS",
    "MAX_SHIFT",
    "Row",
    "parse_rows",
    "digits_slots",
    "run_sharing_experiment",
]

ROWS = (
    "dense",
    "locally_connected",
    "tiled-4",
    "tiled-2",
    "conv",
    "region-2",
    "region-4",
    "lowrank-2",
    "lowrank-4",
    "lowrank-8",
    "locally_connected-share-10",
    "locally_connected-share-100",
)
DATASETS = ("mnist1d", "mnist1d-shuffled", "digits", "digits-slots")
# Largest test-time shift per dataset by default: 10 of MNIST-1D's 40 positions (as the base
# experiment), half the 8x8 digits, and for digits-slots the 8 columns that move a digit from one
# half into the other.
MAX_SHIFT = {"mnist1d": 10, "mnist1d-shuffled": 10, "digits": 4, "digits-slots": 8}

# How every run shifts its test inputs (``experiment.shift``): circularly, on every dataset.
SHIFT_MODE = "roll"

# The settings that change a run's result; a finished run is reused only if they all match.
_SETTINGS = ("steps", "batch_size", "lr", "weight_decay", "seed")


@dataclass(frozen=True)
class Row:
    """One model of the table: a base family and how it is changed.

    Attributes:
        name: the row's name, e.g. ``"region-2"``.
        family: the family built first (:data:`locality.train.models.FAMILIES`).
        tile_size: for ``tiled`` rows.
        kind: ``"region"`` or ``"lowrank"`` when the conv family is localized to that kind.
        size: regions per dimension or rank, for those kinds.
        share_every: instant weight sharing every this many steps, for shared rows.
    """

    name: str
    family: str
    tile_size: int | None = None
    kind: str | None = None
    size: int | None = None
    share_every: int | None = None


def parse_rows(spec: str | Sequence[str]) -> tuple[Row, ...]:
    """``"conv,region-2,locally_connected-share-10"`` (or a sequence of names) -> rows."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    return tuple(_parse_row(name.strip()) for name in names)


def _parse_row(name: str) -> Row:
    head, _, number = name.rpartition("-")
    if not (number.isdigit() and int(number) >= 1):
        if name in FAMILIES and name != "tiled":
            return Row(name, name)
    else:
        size = int(number)
        if head == "tiled":
            return Row(name, "tiled", tile_size=size)
        if head in ("region", "lowrank"):
            return Row(name, "conv", kind=head, size=size)
        if head == "locally_connected-share":
            return Row(name, "locally_connected", share_every=size)
    raise ValueError(
        f"rows: each entry must be dense, locally_connected, conv, tiled-T, region-R, lowrank-K "
        f"or locally_connected-share-N with a positive int, got {name!r}"
    )


def digits_slots(seed: int = 0) -> Data:
    """The translation-variance task: an 8x8 digit in one of two slots of an 8x16 canvas.

    Each image of scikit-learn's 8x8 digits (split as the ``digits`` dataset is) is placed once,
    in a slot drawn at random: upright in the left half, or transposed (rows and columns swapped)
    in the right half; the other half is blank. The label is the digit. What a class looks like
    therefore depends on where it is, as the parts of an aligned face do (the case DeepID's
    region-shared layers were made for): a convolution must fit both appearances with one set of
    kernels, a locally connected or region-shared layer can specialise each half, and every kind
    can tell the halves apart (the classifier after the layers is position-specific).

    Why it is a fair test: every model sees the same canvases, the same number of examples per
    class and slot, and the same training budget; the test canvases hold digits none of the
    models saw in training; nothing in the construction favours a kind except what it asks
    (position-dependent appearance), and the base ``digits`` row is the control where appearance
    does not depend on position. Shifting a test canvas by 8 columns moves an upright digit into
    the right slot, where it never appeared in training: the shift curve shows which models rely
    on position.

    Returns:
        ``Data`` named ``"digits-slots"``, inputs ``(N, 1, 8, 16)``, labels ``0..9``.
    """
    base = datasets.digits()
    rng = np.random.default_rng(seed)

    def place(x: torch.Tensor) -> torch.Tensor:
        right = torch.from_numpy(rng.random(len(x)) < 0.5)
        canvas = x.new_zeros(len(x), 1, 8, 16)
        canvas[~right, :, :, :8] = x[~right]
        canvas[right, :, :, 8:] = x[right].transpose(-1, -2)
        return canvas

    return Data(
        name="digits-slots",
        x_train=place(base.x_train),
        y_train=base.y_train,
        x_test=place(base.x_test),
        y_test=base.y_test,
        num_classes=base.num_classes,
    )


def load(name: str) -> Data:
    """A dataset of the experiment by name (the built-in ones, or ``"digits-slots"``)."""
    return digits_slots() if name == "digits-slots" else datasets.load(name)


def build(row: Row, data: Data) -> tuple[nn.Module, WeightSharing | None]:
    """The row's model for ``data`` (seed torch first), and its sharing callback if any."""
    model: nn.Module = build_model(
        row.family, data.input_shape, data.num_classes, tile_size=row.tile_size
    )
    if row.kind == "region":
        model = localize(model, data.x_train[:1], to="region", regions=row.size)
    elif row.kind == "lowrank":
        model = localize(model, data.x_train[:1], to="lowrank", rank=row.size)
    sharing = WeightSharing(model, every=row.share_every) if row.share_every else None
    return model, sharing


def run_sharing_experiment(
    *,
    datasets: Sequence[str] = DATASETS,
    rows: Sequence[str] = ROWS,
    seeds: int = 5,
    config: TrainConfig | None = None,
    max_shift: int | None = None,
    out_dir: str | os.PathLike = "results",
    progress: bool = True,
) -> list[dict]:
    """Train every row on every dataset over ``seeds`` seeds; write the table, JSON and plots.

    Args:
        datasets: names from :data:`DATASETS`.
        rows: names from :data:`ROWS` (or any :func:`parse_rows` name).
        seeds: runs per row and dataset, seeds ``0 .. seeds - 1``.
        config: optimisation settings (``seed`` replaced per run); default :class:`TrainConfig`.
        max_shift: test-time circular shifts ``0 .. max_shift`` along the last axis; ``None``
            (default) takes :data:`MAX_SHIFT` per dataset.
        out_dir: where ``sharing.json``, ``sharing.md``, the plots and ``runs/`` go.
        progress: print one line per finished run to stderr.

    Returns:
        The table rows, as written to ``sharing.json``.
    """
    where = "run_sharing_experiment"
    unknown = [name for name in datasets if name not in DATASETS]
    if unknown or not datasets:
        raise ValueError(f"{where}: datasets must be among {', '.join(DATASETS)}, got {unknown}")
    parsed = parse_rows(rows)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"{where}: seeds must be an int >= 1, got {seeds!r}")
    if max_shift is not None and (
        isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0
    ):
        raise ValueError(f"{where}: max_shift must be None or an int >= 0, got {max_shift!r}")
    shifts = {d: MAX_SHIFT[d] if max_shift is None else max_shift for d in datasets}
    config = config or TrainConfig()
    out = Path(out_dir)
    jobs = [(dataset, row, seed) for seed in range(seeds) for dataset in datasets for row in parsed]
    loaded: dict[str, Data] = {}
    for dataset, row, seed in jobs:
        path = out / "runs" / f"{dataset}_{row.name}_seed-{seed}.json"
        run_config = replace(config, seed=seed)
        if path.is_file():
            _check_finished(path, run_config, shifts[dataset])
            continue
        if dataset not in loaded:
            loaded[dataset] = load(dataset)
        record = _run(loaded[dataset], row, run_config, shifts[dataset])
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(temporary, path)
        if progress:
            print(f"{path.stem}: {record['test_accuracy']:.3f}", file=sys.stderr)
    records = [
        json.loads((out / "runs" / f"{d}_{r.name}_seed-{s}.json").read_text()) for d, r, s in jobs
    ]
    table = summarise(records)
    (out / "sharing.json").write_text(json.dumps(table, indent=2) + "\n")
    (out / "sharing.md").write_text(
        markdown_table(table, records, config, seeds, min(shifts.values())) + _winners(table)
    )
    _plot(table, records, out)
    return table


def _run(data: Data, row: Row, config: TrainConfig, max_shift: int) -> dict:
    torch.manual_seed(config.seed)
    model, sharing = build(row, data)
    result = train(model, data, config, name=row.name, progress=False, after_step=sharing)
    x_test, y_test = data.x_test, data.y_test
    shift_accuracy = [
        evaluate(model, shift(x_test, s, SHIFT_MODE), y_test)[1] for s in range(max_shift + 1)
    ]
    record = asdict(result)
    record.update(
        family="tiled" if row.family == "tiled" else row.name,
        tile_size=row.tile_size,
        config=asdict(config),
        shift_accuracy=shift_accuracy,
        shift_mode=SHIFT_MODE,
        machine=machine(),
        device="cpu",
    )
    local = next((m for m in model.modules() if isinstance(m, _LocallyConnectedNd)), None)
    if local is not None:
        spectrum = kernel_spectrum(local)
        record["first_layer_spectrum"] = {
            "singular_values": spectrum.singular_values.tolist(),
            "positions": spectrum.positions,
            "kernel_size": spectrum.kernel_size,
        }
    return record


def _check_finished(path: Path, config: TrainConfig, max_shift: int) -> None:
    record = json.loads(path.read_text())
    saved = {key: record.get("config", {}).get(key) for key in _SETTINGS}
    wanted = {key: getattr(config, key) for key in _SETTINGS}
    shifts = len(record.get("shift_accuracy", ())) - 1
    if saved != wanted or shifts != max_shift:
        raise ValueError(
            f"run_sharing_experiment: {path} was trained with {saved} and max_shift {shifts}, "
            f"not {wanted} and max_shift {max_shift}; use another out_dir or delete it"
        )


def _winners(table: Sequence[dict]) -> str:
    lines = ["", "Best row per dataset (highest mean test accuracy; ± is the std over seeds):", ""]
    for dataset in dict.fromkeys(row["dataset"] for row in table):
        best = max((r for r in table if r["dataset"] == dataset), key=_accuracy)
        model = f"tiled (t={best['tile_size']})" if best["model"] == "tiled" else best["model"]
        lines.append(
            f"- {dataset}: {model}, "
            f"{format_accuracy(best['test_accuracy_mean'], best['test_accuracy_std'])}"
        )
    return "\n".join(lines) + "\n"


def _accuracy(row: dict) -> float:
    return row["test_accuracy_mean"]


def _plot(table: Sequence[dict], records: Sequence[dict], out: Path) -> None:
    try:
        from locality.draw.spectrum import spectrum_figure
        from locality.train import plots
    except ImportError as error:
        print(
            f"experiment: skipping plots ({error}); pip install 'locality[plot]'", file=sys.stderr
        )
        return
    from locality.analysis.sharing import Spectrum

    plots.accuracy_vs_parameters(
        table, PUBLISHED, PUBLISHED_PARAMETERS, share_accuracy_axis=False
    ).savefig(out / "sharing_accuracy_vs_parameters.png", dpi=120)
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        if not dataset.endswith("-shuffled"):
            plots.accuracy_vs_shift(records, dataset).savefig(
                out / f"sharing_accuracy_vs_shift_{dataset}.png", dpi=120
            )
    trained = [r for r in records if r["family"] == "locally_connected" and r["seed"] == 0]
    if trained:
        saved = trained[0]["first_layer_spectrum"]
        values = torch.tensor(saved["singular_values"], dtype=torch.float64)
        spectrum = Spectrum(values, saved["positions"], saved["kernel_size"])
        title = f"first layer of a trained locally connected model ({trained[0]['dataset']})"
        spectrum_figure(spectrum, title=title).savefig(out / "sharing_spectrum.png", dpi=120)
