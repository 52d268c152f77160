"""The committed MNIST-1D results: ``docs/results/mnist1d.json`` is in the schema of the issue,
covers every model on both datasets, and its parameter counts are those of the models built."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from locality.train.experiment import MODELS
from locality.train.models import build_model, count_parameters

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
TYPES = {
    "model": str,
    "tile_size": (int, type(None)),
    "dataset": str,
    "test_accuracy_mean": float,
    "test_accuracy_std": float,
    "seeds": int,
    "parameters": int,
    "train_seconds": float,
}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return json.loads((RESULTS / "mnist1d.json").read_text())


def test_rows_follow_the_schema(rows):
    assert isinstance(rows, list) and rows
    for row in rows:
        assert set(row) == set(TYPES), row
        for key, kind in TYPES.items():
            assert isinstance(row[key], kind) and not isinstance(row[key], bool), (key, row)
        assert row["model"] in ("dense", "locally_connected", "tiled", "conv")
        assert (row["tile_size"] is not None) == (row["model"] == "tiled")
        assert row["dataset"] in ("mnist1d", "mnist1d-shuffled")
        assert 0.0 <= row["test_accuracy_mean"] <= 1.0
        assert math.isfinite(row["test_accuracy_std"]) and row["test_accuracy_std"] >= 0.0
        assert row["seeds"] >= 2 and row["train_seconds"] > 0.0


def test_every_model_on_both_datasets_once(rows):
    keys = [(row["dataset"], row["model"], row["tile_size"]) for row in rows]
    expected = [
        (dataset, family, tile)
        for dataset in ("mnist1d", "mnist1d-shuffled")
        for family, tile in MODELS
    ]
    assert sorted(keys, key=str) == sorted(expected, key=str)


def test_parameters_are_those_of_the_built_models(rows):
    for row in rows:
        model = build_model(row["model"], (1, 40), 10, tile_size=row["tile_size"])
        assert row["parameters"] == count_parameters(model), row


def test_plots_and_readme_are_committed():
    for name in (
        "mnist1d.md",
        "mnist1d_accuracy_vs_parameters.png",
        "mnist1d_accuracy_vs_shift.png",
        "README.md",
    ):
        assert (RESULTS / name).stat().st_size > 0, name
