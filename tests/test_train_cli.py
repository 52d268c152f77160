"""``locality train`` and ``locality experiment``: a run end to end, the table in the documented
schema, and early errors for bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from locality.cli import main
from locality.train.experiment import parse_models, run_experiment
from locality.train.loop import TrainConfig
from tests.bumps import bumps

SCHEMA = {
    "model",
    "tile_size",
    "dataset",
    "test_accuracy_mean",
    "test_accuracy_std",
    "seeds",
    "parameters",
    "train_seconds",
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_train_command_writes_a_run_and_resumes(tmp_path, capsys):
    data = bumps(2, size=8, max_offset=1, n_train=60, n_test=20)
    np.savez(tmp_path / "d.npz", x=data.x_train.numpy(), y=data.y_train.numpy())
    args = [
        "train",
        str(tmp_path / "d.npz"),
        "--model",
        "tiled",
        "--tile-size",
        "2",
        "--steps",
        "3",
        "--batch-size",
        "16",
        "--out",
        str(tmp_path / "run"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(args) == 0
    assert "tiled-2 on d: test accuracy" in capsys.readouterr().out
    assert main([*args[:7], "5", *args[8:], "--resume"]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 5


def test_experiment_writes_table_json_and_plots(tmp_path):
    config = TrainConfig(steps=3, batch_size=50, eval_every=3)
    rows = run_experiment(
        "digits",
        seeds=2,
        config=config,
        models=parse_models("dense,tiled-2,conv"),
        max_shift=2,
        out_dir=tmp_path,
        progress=False,
    )
    saved = json.loads((tmp_path / "digits.json").read_text())
    assert saved == rows and len(rows) == 3
    for row in rows:
        assert set(row) == SCHEMA and row["seeds"] == 2 and 0.0 <= row["test_accuracy_mean"] <= 1.0
    assert [(r["model"], r["tile_size"]) for r in rows] == [
        ("dense", None),
        ("tiled", 2),
        ("conv", None),
    ]
    assert "| digits | tiled (t=2) |" in (tmp_path / "digits.md").read_text()
    assert (tmp_path / "digits_accuracy_vs_parameters.png").stat().st_size > 0
    assert (tmp_path / "digits_accuracy_vs_shift.png").stat().st_size > 0
    # A second call finds every run done and only rebuilds the table.
    assert (
        run_experiment(
            "digits",
            seeds=2,
            config=config,
            models=parse_models("dense,tiled-2,conv"),
            max_shift=2,
            out_dir=tmp_path,
            progress=False,
        )
        == rows
    )
    # Runs finished with other settings are not mixed into the table.
    with pytest.raises(ValueError, match="use another out_dir"):
        run_experiment(
            "digits",
            seeds=2,
            config=TrainConfig(steps=4, batch_size=50),
            out_dir=tmp_path,
            models=parse_models("dense"),
            max_shift=2,
            progress=False,
        )
