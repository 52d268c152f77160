"""The floors under two targets this CPU misses, each measured beside locality in one run.

    python benchmarks/floors.py [--quick] [--repeats R]

1. Locally connected layout (forward, every locally connected shape of connectivity.py). The "bmm
   floor" there is one ``torch.bmm`` on patches already laid out as ``(P, C*K, N)``. An op that
   takes ``(N, C, *S)`` and returns ``(N, O, *out)`` must also move the input to a batch-last
   layout and the products back, however it computes them. Timed: the floor, the two copies the
   chunked kernel makes around it (input to ``(*S, C, N)``; products ``(P, N, O)`` to
   ``(N, O, P)`` by one 2-D transpose), their sum, and locality's forward. Where the two copies
   alone cost more than the floor, no kernel built from torch ops that reads and writes those
   layouts comes within 2x of the floor.
2. Tiled convolution at t=2 (forward+backward, connectivity.py's CIFAR shape). ``per_offset`` runs
   four stride-2 convolutions on shifted views and interleaves their outputs. Timed: F.conv2d of
   the shape, the four stride-2 convolutions alone on inputs and output gradients that are
   already contiguous (NCHW, then channels-last), and locality's tiled op. The first of the two
   is the floor of any formulation that calls NCHW convolutions with exact FLOPs.

The calls of each table take turns within every repeat (connectivity.interleaved_ms).
"""

from __future__ import annotations

import argparse
import math
import os

import torch
import torch.nn.functional as F
from connectivity import Call, Case, cases, floor_calls, interleaved_ms, tensors

from locality.functional import locally_connected, tiled_conv
from locality.kernels import chunked_bmm


def layout_calls(case: Case) -> dict[str, Call]:
    """Part 1: name -> forward call on fresh tensors of one locally connected shape."""
    floor, _, _ = floor_calls(case, "cpu")
    products = torch.randn(math.prod(case.out), case.n * case.o)
    x, ((w, b),) = tensors(case, "cpu")

    def forward(_: int) -> None:
        with torch.no_grad():
            locally_connected(x, w, b, case.stride)

    return {
        "bmm floor": floor,
        "input to batch-last": lambda _: chunked_bmm.batch_last(x),
        "products to NCHW": lambda _: products.t().contiguous(),
        "locality": forward,
    }


def tiled_calls(n: int, channels: int, size: int) -> dict[str, Call]:
    """Part 2: name -> forward+backward call, tile 2, 3x3, padding 1, channels -> channels."""
    tile, quarter = 2, size // 2
    x = torch.randn(n, channels, size, size, requires_grad=True)
    out_grad = torch.randn(n, channels, size, size)
    weight = torch.randn(channels, channels, 3, 3, requires_grad=True)
    bank = torch.randn(tile, tile, channels, channels, 3, 3, requires_grad=True)
    # The padded input each offset reads, and each offset's share of the output gradient.
    shifted = [torch.randn(n, channels, size + 2 - a, size + 2 - b) for a in (0, 1) for b in (0, 1)]
    grads = [torch.randn(n, channels, quarter, quarter) for _ in shifted]
    kernels = [torch.randn(channels, channels, 3, 3, requires_grad=True) for _ in shifted]

    def strided(memory_format: torch.memory_format) -> Call:
        inputs = [s.contiguous(memory_format=memory_format).requires_grad_() for s in shifted]
        gradients = [g.contiguous(memory_format=memory_format) for g in grads]

        def call(_: int) -> None:
            for part, kernel, grad in zip(inputs, kernels, gradients, strict=True):
                part.grad = kernel.grad = None
                F.conv2d(part, kernel, stride=tile).backward(grad)

        return call

    def conv(_: int) -> None:
        x.grad = weight.grad = None
        F.conv2d(x, weight, padding=1).backward(out_grad)

    def tiled(_: int) -> None:
        x.grad = bank.grad = None
        tiled_conv(x, bank, None, padding=1).backward(out_grad)

    return {
        "F.conv2d": conv,
        "4 stride-2 convolutions, NCHW": strided(torch.contiguous_format),
        "4 stride-2 convolutions, channels-last": strided(torch.channels_last),
        "locality tiled t=2": tiled,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes (smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="default 20, quick 2")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 20)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {os.cpu_count()}-core CPU, {torch.get_num_threads()} "
        f"threads, median of {repeats} after 2 warm-ups, ms (x the first column)"
    )
    print("\n1. Locally connected forward: the layout copies beside the bmm floor\n")
    names = ["bmm floor", "input to batch-last", "products to NCHW", "both copies", "locality"]
    print("| shape | " + " | ".join(names) + " |")
    print("|" + "---|" * (len(names) + 1))
    for case in cases(args.quick):
        if case.kind != "local":
            continue
        ms = interleaved_ms(layout_calls(case), repeats, "cpu")
        ms["both copies"] = ms["input to batch-last"] + ms["products to NCHW"]
        cells = [f"{ms[name]:.2f} ({ms[name] / ms['bmm floor']:.1f})" for name in names]
        print(f"| {case.name} | " + " | ".join(cells) + " |")
    n, channels, size = (2, 4, 8) if args.quick else (32, 64, 32)
    print(f"\n2. Tiled t=2 forward+backward, B={n}, {channels}->{channels}, {size}x{size}, 3x3\n")
    print("| call | ms | x F.conv2d |")
    print("|---|---|---|")
    ms = interleaved_ms(tiled_calls(n, channels, size), repeats, "cpu")
    for name, value in ms.items():
        print(f"| {name} | {value:.2f} | {value / ms['F.conv2d']:.2f} |")


if __name__ == "__main__":
    main()
