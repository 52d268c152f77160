"""Peak forward memory and time of locality.PartialConv2d beside a formulation that materialises
the mask ratio for every channel.

    python benchmarks/partial_conv.py [--quick] [--repeats R]

The "materialised" formulation is the straightforward one (the shape of NVIDIA/partialconv's
layer, written here): the mask sums come from a convolution with an ``(out_channels, in_channels,
*k)`` kernel of ones, so the sums, the ratio and the updated mask are ``(N, out_channels, ...)``
tensors, and the output is ``((raw - b) * ratio + b) * updated``. locality's layer takes the sums
from a one-output-channel convolution, keeps the ratio and the mask one channel wide, and
renormalises the convolution's output in place.

Peak memory ("peak MB"): bytes above the inputs (image, mask) and weights during one forward,
after a warm-up one; with gradients enabled (what training keeps alive) and under no_grad
(inference). On CPU the growth of the resident high-water mark (Linux VmHWM, reset through
/proc/self/clear_refs), measured in a child process run with MALLOC_MMAP_THRESHOLD_=65536 so that
freed blocks leave resident memory (as benchmarks/connectivity.py does); on CUDA
torch.cuda.max_memory_allocated. The issue's target: locality's peak <= 1/3 of the materialised
one. A third row, the same convolution without a mask, is the floor both start from (its output
and the convolution's own workspace); the last ratio compares what each formulation adds to it.
Times: median of R forwards under no_grad.
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
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from locality import PartialConv2d

MMAP_THRESHOLD = "65536"
NAMES = ("locality", "materialised", "conv2d, no mask")


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    c: int
    o: int
    k: int
    size: int


def cases(quick: bool) -> list[Case]:
    if quick:
        return [Case("64->128, 5x5, 64x64", 1, 64, 128, 5, 64)]
    # torch_pconv's example (64->128 channels, 9x9) at 128x128 instead of 256x256 (CPU time).
    return [
        Case("64->128, 9x9, 128x128", 1, 64, 128, 9, 128),
        Case("32->64, 3x3, 256x256, N=4", 4, 32, 64, 3, 256),
    ]


def materialised(layer: PartialConv2d) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The every-channel formulation of the same layer (see the module docstring)."""
    ones = torch.ones(layer.out_channels, layer.in_channels, *layer.kernel_size)
    volume = float(ones[0].numel())

    def forward(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            sums = F.conv2d(mask, ones, stride=layer.stride, padding=layer.padding)
            ratio = volume / (sums + 1e-8)
            updated = torch.clamp(sums, 0, 1)
            ratio = ratio * updated
        raw = F.conv2d(x * mask, layer.weight, layer.bias, layer.stride, layer.padding)
        assert layer.bias is not None
        bias = layer.bias.view(1, -1, 1, 1)
        output = (raw - bias) * ratio + bias
        return output * updated

    return forward


def methods(case: Case) -> dict[str, tuple[Callable, torch.nn.Module]]:
    """The two formulations, and the floor: the same convolution without any mask."""
    torch.manual_seed(0)
    layer = PartialConv2d(case.c, case.o, case.k, padding=case.k // 2, multi_channel=True)

    def conv(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding)

    return {
        "locality": (layer, layer),
        "materialised": (materialised(layer), layer),
        "conv2d, no mask": (conv, layer),
    }


def _inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(case.n, case.c, case.size, case.size, generator=generator)
    mask = (torch.rand(case.n, case.c, case.size, case.size, generator=generator) > 0.3).float()
    return x, mask


def _kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def peak_bytes(case: Case, name: str, grad: bool) -> int:
    forward, layer = methods(case)[name]
    x, mask = _inputs(case)
    layer.requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        forward(x, mask)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset VmHWM to the current resident size
        before = _kib("VmRSS")
        out = forward(x, mask)
        peak = 1024 * (_kib("VmHWM") - before)
    del out
    return peak


def peaks(quick: bool) -> dict[str, int]:
    return {
        f"{case.name}/{name}/{'grad' if grad else 'no_grad'}": peak_bytes(case, name, grad)
        for case in cases(quick)
        for name in NAMES
        for grad in (True, False)
    }


def measured_peaks(quick: bool) -> dict[str, int]:
    command = [sys.executable, os.path.abspath(__file__), "--memory-only"] + ["--quick"] * quick
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def forward_ms(case: Case, name: str, repeats: int) -> float:
    forward, _ = methods(case)[name]
    x, mask = _inputs(case)
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            start = time.perf_counter()
            forward(x, mask)
            if i:
                times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def check_same_output(case: Case) -> float:
    """Largest difference between the two formulations (they compute the same thing)."""
    (lean, _), (reference, _), _ = methods(case).values()
    x, mask = _inputs(case)
    with torch.no_grad():
        return float((lean(x, mask) - reference(x, mask)).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small shape")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per method")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_only:
        print(json.dumps(peaks(args.quick)))
        return
    peak = measured_peaks(args.quick)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("| shape | method | peak MB (grad) | peak MB (no_grad) | fwd ms | max diff |")
    print("|---|---|---|---|---|---|")
    for case in cases(args.quick):
        diff = check_same_output(case)
        for name in NAMES:
            grad = peak[f"{case.name}/{name}/grad"] / 2**20
            no_grad = peak[f"{case.name}/{name}/no_grad"] / 2**20
            ms = forward_ms(case, name, args.repeats)
            print(f"| {case.name} | {name} | {grad:.1f} | {no_grad:.1f} | {ms:.0f} | {diff:.1e} |")
        ratios = [
            peak[f"{case.name}/locality/{mode}"] / peak[f"{case.name}/materialised/{mode}"]
            for mode in ("grad", "no_grad")
        ]
        print(
            f"| {case.name} | ratio locality/materialised | {ratios[0]:.2f} | {ratios[1]:.2f} | | |"
        )
        over = [
            (peak[f"{case.name}/locality/{mode}"] - peak[f"{case.name}/conv2d, no mask/{mode}"])
            / (
                peak[f"{case.name}/materialised/{mode}"]
                - peak[f"{case.name}/conv2d, no mask/{mode}"]
            )
            for mode in ("grad", "no_grad")
        ]
        print(
            f"| {case.name} | ratio of the excess over conv2d | {over[0]:.2f} | {over[1]:.2f} | | |"
        )


if __name__ == "__main__":
    main()
