"""``locality train``: train one model family on one dataset, on one process or under torchrun."""

from __future__ import annotations

import argparse

from locality.cli.paths import output_folder
from locality.cli.shapes import count, natural

FAMILY_CHOICES = ("dense", "locally_connected", "tiled", "conv", "region", "lowrank")
LAYOUT_CHOICES = ("auto", "channels_first", "channels_last", "no_channels")


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
        "--layout",
        choices=LAYOUT_CHOICES,
        default="auto",
        help="axes of a .npz's x: channels_first (N, C, *spatial), channels_last (N, *spatial, "
        "C, the Keras default) or no_channels (N, *spatial); auto (default) tells them apart "
        "when the channel axis is clearly the small one and refuses when it cannot",
    )
    parser.add_argument(
        "--model", choices=FAMILY_CHOICES, default="conv", help="connectivity (default conv)"
    )
    parser.add_argument(
        "--tile-size", type=count, default=None, help="kernel period for --model tiled"
    )
    parser.add_argument(
        "--regions", type=count, default=None, help="regions per dimension for --model region"
    )
    parser.add_argument(
        "--rank", type=count, default=None, help="basis kernels for --model lowrank"
    )
    add_optimisation_arguments(parser)
    parser.add_argument(
        "--eval-every", type=count, default=500, help="steps between test evaluations"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=natural,
        default=1000,
        help="steps between checkpoints (0: end only)",
    )
    parser.add_argument(
        "--seed", type=natural, default=0, help="seeds initialisation and batch order"
    )
    parser.add_argument(
        "--out", default=None, help="run directory: checkpoint.pt, metrics.csv, metrics.json"
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    what.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an OUT that holds an earlier run, replacing it",
    )
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
    parser.add_argument("--steps", type=count, default=6000, help="optimiser steps (default 6000)")
    parser.add_argument("--batch-size", type=count, default=100, help="global batch (default 100)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 0.01)")
    parser.add_argument(
        "--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)"
    )


def run(args: argparse.Namespace) -> int:
    from locality.train import data, distributed
    from locality.train.loop import TrainConfig, check_run_dir, train_family

    if args.resume and args.out is None:
        raise ValueError("--resume needs --out, the run directory to resume from")
    if args.fsdp and args.resume:
        raise ValueError("--fsdp cannot --resume; train without --resume")
    if args.tile_size is not None and args.model != "tiled":
        raise ValueError(f"--tile-size is only for --model tiled, got --model {args.model}")
    if args.model == "tiled" and args.tile_size is None:
        raise ValueError("--model tiled needs --tile-size (for example 2)")
    for flag, value, family in (
        ("--regions", args.regions, "region"),
        ("--rank", args.rank, "lowrank"),
    ):
        if value is not None and args.model != family:
            raise ValueError(f"{flag} is only for --model {family}, got --model {args.model}")
        if args.model == family and value is None:
            raise ValueError(f"--model {family} needs {flag} (for example 2)")
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
    if args.out is not None:
        check_run_dir(
            output_folder(args.out, create=False), resume=args.resume, overwrite=args.overwrite
        )
    dataset = data.load(args.dataset, layout=args.layout)
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
            overwrite=args.overwrite,
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
