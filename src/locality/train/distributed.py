"""Multi-process training with PyTorch's own engine: ``torch.distributed`` and DDP.

Nothing here moves data between processes by hand. ``torchrun`` (or the caller) starts the
processes and describes them in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``); :func:`init_from_env` joins that process group with ``gloo`` on
CPU or ``nccl`` on GPU; :func:`wrap_model` hands the model to
``torch.nn.parallel.DistributedDataParallel``, which averages gradients across processes, or with
``shard=True`` to FSDP2 (``torch.distributed.fsdp.fully_shard``), which also shards parameters,
gradients and optimiser state across processes (each holds 1/world_size of every weight and
gathers one layer's full weight at a time); and the training loop splits each global batch with
``torch.utils.data.DistributedSampler``. FSDP2 runs on CPU with gloo (checked with torch 2.13).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # True when init_from_env created the process group

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and shows progress."""
        return self.rank == 0


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``"auto"``/``None``: CUDA if available, else CPU; ``"cuda"`` becomes ``cuda:local_rank``."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(name)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} asked for CUDA, but torch.cuda.is_available() is False"
            )
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank)
    return resolved


def current(device: str | torch.device | None = None) -> Context:
    """The context of this process: the initialised process group if there is one, else alone."""
    if dist.is_available() and dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return Context(
            dist.get_rank(), dist.get_world_size(), local_rank, resolve_device(device, local_rank)
        )
    return Context(0, 1, 0, resolve_device(device))


def init_from_env(device: str | torch.device | None = None) -> Context:
    """Join the process group that ``torchrun`` describes in the environment, if it describes one.

    With ``WORLD_SIZE`` unset or 1 (a plain ``python -m locality train``) nothing is initialised.
    The backend is ``nccl`` when the device is CUDA and ``gloo`` otherwise.
    """
    if dist.is_available() and dist.is_initialized():
        return current(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return current(device)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), local_rank, resolved, owns_group=True)


def shutdown(context: Context) -> None:
    """Destroy the process group if :func:`init_from_env` created it."""
    if context.owns_group and dist.is_initialized():
        # Without the barrier a rank can tear gloo down while its peer still talks to it, and the
        # peer aborts ("terminate called without an active exception").
        dist.barrier()
        dist.destroy_process_group()


def wrap_model(model: nn.Module, context: Context, shard: bool = False) -> nn.Module:
    """``DistributedDataParallel(model)`` when there are several processes, else ``model``.

    DDP broadcasts rank 0's parameters and buffers at construction and averages gradients in
    ``backward``, so every rank holds the same parameters after every step.

    ``shard=True``: FSDP2 instead, in place (the model's parameters become ``DTensor`` shards,
    so build the optimiser after this call): every module that holds parameters of its own is one
    ``fully_shard`` unit, then the root. Rank 0's parameters are broadcast first, as DDP does.
    """
    if context.world_size == 1:
        return model
    if not shard:
        device_ids = [context.device.index] if context.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor, src=0)
    for module in list(model.modules())[1:]:
        if any(True for _ in module.parameters(recurse=False)):
            fully_shard(module)
    fully_shard(model)
    return model


def is_sharded(model: nn.Module) -> bool:
    """Whether the model's parameters are FSDP2 shards (``DTensor``)."""
    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole model and optimiser state dicts, on CPU, also for a sharded model.

    For an FSDP2 model this gathers the shards: every process must call it (it is collective).
    """
    if not is_sharded(model):
        return model.state_dict(), optimizer.state_dict()
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return (
        get_model_state_dict(model, options=options),
        get_optimizer_state_dict(model, optimizer, options=options),
    )


def mean_over_ranks(value: float, context: Context) -> float:
    """The mean of a per-rank scalar over all processes (the value itself when alone)."""
    if context.world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return tensor.item() / context.world_size


def agree(value: int, context: Context) -> bool:
    """Whether every process holds the same integer ``value`` (always true when alone)."""
    if context.world_size == 1:
        return True
    tensor = torch.tensor([value, -value], dtype=torch.int64, device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor[0].item() == -tensor[1].item()
