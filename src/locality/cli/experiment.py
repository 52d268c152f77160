"""``locality experiment``: every family over several seeds, one table beside the published one."""

from __future__ import annotations

import argparse

from locality.cli.paths import output_folder
from locality.cli.shapes import count, natural
from locality.cli.train import add_optimisation_arguments

DEFAULT_MODELS = "dense,locally_connected,tiled-4,tiled-2,conv"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="compare dense, locally connected, tiled and conv models over seeds",
        description="Train dense, locally connected, tiled (t=4, 2) and convolutional models over "
        "several seeds; write NAME.json, NAME.md (table beside the published MLP/CNN numbers) and "
        "plots of accuracy against parameters and against test-time shift. Finished runs are kept "
        "in OUT/runs/ and skipped when the command is run again.",
    )
    parser.add_argument(
        "name",
        choices=("mnist1d", "digits", "sharing"),
        help="mnist1d (with its shuffled variant), digits, or sharing (issue 16's rows: region, "
        "low-rank and locally connected with weight sharing, on every dataset and digits-slots)",
    )
    parser.add_argument("--seeds", type=count, default=5, help="runs per model (default 5)")
    add_optimisation_arguments(parser)
    parser.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        help="comma-separated: dense, locally_connected, tiled-T, conv (default all five)",
    )
    parser.add_argument(
        "--datasets",
        default=None,
        help="for sharing: comma-separated datasets (default mnist1d, mnist1d-shuffled, digits, "
        "digits-slots); --models then takes its rows too (default: all of them)",
    )
    parser.add_argument(
        "--max-shift",
        type=natural,
        default=None,
        help="largest test-time shift, smaller than the input's width (default 10 for mnist1d, "
        "4 for digits)",
    )
    parser.add_argument("--out", default="results", help="output folder (default ./results)")
    parser.add_argument(
        "--workers", type=count, default=1, help="runs in parallel processes (default 1)"
    )
    parser.add_argument(
        "--threads", type=count, default=1, help="torch threads per process (default 1)"
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda or auto (default cpu: the models are tiny)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from locality.train.experiment import format_accuracy, parse_models, run_experiment
    from locality.train.loop import TrainConfig

    if args.name == "sharing":
        return _run_sharing(args)

    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        eval_every=args.steps,
    )
    models = parse_models(args.models)
    rows = run_experiment(
        args.name,
        seeds=args.seeds,
        config=config,
        models=models,
        max_shift=args.max_shift,
        out_dir=output_folder(args.out, create=False),
        workers=args.workers,
        threads=args.threads,
        device=args.device,
        progress=not args.no_progress,
    )
    for row in rows:
        tile = f" t={row['tile_size']}" if row["tile_size"] else ""
        print(
            f"{row['dataset']:>16}  {row['model'] + tile:<20} {row['parameters']:>8,} params  "
            f"{format_accuracy(row['test_accuracy_mean'], row['test_accuracy_std'])}"
        )
    print(f"table, JSON and plots in {args.out}/")
    return 0


def _run_sharing(args: argparse.Namespace) -> int:
    from locality.train.experiment import format_accuracy
    from locality.train.loop import TrainConfig
    from locality.train.sharing_experiment import DATASETS, ROWS, run_sharing_experiment

    rows = ROWS if args.models == DEFAULT_MODELS else tuple(args.models.split(","))
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        eval_every=args.steps,
    )
    table = run_sharing_experiment(
        datasets=tuple(args.datasets.split(",")) if args.datasets else DATASETS,
        rows=rows,
        seeds=args.seeds,
        config=config,
        max_shift=args.max_shift,
        out_dir=args.out,
        progress=not args.no_progress,
    )
    for row in table:
        name = f"tiled-{row['tile_size']}" if row["tile_size"] else row["model"]
        print(
            f"{row['dataset']:>16}  {name:<28} {row['parameters']:>8,} params  "
            f"{format_accuracy(row['test_accuracy_mean'], row['test_accuracy_std'])}"
        )
    print(f"table, JSON and plots in {args.out}/")
    return 0
