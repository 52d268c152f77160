"""The committed weight-sharing table (issue 16): ``docs/results/sharing/sharing.json`` has every
row of the experiment on every dataset with 5 seeds, its parameter counts are those of the models
built, and its means and spreads are those of the committed per-run files."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import torch

from locality.train.models import count_parameters
from locality.train.sharing_experiment import DATASETS, ROWS, build, load, parse_rows

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "sharing"


def row_name(row: dict) -> str:
    return f"tiled-{row['tile_size']}" if row["model"] == "tiled" else row["model"]


@pytest.fixture(scope="module")
def table() -> list[dict]:
    return json.loads((RESULTS / "sharing.json").read_text())


def test_every_row_on_every_dataset_with_five_seeds(table):
    keys = sorted((row["dataset"], row_name(row)) for row in table)
    assert keys == sorted((dataset, name) for dataset in DATASETS for name in ROWS)
    for row in table:
        assert row["seeds"] == 5, row
        assert 0.0 < row["test_accuracy_mean"] <= 1.0, row
        assert math.isfinite(row["test_accuracy_std"]) and row["test_accuracy_std"] >= 0.0
        assert row["train_seconds"] > 0.0


def test_means_and_spreads_are_those_of_the_runs(table):
    for row in table:
        runs = [
            RESULTS / "runs" / f"{row['dataset']}_{row_name(row)}_seed-{seed}.json"
            for seed in range(row["seeds"])
        ]
        accuracies = [json.loads(run.read_text())["test_accuracy"] for run in runs]
        assert row["test_accuracy_mean"] == pytest.approx(statistics.fmean(accuracies), abs=1e-9)
        assert row["test_accuracy_std"] == pytest.approx(statistics.stdev(accuracies), abs=1e-9)


@pytest.mark.parametrize("dataset", DATASETS)
def test_parameters_are_those_of_the_built_models(table, dataset):
    data = load(dataset)
    counts = {row_name(row): row["parameters"] for row in table if row["dataset"] == dataset}
    for row in parse_rows(ROWS):
        torch.manual_seed(0)
        model, _ = build(row, data)
        assert counts[row.name] == count_parameters(model), (dataset, row.name)


def test_figures_and_page_are_committed():
    names = ["sharing.md", "sharing_accuracy_vs_parameters.png", "sharing_spectrum.png"]
    names += [f"sharing_accuracy_vs_shift_{d}.png" for d in DATASETS if "shuffled" not in d]
    for name in names:
        assert (RESULTS / name).stat().st_size > 0, name


def test_the_page_quotes_the_table(table):
    page = (RESULTS.parent / "sharing.md").read_text()
    cells = {(row["dataset"], row_name(row)): row for row in table}
    for name in ROWS:
        line = next(line for line in page.splitlines() if line.startswith(f"| {name} |"))
        for dataset in DATASETS:
            row = cells[(dataset, name)]
            mean, std = 100 * row["test_accuracy_mean"], 100 * row["test_accuracy_std"]
            assert f"{mean:.1f} ± {std:.1f}" in line, (name, dataset)
    assert "{{MATRIX}}" not in page
