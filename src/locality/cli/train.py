"""``locality train``: train one model family on one dataset, on one process or under torchrun."""

from __future__ import annotations

import argparse

FAMILY_CHOICES = ("dense", "locally_connected", "tiled", "conv", "region", "lowrank")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one model family on a dataset",
        description="Train a dense, locally connected, tiled or convolutional classifier. Under "
        "`torchrun --nproc_per_node N -m locality train ...` it trains with "
        "DistributedDataParallel (gloo on CPU, nccl on GPU); --batch-size is the global batch.",
    )
    parser.add_argument(
        "dataset",
        help="mnist1d, mnist1d-shuffled, digits, a .npz file (x, y[, x_test, y_test]) or a folder "
        "of images with one sub-folder per class",
    )
    parser.add_argument(
        "--model", choices=FAMILY_CHOICES, default="conv", help="connectivity (default conv)"
    )
    parser.add_argument(
        "--tile-size", type=int, default=None, help="kernel period for --model tiled"
    )
    parser.add_argument(
        "--regions", type=int, default=None, help="regions per dimension for --model region"
    )
    parser.add_argument("--rank", type=int, default=None, help="basis kernels for --model lowrank")
    add_optimisation_arguments(parser)
    parser.add_argument(
        "--eval-every", type=int, default=500, help="steps between test evaluations"
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=1000, help="steps between checkpoints (0: end only)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds initialisation and batch order")
    parser.add_argument(
        "--out", default=None, help="run directory: checkpoint.pt, metrics.csv, metrics.json"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--fsdp",
        action="store_true",
        help="under torchrun, shard parameters, gradients and optimiser state with FSDP2 "
        "(torch.distributed.fsdp.fully_shard) instead of DDP; cannot --resume",
    )
    parser.set_defaults(run=run)


def add_optimisation_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings ``train`` and ``experiment`` share; defaults are the MNIST-1D benchmark's."""
    parser.add_argument("--steps", type=int, default=6000, help="optimiser steps (default 6000)")
    parser.add_argument("--batch-size", type=int, default=100, help="global batch (default 100)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 0.01)")
    parser.add_argument(
        "--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)"
    )


def run(args: argparse.Namespace) -> int:
    from locality.train import data, distributed
    from locality.train.loop import TrainConfig, train_family

    if args.resume and args.out is None:
        raise SystemExit("locality train: --resume needs --out, the run directory to resume from")
    if args.fsdp and args.resume:
        raise SystemExit("locality train: --fsdp cannot --resume; train without --resume")
    if args.tile_size is not None and args.model != "tiled":
        raise SystemExit(
            f"locality train: --tile-size is only for --model tiled, got --model {args.model}"
        )
    if args.model == "tiled" and args.tile_size is None:
        raise SystemExit("locality train: --model tiled needs --tile-size (for example 2)")
    for flag, value, family in (
        ("--regions", args.regions, "region"),
        ("--rank", args.rank, "lowrank"),
    ):
        if value is not None and args.model != family:
            raise SystemExit(
                f"locality train: {flag} is only for --model {family}, got --model {args.model}"
            )
        if args.model == family and value is None:
            raise SystemExit(f"locality train: --model {family} needs {flag} (for example 2)")
    try:
        config = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            seed=args.seed,
            eval_every=args.eval_every,
            checkpoint_every=args.checkpoint_every,
        )
        distributed.resolve_device(args.device)
        dataset = data.load(args.dataset)
    except (ValueError, ImportError) as error:
        raise SystemExit(f"locality train: {error}") from None
    context = distributed.init_from_env(args.device)
    try:
        _, result = train_family(
            args.model,
            dataset,
            config,
            tile_size=args.tile_size,
            regions=args.regions,
            rank=args.rank,
            run_dir=args.out,
            resume=args.resume,
            device=args.device,
            progress=not args.no_progress,
            fsdp=args.fsdp,
        )
    finally:
        distributed.shutdown(context)
    if context.is_main:
        print(
            f"{result.model} on {result.dataset}: test accuracy {result.test_accuracy:.4f}, "
            f"{result.parameters:,} parameters, {result.train_seconds:.1f} s training "
            f"({context.world_size} process{'es' if context.world_size > 1 else ''}, "
            f"{context.device})"
        )
    return 0
