"""The region-shared and low-rank model families train, share the skeleton, and have CLI flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import locality
from locality.cli import main
from locality.train.loop import TrainConfig, train_family
from locality.train.models import build_model, count_parameters
from tests.bumps import bumps


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("family,options", [("region", {"regions": 2}), ("lowrank", {"rank": 4})])
def test_family_beats_chance_and_keeps_the_skeleton(family, options):
    data = bumps(1, size=16, max_offset=3)
    config = TrainConfig(steps=40, batch_size=50, lr=1e-2, eval_every=40)
    model, result = train_family(family, data, config, device="cpu", progress=False, **options)
    assert result.test_accuracy > 0.5, f"{family}: {result.test_accuracy} (chance 0.25)"
    assert result.model == f"{family}-{next(iter(options.values()))}"
    kinds = (
        (locality.RegionConv1d,) if family == "region" else (locality.LowRankLocallyConnected1d,)
    )
    assert sum(isinstance(m, kinds) for m in model.modules()) == 3
    conv = build_model("conv", (1, 40), 10)
    shaped = build_model(family, (1, 40), 10, **options)
    x = torch.randn(2, 1, 40)
    assert [tuple(m(x).shape) for m in (conv, shaped)] == [(2, 10), (2, 10)]
    # one region is a convolution's parameter count; more regions, more kernels
    if family == "region":
        assert count_parameters(build_model("region", (1, 40), 10, regions=1)) == count_parameters(
            conv
        )


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "digits", "--model", "region"], "--model region needs --regions"),
        (["train", "digits", "--rank", "2"], "--rank is only for --model lowrank"),
        (["train", "digits", "--model", "lowrank", "--regions", "2"], "--regions is only for"),
    ],
)
def test_train_flags_are_checked(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("locality train: error: ") and message in err
    assert "Traceback" not in err


def test_train_command_runs_a_lowrank_model(tmp_path, capsys):
    data = bumps(2, size=8, max_offset=1, n_train=60, n_test=20)
    np.savez(tmp_path / "d.npz", x=data.x_train.numpy(), y=data.y_train.numpy())
    args = ["train", str(tmp_path / "d.npz"), "--model", "lowrank", "--rank", "4", "--steps", "2"]
    assert main([*args, "--batch-size", "16", "--device", "cpu", "--no-progress"]) == 0
    assert "lowrank-4 on d: test accuracy" in capsys.readouterr().out
