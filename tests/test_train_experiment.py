"""The experiment's test-time shift, its one-seed rows, and files that survive a kill."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from locality._atomic import write_text_atomically
from locality.train.experiment import (
    format_accuracy,
    parse_models,
    run_experiment,
    shift,
    summarise,
)
from locality.train.loop import TrainConfig


def test_pad_shift_moves_the_image_and_fills_with_zeros():
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    for s in range(9):
        expected = np.zeros((3, 1, 8, 8))
        for column in range(s, 8):
            expected[..., column] = x[..., column - s].numpy()
        assert torch.equal(shift(x, s, "pad"), torch.from_numpy(expected))
    assert not shift(x, 8, "pad").any()  # a whole width out: nothing left, not the image again
    assert torch.equal(shift(x, 8, "roll"), x)


def test_digits_shift_is_limited_to_the_image(tmp_path):
    config = TrainConfig(steps=1, batch_size=50, eval_every=1)
    with pytest.raises(ValueError, match="max_shift must be smaller than the 8 positions"):
        run_experiment(
            "digits", seeds=1, config=config, models=parse_models("conv"), max_shift=8,
            out_dir=tmp_path, progress=False,
        )  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_one_seed_has_no_standard_deviation(tmp_path):
    config = TrainConfig(steps=2, batch_size=50, eval_every=2)
    rows = run_experiment(
        "digits", seeds=1, config=config, models=parse_models("conv"), max_shift=2,
        out_dir=tmp_path, progress=False,
    )  # fmt: skip
    assert rows[0]["test_accuracy_std"] is None
    assert "n/a" in format_accuracy(rows[0]["test_accuracy_mean"], None)
    assert "n/a" in (tmp_path / "digits.md").read_text()
    assert "± 0.0%" not in (tmp_path / "digits.md").read_text()
    record = json.loads(next((tmp_path / "runs").iterdir()).read_text())
    assert record["shift_mode"] == "pad" and len(record["shift_accuracy"]) == 3
    two = summarise([record, {**record, "test_accuracy": record["test_accuracy"] + 0.1}])
    assert two[0]["test_accuracy_std"] == pytest.approx(0.1 / np.sqrt(2))


def test_a_damaged_run_file_is_named(tmp_path):
    config = TrainConfig(steps=2, batch_size=50, eval_every=2)
    kwargs = dict(
        seeds=1, config=config, models=parse_models("conv"), max_shift=2, out_dir=tmp_path,
        progress=False,
    )  # fmt: skip
    run_experiment("digits", **kwargs)
    (run,) = (tmp_path / "runs").iterdir()
    run.write_text("")  # what an in-place write killed mid-way used to leave
    with pytest.raises(ValueError, match=f"cannot read the finished run.*{run.name}.*delete it"):
        run_experiment("digits", **kwargs)


def test_an_interrupted_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "table.json"
    write_text_atomically(path, "old\n")

    class Interrupted(Exception):
        pass

    def fail(_file):
        _file.write(b"half of the n")
        raise Interrupted

    from locality._atomic import write_atomically

    with pytest.raises(Interrupted):
        write_atomically(path, fail)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["table.json"]  # no temporary file left behind
