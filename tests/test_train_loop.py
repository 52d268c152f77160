"""The training loop: reproducible from the seed, resumable bit for bit, metrics on disk, and
early errors for bad settings."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from locality.train.loop import TrainConfig, train, train_family
from locality.train.models import build_model
from tests.bumps import bumps


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return bumps(1, n_train=120, n_test=40)


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("family,tile_size", [("tiled", 2), ("locally_connected", None)])
def test_resume_continues_bit_for_bit(tmp_path, data, family, tile_size):
    # 120 examples in batches of 50: 2 steps an epoch, so the resume crosses epochs mid-way.
    config = TrainConfig(steps=7, batch_size=50, eval_every=2, checkpoint_every=3)
    straight, whole = train_family(
        family, data, config, tile_size=tile_size, device="cpu", progress=False
    )

    first = TrainConfig(steps=3, batch_size=50, eval_every=2, checkpoint_every=3)
    train_family(
        family, data, first, tile_size=tile_size, run_dir=tmp_path, device="cpu", progress=False
    )
    resumed, rest = train_family(
        family,
        data,
        config,
        tile_size=tile_size,
        run_dir=tmp_path,
        resume=True,
        device="cpu",
        progress=False,
    )
    assert _equal_states(straight.state_dict(), resumed.state_dict())
    assert rest.test_accuracy == whole.test_accuracy
    assert [row["step"] for row in rest.history] == [2, 3, 4, 6, 7]


def test_same_seed_same_model_other_seed_other_model(data):
    config = TrainConfig(steps=3, batch_size=40, eval_every=3)
    a, _ = train_family("conv", data, config, device="cpu", progress=False)
    b, _ = train_family("conv", data, config, device="cpu", progress=False)
    c, _ = train_family(
        "conv",
        data,
        TrainConfig(steps=3, batch_size=40, eval_every=3, seed=1),
        device="cpu",
        progress=False,
    )
    assert _equal_states(a.state_dict(), b.state_dict())
    assert not _equal_states(a.state_dict(), c.state_dict())


def test_run_directory_holds_checkpoint_and_metrics(tmp_path, data):
    config = TrainConfig(steps=4, batch_size=40, eval_every=2, checkpoint_every=0)
    _, result = train_family("conv", data, config, run_dir=tmp_path, device="cpu", progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and set(state) >= {"model", "optimizer", "config"}
    with open(tmp_path / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["step"]) for r in rows] == [2, 4]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["test_accuracy"] == result.test_accuracy == float(rows[-1]["test_accuracy"])
    assert summary["config"]["steps"] == 4 and summary["model"] == "conv"


def test_resume_refuses_other_settings(tmp_path, data):
    train_family(
        "conv",
        data,
        TrainConfig(steps=2, batch_size=40),
        run_dir=tmp_path,
        device="cpu",
        progress=False,
    )
    with pytest.raises(ValueError, match="lr: checkpoint 0.01, now 0.1"):
        train_family(
            "conv",
            data,
            TrainConfig(steps=4, batch_size=40, lr=0.1),
            run_dir=tmp_path,
            resume=True,
            device="cpu",
            progress=False,
        )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"steps": 0}, "steps must be a positive int"),
        ({"batch_size": 2.5}, "batch_size must be a positive int"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"seed": -1}, "seed must be a non-negative int"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_train_rejects_batch_larger_than_data_and_resume_without_directory(data):
    model = build_model("conv", data.input_shape, data.num_classes)
    with pytest.raises(ValueError, match="larger than the training set"):
        train(model, data, TrainConfig(batch_size=1000), device="cpu", progress=False)
    with pytest.raises(ValueError, match="needs a run_dir"):
        train(model, data, TrainConfig(), resume=True, device="cpu", progress=False)
