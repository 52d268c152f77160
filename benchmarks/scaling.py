"""How time and peak memory grow with batch size and image size, for every kind of layer.

    python benchmarks/scaling.py [--out docs/performance-scaling.png] [--repeats R] [--threads T]

One layer per kind, 8 -> 8 channels, 3x3 kernels, padding 1, float32 on CPU: ``torch.nn.Conv2d``,
``RegionConv2d`` (2x2 regions), ``TiledConv2d`` (tile 2 and tile 8),
``LowRankLocallyConnected2d`` (rank 4), ``LocallyConnected2d`` and dense (``nn.Linear`` over the
flattened image, to 24x24 only: its weight grows as size^4). Forward+backward time is the median
of R repeats after one warm-up; peak memory is measured as in ``benchmarks/connectivity.py`` (the
growth of the resident high-water mark over one forward+backward, in a child process run with
``MALLOC_MMAP_THRESHOLD_=65536``), above inputs and parameters. Prints one Markdown table and
draws a 2x2 figure (time and memory, against batch and against image size, log-log).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

import locality

CHANNELS = 8
BATCHES = (1, 4, 16, 64)
SIZES = (8, 16, 24, 32, 48)
BATCH_AT_SIZES, SIZE_AT_BATCHES = 8, 16
DENSE_MAX_SIZE = 24


def build(kind: str, size: int) -> nn.Module:
    """The layer of one kind for size x size inputs."""
    if kind == "conv":
        return nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)
    if kind.startswith("tiled"):
        return locality.TiledConv2d(CHANNELS, CHANNELS, 3, tile_size=int(kind[-1]), padding=1)
    if kind == "locally_connected":
        return locality.LocallyConnected2d(CHANNELS, CHANNELS, 3, input_size=size, padding=1)
    if kind == "region 2x2":
        return locality.RegionConv2d(CHANNELS, CHANNELS, 3, size, regions=2, padding=1)
    if kind == "lowrank K=4":
        return locality.LowRankLocallyConnected2d(CHANNELS, CHANNELS, 3, size, rank=4, padding=1)
    return nn.Sequential(nn.Flatten(), nn.Linear(CHANNELS * size * size, CHANNELS * size * size))


KINDS = (
    "conv",
    "region 2x2",
    "tiled t=2",
    "tiled t=8",
    "lowrank K=4",
    "locally_connected",
    "dense",
)


def points() -> list[tuple[str, str, int, int]]:
    """(kind, axis, batch, size) for every measurement."""
    every = []
    for kind in KINDS:
        every += [(kind, "batch", b, SIZE_AT_BATCHES) for b in BATCHES]
        sizes = [s for s in SIZES if kind != "dense" or s <= DENSE_MAX_SIZE]
        every += [(kind, "size", BATCH_AT_SIZES, s) for s in sizes]
    return every


def _step(layer: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()

    return run


def _kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def peak_bytes(kind: str, batch: int, size: int) -> int:
    """Peak bytes above input and parameters over one forward+backward (after a warm-up)."""
    layer = build(kind, size)
    x = torch.randn(batch, CHANNELS, size, size, requires_grad=True)
    step = _step(layer, x)
    step()
    layer.zero_grad(set_to_none=True)
    x.grad = None
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _kib("VmRSS")
    step()
    return 1024 * (_kib("VmHWM") - before)


def seconds(kind: str, batch: int, size: int, repeats: int) -> float:
    layer = build(kind, size)
    x = torch.randn(batch, CHANNELS, size, size, requires_grad=True)
    step = _step(layer, x)
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def draw(rows: list[dict], path: str) -> None:
    """Time and memory against batch and image size, one line per kind, log-log."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 7.5), layout="constrained")
    axes = figure.subplots(2, 2)
    for col, (axis, label) in enumerate(
        (
            ("batch", f"batch size ({SIZE_AT_BATCHES}x{SIZE_AT_BATCHES} images)"),
            ("size", f"image side (batch {BATCH_AT_SIZES})"),
        )
    ):
        for row, (key, ylabel) in enumerate((("ms", "forward+backward ms"), ("MB", "peak MB"))):
            ax = axes[row][col]
            for kind in KINDS:
                mine = [r for r in rows if r["kind"] == kind and r["axis"] == axis]
                xs = [r[axis] for r in mine]
                ax.plot(xs, [max(r[key], 1e-3) for r in mine], marker="o", label=kind)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend()
    figure.suptitle(
        f"8->8 channels, 3x3, padding 1, float32; torch {torch.__version__}, "
        f"{os.cpu_count()}-core CPU, {torch.get_num_threads()} thread(s)"
    )
    temporary = path + ".tmp.png"
    figure.savefig(temporary, dpi=90)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="PNG figure to write (needs matplotlib)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.memory_only:
        print(json.dumps([peak_bytes(k, b, s) for k, _, b, s in points()]))
        return
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    child = [sys.executable, os.path.abspath(__file__), "--memory-only"]
    done = subprocess.run(child, env=env, capture_output=True, text=True, check=True)
    peaks = json.loads(done.stdout)
    rows = []
    for (kind, axis, batch, size), peak in zip(points(), peaks, strict=True):
        ms = 1e3 * seconds(kind, batch, size, args.repeats)
        rows.append(
            {"kind": kind, "axis": axis, "batch": batch, "size": size, "ms": ms, "MB": peak / 2**20}
        )
    print(
        f"torch {torch.__version__}, {os.cpu_count()}-core CPU, {torch.get_num_threads()} threads"
    )
    print("| kind | varied | batch | size | fwd+bwd ms | peak MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['kind']} | {r['axis']} | {r['batch']} | {r['size']} | {r['ms']:.2f} | "
            f"{r['MB']:.2f} |"
        )
    if args.out:
        draw(rows, args.out)


if __name__ == "__main__":
    main()
