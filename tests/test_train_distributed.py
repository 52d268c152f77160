"""DDP through PyTorch's own engine: two gloo processes on CPU keep identical parameters and match
one process with the same global batch; ``torchrun --standalone`` runs ``locality train``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from locality.train.loop import TrainConfig, train_family
from tests.bumps import bumps

CONFIG = TrainConfig(steps=6, batch_size=40, eval_every=3)
FAMILY, TILE = "tiled", 2


def _worker(rank: int, world_size: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        model, result = train_family(
            FAMILY,
            bumps(1, n_train=120, n_test=40),
            CONFIG,
            tile_size=TILE,
            device="cpu",
            progress=False,
        )
        torch.save(
            {"state": model.state_dict(), "accuracy": result.test_accuracy}, f"{out}/rank{rank}.pt"
        )
        dist.barrier()  # as distributed.shutdown does: no rank tears gloo down under its peer
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][name]), f"{name} differs across ranks"

    torch.set_num_threads(1)
    single, result = train_family(
        FAMILY,
        bumps(1, n_train=120, n_test=40),
        CONFIG,
        tile_size=TILE,
        device="cpu",
        progress=False,
    )
    for name, value in single.state_dict().items():
        # Same batches and the same averaged gradient; only the summation order differs.
        torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-4, atol=1e-5)
    assert abs(ranks[0]["accuracy"] - result.test_accuracy) <= 1 / 40


def _resume_worker(rank: int, world_size: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        train_family(
            FAMILY,
            bumps(1, n_train=120, n_test=40),
            CONFIG,
            tile_size=TILE,
            device="cpu",
            run_dir=f"{out}/{'saved' if rank == 0 else 'elsewhere'}",
            resume=True,
            progress=False,
        )
    except ValueError as error:
        (Path(out) / f"error{rank}.txt").write_text(str(error))
    finally:
        dist.barrier()
        dist.destroy_process_group()


def test_ranks_that_see_different_checkpoints_stop_together(tmp_path):
    torch.set_num_threads(1)
    first = TrainConfig(steps=3, batch_size=40, eval_every=3)
    train_family(
        FAMILY,
        bumps(1, n_train=120, n_test=40),
        first,
        tile_size=TILE,
        device="cpu",
        run_dir=tmp_path / "saved",
        progress=False,
    )
    mp.spawn(_resume_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    for rank, step in ((0, 3), (1, 0)):
        message = (tmp_path / f"error{rank}.txt").read_text()
        assert f"different checkpoints to resume from (this one: step {step})" in message


def test_torchrun_standalone_smoke(tmp_path):
    data = bumps(1, n_train=80, n_test=20)
    np.savez(
        tmp_path / "bumps.npz",
        x=data.x_train[:, 0].numpy(),
        y=data.y_train.numpy(),
        x_test=data.x_test[:, 0].numpy(),
        y_test=data.y_test.numpy(),
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "locality",
        "train",
        str(tmp_path / "bumps.npz"),
        "--model",
        "conv",
        "--steps",
        "4",
        "--batch-size",
        "20",
        "--out",
        str(tmp_path / "run"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes" in done.stdout
    assert (tmp_path / "run" / "metrics.json").is_file()


def _fsdp_worker(rank: int, world_size: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        model, result = train_family(
            "locally_connected",
            bumps(1, n_train=120, n_test=40),
            CONFIG,
            device="cpu",
            run_dir=f"{out}/run",
            progress=False,
            fsdp=True,
        )
        local = sum(p.to_local().numel() for p in model.parameters())
        total = sum(p.numel() for p in model.parameters())
        losses = [entry["train_loss"] for entry in result.history]
        torch.save({"losses": losses, "local": local, "total": total}, f"{out}/fsdp{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_fsdp2_two_gloo_processes_match_one_process(tmp_path):
    """FSDP2 (fully_shard) on CPU: each rank holds about half of every weight, and the losses
    and the gathered checkpoint equal one process's training on the same global batches."""
    mp.spawn(_fsdp_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"fsdp{r}.pt", weights_only=True) for r in range(2)]
    for rank in ranks:
        assert rank["local"] < 0.55 * rank["total"]  # a shard (dim 0 split unevenly), not a copy
    assert ranks[0]["losses"] == ranks[1]["losses"]

    torch.set_num_threads(1)
    single, result = train_family(
        "locally_connected",
        bumps(1, n_train=120, n_test=40),
        CONFIG,
        device="cpu",
        progress=False,
    )
    losses = [entry["train_loss"] for entry in result.history]
    np.testing.assert_allclose(ranks[0]["losses"], losses, rtol=0, atol=1e-5)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    for name, value in single.state_dict().items():
        torch.testing.assert_close(saved[name], value, rtol=1e-4, atol=1e-5)
